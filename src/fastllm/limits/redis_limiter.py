"""Rate limits shared by every process that uses the same Redis server and limit name.

Each :class:`~fastllm.limits.config.RateLimit` with ``redis_url`` and ``name`` is a
token bucket in Redis, refilled at ``limit / period`` and full at start, like the
local limiter's, and every process using that name draws from it. A Lua script
refills the buckets by Redis' clock and atomically grants the waiting requests that
fit all of them, or answers the wait, which the process sleeps (no polling; see
:mod:`fastllm.limits._redis_budget`). Waiters of one process are served in order;
across processes fairness is best effort (whoever asks first after a refill wins, so
a large request may be overtaken by other processes' small ones). ``settle``,
``cancel``, ``observe_headers``' ``remaining`` counts and ``cooldown`` are written
back, so every process sees them. Processes sharing a name must configure the same
numbers for it. Redis Cluster is not supported (one server or a Sentinel primary).

If Redis cannot be reached, the limiter logs one warning and switches to a local
``RateLimiter`` holding a fair share of every limit: ``limit / N`` (at least 1),
starting from the same share of what was left, where N is ``fallback_workers`` or
else the number of processes that used the limits in the last ``heartbeat`` seconds
(1 if Redis was never reached). Every ``retry_interval`` seconds an acquire pings
Redis in the background, and once it answers the shared budget is used again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from fastllm._redis import RedisEndpoint
from fastllm.errors import ConfigurationError
from fastllm.limits._redis_budget import MAX_NAP, RedisDown, SharedBudget, SharedReservation
from fastllm.limits.buckets import LimiterSnapshot, Reservation
from fastllm.limits.config import RateLimit
from fastllm.limits.headers import budget_values
from fastllm.limits.rate_limiter import RateLimiter
from fastllm.limits.token_estimate import charged_tokens

__all__ = ["MAX_NAP", "RedisRateLimiter", "SharedReservation", "make_limiter"]

logger = logging.getLogger(__name__)


class RedisRateLimiter:
    """The :class:`~fastllm.limits.rate_limiter.RateLimiter` interface over shared budgets.

    Every limit needs ``redis_url`` (one URL for all) and a unique ``name``, the
    identity of its shared budget. ``prefix`` namespaces the Redis keys; ``timeout``
    bounds each Redis call; ``fallback_workers``, ``retry_interval`` and ``heartbeat``
    shape the fallback (see the module docstring). ``clock`` and ``sleep`` are
    injectable like the local limiter's. Nothing is sent to Redis before the first
    acquire.
    """

    def __init__(
        self,
        limits: Sequence[RateLimit] | RateLimit,
        *,
        auto: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        prefix: str = "fastllm:ratelimit",
        fallback_workers: int | None = None,
        retry_interval: float = 5.0,
        heartbeat: float = 30.0,
        timeout: float = 2.0,
    ) -> None:
        items = (limits,) if isinstance(limits, RateLimit) else tuple(limits)
        _check_limits(items, auto, fallback_workers)
        self._limits = items
        self._clock = clock
        self._sleep = sleep
        self._fallback_workers = fallback_workers
        self._retry_interval = retry_interval
        self._endpoint = RedisEndpoint(
            str(items[0].redis_url), missing=_missing, timeout=timeout, before_close=self._drain
        )
        self._budget = SharedBudget(
            self._endpoint,
            items,
            clock=clock,
            sleep=sleep,
            on_down=self._go_local,
            prefix=prefix,
            heartbeat=heartbeat,
        )
        self._tokens_limited = any(limit.tokens is not None for limit in items)
        self._learned: dict[str, int] = {}
        self._local: RateLimiter | None = None  # the fallback while Redis is down
        self._last_local: RateLimiter | None = None  # settles its reservations after recovery
        self._next_probe = 0.0
        self._probe: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        """Always True: there is at least one shared limit."""
        return True

    @property
    def limited(self) -> bool:
        """Always True: the shared budgets are in force."""
        return True

    @property
    def auto(self) -> bool:
        """Always False: shared limits are configured, not learned."""
        return False

    @property
    def limits(self) -> tuple[RateLimit, ...]:
        """The configured limits."""
        return self._limits

    @property
    def shared(self) -> bool:
        """Whether acquires go to Redis now (False while falling back to a local share)."""
        return self._local is None

    @property
    def url(self) -> str:
        """The Redis URL with its password masked."""
        return self._endpoint.url

    def __repr__(self) -> str:
        names = ", ".join(repr(limit.name) for limit in self._limits)
        return f"RedisRateLimiter([{names}], url={self.url!r}, shared={self.shared})"

    # -- the RateLimiter interface ------------------------------------------------------

    async def acquire(self, tokens: int) -> Reservation:
        """Wait for one request and ``tokens`` tokens from every shared budget, then take them."""
        if tokens < 0:
            raise ConfigurationError("tokens", f"must be non-negative, got {tokens!r}")
        while True:
            local = self._local
            if local is not None:
                self._maybe_probe()
                return await local.acquire(tokens)
            with contextlib.suppress(RedisDown):  # now falling back: go round again
                return await self._budget.acquire(tokens)

    def try_acquire(self, tokens: int) -> Reservation | None:
        """Always ``None``: every acquire goes through :meth:`acquire` (Redis or its fallback)."""
        if tokens < 0:
            raise ConfigurationError("tokens", f"must be non-negative, got {tokens!r}")
        return None

    @property
    def counts_tokens(self) -> bool:
        """Always ``True``: token counts go to the shared budgets (or their local fallback)."""
        return True

    def settle_answer(
        self, reservation: Reservation, body: Mapping[str, Any], usage: object, estimate: int
    ) -> None:
        """:meth:`settle` for a successful answer: with :func:`charged_tokens` of its ``usage``."""
        self.settle(reservation, charged_tokens(body, usage, estimate))

    def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        """Correct a reservation to the real token usage (refund or charge, shared)."""
        if actual_tokens < 0:
            raise ConfigurationError(
                "actual_tokens", f"must be non-negative, got {actual_tokens!r}"
            )
        if not isinstance(reservation, SharedReservation):
            local = self._local or self._last_local
            if local is not None:
                local.settle(reservation, actual_tokens)
        elif not reservation.cancelled:
            difference = actual_tokens - reservation.tokens
            reservation.tokens = actual_tokens
            if difference and self._local is None and self._tokens_limited:
                self._budget.correct(0, -difference)

    def cancel(self, reservation: Reservation) -> None:
        """Give back a reservation's request and tokens (the request was never sent)."""
        if not isinstance(reservation, SharedReservation):
            local = self._local or self._last_local
            if local is not None:
                local.cancel(reservation)
        elif not reservation.cancelled:
            reservation._open = False
            if self._local is None:
                self._budget.correct(1, reservation.tokens)

    def cooldown(self, seconds: float) -> None:
        """Let no acquire of any process complete for ``seconds`` (extends, never shortens)."""
        if not seconds > 0:  # also rejects NaN
            return
        if self._local is not None:
            self._local.cooldown(seconds)
        else:
            self._budget.cooldown(seconds)

    def observe_headers(self, headers: Mapping[str, str]) -> None:
        """Lower the shared levels to the server's ``x-ratelimit-remaining-*`` counts."""
        if self._local is not None:
            self._local.observe_headers(headers)
            return
        values = budget_values(headers)
        if values is None:
            return
        for kind, remaining in (("requests", values[1]), ("tokens", values[3])):
            if remaining is not None:
                self._learned[kind] = remaining
                self._budget.lower(kind, remaining)

    def snapshot(self) -> LimiterSnapshot:
        """The budgets as this process last saw them (refilled to now), or the local share's."""
        if self._local is None:
            return self._budget.snapshot(self._learned)
        inner = self._local.snapshot()
        return LimiterSnapshot(
            inner.limits,
            inner.waited_seconds_total + self._budget.waited,
            inner.waiting,
            inner.cooldown_until,
        )

    # -- extras -------------------------------------------------------------------------

    async def flush(self) -> None:
        """Wait until every pending correction has been written to Redis."""
        if self._local is None:
            await self._budget.flush()

    async def aclose(self) -> None:
        """Write pending corrections, stop background work and close the connections."""
        await self.flush()
        await self._budget.stop()
        probe = self._probe
        if (
            probe is not None
            and not probe.done()
            and probe.get_loop() is asyncio.get_running_loop()
        ):
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
        await self._endpoint.aclose()

    async def _drain(self, client: object) -> None:
        """Before a loop's client closes (at loop shutdown): write what is pending."""
        with contextlib.suppress(*self._endpoint.errors):
            await self.flush()

    # -- falling back -------------------------------------------------------------------

    def _go_local(self, exc: BaseException) -> None:
        """Switch to a local limiter holding this process' share of every limit."""
        if self._local is not None:
            return
        now = self._clock()
        mirrors = self._budget.mirrors
        share = self._fallback_workers or max(1, *(m.workers for m in mirrors))
        scaled = [
            RateLimit(
                requests=None if m.limit.requests is None else max(1, m.limit.requests // share),
                tokens=None if m.limit.tokens is None else max(1, m.limit.tokens // share),
                per=m.limit.per,
                name=m.limit.name,
            )
            for m in mirrors
        ]
        local = RateLimiter(scaled, clock=self._clock, sleep=self._sleep)
        left: dict[str, float] = {}  # start from our share of what was left, not full
        for mirror in mirrors:
            for kind, _, level in mirror.levels(now):
                left[kind] = min(left.get(kind, math.inf), level / share)
        local.observe_headers(
            {f"x-ratelimit-remaining-{kind}": str(max(0, int(v))) for kind, v in left.items()}
        )
        if self._budget.cooldown_until > now:
            local.cooldown(self._budget.cooldown_until - now)
        self._budget.discard_pending()
        self._local = self._last_local = local
        self._next_probe = now + self._retry_interval
        logger.warning(
            "shared rate limits %s: Redis at %s is unreachable (%s: %s); using a local "
            "share of 1/%d of each until it answers (checked every %g s)",
            ", ".join(repr(limit.name) for limit in self._limits),
            self.url,
            type(exc).__name__,
            exc,
            share,
            self._retry_interval,
        )

    def _maybe_probe(self) -> None:
        now, loop = self._clock(), asyncio.get_running_loop()
        probe = self._probe
        busy = probe is not None and not probe.done() and probe.get_loop() is loop
        if now < self._next_probe or busy:
            return
        self._next_probe = now + self._retry_interval
        self._probe = loop.create_task(self._ping())

    async def _ping(self) -> None:
        try:
            client = await self._endpoint.client()
            await client.ping()
        except self._endpoint.errors:
            return
        if self._local is not None:
            self._local = None
            logger.info("shared rate limits: Redis at %s answers again; using it", self.url)


def _missing(message: str) -> Exception:
    return ConfigurationError("redis_url", message)


def _check_limits(limits: tuple[RateLimit, ...], auto: bool, workers: int | None) -> None:
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)):
        raise ConfigurationError("fallback_workers", f"must be an integer, got {workers!r}")
    if workers is not None and workers < 1:
        raise ConfigurationError("fallback_workers", f"must be at least 1, got {workers!r}")
    if auto:
        raise ConfigurationError("auto", "shared (Redis) limits are configured, not learned")
    if not limits:
        raise ConfigurationError("limits", "a shared limiter needs at least one RateLimit")
    names: set[str] = set()
    for limit in limits:
        if not isinstance(limit, RateLimit):
            raise ConfigurationError("limits", f"expected RateLimit objects, got {limit!r}")
        if not limit.redis_url:
            raise ConfigurationError(
                "redis_url",
                "every limit of a shared limiter needs redis_url= (mixing shared and "
                f"local limits is not supported): {limit.describe()}",
            )
        if limit.redis_url != limits[0].redis_url:
            raise ConfigurationError("redis_url", "all shared limits must use the same Redis URL")
        if not limit.name:
            raise ConfigurationError(
                "name", f"a shared limit needs name=..., its budget's identity: {limit.describe()}"
            )
        if limit.name in names:
            raise ConfigurationError("name", f"two shared limits are named {limit.name!r}")
        names.add(limit.name)


def make_limiter(
    limits: Sequence[RateLimit] | RateLimit = (),
    *,
    auto: bool = False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> RateLimiter | RedisRateLimiter:
    """A :class:`RedisRateLimiter` when any limit has ``redis_url``, else a ``RateLimiter``."""
    items = (limits,) if isinstance(limits, RateLimit) else tuple(limits)
    if any(isinstance(limit, RateLimit) and limit.redis_url for limit in items):
        return RedisRateLimiter(items, auto=auto, clock=clock, sleep=sleep)
    return RateLimiter(items, auto=auto, clock=clock, sleep=sleep)
