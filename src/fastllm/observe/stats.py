"""Run statistics: the collector the engine feeds; readers get frozen snapshots.

Only :class:`StatsCollector` changes counters, through its event methods; readers
get immutable :class:`~fastllm.observe.snapshot.TokenStats` snapshots (what each
counter means is in :mod:`fastllm.observe.snapshot`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from fastllm.observe.pricing import Prices, PriceTable, token_count
from fastllm.observe.sampling import Reservoir
from fastllm.observe.snapshot import FrozenCounts as FrozenCounts
from fastllm.observe.snapshot import TokenStats as TokenStats

if TYPE_CHECKING:
    from fastllm.limits import LimiterSnapshot

__all__ = ["FrozenCounts", "Prices", "StatsCollector", "TokenStats"]

logger = logging.getLogger(__name__)


class StatsCollector:
    """Mutable counters of one run, fed by the engine; ``snapshot()`` freezes them.

    ``clock`` (monotonic seconds) and ``wall_clock`` (epoch seconds) can be
    injected for tests. Set ``limiter_snapshot`` to a callable returning a
    :class:`~fastllm.limits.LimiterSnapshot` to get the rate-limit fields.
    """

    _started: float | None
    _finished: float | None

    def __init__(
        self,
        prices: Prices | None = None,
        clock: Callable[[], float] = time.perf_counter,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._prices = PriceTable(prices) if prices is not None else None
        self._clock = clock
        self._wall_clock = wall_clock
        self.limiter_snapshot: Callable[[], LimiterSnapshot] | None = None
        self._clear(None)
        self._started = None  # no run yet: elapsed time 0
        self._started_wall = 0.0

    # -- run lifecycle ------------------------------------------------------------------
    def reset(self, total: int | None) -> None:
        """Start counting a new run of ``total`` requests (None when unknown)."""
        self._clear(total)
        self._started = self._clock()
        self._started_wall = self._wall_clock()

    def finish(self) -> None:
        """The run ended: freeze the elapsed time."""
        if self._finished is None:
            self._finished = self._clock()

    def _clear(self, total: int | None) -> None:
        self._total = total
        self._finished = None
        self._prompt = self._completion = self._saved = self._unpriced = 0
        self._succeeded = self._failed = self._cache_hits = self._deduplicated = 0
        self._sent = self._retries = self._in_flight = self._streams_without_usage = 0
        self._cache_errors = 0
        self._cost = 0.0
        self._errors: dict[str, int] = {}
        self._unpriced_models: set[str] = set()
        self._latencies = Reservoir(seed=1)
        self._ttfts = Reservoir(seed=2)

    # -- events -------------------------------------------------------------------------
    def sending(self) -> None:
        """An HTTP attempt starts."""
        self._sent += 1
        self._in_flight += 1

    def sent_done(self) -> None:
        """An HTTP attempt ended (either way)."""
        self._in_flight -= 1

    def retrying(self) -> None:
        """A failed attempt will be retried."""
        self._retries += 1

    def cache_failed(self) -> None:
        """A cache read or write failed (and was treated as a miss / left uncached)."""
        self._cache_errors += 1

    def answered(
        self,
        model: str | None,
        usage: Mapping[str, Any] | None,
        latency: float,
        ttft: float | None,
        streamed: bool,
    ) -> None:
        """A network answer arrived (billed once, however many orders share it)."""
        if usage:
            prompt = token_count(usage.get("prompt_tokens"))
            completion = token_count(usage.get("completion_tokens"))
            self._prompt += prompt
            self._completion += completion
            if self._prices is not None:
                self._price(model, usage, prompt + completion)
        elif streamed:
            self._streams_without_usage += 1
        self._latencies.add(latency)
        if ttft is not None:
            self._ttfts.add(ttft)

    def completed(self, count: int, *, cached: bool, shared: int, tokens: int) -> None:
        """``count`` orders got a successful answer; ``shared`` of them from an identical
        request. ``cached`` means the answer came from the cache; ``tokens`` is its total."""
        self._succeeded += count
        self._deduplicated += shared
        if cached:
            self._cache_hits += count - shared
            self._saved += tokens * count
        else:
            self._saved += tokens * shared

    def cache_answered(self, count: int, tokens: int) -> None:
        """``count`` orders were answered by their own cache lookups (one chunk at a time);
        ``tokens`` is the total of their answers."""
        self._succeeded += count
        self._cache_hits += count
        self._saved += tokens

    def failed_orders(self, error: BaseException, count: int, shared: int) -> None:
        """``count`` orders failed with ``error``; ``shared`` of them were duplicates."""
        self._failed += count
        self._deduplicated += shared
        name = type(error).__name__
        self._errors[name] = self._errors.get(name, 0) + count

    # -- reading ------------------------------------------------------------------------
    @property
    def total(self) -> int | None:
        """Requests in the run (None when the input's length is unknown)."""
        return self._total

    @property
    def cost(self) -> float:
        """USD spent so far in this run (0.0 without prices)."""
        return self._cost

    @property
    def completed_count(self) -> int:
        """Orders finished so far, either way."""
        return self._succeeded + self._failed

    @property
    def running(self) -> bool:
        """True between :meth:`reset` and :meth:`finish`."""
        return self._started is not None and self._finished is None

    def snapshot(self) -> TokenStats:
        """A frozen copy of the counters now."""
        p50, p95, p99 = self._latencies.percentiles(0.50, 0.95, 0.99)
        (ttft_p50,) = self._ttfts.percentiles(0.50)
        limits = self._limiter_fields()
        return TokenStats(
            prompt_tokens=self._prompt,
            completion_tokens=self._completion,
            total_tokens=self._prompt + self._completion,
            requests_completed=self.completed_count,
            cache_hits=self._cache_hits,
            start_time=self._started_wall,
            elapsed_time=self._elapsed(),
            requests_total=self._total,
            succeeded=self._succeeded,
            failed=self._failed,
            deduplicated=self._deduplicated,
            sent=self._sent,
            retries=self._retries,
            cache_errors=self._cache_errors,
            in_flight=self._in_flight,
            saved_tokens=self._saved,
            streams_without_usage=self._streams_without_usage,
            errors_by_type=FrozenCounts(self._errors),
            latency_p50=p50,
            latency_p95=p95,
            latency_p99=p99,
            ttft_p50=ttft_p50,
            cost_usd=self._cost if self._prices is not None else None,
            unpriced_tokens=self._unpriced,
            **limits,
        )

    # -- helpers ------------------------------------------------------------------------
    def _elapsed(self) -> float:
        if self._started is None:
            return 0.0
        end = self._finished if self._finished is not None else self._clock()
        return max(0.0, end - self._started)

    def _price(self, model: str | None, usage: Mapping[str, Any], tokens: int) -> None:
        assert self._prices is not None
        cost = self._prices.cost(model, usage)
        if cost is not None:
            self._cost += cost
            return
        self._unpriced += tokens
        name = model or "<no model in the answer>"
        if name not in self._unpriced_models:
            self._unpriced_models.add(name)
            logger.warning(
                "no price for model %r in prices: its tokens are not in the cost "
                "(and do not count towards max_cost)",
                name,
            )

    def _limiter_fields(self) -> dict[str, Any]:
        if self.limiter_snapshot is None:
            return {}
        from fastllm.observe.limiter_view import limiter_fields

        return limiter_fields(self.limiter_snapshot())
