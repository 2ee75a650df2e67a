"""An asyncio semaphore whose limit adapts to rate limiting (AIMD).

:class:`AdaptiveConcurrency` starts at its maximum ``limit``. A 429 halves the
current limit (multiplicative decrease, not below ``minimum``); successes raise it
again by one at a time (additive increase, after ``increase_every`` successes,
default the current limit, i.e. about one step per "round" of requests). With
``min_signals=N`` (N > 1) only 429s that keep happening count: N or more among the
last 50 answers, and at least a fifth of them; a stray 429 among many successes is
then left to the retry and the shared cooldown.

A burst of 429s from requests that were sent together is one signal, not many:
after a decrease, further decreases are ignored until as many new acquires have
been granted as there were requests in flight at the decrease — roughly, until a
full round of requests has been sent under the new limit, so only their 429s can
cut it again. This does not depend on whether the caller reports the 429 before or
after releasing its slot. Lowering the limit never cancels work in flight; it only
holds back new acquires.
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType

from fastllm.errors import ConfigurationError

__all__ = ["AdaptiveConcurrency"]

_RECENT = 50  # answers remembered to tell a storm of 429s from a stray one


def _positive_int(argument: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(argument, f"must be a positive integer, got {value!r}")
    return value


class AdaptiveConcurrency:
    """A FIFO semaphore with an AIMD-controlled limit between ``minimum`` and ``limit``."""

    __slots__ = (
        "_answers",
        "_current",
        "_in_flight",
        "_increase_every",
        "_limited_at",
        "_maximum",
        "_min_signals",
        "_minimum",
        "_successes",
        "_waiters",
        "_window",
    )

    def __init__(
        self,
        limit: int,
        *,
        minimum: int = 1,
        increase_every: int | None = None,
        min_signals: int = 1,
    ) -> None:
        self._maximum = _positive_int("limit", limit)
        self._minimum = _positive_int("minimum", minimum)
        if minimum > limit:
            raise ConfigurationError("minimum", f"must not exceed limit ({limit}), got {minimum}")
        if increase_every is not None:
            _positive_int("increase_every", increase_every)
        self._increase_every = increase_every
        self._min_signals = _positive_int("min_signals", min_signals)
        self._current = limit
        self._in_flight = 0
        self._successes = 0
        self._window = 0  # acquires still to come before another decrease counts
        self._waiters: deque[asyncio.Future[None]] = deque()
        # The answers seen, and the numbers of the rate-limited ones among the last _RECENT.
        self._answers = 0
        self._limited_at: deque[int] = deque()

    @property
    def current(self) -> int:
        """The limit in force now."""
        return self._current

    @property
    def maximum(self) -> int:
        """The configured upper bound (``limit``)."""
        return self._maximum

    @property
    def minimum(self) -> int:
        """The configured lower bound."""
        return self._minimum

    @property
    def storming(self) -> bool:
        """Whether 429s keep coming: ``min_signals`` (at least 2) and a fifth of recent answers."""
        limited = len(self._limited_at)
        return limited >= max(2, self._min_signals) and limited * 5 >= min(self._answers, _RECENT)

    @property
    def in_flight(self) -> int:
        """Acquired and not yet released."""
        return self._in_flight

    @property
    def waiting(self) -> int:
        """Acquires waiting for a slot."""
        return sum(1 for future in self._waiters if not future.done())

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody waits (no coroutine); else ``False``.

        The synchronous fast path of :meth:`acquire`: on ``False``, await that.
        """
        if self._in_flight < self._current and not self._waiters:
            self._in_flight += 1
            if self._window:
                self._window -= 1
            return True
        return False

    async def acquire(self) -> None:
        """Wait for a slot (first come, first served) and take it."""
        if self.try_acquire():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # the slot was handed over just before the cancellation
            raise

    def release(self) -> None:
        """Give back a slot taken by :meth:`acquire`."""
        if self._in_flight <= 0:
            raise RuntimeError("AdaptiveConcurrency.release() called more often than acquire()")
        self._in_flight -= 1
        if self._waiters:
            self._hand_over()

    def _hand_over(self) -> None:
        """Give free slots to waiters, in order (a slot is counted as taken when handed)."""
        waiters = self._waiters
        while waiters and self._in_flight < self._current:
            future = waiters.popleft()
            if not future.done():  # skip waiters cancelled while queued
                future.set_result(None)
                self._in_flight += 1
                if self._window:
                    self._window -= 1

    def _record(self, limited: bool) -> None:
        self._answers += 1
        limited_at = self._limited_at
        if limited_at and limited_at[0] <= self._answers - _RECENT:
            limited_at.popleft()  # out of the window now (at most one per answer)
        if limited:
            limited_at.append(self._answers)

    def on_success(self) -> None:
        """A request succeeded: after ``increase_every`` of them, raise the limit by one."""
        self._answers += 1  # what _record(False) does, without the call
        limited_at = self._limited_at
        if limited_at and limited_at[0] <= self._answers - _RECENT:
            limited_at.popleft()
        if self._current >= self._maximum:
            return
        self._successes += 1
        if self._successes >= (self._increase_every or self._current):
            self._successes = 0
            self._current += 1
            if self._waiters:
                self._hand_over()

    def on_rate_limited(self) -> bool:
        """A request was rate limited: if 429s keep coming, halve the limit (once per window).

        Returns whether it did.
        """
        self._record(True)
        if self._min_signals > 1 and not self.storming:
            return False
        if self._window > 0:
            return False
        self._current = max(self._minimum, self._current // 2)
        self._successes = 0
        self._window = self._in_flight
        return True

    async def __aenter__(self) -> AdaptiveConcurrency:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return (
            f"AdaptiveConcurrency(current={self._current}, in_flight={self._in_flight}, "
            f"minimum={self._minimum}, maximum={self._maximum})"
        )
