"""What becomes of a failed attempt: a final failure, or a retry after a backoff.

A retry goes back into the workers' queue behind the work already there once its
backoff has passed, so first-pass work and retries interleave. A 429 also feeds
the adaptive concurrency, and when a budget is used up or 429s keep coming it
pauses dispatch for everyone (a shared cooldown) for the server's Retry-After.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

from fastllm.engine.inflight import Flight
from fastllm.errors import RateLimitError, RequestError
from fastllm.limits import AdaptiveConcurrency, RateLimiter, RedisRateLimiter
from fastllm.observe.stats import StatsCollector
from fastllm.retry import RetryPolicy, is_retryable

__all__ = ["Retrier"]

# the retry lines keep the logger name they had when they lived in the scheduler
logger = logging.getLogger("fastllm.engine.scheduler")


class Retrier:
    """Decides, for each failed attempt, between giving up and trying again later."""

    def __init__(
        self,
        policy: RetryPolicy,
        limiter: RateLimiter | RedisRateLimiter,
        concurrency: AdaptiveConcurrency,
        stats: StatsCollector,
        *,
        sleep: Callable[[float], Awaitable[None]],
        give_up: Callable[[Flight, RequestError], None],
        requeue: Callable[[Flight], None],
    ) -> None:
        self._policy = policy
        self._limiter = limiter
        self._concurrency = concurrency
        self._stats = stats
        self._sleep = sleep
        self._give_up = give_up
        self._requeue = requeue
        self._rng = random.Random()
        self._cooldown_ends = 0.0
        self.backoffs: set[asyncio.Task[None]] = set()  # cancelled by the run at its end

    def failed(self, flight: Flight, error: RequestError) -> None:
        """Handle ``flight``'s failed attempt: give up (final result) or schedule a retry."""
        error.attempts = flight.attempts
        retry_after = getattr(error, "retry_after", None)
        if isinstance(error, RateLimitError):
            self._concurrency.on_rate_limited()
            if self._concurrency.storming or _budget_exhausted(error.headers):
                self._shared_cooldown(flight, retry_after)
            if error.headers:
                self._limiter.observe_headers(error.headers)
        policy = self._policy
        if not is_retryable(error) or flight.attempts >= policy.attempts:
            self._give_up(flight, error)
            return
        delay = policy.delay(flight.attempts, retry_after, self._rng)
        deadline = policy.deadline
        started = flight.started or time.perf_counter()
        if deadline is not None and time.perf_counter() + delay - started > deadline:
            self._give_up(flight, error)
            return
        self._stats.retrying()
        logger.debug(
            "retrying request %s (attempt %d failed: %s) in %.2f s",
            flight.request.custom_id,
            flight.attempts,
            error,
            delay,
        )
        task = asyncio.ensure_future(self._requeue_after(flight, delay))
        self.backoffs.add(task)
        task.add_done_callback(self.backoffs.discard)

    def _shared_cooldown(self, flight: Flight, retry_after: float | None) -> None:
        """Pause dispatch for everyone for the server's Retry-After.

        Called when a budget is exhausted (the 429 says nothing remains) or 429s keep
        coming; a stray 429 only delays its own request. A 429 for a request sent
        before the last pause ended belongs to the storm that pause already answers,
        so it does not start another one.
        """
        if not retry_after or flight.sent_at < self._cooldown_ends:
            return
        self._cooldown_ends = time.perf_counter() + retry_after
        self._limiter.cooldown(retry_after)
        logger.debug("rate limited: pausing dispatch for %.2f s", retry_after)

    async def _requeue_after(self, flight: Flight, delay: float) -> None:
        await self._sleep(delay)
        self._requeue(flight)


def _budget_exhausted(headers: dict[str, str]) -> bool:
    """Whether a 429's ``x-ratelimit-remaining-*`` headers say a budget is used up."""
    return "0" in (
        headers.get("x-ratelimit-remaining-requests"),
        headers.get("x-ratelimit-remaining-tokens"),
    )
