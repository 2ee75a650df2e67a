"""A fair, weighted limiter over several request and token budgets.

Every budget is a continuously refilling bucket: capacity = the limit, refill rate =
capacity / period, full at start. :meth:`RateLimiter.acquire` takes one request and
the estimated tokens from every bucket at once.

Waiting works without polling: waiters queue in arrival order (FIFO, so a big
request at the head is never starved by small ones). Only the head computes how
long it must wait and arms one timer (a task running the injected ``sleep``); the
others wait on a future until they become head. Anything that can shorten the wait
(a refund in :meth:`~RateLimiter.settle`, :meth:`~RateLimiter.cancel`, a larger
learned limit) wakes the head, which re-evaluates. A request larger than a bucket's
capacity waits until that bucket is full and then drives it negative; later
requests pay the deficit back by waiting.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from fastllm.errors import ConfigurationError
from fastllm.limits.buckets import _REQUESTS, _TOKENS, _Bucket, _Waiter
from fastllm.limits.buckets import LimiterSnapshot as LimiterSnapshot
from fastllm.limits.buckets import LimitSnapshot as LimitSnapshot
from fastllm.limits.buckets import Reservation as Reservation
from fastllm.limits.config import RateLimit
from fastllm.limits.headers import AUTO_PERIOD as AUTO_PERIOD
from fastllm.limits.headers import budget_values, learned_period
from fastllm.limits.token_estimate import charged_tokens

__all__ = ["AUTO_PERIOD", "LimitSnapshot", "LimiterSnapshot", "RateLimiter", "Reservation"]

#: A wait at most this long (seconds) counts as none: absorbs float rounding.
_EPSILON = 1e-9


class RateLimiter:
    """Paces requests to fit every configured :class:`RateLimit` at once.

    With ``auto=True`` the limiter also learns the server's per-minute limits from
    ``x-ratelimit-limit-*`` headers (see :meth:`observe_headers`); ``RateLimiter(auto=True)``
    starts with no limit at all and adopts the server's. ``clock`` and ``sleep`` are
    injectable for tests.
    """

    def __init__(
        self,
        limits: Sequence[RateLimit] = (),
        *,
        auto: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if isinstance(limits, RateLimit):
            limits = (limits,)
        now = clock()
        buckets: list[_Bucket] = []
        for limit in limits:
            if not isinstance(limit, RateLimit):
                raise ConfigurationError("limits", f"expected RateLimit objects, got {limit!r}")
            label = limit.name or limit.describe()
            if limit.requests is not None:
                buckets.append(_Bucket(label, _REQUESTS, limit.requests, limit.period, now))
            if limit.tokens is not None:
                buckets.append(_Bucket(label, _TOKENS, limit.tokens, limit.period, now))
        self._limits = tuple(limits)
        self._buckets = tuple(buckets)
        self._counts_tokens = any(bucket.is_tokens for bucket in buckets)
        self._auto = bool(auto)
        self._auto_buckets: dict[str, _Bucket] = {}
        self._clock = clock
        self._sleep = sleep
        self._queue: deque[_Waiter] = deque()
        self._waiting = 0
        self._waited_total = 0.0
        self._cooling = False
        self._cooldown_until = -math.inf
        # Reservations granted in auto mode before any limit was known, still unanswered:
        # the server counted them, so a newly learned bucket must too.
        self._blind = 0
        self._blind_tokens = 0

    @property
    def enabled(self) -> bool:
        """Whether any limit is configured or learned (or may be learned, in auto mode)."""
        return self._auto or bool(self._buckets)

    @property
    def limited(self) -> bool:
        """Whether any budget is in force now (configured or already learned)."""
        return bool(self._buckets)

    @property
    def auto(self) -> bool:
        """Whether limits are learned from response headers."""
        return self._auto

    @property
    def counts_tokens(self) -> bool:
        """Whether a token budget is in force: only then do token counts matter to the limiter.

        Callers may then skip estimating a request's tokens (and acquire with 0).
        """
        return self._counts_tokens

    @property
    def limits(self) -> tuple[RateLimit, ...]:
        """The configured limits (learned ones are in :meth:`snapshot`)."""
        return self._limits

    # -- acquiring ---------------------------------------------------------------------

    async def acquire(self, tokens: int) -> Reservation:
        """Wait for one request and ``tokens`` tokens from every budget, then take them."""
        reservation = self.try_acquire(tokens)
        if reservation is not None:
            return reservation
        return await self._wait_turn(tokens)

    def try_acquire(self, tokens: int) -> Reservation | None:
        """Take one request and ``tokens`` now if nobody waits and they fit; else ``None``.

        The synchronous fast path of :meth:`acquire` (no coroutine to create): on
        ``None`` the caller awaits :meth:`acquire`, which queues it fairly.
        """
        if tokens < 0:
            raise ConfigurationError("tokens", f"must be non-negative, got {tokens!r}")
        if self._queue:
            return None
        if not self._buckets:
            if self._cooling and self._clock() < self._cooldown_until:
                return None
            if self._auto:
                self._blind += 1
                self._blind_tokens += tokens
                return Reservation(tokens, 0.0, (), blind=True)
            return Reservation(tokens, 0.0, ())
        if self._delay(tokens, self._clock()) <= _EPSILON:
            return self._grant(tokens, 0.0)
        return None

    def _delay(self, tokens: int, now: float) -> float:
        """Seconds until ``tokens`` (and one request) fit every bucket and no cooldown holds."""
        delay = 0.0
        if self._cooling:
            delay = self._cooldown_until - now
            if delay <= 0:
                self._cooling = False
        for bucket in self._buckets:
            bucket.refill(now)
            need = float(tokens) if bucket.is_tokens else 1.0
            if need > bucket.capacity:
                need = bucket.capacity  # oversize: wait for a full bucket, then overdraw it
            short = need - bucket.level
            if short > 0:
                wait = short / bucket.rate
                if wait > delay:
                    delay = wait
        return delay

    def _grant(self, tokens: int, waited: float) -> Reservation:
        buckets = self._buckets
        for bucket in buckets:
            bucket.level -= tokens if bucket.is_tokens else 1
        return Reservation(tokens, waited, buckets)

    async def _wait_turn(self, tokens: int) -> Reservation:
        loop = asyncio.get_running_loop()
        queue = self._queue
        waiter = _Waiter(tokens)
        queue.append(waiter)
        self._waiting += 1
        start = self._clock()
        try:
            if queue[0] is not waiter:
                waiter.wake = loop.create_future()
                await waiter.wake
            while True:  # we are the head
                now = self._clock()
                delay = self._delay(tokens, now)
                if delay <= _EPSILON:
                    waited = now - start
                    self._waited_total += waited
                    return self._grant(tokens, waited)
                deadline = now + delay
                if waiter.timer is None or deadline < waiter.deadline - _EPSILON:
                    if waiter.timer is not None:
                        waiter.timer.cancel()
                    waiter.deadline = deadline
                    waiter.timer = loop.create_task(self._alarm(waiter, delay))
                waiter.wake = loop.create_future()
                await waiter.wake
        finally:
            self._waiting -= 1
            waiter.wake = None
            if waiter.timer is not None:
                waiter.timer.cancel()
                waiter.timer = None
            if queue and queue[0] is waiter:
                queue.popleft()
                while queue and queue[0].cancelled:
                    queue.popleft()
                self._wake_head()
            else:
                waiter.cancelled = True  # dropped lazily when it reaches the head

    async def _alarm(self, waiter: _Waiter, delay: float) -> None:
        await self._sleep(delay)
        if waiter.timer is asyncio.current_task():
            waiter.timer = None
            wake = waiter.wake
            if wake is not None and not wake.done():
                wake.set_result(None)

    def _wake_head(self) -> None:
        """Let the head waiter (re-)evaluate now."""
        if self._queue:
            wake = self._queue[0].wake
            if wake is not None and not wake.done():
                wake.set_result(None)

    # -- corrections -------------------------------------------------------------------

    def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        """Correct a reservation to the real token usage: refund or charge the difference.

        May be called again (each call corrects from the last figure); ignored after
        :meth:`cancel`.
        """
        if actual_tokens < 0:
            raise ConfigurationError(
                "actual_tokens", f"must be non-negative, got {actual_tokens!r}"
            )
        if not reservation._open:
            return
        self._see_answer(reservation)
        difference = actual_tokens - reservation.tokens
        reservation.tokens = actual_tokens
        if difference == 0:
            return
        now = self._clock()
        for bucket in reservation._buckets:
            if bucket.is_tokens:
                bucket.give_back(-difference, now)
        if difference < 0:
            self._wake_head()

    def settle_answer(
        self, reservation: Reservation, body: Mapping[str, Any], usage: object, estimate: int
    ) -> None:
        """:meth:`settle` for a successful answer: with :func:`charged_tokens` of its ``usage``.

        ``body`` is the request's, ``estimate`` what was reserved. Without a token
        budget the real usage would change nothing, so it is not even computed.
        """
        if self._counts_tokens:
            self.settle(reservation, charged_tokens(body, usage, estimate))
        elif reservation._blind and reservation._open:
            self._see_answer(reservation)

    def cancel(self, reservation: Reservation) -> None:
        """Give back a reservation's request and tokens (the request was never sent)."""
        if not reservation._open:
            return
        self._see_answer(reservation)
        reservation._open = False
        now = self._clock()
        for bucket in reservation._buckets:
            bucket.give_back(reservation.tokens if bucket.is_tokens else 1, now)
        self._wake_head()

    def _see_answer(self, reservation: Reservation) -> None:
        if reservation._blind:
            reservation._blind = False
            self._blind -= 1
            self._blind_tokens -= reservation.tokens

    def cooldown(self, seconds: float) -> None:
        """Let no acquire complete for ``seconds`` from now (extends, never shortens)."""
        if not seconds > 0:  # also rejects NaN
            return
        until = self._clock() + seconds
        if not self._cooling or until > self._cooldown_until:
            self._cooldown_until = until
            self._cooling = True

    def observe_headers(self, headers: Mapping[str, str]) -> None:
        """Learn from an answer's ``x-ratelimit-*`` headers.

        A ``remaining`` below a bucket's level lowers that level (never raises it). In
        auto mode a ``limit`` creates or resizes a learned per-minute bucket of that kind.
        """
        if not self._buckets and not self._auto:
            return
        values = budget_values(headers)
        if values is None:
            return
        limit_requests, remaining_requests, limit_tokens, remaining_tokens = values
        now = self._clock()
        self._learn(_REQUESTS, limit_requests, remaining_requests, now, headers)
        self._learn(_TOKENS, limit_tokens, remaining_tokens, now, headers)

    def _learn(
        self,
        kind: str,
        limit: int | None,
        remaining: int | None,
        now: float,
        headers: Mapping[str, str],
    ) -> None:
        if self._auto and limit:
            bucket = self._auto_buckets.get(kind)
            if bucket is None:
                period = learned_period(kind, limit, remaining, headers)
                window = "minute" if period == AUTO_PERIOD else f"{period:.3g}s"
                bucket = _Bucket(f"server {kind} per {window}", kind, limit, period, now, auto=True)
                self._auto_buckets[kind] = bucket
                self._buckets = (*self._buckets, bucket)
                self._counts_tokens = self._counts_tokens or bucket.is_tokens
                if remaining is not None and self._blind > 1:
                    # the answer carrying these headers is one of the blind ones
                    others = (self._blind - 1) / self._blind
                    sent = self._blind - 1 if kind == _REQUESTS else self._blind_tokens * others
                    bucket.level = min(bucket.level, remaining - sent)
            elif bucket.capacity != limit:
                bucket.resize(limit, now)
                self._wake_head()
        if remaining is not None:
            for bucket in self._buckets:
                if bucket.kind == kind:
                    bucket.learned_remaining = remaining
                    bucket.refill(now)
                    if remaining < bucket.level:
                        bucket.level = float(remaining)

    # -- statistics --------------------------------------------------------------------

    def snapshot(self) -> LimiterSnapshot:
        """The state of every budget, the waiters and the cooldown, now."""
        now = self._clock()
        limits = []
        for bucket in self._buckets:
            bucket.refill(now)
            used = 1.0 - bucket.level / bucket.capacity
            limits.append(
                LimitSnapshot(
                    name=bucket.name,
                    kind=bucket.kind,
                    capacity=int(bucket.capacity),
                    period=bucket.period,
                    available=bucket.level,
                    saturation=min(1.0, max(0.0, used)),
                    learned_remaining=bucket.learned_remaining,
                    auto=bucket.auto,
                )
            )
        cooling = self._cooling and self._cooldown_until > now
        return LimiterSnapshot(
            limits=tuple(limits),
            waited_seconds_total=self._waited_total,
            waiting=self._waiting,
            cooldown_until=self._cooldown_until if cooling else None,
        )
