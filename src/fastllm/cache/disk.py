"""A persistent cache in one SQLite file, safe for several processes at once.

Layout: ``<directory>/cache.sqlite3`` (WAL mode, so also ``-wal``/``-shm`` files
next to it while open) with

* ``entries(key TEXT PRIMARY KEY, value BLOB, size INTEGER, stored_at REAL,
  accessed_at REAL)``: ``value`` is the JSON body (see ``codec``), ``size`` its
  length, times from the cache's clock (``time.time`` by default, so comparable
  between processes), indexed by ``accessed_at`` for eviction;
* ``totals(entries, size)``: one row kept exact by triggers on ``entries``, so the
  size limit is checked without summing the table on every write.

Every SQLite call runs in one worker thread per cache that owns the connection,
so the event loop never blocks on disk. Writers use ``BEGIN IMMEDIATE`` and a
30 s busy timeout: writers of other processes queue up instead of failing. A
committed ``put_many`` survives the process being killed (WAL with
``synchronous=NORMAL``; a power loss may drop the last transactions).

Reads are pure reads: the access time used for LRU eviction is refreshed only
when older than ``ACCESS_RESOLUTION`` seconds and is written in a batch with the
next ``put_many`` (or at ``close``), not by ``get_many``. Expired entries (by
``stored_at``) and corrupt ones are misses and are deleted right away.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from fastllm.cache._sqlite import (
    CHUNK,
    FILENAME,
    INSERT,
    OLDEST,
    SCHEMA,
    SCHEMA_VERSION,
    rollback,
    select_sql,
    touch_sql,
    writing,
)
from fastllm.cache.base import CacheProvider, CacheStats, CacheValue, check_positive
from fastllm.cache.codec import encode_value, looks_like_object
from fastllm.errors import CacheError

__all__ = ["DiskCache"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

BUSY_TIMEOUT = 30.0
ACCESS_RESOLUTION = 1.0
MMAP_SIZE = 256 * 2**20
_MAX_PENDING_ACCESS = 50_000
_EVICT_BATCH = 256


class DiskCache(CacheProvider):
    """LRU cache of JSON bodies in ``directory`` (created with its parents).

    ``ttl``: seconds an entry lives after it was stored (``None``: forever);
    ``size_limit``: bytes of stored bodies beyond which the least recently
    accessed entries are evicted after a write; ``clock``: the time source for
    both (injectable for tests). Raises ``CacheError`` naming the directory or
    the file when the directory cannot be created or the database cannot be
    opened (e.g. it is not a SQLite file); opening takes a few milliseconds and
    is done synchronously. ``stats()`` and ``close_sync()`` are synchronous, for
    the CLI. Any use after ``close`` raises ``CacheError``.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        ttl: float | None = None,
        size_limit: int = 2**30,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        check_positive("ttl", ttl)
        check_positive("size_limit", size_limit, integer=True)
        self._directory = Path(directory)
        self._path = self._directory / FILENAME
        self._ttl = ttl
        self._size_limit = size_limit
        self._clock = clock
        self._hits = self._misses = self._writes = self._errors = 0
        self._pending_access: dict[str, float] = {}  # key -> access time not yet written
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(
                f"cannot create the cache directory {str(self._directory)!r}: {exc}"
            ) from exc
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="fastllm-disk-cache")
        try:
            self._executor.submit(self._open).result()
        except BaseException:
            self._closed = True
            self._executor.shutdown(wait=True)
            raise

    @property
    def directory(self) -> Path:
        """The cache directory."""
        return self._directory

    @property
    def path(self) -> Path:
        """The SQLite database file."""
        return self._path

    @property
    def ttl(self) -> float | None:
        """The time to live in seconds, ``None`` when entries never expire."""
        return self._ttl

    @property
    def size_limit(self) -> int:
        """The limit in bytes on the stored bodies."""
        return self._size_limit

    async def get_many(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The decoded objects of the live entries among ``keys`` (one worker round trip)."""
        if not keys:
            self._check_open()
            return {}
        return await self._run(functools.partial(self._get_sync, list(dict.fromkeys(keys))))

    async def get_many_raw(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The stored JSON bytes of the live entries among ``keys``, not decoded."""
        if not keys:
            self._check_open()
            return {}
        return await self._run(
            functools.partial(self._get_sync, list(dict.fromkeys(keys)), decode=False)
        )

    async def put_many(self, items: Mapping[str, CacheValue]) -> None:
        """Store every item in one transaction, then evict down to ``size_limit``."""
        if not items:
            self._check_open()
            return
        await self._run(functools.partial(self._put_sync, list(items.items())))

    async def clear(self) -> None:
        """Delete every entry (of every process using the directory)."""
        await self._run(self._clear_sync)

    def stats(self) -> CacheStats:
        """Entries and size from the database; counters of this object. Synchronous."""
        self._check_open()
        entries, size = self._executor.submit(self._totals_sync).result()
        return CacheStats(entries, size, self._hits, self._misses, self._writes, self._errors)

    async def close(self) -> None:
        """Write pending access times, close the database and stop the worker. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._close_sync)
        finally:
            self._executor.shutdown(wait=True)

    def close_sync(self) -> None:
        """``close`` for synchronous callers (the CLI)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._executor.submit(self._close_sync).result()
        finally:
            self._executor.shutdown(wait=True)

    # -- event-loop side ---------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise CacheError(f"the disk cache at {str(self._directory)!r} is closed")

    async def _run(self, call: Callable[[], _T]) -> _T:
        self._check_open()
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def _fail(self, action: str, exc: BaseException) -> CacheError:
        self._errors += 1
        return CacheError(f"cannot {action} the disk cache {str(self._path)!r}: {exc}")

    # -- worker thread -----------------------------------------------------------

    def _open(self) -> None:
        deadline = time.monotonic() + BUSY_TIMEOUT
        while True:
            try:
                self._conn = self._connect()
                return
            except sqlite3.Error as exc:
                # creating the schema races with other processes opening the same file
                locked = isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
                if locked and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                raise CacheError(f"cannot open the disk cache {str(self._path)!r}: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA recursive_triggers = ON")  # REPLACE fires the delete trigger
            conn.execute(f"PRAGMA mmap_size = {MMAP_SIZE}")  # reads without a copy per page
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise CacheError(
                    f"{str(self._path)!r} has cache schema version {version}, "
                    f"this FastLLM reads version {SCHEMA_VERSION}"
                )
            if version == 0:
                conn.executescript(SCHEMA)
        except BaseException:
            rollback(conn)
            conn.close()
            raise
        return conn

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise CacheError(f"the disk cache at {str(self._directory)!r} is closed")
        return self._conn

    def _get_sync(self, keys: list[str], decode: bool = True) -> dict[str, Any]:
        conn = self._connection()
        now = self._clock()
        try:
            if len(keys) <= CHUNK:
                rows = conn.execute(select_sql(len(keys)), keys).fetchall()
            else:
                rows = []
                conn.execute("BEGIN")  # one snapshot for all chunks
                try:
                    for start in range(0, len(keys), CHUNK):
                        chunk = keys[start : start + CHUNK]
                        rows += conn.execute(select_sql(len(chunk)), chunk).fetchall()
                finally:
                    rollback(conn)
        except sqlite3.Error as exc:
            raise self._fail("read", exc) from exc
        ttl = self._ttl
        stale = now - ACCESS_RESOLUTION
        loads = orjson.loads
        pending = self._pending_access
        found: dict[str, Any] = {}
        expired: list[tuple[str, float]] = []
        corrupt: list[str] = []
        for key, blob, stored_at, accessed_at in rows:
            try:
                if ttl is not None and now - stored_at >= ttl:
                    expired.append((key, stored_at))
                    continue
                obj = loads(blob) if decode else blob
                fresh = accessed_at >= stale
            except (TypeError, ValueError):  # not JSON, or columns of the wrong type
                corrupt.append(key)
                continue
            if not (type(obj) is dict if decode else looks_like_object(obj)):
                corrupt.append(key)
                continue
            found[key] = obj
            if not fresh:
                pending[key] = now
        if expired or corrupt:
            self._delete(conn, expired, corrupt)
        if len(pending) > _MAX_PENDING_ACCESS:
            self._write_access_now(conn)
        self._hits += len(found)
        self._misses += len(keys) - len(found)
        return found

    def _delete(
        self, conn: sqlite3.Connection, expired: list[tuple[str, float]], corrupt: list[str]
    ) -> None:
        if corrupt:
            self._errors += len(corrupt)
            logger.warning(
                "disk cache %s: %d corrupt entries treated as misses and deleted (first: %r)",
                self._path,
                len(corrupt),
                corrupt[0],
            )
        try:
            with writing(conn):
                # stored_at guards against deleting a fresh value another process just wrote
                conn.executemany("DELETE FROM entries WHERE key = ? AND stored_at = ?", expired)
                conn.executemany("DELETE FROM entries WHERE key = ?", [(k,) for k in corrupt])
        except sqlite3.Error as exc:
            self._errors += 1
            logger.warning("disk cache %s: could not delete stale entries: %s", self._path, exc)

    def _put_sync(self, items: list[tuple[str, CacheValue]]) -> None:
        conn = self._connection()
        try:
            blobs = [(key, encode_value(value)) for key, value in items]
        except Exception:
            self._errors += 1
            raise
        now = self._clock()
        rows = [(key, blob, len(blob), now, now) for key, blob in blobs]
        try:
            with writing(conn):
                self._write_access(conn)
                conn.executemany(INSERT, rows)
                self._evict(conn)
        except sqlite3.Error as exc:
            raise self._fail("write", exc) from exc
        self._writes += len(rows)

    def _write_access(self, conn: sqlite3.Connection) -> None:
        """Write the pending access times (inside the caller's transaction)."""
        if not self._pending_access:
            return
        pending, self._pending_access = self._pending_access, {}
        by_time: dict[float, list[str]] = {}  # one get_many gives one time to all its keys
        for key, when in pending.items():
            by_time.setdefault(when, []).append(key)
        for when, keys in by_time.items():
            for start in range(0, len(keys), CHUNK):
                chunk = keys[start : start + CHUNK]
                conn.execute(touch_sql(len(chunk)), (when, when, *chunk))

    def _write_access_now(self, conn: sqlite3.Connection) -> None:
        try:
            with writing(conn):
                self._write_access(conn)
        except sqlite3.Error as exc:
            self._errors += 1
            logger.warning("disk cache %s: could not write access times: %s", self._path, exc)

    def _evict(self, conn: sqlite3.Connection) -> None:
        """Delete least recently accessed entries until the total size fits the limit."""
        row = conn.execute("SELECT size FROM totals WHERE id = 0").fetchone()
        total: int = row[0] if row is not None else 0
        while total > self._size_limit:
            oldest = conn.execute(OLDEST, (_EVICT_BATCH,)).fetchall()
            if not oldest:
                break
            victims = []
            for key, size in oldest:
                victims.append((key,))
                total -= size
                if total <= self._size_limit:
                    break
            conn.executemany("DELETE FROM entries WHERE key = ?", victims)

    def _clear_sync(self) -> None:
        conn = self._connection()
        self._pending_access.clear()
        try:
            with writing(conn):
                conn.execute("DELETE FROM entries")
        except sqlite3.Error as exc:
            raise self._fail("clear", exc) from exc

    def _totals_sync(self) -> tuple[int, int]:
        conn = self._connection()
        try:
            row = conn.execute("SELECT entries, size FROM totals WHERE id = 0").fetchone()
        except sqlite3.Error as exc:
            raise self._fail("read", exc) from exc
        return (row[0], row[1]) if row is not None else (0, 0)

    def _close_sync(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._pending_access:
            self._write_access_now(conn)
        conn.close()
