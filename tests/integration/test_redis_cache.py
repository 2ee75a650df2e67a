"""RedisCache against a real redis-server: the cache protocol, TTL, namespaces, failures."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import traceback
import warnings
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis
from openai.types.chat import ChatCompletion
from redis_server import RedisServer, free_port, redis_url_for_session, unique

from fastllm import OpenAIProvider, RequestBatch
from fastllm.cache import CacheStats, encode_value
from fastllm.cache.redis import RedisCache
from fastllm.errors import CacheError, ConfigurationError

pytestmark = pytest.mark.redis

PASSWORD = "s3cret-NEVER-LEAK-91c"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    yield from redis_url_for_session()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
async def cache(redis_url: str) -> Any:
    async with RedisCache(redis_url, namespace=unique("test")) as made:
        yield made
        await made.clear()


def body(i: int) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{i}",
        "object": "chat.completion",
        "created": 1727000000 + i,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": f"answer {i}"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


async def test_round_trip_of_every_value_kind(cache: RedisCache) -> None:
    model = ChatCompletion.model_validate(body(3))
    await cache.put_many({"a": body(1), "b": orjson.dumps(body(2)), "c": model})
    found = await cache.get_many(["a", "b", "c", "missing"])
    assert found == {"a": body(1), "b": body(2), "c": orjson.loads(encode_value(model))}
    raw = await cache.get_many_raw(["a", "b", "missing"])
    assert raw == {"a": orjson.dumps(body(1)), "b": orjson.dumps(body(2))}
    assert await cache.exists("a")
    assert not await cache.exists("missing")
    with pytest.raises(KeyError):
        await cache.get("missing")
    found["a"]["id"] = "changed"
    assert (await cache.get("a"))["id"] == "chatcmpl-1"


async def test_stores_exactly_the_json_body(cache: RedisCache, raw: redis.Redis) -> None:
    await cache.put("key-1", body(1))
    stored = raw.get(cache.redis_key("key-1"))
    assert cache.redis_key("key-1") == f"{cache.namespace}:key-1"
    assert stored == encode_value(body(1))
    assert b"key-1" not in stored
    assert raw.ttl(cache.redis_key("key-1")) == -1  # no ttl: no expiry


async def test_ttl_expires_in_redis(redis_url: str, raw: redis.Redis) -> None:
    async with RedisCache(redis_url, ttl=0.3, namespace=unique("ttl")) as cache:
        await cache.put_many({"k": body(1)})
        assert 0 < raw.pttl(cache.redis_key("k")) <= 300
        assert await cache.get_many(["k"]) == {"k": body(1)}
        await asyncio.sleep(0.6)
        assert await cache.get_many(["k"]) == {}
        assert cache.stats().entries == 0


async def test_bulk_operations_over_many_chunks(cache: RedisCache) -> None:
    items = {f"k{i}": body(i) for i in range(2500)}
    await cache.put_many(items)
    keys = [*items, *(f"absent{i}" for i in range(100)), "k0", "k1"]
    raw = await cache.get_many_raw(keys)
    assert len(raw) == 2500
    assert raw["k2499"] == orjson.dumps(body(2499))
    stats = cache.stats()
    assert stats.entries == 2500
    assert stats.size_bytes == sum(len(orjson.dumps(v)) for v in items.values())
    assert (stats.hits, stats.misses, stats.writes, stats.errors) == (2500, 100, 2500, 0)
    assert await cache.get_many([]) == {}


async def test_clear_removes_only_its_namespace(redis_url: str, raw: redis.Redis) -> None:
    base = unique("ns")
    names = [base, base + "2", base + "[x]*?"]
    caches = [RedisCache(redis_url, namespace=name) for name in names]
    try:
        for cache in caches:
            await cache.put_many({f"k{i}": body(i) for i in range(1200)})
        raw.set(base + "-plain", b"{}")
        await caches[0].clear()
        assert caches[0].stats().entries == 0
        assert await caches[0].get_many(["k1"]) == {}
        await caches[2].clear()
        assert caches[2].stats().entries == 0
        assert caches[1].stats().entries == 1200
        assert raw.get(base + "-plain") == b"{}"
    finally:
        raw.delete(base + "-plain")
        for cache in caches:
            await cache.clear()
            await cache.close()


async def test_a_corrupt_value_is_a_miss_counted_and_deleted(
    cache: RedisCache, raw: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    raw.set(cache.redis_key("garbage"), b"not json")
    raw.set(cache.redis_key("array"), b"[1, 2]")
    raw.set(cache.redis_key("broken"), b'{"a": }')  # looks like an object, is not JSON
    await cache.put("good", body(1))
    with caplog.at_level(logging.WARNING):
        assert await cache.get_many_raw(["garbage", "array", "good"]) == {
            "good": orjson.dumps(body(1))
        }
        assert await cache.get_many(["broken", "good"]) == {"good": body(1)}
    assert "corrupt" in caplog.text
    assert raw.exists(*(cache.redis_key(k) for k in ("garbage", "array", "broken"))) == 0
    stats = cache.stats()
    assert (stats.entries, stats.errors, stats.hits, stats.misses) == (1, 3, 2, 3)


async def test_rejects_values_that_are_not_json_objects(cache: RedisCache) -> None:
    with pytest.raises(CacheError):
        await cache.put("k", b"[1, 2, 3]")
    with pytest.raises(TypeError):
        await cache.put("k", 42)  # type: ignore[arg-type]
    assert cache.stats().errors == 2


def test_unreachable_url_fails_at_construction_without_the_password() -> None:
    port = free_port()
    with pytest.raises(CacheError) as caught:
        RedisCache(f"redis://user:{PASSWORD}@127.0.0.1:{port}/0", timeout=1.0)
    text = "".join(traceback.format_exception(caught.value))
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "user:***@" in str(caught.value)
    assert PASSWORD not in text


def test_bad_urls_and_settings_are_configuration_errors(redis_url: str) -> None:
    with pytest.raises(ConfigurationError, match="url"):
        RedisCache(f"http://user:{PASSWORD}@127.0.0.1:1/0")
    with pytest.raises(ConfigurationError, match="ttl"):
        RedisCache(redis_url, ttl=0)
    with pytest.raises(ConfigurationError, match="namespace"):
        RedisCache(redis_url, namespace="")


def test_missing_redis_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "redis" or m.startswith("redis.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(CacheError, match=r"fastllm-kit\[redis\]"):
        RedisCache("redis://127.0.0.1:6379/0")


async def test_password_protected_server_and_a_server_that_goes_away() -> None:
    server = RedisServer(extra=("--requirepass", PASSWORD)).start()
    url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"
    try:
        cache = RedisCache(url, namespace="secret")
        assert PASSWORD not in repr(cache)
        assert PASSWORD not in cache.url
        await cache.put("k", body(1))
        client = redis.Redis.from_url(url)
        dump = b"".join(client.get(k) or b"" for k in client.keys("*"))
        client.close()
        assert PASSWORD.encode() not in dump
        server.stop()
        with pytest.raises(CacheError) as caught:
            await cache.get_many(["k"])
        assert f"127.0.0.1:{server.port}" in str(caught.value)
        assert PASSWORD not in "".join(traceback.format_exception(caught.value))
        with pytest.raises(CacheError):
            cache.stats()
        await cache.close()
        with pytest.raises(CacheError, match="closed"):
            await cache.get_many(["k"])
    finally:
        server.stop()


def test_engine_reruns_are_answered_from_redis_across_event_loops(
    redis_url: str, provider: OpenAIProvider, server: Any, make_manager: Any
) -> None:
    namespace = unique("engine")
    batch = RequestBatch()
    for i in range(60):
        batch.chat.completions.create(
            model="mock-model", messages=[{"role": "user", "content": f"redis prompt {i % 40}"}]
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cache = RedisCache(redis_url, namespace=namespace)
        first = make_manager(provider, caching_provider=cache).process_batch(batch)
        assert all(r.ok for r in first)
        assert server.stats()["requests"] == 40
        # a new process would build a new cache object: same namespace, same answers
        again = RedisCache(redis_url, namespace=namespace)
        second = make_manager(provider, caching_provider=again).process_batch(batch)
        third = make_manager(provider, caching_provider=cache).process_batch(batch)
        del first
        gc.collect()
    assert server.stats()["requests"] == 40
    assert all(r.ok and r.cached for r in second + third)
    assert [r.body for r in second] == [r.body for r in third]
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert again.stats() == CacheStats(40, again.stats().size_bytes, 40, 0, 0, 0)
    cache.close_sync()
    again.close_sync()
    with pytest.raises(CacheError):
        cache.stats()
