"""Cache writes in groups: what arrives while one write runs goes out in the next.

Group commit: a write starts as soon as there is something to write and no write
running, and takes everything queued meanwhile. A disk or Redis cache so costs one
``put_many`` per group, never one per answer, yet an answer is stored milliseconds
after it arrived — no timer, no batch size to tune. :meth:`CacheWriter.add` returns
a future that completes once the answer's group is written (or failed to be): the
engine's workers wait on it before they send their next request, so at any moment
at most ``concurrency`` requests are sent but not stored. A run killed with SIGKILL
and run again therefore pays twice for at most ``concurrency`` requests.

A cache that fails to write degrades to "not cached" with a warning; it never fails
a request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from fastllm.cache import CacheProvider

__all__ = ["CacheWriter"]

logger = logging.getLogger(__name__)


class CacheWriter:
    """Writes ``(key, JSON bytes)`` pairs to a cache in groups, one write at a time."""

    def __init__(self, cache: CacheProvider, on_failure: Callable[[], None]) -> None:
        self._cache = cache
        self._on_failure = on_failure  # counts a failed write (the run's stats)
        self._pending: dict[str, bytes] = {}
        self._stored: asyncio.Future[None] | None = None  # completes when _pending is written
        self._writing: asyncio.Task[None] | None = None

    def add(self, key: str, value: bytes) -> asyncio.Future[None]:
        """Queue one value; the future completes once it is written (or its write failed).

        Await it through ``asyncio.shield``: the future is shared by its whole group.
        """
        self._pending[key] = value
        if self._stored is None:
            self._stored = asyncio.get_running_loop().create_future()
        stored = self._stored
        if self._writing is None:
            self._writing = asyncio.get_running_loop().create_task(self._write_groups())
        return stored

    async def close(self) -> None:
        """Wait until everything queued is written."""
        if self._writing is not None:
            await asyncio.shield(self._writing)

    async def _write_groups(self) -> None:
        try:
            while self._pending:
                items, self._pending = self._pending, {}
                stored, self._stored = self._stored, None
                try:
                    await self._cache.put_many(items)
                except Exception as exc:  # a cache must never fail the run
                    self._on_failure()
                    logger.warning(
                        "cache write of %d answers failed (%s: %s); they stay uncached",
                        len(items),
                        type(exc).__name__,
                        exc,
                    )
                finally:
                    if stored is not None and not stored.done():
                        stored.set_result(None)
        finally:
            self._writing = None
