"""An in-process LRU cache with an optional time to live.

Entries are kept as their JSON bytes in an ``OrderedDict`` (least recently used
first), so a cached answer cannot be changed through an object a caller got back,
and every read decodes a fresh ``dict`` with orjson. ``get_many`` does no per-key
await and no logging on the hit/miss path, so its cost is orjson's decode plus a
fraction of a microsecond per key.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from fastllm.cache.base import CacheProvider, CacheStats, CacheValue, check_positive
from fastllm.cache.codec import encode_value

__all__ = ["InMemoryCache"]

logger = logging.getLogger(__name__)


class InMemoryCache(CacheProvider):
    """LRU cache in memory.

    ``max_entries`` bounds the number of entries (the least recently used go
    first; ``None``: unbounded). ``ttl`` is the time to live in seconds of an
    entry from when it was stored: once ``clock() >= stored + ttl`` it is a miss
    and removed on the next read of its key (``None``: no expiry). ``clock`` is
    injectable for tests. ``stats().entries`` may include expired entries not read
    since. Not thread-safe: use it from one event loop.
    """

    def __init__(
        self,
        max_entries: int | None = None,
        ttl: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_positive("max_entries", max_entries, integer=True)
        check_positive("ttl", ttl)
        self._max_entries = max_entries
        self._ttl = ttl
        self._clock = clock
        # key -> (JSON bytes, expiry time on ``clock``; inf without ttl)
        self._data: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._size = 0
        self._hits = 0
        self._misses = 0
        self._writes = 0
        self._errors = 0

    @property
    def max_entries(self) -> int | None:
        """The entry limit, ``None`` when unbounded."""
        return self._max_entries

    @property
    def ttl(self) -> float | None:
        """The time to live in seconds, ``None`` when entries never expire."""
        return self._ttl

    async def get_many(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The decoded objects of the live entries among ``keys``; refreshes their recency."""
        found: dict[str, dict[str, Any]] = {}
        corrupt: list[str] = []
        loads = orjson.loads
        for key, blob in self._live(keys).items():
            try:
                # encode_value guarantees the bytes start with "{", so valid JSON is an object
                found[key] = loads(blob)
            except orjson.JSONDecodeError:
                corrupt.append(key)
        if corrupt:
            self._remove(corrupt)
            self._errors += len(corrupt)
            self._hits -= len(corrupt)
            self._misses += len(corrupt)
            logger.warning(
                "in-memory cache: %d corrupt entries treated as misses and removed (first: %r)",
                len(corrupt),
                corrupt[0],
            )
        return found

    async def get_many_raw(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The stored JSON bytes of the live entries among ``keys`` (not decoded)."""
        return self._live(keys)

    def _live(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The bytes of the unexpired entries among ``keys``; counts hits and misses.

        The clock is read only with a ``ttl``, and recency refreshed only when
        ``max_entries`` makes it matter.
        """
        lookup = self._data.get
        now = self._clock() if self._ttl is not None else 0.0  # expiry is inf without ttl
        found: dict[str, bytes] = {}
        expired: list[str] = []
        for key in keys:
            entry = lookup(key)
            if entry is None:
                continue
            if entry[1] <= now:
                expired.append(key)
            else:
                found[key] = entry[0]
        if expired:
            self._remove(expired)
        if self._max_entries is not None:
            touch = self._data.move_to_end
            for key in found:
                touch(key)
        self._hits += len(found)
        self._misses += len(keys) - len(found)
        return found

    async def put_many(self, items: Mapping[str, CacheValue]) -> None:
        """Store every item as the most recently used; evicts beyond ``max_entries``."""
        try:
            encoded = [(key, encode_value(value)) for key, value in items.items()]
        except Exception:
            self._errors += 1
            raise
        expires = self._clock() + self._ttl if self._ttl is not None else math.inf
        data = self._data
        size = self._size
        for key, blob in encoded:
            old = data.get(key)
            if old is not None:
                size -= len(old[0])
                data.move_to_end(key)
            data[key] = (blob, expires)
            size += len(blob)
        limit = self._max_entries
        if limit is not None:
            while len(data) > limit:
                size -= len(data.popitem(last=False)[1][0])
        self._size = size
        self._writes += len(encoded)

    async def clear(self) -> None:
        """Remove every entry (the counters are kept)."""
        self._data.clear()
        self._size = 0

    def stats(self) -> CacheStats:
        """Entries, encoded size and the counters since creation."""
        return CacheStats(
            entries=len(self._data),
            size_bytes=self._size,
            hits=self._hits,
            misses=self._misses,
            writes=self._writes,
            errors=self._errors,
        )

    def _remove(self, keys: list[str]) -> None:
        for key in keys:
            entry = self._data.pop(key, None)
            if entry is not None:
                self._size -= len(entry[0])
