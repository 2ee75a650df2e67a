"""Run statistics: a collector the engine feeds, and frozen ``TokenStats`` snapshots.

Only this module mutates counters. Token counts are what the provider billed for
answers that came over the network; answers served from the cache or shared by a
duplicate request cost nothing and are counted in ``saved_tokens``.
Request counts are per order (every request of the batch), so ``succeeded +
failed == requests_completed``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastllm.errors import ConfigurationError

__all__ = ["Prices", "StatsCollector", "TokenStats"]

#: USD per million tokens: (prompt, completion) or (prompt, completion, cached prompt).
Prices = Mapping[str, tuple[float, ...]]

_RESERVOIR = 4096


@dataclass(frozen=True)
class TokenStats:
    """A snapshot of a run. Field names of the reference keep their meaning."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    requests_completed: int = 0
    cache_hits: int = 0
    start_time: float = 0.0
    elapsed_time: float = 0.0
    token_limit: int | None = None
    request_limit: int | None = None
    window_tokens: int = 0
    window_requests: int = 0
    token_saturation: float = 0.0
    request_saturation: float = 0.0
    requests_total: int | None = None
    succeeded: int = 0
    failed: int = 0
    deduplicated: int = 0
    sent: int = 0
    retries: int = 0
    in_flight: int = 0
    saved_tokens: int = 0
    streams_without_usage: int = 0
    errors_by_type: Mapping[str, int] = field(default_factory=dict)
    latency_p50: float | None = None
    latency_p95: float | None = None
    latency_p99: float | None = None
    ttft_p50: float | None = None
    cost_usd: float | None = None
    limiter_wait_seconds: float = 0.0

    @property
    def requests_per_second(self) -> float:
        """Completed requests per second of the run."""
        return self.requests_completed / self.elapsed_time if self.elapsed_time > 0 else 0.0

    @property
    def prompt_tokens_per_second(self) -> float:
        """Billed prompt tokens per second."""
        return self.prompt_tokens / self.elapsed_time if self.elapsed_time > 0 else 0.0

    @property
    def completion_tokens_per_second(self) -> float:
        """Billed completion tokens per second."""
        return self.completion_tokens / self.elapsed_time if self.elapsed_time > 0 else 0.0

    @property
    def cache_hit_ratio(self) -> float:
        """Share of completed requests served from the cache."""
        return self.cache_hits / self.requests_completed if self.requests_completed else 0.0

    def summary(self) -> str:
        """A short human-readable report of the run."""
        from fastllm.observe.summary import format_summary

        return format_summary(self)


class StatsCollector:
    """Mutable counters of one run, fed by the engine; ``snapshot()`` freezes them."""

    def __init__(
        self,
        prices: Prices | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._prices = _check_prices(prices)
        self._clock = clock
        self._rng = random.Random(0)
        self.limiter_snapshot: Callable[[], Any] | None = None
        self.reset(None)

    def reset(self, total: int | None) -> None:
        """Start counting a new run of ``total`` requests (None when unknown)."""
        self.total = total
        self.started_wall = time.time()
        self.started = self._clock()
        self.finished: float | None = None
        self.prompt_tokens = self.completion_tokens = self.saved_tokens = 0
        self.succeeded = self.failed = self.cache_hits = self.deduplicated = 0
        self.sent = self.retries = self.in_flight = self.streams_without_usage = 0
        self.cost = 0.0
        self.errors: dict[str, int] = {}
        self._latencies: list[float] = []
        self._ttfts: list[float] = []
        self._samples = 0

    # -- events ---------------------------------------------------------------------
    def sending(self) -> None:
        """An HTTP attempt starts."""
        self.sent += 1
        self.in_flight += 1

    def sent_done(self) -> None:
        """An HTTP attempt ended (either way)."""
        self.in_flight -= 1

    def retrying(self) -> None:
        """A failed attempt will be retried."""
        self.retries += 1

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
            prompt = int(usage.get("prompt_tokens") or 0)
            completion = int(usage.get("completion_tokens") or 0)
            self.prompt_tokens += prompt
            self.completion_tokens += completion
            if self._prices and model is not None:
                self.cost += self._cost(model, prompt, completion, usage)
        elif streamed:
            self.streams_without_usage += 1
        self._sample(latency, ttft)

    def completed(self, count: int, *, cached: bool, shared: int, tokens: int) -> None:
        """``count`` orders got a successful answer; ``shared`` of them from a duplicate."""
        self.succeeded += count
        self.deduplicated += shared
        if cached:
            self.cache_hits += count
            self.saved_tokens += tokens * count
        else:
            self.saved_tokens += tokens * shared

    def failed_orders(self, error: BaseException, count: int, shared: int) -> None:
        """``count`` orders failed with ``error``; ``shared`` of them were duplicates."""
        self.failed += count
        self.deduplicated += shared
        name = type(error).__name__
        self.errors[name] = self.errors.get(name, 0) + count

    def finish(self) -> None:
        """The run ended: freeze the elapsed time."""
        self.finished = self._clock()

    # -- reading ----------------------------------------------------------------------
    @property
    def completed_count(self) -> int:
        """Orders finished so far, either way."""
        return self.succeeded + self.failed

    def snapshot(self) -> TokenStats:
        """A frozen copy of the counters now."""
        end = self.finished if self.finished is not None else self._clock()
        latencies = sorted(self._latencies)
        limits = _limiter_fields(self.limiter_snapshot() if self.limiter_snapshot else None)
        return TokenStats(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            total_tokens=self.prompt_tokens + self.completion_tokens,
            requests_completed=self.completed_count,
            cache_hits=self.cache_hits,
            start_time=self.started_wall,
            elapsed_time=max(0.0, end - self.started),
            requests_total=self.total,
            succeeded=self.succeeded,
            failed=self.failed,
            deduplicated=self.deduplicated,
            sent=self.sent,
            retries=self.retries,
            in_flight=self.in_flight,
            saved_tokens=self.saved_tokens,
            streams_without_usage=self.streams_without_usage,
            errors_by_type=dict(self.errors),
            latency_p50=_percentile(latencies, 0.50),
            latency_p95=_percentile(latencies, 0.95),
            latency_p99=_percentile(latencies, 0.99),
            ttft_p50=_percentile(sorted(self._ttfts), 0.50),
            cost_usd=self.cost if self._prices else None,
            **limits,
        )

    # -- helpers ----------------------------------------------------------------------
    def _sample(self, latency: float, ttft: float | None) -> None:
        # Reservoir sampling keeps percentiles honest over any run length in fixed memory.
        self._samples += 1
        if len(self._latencies) < _RESERVOIR:
            self._latencies.append(latency)
            if ttft is not None:
                self._ttfts.append(ttft)
            return
        slot = self._rng.randrange(self._samples)
        if slot < _RESERVOIR:
            self._latencies[slot] = latency
            if ttft is not None and self._ttfts:
                self._ttfts[slot % len(self._ttfts)] = ttft

    def _cost(self, model: str, prompt: int, completion: int, usage: Mapping[str, Any]) -> float:
        assert self._prices is not None
        price = self._prices.get(model)
        if price is None:
            return 0.0
        cached = 0
        details = usage.get("prompt_tokens_details")
        if isinstance(details, Mapping):
            cached = min(prompt, int(details.get("cached_tokens") or 0))
        cached_price = price[2] if len(price) > 2 else price[0]
        return ((prompt - cached) * price[0] + cached * cached_price + completion * price[1]) / 1e6


def _check_prices(prices: Prices | None) -> dict[str, tuple[float, ...]] | None:
    if prices is None:
        return None
    checked: dict[str, tuple[float, ...]] = {}
    for model, price in prices.items():
        if (
            not isinstance(price, tuple | list)
            or len(price) not in (2, 3)
            or any(not isinstance(p, int | float) or p < 0 for p in price)
        ):
            raise ConfigurationError(
                "prices",
                f"price of {model!r} must be (usd_per_million_prompt, usd_per_million_completion"
                f"[, usd_per_million_cached_prompt]) with non-negative numbers, got {price!r}",
            )
        checked[model] = tuple(float(p) for p in price)
    return checked


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))]


def _limiter_fields(snapshot: Any) -> dict[str, Any]:
    if snapshot is None:
        return {}
    from fastllm.observe.limiter_view import limiter_fields

    return limiter_fields(snapshot)
