"""The Redis side of :class:`~fastllm.limits.redis_limiter.RedisRateLimiter`.

:class:`SharedBudget` queues this process' acquires (first come, first served) and
one pump task serves them: a script call grants as many waiters from the head as fit
every bucket (up to 64), or answers the wait for the head, which the pump sleeps
(at most :data:`MAX_NAP` seconds, so refunds made by other processes are seen; a
refund made here wakes it at once). Corrections (refunds, charges, learned
``remaining`` counts, cooldowns) are summed and written by one background task.
A Redis failure is reported to ``on_down`` and every waiter gets :class:`RedisDown`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from itertools import islice
from typing import TYPE_CHECKING

from fastllm._redis import RedisEndpoint
from fastllm.limits._redis_lua import ACQUIRE, ADJUST
from fastllm.limits.buckets import LimiterSnapshot, LimitSnapshot, Reservation
from fastllm.limits.config import RateLimit

if TYPE_CHECKING:
    import redis.asyncio
    from redis.commands.core import AsyncScript

__all__ = ["MAX_NAP", "RedisDown", "SharedBudget", "SharedReservation"]

#: The longest single sleep of a waiting process before it asks Redis again.
MAX_NAP = 2.0
_BATCH = 64  # waiters granted per script call at most


class SharedReservation(Reservation):
    """A reservation granted from the shared (Redis) budget."""

    __slots__ = ()


class RedisDown(Exception):
    """The shared budget could not be reached; the limiter falls back to a local one."""


class _Waiter:
    __slots__ = ("future", "naps", "since", "tokens")

    def __init__(
        self, tokens: int, future: asyncio.Future[Reservation], since: float, naps: int
    ) -> None:
        self.tokens = tokens
        self.future = future
        self.since = since
        self.naps = naps  # the pump's nap count at arrival: unchanged at grant = no wait


class Mirror:
    """What this process last saw of one shared limit."""

    __slots__ = ("limit", "requests", "seen_at", "tokens", "workers")

    def __init__(self, limit: RateLimit, now: float) -> None:
        self.limit = limit
        self.requests = float(limit.requests or 0)
        self.tokens = float(limit.tokens or 0)
        self.seen_at = now
        self.workers = 1

    def levels(self, now: float) -> list[tuple[str, int, float]]:
        """``(kind, capacity, level refilled to now)`` of each configured kind."""
        limit = self.limit
        out = []
        for kind, capacity, level in (
            ("requests", limit.requests, self.requests),
            ("tokens", limit.tokens, self.tokens),
        ):
            if capacity is not None:
                refill = (now - self.seen_at) * capacity / limit.period
                out.append((kind, capacity, min(float(capacity), level + refill)))
        return out


class SharedBudget:
    """Grants and corrections against the buckets of ``limits`` in Redis."""

    def __init__(
        self,
        endpoint: RedisEndpoint,
        limits: Sequence[RateLimit],
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        on_down: Callable[[BaseException], None],
        prefix: str,
        heartbeat: float,
    ) -> None:
        self._endpoint = endpoint
        self._clock = clock
        self._sleep = sleep
        self._on_down = on_down
        now = clock()
        self.mirrors = [Mirror(limit, now) for limit in limits]
        names = [f"{prefix}:{limit.name}" for limit in limits]
        self._acquire_keys = [k for n in names for k in (n, f"{n}:workers", f"{n}:cooldown")]
        self._adjust_keys = [k for n in names for k in (n, f"{n}:cooldown")]
        self._caps: list[str | int | float] = []
        for limit in limits:
            self._caps += [limit.requests or 0, limit.tokens or 0, limit.period]
        self._worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._heartbeat = heartbeat
        self._scripts: dict[str, AsyncScript] = {}
        self._queue: deque[_Waiter] = deque()
        self._pump: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None
        self.cooldown_until = -math.inf
        self.waited = 0.0
        self._naps = 0
        self._give_requests = self._give_tokens = self._cooldown_ms = 0
        self._ceiling: dict[str, int] = {}

    # -- grants -------------------------------------------------------------------------

    async def acquire(self, tokens: int) -> Reservation:
        """Queue for one request and ``tokens`` tokens; ``RedisDown`` if Redis fails."""
        loop = asyncio.get_running_loop()
        waiter = _Waiter(tokens, loop.create_future(), self._clock(), self._naps)
        self._queue.append(waiter)
        pump = self._pump
        if pump is None or pump.done() or pump.get_loop() is not loop:
            self._pump = loop.create_task(self._run_pump())
        return await waiter.future

    def waiting(self) -> int:
        """How many acquires of this process wait for the shared budget."""
        return sum(1 for waiter in self._queue if not waiter.future.done())

    async def _run_pump(self) -> None:
        loop = asyncio.get_running_loop()
        queue = self._queue
        while True:
            live = [w for w in queue if not w.future.done() and w.future.get_loop() is loop]
            if len(live) != len(queue):
                queue.clear()
                queue.extend(live)
            if not queue:
                return
            delay = self.cooldown_until - self._clock()
            if delay <= 0:
                batch = list(islice(queue, _BATCH))
                try:
                    granted, delay = await self._ask(batch)
                except self._endpoint.errors as exc:
                    self._on_down(exc)
                    for waiter in queue:
                        if not waiter.future.done():
                            waiter.future.set_exception(RedisDown(str(exc)))
                    queue.clear()
                    return
                now = self._clock()
                for _ in range(granted):
                    waiter = queue.popleft()
                    if waiter.future.done():  # cancelled meanwhile: give its share back
                        self.correct(1, waiter.tokens)
                        continue
                    waited = now - waiter.since if waiter.naps != self._naps else 0.0
                    self.waited += waited
                    waiter.future.set_result(SharedReservation(waiter.tokens, waited, ()))
                if granted == len(batch):
                    continue
            self._naps += 1
            await self._nap(min(delay, MAX_NAP))

    async def _ask(self, batch: list[_Waiter]) -> tuple[int, float]:
        """One acquire script call: (how many of ``batch`` were granted, wait for the next)."""
        client = await self._endpoint.client()
        args = [self._worker, self._heartbeat, len(self.mirrors), *self._caps, len(batch)]
        args += [waiter.tokens for waiter in batch]
        reply = await self._script(ACQUIRE, client)(self._acquire_keys, args, client)
        now = self._clock()
        for i, mirror in enumerate(self.mirrors):
            mirror.requests, mirror.tokens = float(reply[3 + 3 * i]), float(reply[4 + 3 * i])
            mirror.workers = int(reply[5 + 3 * i])
            mirror.seen_at = now
        cool = float(reply[2])
        if cool > 0:
            self.cooldown_until = max(self.cooldown_until, now + cool)
        return int(reply[0]), float(reply[1])

    def _script(self, text: str, client: redis.asyncio.Redis) -> AsyncScript:
        script = self._scripts.get(text)
        if script is None:
            script = self._scripts[text] = client.register_script(text)
        return script

    async def _nap(self, delay: float) -> None:
        """Sleep ``delay`` seconds, or less if a refund made here wakes us."""
        loop = asyncio.get_running_loop()
        wake = self._wake = loop.create_future()
        nap = loop.create_task(_sleeping(self._sleep, delay))
        try:
            await asyncio.wait((nap, wake), return_when=asyncio.FIRST_COMPLETED)
        finally:
            nap.cancel()
            wake.cancel()
            self._wake = None

    # -- corrections ----------------------------------------------------------------------

    def correct(self, requests: int, tokens: int) -> None:
        """Give back ``requests`` and ``tokens`` (negative: charge) to every bucket."""
        self._give_requests += requests
        self._give_tokens += tokens
        self._schedule_flush()

    def lower(self, kind: str, remaining: int) -> None:
        """Lower the ``kind`` levels to ``remaining`` (the server's count) if above it."""
        self._ceiling[kind] = min(remaining, self._ceiling.get(kind, remaining))
        self._schedule_flush()

    def cooldown(self, seconds: float) -> None:
        """Hold every process' acquires for ``seconds`` (extends, never shortens)."""
        self.cooldown_until = max(self.cooldown_until, self._clock() + seconds)
        self._cooldown_ms = max(self._cooldown_ms, math.ceil(seconds * 1000))
        self._schedule_flush()

    def discard_pending(self) -> None:
        """Forget unwritten corrections (the shared state they correct is unreachable)."""
        self._give_requests = self._give_tokens = self._cooldown_ms = 0
        self._ceiling = {}

    def pending(self) -> bool:
        """Whether corrections wait to be written."""
        return bool(self._give_requests or self._give_tokens or self._ceiling or self._cooldown_ms)

    async def flush(self) -> None:
        """Write the pending corrections (one script call per round)."""
        while self.pending():
            give_r, give_t, ceiling, cool = (
                self._give_requests,
                self._give_tokens,
                self._ceiling,
                self._cooldown_ms,
            )
            self.discard_pending()
            args = [len(self.mirrors), *self._caps, give_r, give_t]
            args += [ceiling.get("requests", -1), ceiling.get("tokens", -1), cool]
            try:
                client = await self._endpoint.client()
                await self._script(ADJUST, client)(self._adjust_keys, args, client)
            except self._endpoint.errors as exc:
                self._on_down(exc)
                return
            except BaseException:  # cancelled: keep them for the next flush
                self._give_requests += give_r
                self._give_tokens += give_t
                self._cooldown_ms = max(self._cooldown_ms, cool)
                for kind, value in ceiling.items():
                    self._ceiling[kind] = min(value, self._ceiling.get(kind, value))
                raise
            if (give_r > 0 or give_t > 0) and self._wake is not None and not self._wake.done():
                self._wake.set_result(None)

    def _schedule_flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: written by the next flush
            return
        flusher = self._flusher
        if flusher is None or flusher.done() or flusher.get_loop() is not loop:
            self._flusher = loop.create_task(self.flush())

    # -- state --------------------------------------------------------------------------

    def snapshot(self, learned: dict[str, int]) -> LimiterSnapshot:
        """The buckets as last seen, refilled to now."""
        now = self._clock()
        limits = []
        for mirror in self.mirrors:
            name, period = str(mirror.limit.name), mirror.limit.period
            for kind, capacity, level in mirror.levels(now):
                used = min(1.0, max(0.0, 1.0 - level / capacity))
                known = learned.get(kind)
                limits.append(
                    LimitSnapshot(name, kind, capacity, period, level, used, known, False)
                )
        until = self.cooldown_until if self.cooldown_until > now else None
        return LimiterSnapshot(tuple(limits), self.waited, self.waiting(), until)

    async def stop(self) -> None:
        """Cancel the pump and the flusher of the running loop."""
        loop = asyncio.get_running_loop()
        for task in (self._pump, self._flusher):
            if task is not None and not task.done() and task.get_loop() is loop:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def _sleeping(sleep: Callable[[float], Awaitable[None]], delay: float) -> None:
    await sleep(delay)
