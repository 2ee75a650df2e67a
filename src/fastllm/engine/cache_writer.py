"""Batched cache writes: successes are collected and written many at a time.

One ``put_many`` per batch keeps a disk or Redis cache off the hot path; a short
flush interval bounds what a crash (even SIGKILL) can lose to the last fraction of
a second of answers. A cache that fails to write degrades to "not cached" with a
warning; it never fails a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastllm.cache import CacheProvider

__all__ = ["CacheWriter"]

logger = logging.getLogger(__name__)


class CacheWriter:
    """Collects ``(key, JSON bytes)`` pairs and writes them in batches."""

    def __init__(
        self, cache: CacheProvider, *, batch_size: int = 256, interval: float = 0.1
    ) -> None:
        self._cache = cache
        self._batch_size = batch_size
        self._interval = interval
        self._pending: dict[str, bytes] = {}
        self._task: asyncio.Task[None] | None = None
        self._writing: asyncio.Task[None] | None = None
        self.failures = 0

    def start(self) -> None:
        """Start the periodic flush."""
        self._task = asyncio.get_running_loop().create_task(self._tick())

    def add(self, key: str, value: bytes) -> None:
        """Queue one value; a full batch is written at once (in the background)."""
        self._pending[key] = value
        if len(self._pending) >= self._batch_size and self._writing is None:
            self._writing = asyncio.get_running_loop().create_task(self._flush())

    async def close(self) -> None:
        """Stop the periodic flush and write everything still queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._writing is not None:
            await asyncio.shield(self._writing)
        await self._flush()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if self._pending and self._writing is None:
                self._writing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while self._pending:
                items, self._pending = self._pending, {}
                try:
                    await self._cache.put_many(items)
                except Exception as exc:  # a cache must never fail the run
                    self.failures += 1
                    logger.warning(
                        "cache write of %d answers failed (%s: %s); they stay uncached",
                        len(items),
                        type(exc).__name__,
                        exc,
                    )
        finally:
            self._writing = None
