"""Cancellation, caching through the engine, and the cache modes."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from batches import chat_batch

from fastllm import DiskCache, InMemoryCache, OpenAIProvider
from fastllm.testing import MockServer


def test_a_rerun_is_served_from_the_cache(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    cache = InMemoryCache()
    manager = make_manager(provider, caching_provider=cache)
    prompts = [f"c{i}" for i in range(50)]
    first = manager.process_batch(chat_batch(prompts))
    assert server.stats()["requests"] == 50
    second = manager.process_batch(chat_batch(prompts))
    assert server.stats()["requests"] == 50
    assert all(r.cached for r in second)
    assert [r.body for r in second] == [r.body for r in first]
    stats = manager.stats()
    assert stats.cache_hits == 50
    assert stats.cache_hit_ratio == 1.0
    assert stats.sent == 0


def test_cache_modes(provider: OpenAIProvider, server: MockServer, make_manager) -> None:
    cache = InMemoryCache()
    manager = make_manager(provider, caching_provider=cache)
    batch = chat_batch(["m1", "m2"])
    manager.process_batch(batch)
    manager.process_batch(batch, cache="refresh")  # sends again, rewrites the cache
    assert server.stats()["requests"] == 4
    manager.process_batch(batch, cache="off")
    assert server.stats()["requests"] == 6
    assert all(r.cached for r in manager.process_batch(batch))
    assert server.stats()["requests"] == 6


def test_failures_are_not_cached(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    server.configure(fail_first=1, fail_first_status=400)
    cache = InMemoryCache()
    manager = make_manager(provider, caching_provider=cache)
    (failed,) = manager.process_batch(chat_batch(["f"]))
    assert not failed.ok
    (retried,) = manager.process_batch(chat_batch(["f"]))
    assert retried.ok
    assert not retried.cached


def test_two_providers_never_share_an_answer(
    server: MockServer, make_manager, api_key: str
) -> None:
    cache = InMemoryCache()
    batch = chat_batch(["iso"])
    a = OpenAIProvider(api_key=api_key, api_base=server.base_url)
    b = OpenAIProvider(api_key=api_key, api_base=server.base_url.replace("127.0.0.1", "localhost"))
    make_manager(a, caching_provider=cache).process_batch(batch)
    (result,) = make_manager(b, caching_provider=cache).process_batch(batch)
    assert not result.cached
    assert server.stats()["requests"] == 2


def test_disk_cache_resumes_a_run_and_holds_no_key(
    provider: OpenAIProvider, server: MockServer, make_manager, tmp_path, api_key: str
) -> None:
    prompts = [f"d{i}" for i in range(30)]
    manager = make_manager(provider, caching_provider=DiskCache(tmp_path / "cache"))
    manager.process_batch(chat_batch(prompts[:20]))  # a "crashed" first run did 20
    again = make_manager(provider, caching_provider=DiskCache(tmp_path / "cache"))
    results = again.process_batch(chat_batch(prompts))
    assert server.stats()["requests"] == 30
    assert sum(r.cached for r in results) == 20
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file():
            assert api_key.encode() not in path.read_bytes()


def test_a_broken_cache_degrades_to_misses(
    provider: OpenAIProvider, server: MockServer, make_manager, caplog
) -> None:
    class Broken(InMemoryCache):
        async def get_many(self, keys):  # type: ignore[override]
            raise OSError("disk on fire")

        async def get_many_raw(self, keys):  # type: ignore[override]
            raise OSError("disk on fire")

        async def put_many(self, items):  # type: ignore[override]
            raise OSError("disk on fire")

    manager = make_manager(provider, caching_provider=Broken())
    results = manager.process_batch(chat_batch(["b"]))
    assert results[0].ok
    assert "disk on fire" in caplog.text
    assert manager.stats().cache_errors == 2  # the lookup and the write
    assert "1 sent, 0 retries; 2 cache errors" in manager.stats().summary()


async def test_cancellation_keeps_completed_results_cached(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    server.configure(latency=0.05)
    cache = InMemoryCache()
    manager = make_manager(provider, concurrency=4, caching_provider=cache)
    prompts = [f"x{i}" for i in range(200)]
    seen = []
    async with contextlib.aclosing(manager.as_completed(chat_batch(prompts))) as results:
        async for result in results:
            seen.append(result)
            if len(seen) == 8:
                break  # the consumer stops: the run is cancelled, finished work is kept
    assert len(seen) == 8
    hits = await cache.get_many([manager.cache_key(r.request_id) for r in seen])
    assert len(hits) == 8
    assert server.stats()["requests"] < 200


async def test_cancelling_a_run_raises_and_leaves_nothing_behind(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    server.configure(latency=2.0)
    manager = make_manager(provider, concurrency=10)
    task = asyncio.ensure_future(manager.aprocess_batch(chat_batch([f"z{i}" for i in range(30)])))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert pending == []


async def test_a_corrupt_cached_answer_is_reported_when_read(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    from fastllm.errors import ResponseDecodingError

    cache = InMemoryCache()
    manager = make_manager(provider, caching_provider=cache)
    batch = chat_batch(["will rot"])
    (first,) = await manager.aprocess_batch(batch)
    await cache.put(manager.cache_key(first.request_id), b'{"choices": [tru}')
    (again,) = await manager.aprocess_batch(batch)
    assert again.cached
    with pytest.raises(ResponseDecodingError, match="corrupt"):
        _ = again.body
