"""``TokenStats``: a frozen snapshot of a run's statistics.

What is counted:

* tokens are what the provider billed for answers that came over the network in
  this run; answers served from the cache or shared with an identical request
  cost nothing and are counted in ``saved_tokens`` instead;
* request counts are per order (every request of the batch):
  ``requests_completed == succeeded + failed``, and every completed order was
  either sent itself (its own answer or failure), answered by its own cache
  lookup (``cache_hits``), or shared the outcome of an identical request of the
  run (``deduplicated``, successes and failures alike);
* ``sent`` counts HTTP attempts, ``retries`` the failed attempts that were tried again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NoReturn

__all__ = ["FrozenCounts", "TokenStats"]


class FrozenCounts(dict[str, int]):
    """A read-only dict (``errors_by_type``): snapshots cannot be changed through it."""

    def _readonly(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("TokenStats snapshots are read-only")

    __setitem__ = __delitem__ = __ior__ = _readonly
    clear = pop = popitem = setdefault = update = _readonly

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __reduce__(self) -> tuple[type[FrozenCounts], tuple[dict[str, int]]]:
        return type(self), (dict(self),)


@dataclass(frozen=True)
class TokenStats:
    """A snapshot of a run (see the module docstring for what each count means).

    The reference's fields keep their meaning: ``start_time`` is the wall-clock
    (epoch) start of the run, ``elapsed_time`` the seconds since then (frozen when
    the run ends); ``token_limit``/``request_limit`` the tightest rate limit of each
    kind, ``window_*`` what of it is in use and ``*_saturation`` that share (0..1).
    Latencies run from a request's first send to its answer, retries included;
    ``cost_usd`` is None without ``prices``, and ``unpriced_tokens`` are billed
    tokens of models missing from them (not in ``cost_usd``).
    """

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
    cache_errors: int = 0
    in_flight: int = 0
    saved_tokens: int = 0
    streams_without_usage: int = 0
    errors_by_type: Mapping[str, int] = field(default_factory=FrozenCounts)
    latency_p50: float | None = None
    latency_p95: float | None = None
    latency_p99: float | None = None
    ttft_p50: float | None = None
    cost_usd: float | None = None
    limiter_wait_seconds: float = 0.0
    unpriced_tokens: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.errors_by_type, FrozenCounts):
            object.__setattr__(self, "errors_by_type", FrozenCounts(self.errors_by_type))

    @property
    def requests_per_second(self) -> float:
        """Completed requests per second of the run."""
        return _rate(self.requests_completed, self.elapsed_time)

    @property
    def prompt_tokens_per_second(self) -> float:
        """Billed prompt tokens per second of the run."""
        return _rate(self.prompt_tokens, self.elapsed_time)

    @property
    def completion_tokens_per_second(self) -> float:
        """Billed completion tokens per second of the run."""
        return _rate(self.completion_tokens, self.elapsed_time)

    @property
    def cache_hit_ratio(self) -> float:
        """Share of the distinct requests (those not sharing an identical request's
        outcome) answered from the cache: 1.0 when a re-run found everything there."""
        looked_up = self.requests_completed - self.deduplicated
        return self.cache_hits / looked_up if looked_up > 0 else 0.0

    @property
    def requests_remaining(self) -> int | None:
        """Orders not finished yet (None when the input's length is unknown)."""
        if self.requests_total is None:
            return None
        return max(0, self.requests_total - self.requests_completed)

    def summary(self) -> str:
        """A one-screen human-readable report of the run."""
        from fastllm.observe.summary import format_summary

        return format_summary(self)


def _rate(amount: int, seconds: float) -> float:
    return amount / seconds if seconds > 0 else 0.0
