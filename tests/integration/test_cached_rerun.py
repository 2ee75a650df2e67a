"""A re-run answered from the cache: order, dedupe, stats, streaming outputs, modes, TTL.

The engine answers cache hits a planner chunk (``PLAN_CHUNK`` requests) at a time,
so several tests use more requests than one chunk, with hits, misses and
duplicates mixed inside a chunk and across chunks.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from batches import chat_batch

from fastllm import DiskCache, InMemoryCache, OpenAIProvider, RequestBatch, RequestManager
from fastllm.cache import CacheProvider
from fastllm.engine.scheduler import PLAN_CHUNK
from fastllm.testing import MockServer

MakeManager = Callable[..., RequestManager]


def contents(results: list[Any]) -> list[str]:
    return [r.response.choices[0].message.content for r in results]


class Clock:
    """A settable time source for the caches' TTL."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_cache(kind: str, tmp_path: Path, **options: Any) -> CacheProvider:
    if kind == "memory":
        return InMemoryCache(**options)
    return DiskCache(tmp_path / "cache", **options)


@pytest.fixture(params=["memory", "disk"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_a_rerun_of_more_than_a_chunk_is_all_hits_in_order(
    provider: OpenAIProvider, server: MockServer, make_manager: MakeManager, kind: str, tmp_path
) -> None:
    prompts = [f"p{i}" for i in range(PLAN_CHUNK * 2 + 100)]
    manager = make_manager(provider, caching_provider=make_cache(kind, tmp_path))
    batch = chat_batch(prompts)
    first = manager.process_batch(batch)
    server.reset()
    again = manager.process_batch(batch)
    assert server.stats()["requests"] == 0
    assert contents(again) == prompts
    assert [r.order for r in again] == list(range(len(prompts)))
    assert [r.custom_id for r in again] == [r.custom_id for r in first]
    assert all(r.cached and not r.deduplicated and r.attempts == 0 for r in again)
    assert all(r.latency is None and r.ttft is None for r in again)
    stats = manager.stats()
    assert stats.cache_hits == stats.succeeded == stats.requests_completed == len(prompts)
    assert stats.sent == stats.deduplicated == stats.failed == 0
    assert stats.cache_hit_ratio == 1.0
    assert stats.saved_tokens == sum(r.usage.total_tokens for r in first)
    assert stats.prompt_tokens == stats.completion_tokens == 0


def test_duplicates_within_and_across_chunks_share_one_hit(
    provider: OpenAIProvider, server: MockServer, make_manager: MakeManager, kind: str, tmp_path
) -> None:
    distinct = [f"d{i}" for i in range(700)]
    prompts = [distinct[i % 700] for i in range(PLAN_CHUNK * 2 + 500)]  # 3 chunks
    manager = make_manager(provider, caching_provider=make_cache(kind, tmp_path))
    manager.process_batch(chat_batch(distinct))
    server.reset()
    results = manager.process_batch(chat_batch(prompts))
    assert server.stats()["requests"] == 0
    assert contents(results) == prompts
    first_seen: set[str] = set()
    for result in results:
        assert result.cached
        assert result.deduplicated == (result.request_id in first_seen)
        first_seen.add(result.request_id)
    stats = manager.stats()
    assert stats.cache_hits == 700
    assert stats.deduplicated == len(prompts) - 700
    assert stats.succeeded == len(prompts)
    assert stats.cache_hit_ratio == 1.0
    assert stats.saved_tokens == sum(r.usage.total_tokens for r in results)


def test_hits_and_misses_mixed_in_one_chunk_keep_request_order(
    provider: OpenAIProvider, server: MockServer, make_manager: MakeManager, kind: str, tmp_path
) -> None:
    prompts = [f"m{i}" for i in range(PLAN_CHUNK + 300)]
    cached = prompts[::3]  # every third request is a hit, the rest are sent
    manager = make_manager(provider, caching_provider=make_cache(kind, tmp_path))
    manager.process_batch(chat_batch(cached))
    server.reset()
    doubled = prompts + prompts[:50]  # and identical requests of both kinds at the end
    results = manager.process_batch(chat_batch(doubled))
    assert contents(results) == doubled
    assert server.stats()["requests"] == len(prompts) - len(cached)
    assert [r.cached for r in results[: len(prompts)]] == [i % 3 == 0 for i in range(len(prompts))]
    assert all(r.deduplicated for r in results[len(prompts) :])
    stats = manager.stats()
    assert stats.cache_hits == len(cached)
    assert stats.sent == len(prompts) - len(cached)
    assert stats.deduplicated == 50
    assert stats.succeeded == len(doubled)
    assert stats.saved_tokens == sum(
        r.usage.total_tokens for r in results if r.cached or r.deduplicated
    )


async def test_as_completed_yields_every_hit_once(
    provider: OpenAIProvider, server: MockServer, make_manager: MakeManager
) -> None:
    prompts = [f"a{i % 900}" for i in range(PLAN_CHUNK + 200)]
    manager = make_manager(provider, caching_provider=InMemoryCache())
    await manager.aprocess_batch(chat_batch(prompts))
    server.reset()
    seen = [r async for r in manager.as_completed(chat_batch(prompts))]
    assert server.stats()["requests"] == 0
    assert sorted(r.order for r in seen) == list(range(len(prompts)))
    assert all(r.cached for r in seen)
    by_order = {r.order: r.response.choices[0].message.content for r in seen}
    assert [by_order[i] for i in range(len(prompts))] == prompts
    assert manager.stats().cache_hits == 900


async def test_iter_ordered_with_a_window_smaller_than_a_chunk(
    provider: OpenAIProvider, server: MockServer, make_manager: MakeManager
) -> None:
    # Hits are held back until the end of their chunk, except when the planner must
    # wait for the consumer: then they are emitted first, or the run would never end.
    prompts = [f"o{i}" for i in range(PLAN_CHUNK + 300)]
    manager = make_manager(provider, caching_provider=InMemoryCache())
    await manager.aprocess_batch(chat_batch(prompts[::2]))  # every other one cached
    ordered = manager.iter_ordered(chat_batch(prompts), max_ahead=5)
    results = await asyncio.wait_for(_collect(ordered), timeout=30)
    assert contents(results) == prompts
    assert [r.cached for r in results] == [i % 2 == 0 for i in range(len(prompts))]


async def _collect(results: Any) -> list[Any]:
    return [r async for r in results]


def test_refresh_and_off_never_read_the_cache(
    provider: OpenAIProvider, server: MockServer, make_manager: MakeManager, kind: str, tmp_path
) -> None:
    cache = make_cache(kind, tmp_path)
    manager = make_manager(provider, caching_provider=cache)
    batch = chat_batch([f"r{i}" for i in range(20)])
    manager.process_batch(batch)
    for mode in ("refresh", "off"):
        server.reset()
        results = manager.process_batch(batch, cache=mode)
        assert server.stats()["requests"] == 20
        assert not any(r.cached for r in results)
        assert manager.stats().cache_hits == 0
    assert all(r.cached for r in manager.process_batch(batch))


def test_without_dedupe_the_cache_is_not_read(
    provider: OpenAIProvider, server: MockServer, make_manager: MakeManager
) -> None:
    manager = make_manager(provider, caching_provider=InMemoryCache(), dedupe=False)
    batch = chat_batch(["same", "same"])
    manager.process_batch(batch)
    server.reset()
    results = manager.process_batch(batch)
    assert server.stats()["requests"] == 2
    assert not any(r.cached or r.deduplicated for r in results)


def test_expired_entries_are_sent_again(
    provider: OpenAIProvider, server: MockServer, make_manager: MakeManager, kind: str, tmp_path
) -> None:
    clock = Clock()
    cache = make_cache(kind, tmp_path, ttl=10.0, clock=clock)
    manager = make_manager(provider, caching_provider=cache)
    old = [f"t{i}" for i in range(PLAN_CHUNK + 10)]
    manager.process_batch(chat_batch(old))
    clock.now += 6
    new = [f"n{i}" for i in range(30)]
    manager.process_batch(chat_batch(new))
    clock.now += 5  # the first answers are 11 s old, the others 5 s
    server.reset()
    results = manager.process_batch(chat_batch(old + new))
    assert contents(results) == old + new
    assert server.stats()["requests"] == len(old)
    assert [r.cached for r in results] == [False] * len(old) + [True] * len(new)
    assert manager.stats().cache_hits == len(new)
    assert all(r.cached for r in manager.process_batch(chat_batch(old)))  # written again


def test_a_corrupt_disk_entry_is_a_miss_with_a_warning(
    provider: OpenAIProvider,
    server: MockServer,
    make_manager: MakeManager,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = DiskCache(tmp_path / "cache")
    manager = make_manager(provider, caching_provider=cache)
    prompts = [f"c{i}" for i in range(10)]
    first = manager.process_batch(chat_batch(prompts))
    rotten = manager.cache_key(first[3].request_id)
    with sqlite3.connect(cache.path) as conn:
        conn.execute("UPDATE entries SET value = ? WHERE key = ?", (b"[1, 2]", rotten))
    server.reset()
    with caplog.at_level(logging.WARNING):
        results = manager.process_batch(chat_batch(prompts))
    assert "corrupt" in caplog.text
    assert contents(results) == prompts
    assert [r.cached for r in results] == [i != 3 for i in range(10)]
    assert server.stats()["requests"] == 1
    assert cache.stats().errors == 1


def test_two_managers_share_one_disk_directory(
    provider: OpenAIProvider, server: MockServer, make_manager: MakeManager, tmp_path: Path
) -> None:
    prompts = [f"s{i}" for i in range(PLAN_CHUNK + 5)]
    writer = make_manager(provider, caching_provider=DiskCache(tmp_path / "shared"))
    writer.process_batch(chat_batch(prompts))
    server.reset()
    reader = make_manager(provider, caching_provider=DiskCache(tmp_path / "shared"))
    results = reader.process_batch(chat_batch(prompts))
    assert server.stats()["requests"] == 0
    assert contents(results) == prompts
    assert reader.stats().cache_hits == len(prompts)


def test_embeddings_are_answered_from_the_cache(
    provider: OpenAIProvider, server: MockServer, make_manager: MakeManager
) -> None:
    manager = make_manager(provider, caching_provider=InMemoryCache())
    batch = RequestBatch()
    batch.chat.completions.create(model="mock-model", messages=[{"role": "user", "content": "q"}])
    batch.embeddings.create(model="mock-embed", input=["x", "y"])
    first = manager.process_batch(batch)
    server.reset()
    again = manager.process_batch(batch)
    assert server.stats()["requests"] == 0
    assert all(r.cached for r in again)
    assert again[1].embeddings == first[1].embeddings
    assert manager.stats().cache_hits == 2
