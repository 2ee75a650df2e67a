"""DiskCache on real SQLite files: persistence, TTL, eviction, corruption, processes."""

from __future__ import annotations

import asyncio
import logging
import os
import pathlib
import pickle
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
import pytest

from fastllm.cache import CacheStats, DiskCache, encode_value
from fastllm.errors import CacheError, ConfigurationError

# Shared by the tests and the child processes they start.
BODY_CODE = """
def body(worker, i):
    return {
        "id": f"chatcmpl-{worker}-{i}",
        "object": "chat.completion",
        "created": 1727000000 + i,
        "model": "gpt-4o-mini",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": f"answer {i} from {worker} " * 8},
            "finish_reason": "stop",
        }],
        "usage": {"prompt_tokens": 20, "completion_tokens": 40, "total_tokens": 60},
    }
"""
_shared: dict[str, Any] = {}
exec(BODY_CODE, _shared)
body = _shared["body"]

WRITER_SCRIPT = (
    BODY_CODE
    + """
import asyncio, sys
from fastllm.cache import DiskCache

async def main(directory, worker, count, batch):
    async with DiskCache(directory) as cache:
        print("ready", flush=True)
        sys.stdin.readline()
        for start in range(0, count, batch):
            items = {f"w{worker}-{i}": body(worker, i) for i in range(start, start + batch)}
            await cache.put_many(items)
        mine = [f"w{worker}-{i}" for i in range(count)]
        assert len(await cache.get_many(mine)) == count
    print("done", flush=True)

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
"""
)

CRASH_SCRIPT = (
    BODY_CODE
    + """
import asyncio, sys
from fastllm.cache import DiskCache

async def main(directory):
    cache = DiskCache(directory)
    n = 0
    while True:
        keys = [f"c-{n + j}" for j in range(25)]
        await cache.put_many({k: body("crash", n + j) for j, k in enumerate(keys)})
        n += 25
        print(" ".join(keys), flush=True)

asyncio.run(main(sys.argv[1]))
"""
)


class FakeClock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def rows(cache: DiskCache) -> dict[str, bytes]:
    """The stored rows, read with a separate connection."""
    with closing(sqlite3.connect(cache.path)) as conn:
        return dict(conn.execute("SELECT key, value FROM entries").fetchall())


def insert_raw(cache: DiskCache, key: str, value: object, stored_at: object) -> None:
    """A row written behind the cache's back (how corruption would look)."""
    with closing(sqlite3.connect(cache.path)) as conn, conn:
        conn.execute(
            "INSERT OR REPLACE INTO entries (key, value, size, stored_at, accessed_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (key, value, 10, stored_at, 0.0),
        )


async def test_put_get_exists_keyerror(tmp_path: Path) -> None:
    async with DiskCache(tmp_path / "c") as cache:
        assert not await cache.exists("a")
        with pytest.raises(KeyError):
            await cache.get("a")
        await cache.put("a", body(0, 1))
        await cache.put("raw", orjson.dumps(body(0, 2)))
        assert await cache.exists("a")
        assert await cache.get("a") == body(0, 1)
        assert await cache.get("raw") == body(0, 2)
        assert cache.path == tmp_path / "c" / "cache.sqlite3"


async def test_persistence_across_instances(tmp_path: Path) -> None:
    directory = tmp_path / "deep" / "er" / "cache"
    async with DiskCache(str(directory)) as cache:
        await cache.put_many({f"k{i}": body(1, i) for i in range(50)})
    async with DiskCache(directory) as cache:
        found = await cache.get_many([f"k{i}" for i in range(60)])
        assert found == {f"k{i}": body(1, i) for i in range(50)}
        assert cache.stats().entries == 50


async def test_two_open_instances_share_the_directory(tmp_path: Path) -> None:
    async with DiskCache(tmp_path) as one, DiskCache(tmp_path) as two:
        await one.put_many({"a": {"from": "one"}})
        await two.put_many({"b": {"from": "two"}})
        assert await one.get_many(["a", "b"]) == await two.get_many(["a", "b"])
        assert one.stats().entries == two.stats().entries == 2


async def test_many_keys_in_one_call_span_several_queries(tmp_path: Path) -> None:
    async with DiskCache(tmp_path) as cache:
        await cache.put_many({f"k{i}": {"i": i} for i in range(1500)})
        keys = [f"k{i}" for i in range(0, 3000, 2)] + ["k0", "k2"]  # misses and duplicates
        found = await cache.get_many(keys)
        assert found == {f"k{i}": {"i": i} for i in range(0, 1500, 2)}
        found["k0"]["i"] = -1  # a fresh dict per read
        assert await cache.get("k0") == {"i": 0}


async def test_replacing_a_value_keeps_totals_exact(tmp_path: Path) -> None:
    async with DiskCache(tmp_path) as cache:
        await cache.put("a", b'{"v": "0123456789"}')
        await cache.put("a", b'{"v": 1}')
        await cache.put_many({"a": b'{"v": 12}', "b": b'{"v": 123}'})
        stats = cache.stats()
        assert (stats.entries, stats.size_bytes) == (2, len(b'{"v": 12}') + len(b'{"v": 123}'))
    async with DiskCache(tmp_path) as cache:
        assert await cache.get("a") == {"v": 12}


async def test_ttl_expiry_with_fake_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    async with DiskCache(tmp_path, ttl=60, clock=clock) as cache:
        await cache.put("old", body(0, 1))
        clock.advance(30)
        await cache.put("new", body(0, 2))
        clock.advance(29.5)
        assert set(await cache.get_many(["old", "new"])) == {"old", "new"}
        clock.advance(0.5)  # old is 60 s old: expired, deleted
        assert set(await cache.get_many(["old", "new"])) == {"new"}
        assert set(rows(cache)) == {"new"}
        assert cache.stats().entries == 1
    # TTL is judged by the reader's ttl and clock, from stored_at
    async with DiskCache(tmp_path, clock=clock) as cache:
        assert await cache.exists("new")
    clock.advance(1000)
    async with DiskCache(tmp_path, ttl=60, clock=clock) as cache:
        assert not await cache.exists("new")
        assert cache.stats().entries == 0


async def test_size_limit_evicts_oldest_writes(tmp_path: Path) -> None:
    clock = FakeClock()
    values = {f"k{i}": body(2, i) for i in range(10, 30)}  # all of one size
    size = len(encode_value(values["k10"]))
    assert all(len(encode_value(v)) == size for v in values.values())
    limit = size * 10
    async with DiskCache(tmp_path, size_limit=limit, clock=clock) as cache:
        for key, value in values.items():
            await cache.put(key, value)
            clock.advance(1)
            assert cache.stats().size_bytes <= limit
        assert set(rows(cache)) == {f"k{i}" for i in range(20, 30)}
        stats = cache.stats()
        assert (stats.entries, stats.size_bytes) == (10, limit)
        # one batch larger than the limit keeps only what fits, the rest is evicted
        await cache.put_many({f"b{i}": body(3, i) for i in range(10, 25)})
        assert cache.stats().size_bytes <= limit
        assert cache.stats().entries == 10


async def test_eviction_follows_access_not_write_order(tmp_path: Path) -> None:
    clock = FakeClock()
    size = len(encode_value(body(4, 0)))
    async with DiskCache(tmp_path, size_limit=size * 3, clock=clock) as cache:
        for name in "abc":
            await cache.put(name, body(4, 0))
            clock.advance(10)
        assert await cache.exists("a")  # a is read: now more recent than b and c
        clock.advance(10)
        await cache.put("d", body(4, 0))
        assert set(rows(cache)) == {"a", "c", "d"}
        await cache.put("e", body(4, 0))
        assert set(rows(cache)) == {"a", "d", "e"}


async def test_access_times_survive_a_reader_that_only_reads(tmp_path: Path) -> None:
    clock = FakeClock()
    size = len(encode_value(body(5, 0)))
    async with DiskCache(tmp_path, size_limit=size * 2, clock=clock) as cache:
        await cache.put("a", body(5, 0))
        clock.advance(10)
        await cache.put("b", body(5, 0))
        clock.advance(10)
    async with DiskCache(tmp_path, size_limit=size * 2, clock=clock) as reader:
        assert await reader.exists("a")  # written at close
    clock.advance(10)
    async with DiskCache(tmp_path, size_limit=size * 2, clock=clock) as cache:
        await cache.put("c", body(5, 0))
        assert set(rows(cache)) == {"a", "c"}


@pytest.mark.parametrize(
    ("value", "stored_at"),
    [
        (b"not json at all", None),
        (b"[1, 2, 3]", None),
        (b'{"truncated": ', None),
        ("plain text", None),
        (12345, None),
        (b'{"fine": 1}', "not a time"),
    ],
)
async def test_corrupt_row_is_a_logged_counted_miss_and_deleted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, value: object, stored_at: object
) -> None:
    clock = FakeClock()
    async with DiskCache(tmp_path, ttl=3600, clock=clock) as cache:
        await cache.put("good", body(6, 1))
        insert_raw(cache, "bad", value, clock.now if stored_at is None else stored_at)
        with caplog.at_level(logging.WARNING, logger="fastllm.cache"):
            found = await cache.get_many(["good", "bad"])
        assert found == {"good": body(6, 1)}
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "corrupt" in warnings[0].getMessage()
        stats = cache.stats()
        assert (stats.hits, stats.misses, stats.errors, stats.entries) == (1, 1, 1, 1)
        assert set(rows(cache)) == {"good"}
        assert not await cache.exists("bad")


class _Payload:
    """Unpickling this would create ``target``."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (pathlib.Path.touch, (self.target,))


async def test_stored_pickle_payload_is_a_miss_never_unpickled(tmp_path: Path) -> None:
    target = tmp_path / "unpickled"
    async with DiskCache(tmp_path / "c") as cache:
        insert_raw(cache, "p", pickle.dumps(_Payload(target)), 1.0)
        assert await cache.get_many(["p"]) == {}
        assert cache.stats().errors == 1
    assert not target.exists()


def test_corrupt_database_file_raises_cache_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "cache.sqlite3").write_bytes(b"this is not a database " * 200)
    with pytest.raises(CacheError, match=r"cache\.sqlite3") as info:
        DiskCache(tmp_path)
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)
    assert str(tmp_path) in str(info.value)


def test_foreign_schema_version_raises_cache_error(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "cache.sqlite3") as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(CacheError, match="version 99"):
        DiskCache(tmp_path)


def test_uncreatable_directory_raises_cache_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    for directory in (blocker / "cache", blocker):
        with pytest.raises(CacheError) as info:
            DiskCache(directory)
        assert str(directory) in str(info.value)
        assert isinstance(info.value.__cause__, OSError)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"ttl": 0}, "ttl"),
        ({"ttl": -3}, "ttl"),
        ({"size_limit": 0}, "size_limit"),
        ({"size_limit": 10.5}, "size_limit"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, Any], argument: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        DiskCache(tmp_path, **kwargs)
    assert info.value.argument == argument
    assert not (tmp_path / "cache.sqlite3").exists()


async def test_clear_close_and_use_after_close(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    await cache.put_many({f"k{i}": {"i": i} for i in range(10)})
    await cache.clear()
    assert await cache.get_many([f"k{i}" for i in range(10)]) == {}
    assert (cache.stats().entries, cache.stats().size_bytes) == (0, 0)
    await cache.close()
    await cache.close()
    cache.close_sync()
    for operation in (
        cache.get_many(["k1"]),
        cache.get("k1"),
        cache.exists("k1"),
        cache.put("k1", {"i": 1}),
        cache.put_many({}),
        cache.clear(),
    ):
        with pytest.raises(CacheError, match="closed"):
            await operation
    with pytest.raises(CacheError, match="closed"):
        cache.stats()


def test_sync_helpers_for_the_cli(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    assert cache.stats() == CacheStats(0, 0, 0, 0, 0, 0)
    cache.close_sync()
    cache.close_sync()
    with pytest.raises(CacheError):
        cache.stats()


async def test_bad_value_fails_the_whole_batch(tmp_path: Path) -> None:
    async with DiskCache(tmp_path) as cache:
        with pytest.raises(CacheError):
            await cache.put_many({"ok": {"a": 1}, "bad": b"<html>502</html>"})
        assert rows(cache) == {}
        assert cache.stats().errors == 1


async def test_stats(tmp_path: Path) -> None:
    async with DiskCache(tmp_path) as cache:
        values = {f"k{i}": body(7, i) for i in range(5)}
        await cache.put_many(values)
        await cache.get_many(["k0", "k1", "nope"])
        await cache.exists("k2")
        expected_size = sum(len(encode_value(v)) for v in values.values())
        assert cache.stats() == CacheStats(
            entries=5, size_bytes=expected_size, hits=3, misses=1, writes=5, errors=0
        )
    async with DiskCache(tmp_path) as cache:  # counters are per object, totals from the file
        assert cache.stats() == CacheStats(5, expected_size, 0, 0, 0, 0)


async def read_back(directory: Path, keys: list[str]) -> tuple[dict[str, Any], CacheStats]:
    async with DiskCache(directory) as cache:
        return await cache.get_many(keys), cache.stats()


def _start(script: str, *args: object, stderr_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr_path.open("w"),
        text=True,
    )


def test_several_processes_write_one_directory_at_once(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    workers, count, batch = 4, 300, 50
    procs = [
        _start(WRITER_SCRIPT, directory, w, count, batch, stderr_path=tmp_path / f"err{w}")
        for w in range(workers)
    ]
    try:
        for proc in procs:  # every process has opened the cache: start them together
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for w, proc in enumerate(procs):
            out, _ = proc.communicate(timeout=90)
            assert proc.returncode == 0, (tmp_path / f"err{w}").read_text()
            assert out == "done\n"
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    keys = [f"w{w}-{i}" for w in range(workers) for i in range(count)]
    found, stats = asyncio.run(read_back(directory, keys))
    assert len(found) == workers * count
    for w in range(workers):
        for i in range(count):
            assert found[f"w{w}-{i}"] == body(w, i)
    assert stats.entries == workers * count
    assert stats.size_bytes == sum(
        len(encode_value(body(w, i))) for w in range(workers) for i in range(count)
    )


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_committed_writes_survive_sigkill(tmp_path: Path) -> None:
    directory = tmp_path / "crash"
    proc = _start(CRASH_SCRIPT, directory, stderr_path=tmp_path / "err")
    committed: list[str] = []
    try:
        assert proc.stdout is not None
        while len(committed) < 40 * 25:
            line = proc.stdout.readline()
            assert line, (tmp_path / "err").read_text()
            committed += line.split()
        os.kill(proc.pid, signal.SIGKILL)  # the child is writing in a loop
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    for line in rest.splitlines(keepends=True):
        if line.endswith("\n"):  # a complete line: that put_many had returned
            committed += line.split()
    found, stats = asyncio.run(read_back(directory, committed))
    assert len(found) == len(committed)
    for key in committed:
        assert found[key] == body("crash", int(key.removeprefix("c-")))
    assert stats.entries >= len(committed)
