"""InMemoryCache through the public API: single-key and bulk use, LRU, TTL, stats."""

from __future__ import annotations

import logging
import math

import pytest

from fastllm.cache import CacheProvider, CacheStats, InMemoryCache
from fastllm.errors import CacheError, ConfigurationError


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def answer(n: int) -> dict[str, object]:
    return {
        "id": f"chatcmpl-{n}",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": f"answer {n}"}}],
    }


async def test_put_get_exists_and_keyerror() -> None:
    cache = InMemoryCache()
    assert isinstance(cache, CacheProvider)
    assert not await cache.exists("a")
    with pytest.raises(KeyError) as info:
        await cache.get("a")
    assert info.value.args == ("a",)
    await cache.put("a", answer(1))
    assert await cache.exists("a")
    assert await cache.get("a") == answer(1)


async def test_put_replaces_value() -> None:
    cache = InMemoryCache()
    await cache.put("a", answer(1))
    await cache.put("a", answer(2))
    assert await cache.get("a") == answer(2)
    assert cache.stats().entries == 1


async def test_accepts_raw_body_bytes() -> None:
    cache = InMemoryCache()
    await cache.put("a", b' {"id": "x", "n": [1, 2]}\n')
    assert await cache.get("a") == {"id": "x", "n": [1, 2]}


async def test_bulk_operations_return_only_hits() -> None:
    cache = InMemoryCache()
    await cache.put_many({f"k{i}": answer(i) for i in range(100)})
    keys = [f"k{i}" for i in range(0, 200, 2)]
    found = await cache.get_many(keys)
    assert found == {f"k{i}": answer(i) for i in range(0, 100, 2)}
    assert await cache.get_many([]) == {}
    await cache.put_many({})
    assert cache.stats().entries == 100


async def test_lru_evicts_least_recently_used_first() -> None:
    cache = InMemoryCache(max_entries=3)
    await cache.put_many({"a": answer(1), "b": answer(2), "c": answer(3)})
    await cache.get("a")  # a is now the most recently used; b the least
    await cache.put("d", answer(4))
    assert set(await cache.get_many(["a", "b", "c", "d"])) == {"a", "c", "d"}
    await cache.put("c", answer(33))  # rewriting refreshes c; a is now the oldest
    await cache.put("e", answer(5))
    assert set(await cache.get_many(["a", "c", "d", "e"])) == {"c", "d", "e"}
    assert cache.stats().entries == 3


async def test_lru_bulk_put_larger_than_limit_keeps_the_last() -> None:
    cache = InMemoryCache(max_entries=10)
    await cache.put_many({f"k{i}": answer(i) for i in range(25)})
    found = await cache.get_many([f"k{i}" for i in range(25)])
    assert sorted(found) == sorted(f"k{i}" for i in range(15, 25))


async def test_ttl_expiry_with_fake_clock() -> None:
    clock = FakeClock()
    cache = InMemoryCache(ttl=10.0, clock=clock)
    await cache.put("a", answer(1))
    clock.advance(5)
    await cache.put("b", answer(2))
    clock.advance(4.999)
    assert set(await cache.get_many(["a", "b"])) == {"a", "b"}
    clock.advance(0.001)  # a is exactly 10 s old: expired
    assert set(await cache.get_many(["a", "b"])) == {"b"}
    assert cache.stats().entries == 1  # a was removed on read
    clock.advance(5)
    assert not await cache.exists("b")
    assert cache.stats().entries == 0
    assert cache.stats().size_bytes == 0


async def test_reading_does_not_extend_ttl() -> None:
    clock = FakeClock()
    cache = InMemoryCache(ttl=10.0, clock=clock)
    await cache.put("a", answer(1))
    for _ in range(9):
        clock.advance(1)
        assert await cache.exists("a")
    clock.advance(1)
    assert not await cache.exists("a")


async def test_values_are_immutable_to_callers() -> None:
    cache = InMemoryCache()
    original = answer(1)
    await cache.put("a", original)
    original["choices"][0]["message"]["content"] = "changed after put"  # type: ignore[index]
    got = await cache.get("a")
    assert got == answer(1)
    got["choices"][0]["message"]["content"] = "changed after get"
    got["extra"] = 1
    again = await cache.get("a")
    assert again == answer(1)
    assert again is not got


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"max_entries": 0}, "max_entries"),
        ({"max_entries": -5}, "max_entries"),
        ({"max_entries": 2.5}, "max_entries"),
        ({"max_entries": True}, "max_entries"),
        ({"ttl": 0}, "ttl"),
        ({"ttl": -1.0}, "ttl"),
        ({"ttl": math.nan}, "ttl"),
        ({"ttl": "10"}, "ttl"),
    ],
)
def test_bad_arguments_raise_configuration_error(kwargs: dict[str, object], argument: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        InMemoryCache(**kwargs)  # type: ignore[arg-type]
    assert info.value.argument == argument
    assert argument in str(info.value)


def test_valid_arguments_are_kept() -> None:
    cache = InMemoryCache(max_entries=5, ttl=1.5)
    assert (cache.max_entries, cache.ttl) == (5, 1.5)
    assert (InMemoryCache().max_entries, InMemoryCache().ttl) == (None, None)


async def test_bad_values_are_rejected_and_nothing_is_stored() -> None:
    cache = InMemoryCache()
    with pytest.raises(CacheError):
        await cache.put_many({"ok": answer(1), "bad": b"[1, 2, 3]"})
    with pytest.raises(CacheError):
        await cache.put("bad", {"x": object()})
    with pytest.raises(TypeError):
        await cache.put("bad", [1, 2])  # type: ignore[arg-type]
    assert cache.stats().entries == 0
    assert cache.stats().errors == 3


async def test_corrupt_entry_is_a_logged_counted_miss(caplog: pytest.LogCaptureFixture) -> None:
    cache = InMemoryCache()
    # passes the cheap check of raw bytes ('{' ... '}') but is not JSON
    await cache.put_many({"bad": b"{not json}", "good": answer(1)})
    with caplog.at_level(logging.WARNING, logger="fastllm.cache"):
        found = await cache.get_many(["bad", "good"])
    assert found == {"good": answer(1)}
    assert len(caplog.records) == 1
    assert "corrupt" in caplog.records[0].getMessage()
    stats = cache.stats()
    assert (stats.entries, stats.errors, stats.hits, stats.misses) == (1, 1, 1, 1)
    assert not await cache.exists("bad")


async def test_stats_count_hits_misses_writes_and_size() -> None:
    cache = InMemoryCache(max_entries=2)
    assert cache.stats() == CacheStats(0, 0, 0, 0, 0, 0)
    await cache.put_many({"a": b'{"a":1}', "b": b'{"b":22}'})
    await cache.get_many(["a", "b", "c"])
    await cache.exists("a")
    with pytest.raises(KeyError):
        await cache.get("zz")
    assert cache.stats() == CacheStats(
        entries=2, size_bytes=15, hits=3, misses=2, writes=2, errors=0
    )
    await cache.put("c", b'{"c":333}')  # evicts b, the least recently used
    assert cache.stats().size_bytes == 7 + 9
    await cache.put("a", b'{"a":4444}')
    assert cache.stats().size_bytes == 10 + 9
    await cache.clear()
    assert cache.stats() == CacheStats(0, 0, hits=3, misses=2, writes=4, errors=0)


async def test_context_manager_and_idempotent_close() -> None:
    async with InMemoryCache() as cache:
        await cache.put("a", answer(1))
        assert await cache.get("a") == answer(1)
    await cache.close()
    await cache.close()
