"""One member of a :class:`~fastllm.providers.pool.Pool`: its settings, its state, its figures.

:class:`PoolMember` is what a user may give (a provider plus a weight, a concurrency
cap, its own rate limits); :class:`MemberState` is what the pool keeps for it during
runs — its own :class:`~fastllm.limits.RateLimiter` (learning the member's
``x-ratelimit-*`` headers), requests in flight, a
:class:`~fastllm.providers.pool_breaker.CircuitBreaker` and counters — and
:class:`MemberStats` a frozen view of that for :meth:`Pool.stats`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastllm.errors import ConfigurationError
from fastllm.limits import LimiterSnapshot, RateLimit, RateLimiter
from fastllm.providers.base import Provider
from fastllm.providers.pool_breaker import CircuitBreaker

__all__ = ["MemberState", "MemberStats", "PoolMember"]


@dataclass(frozen=True)
class PoolMember:
    """A provider in a pool, with how much it may take.

    ``weight``: its share under ``strategy="weighted"``, and its relative capacity
    under ``"least-loaded"`` (load = requests in flight / weight). ``concurrency``:
    at most this many of its requests in flight (``None``: no cap of its own).
    ``rate_limits``: its own budgets; the limits its answers announce are learned
    on top unless the pool has ``learn_limits=False``. ``name`` labels it in
    :meth:`Pool.stats` and logs (default ``"<index>:<host:port>"``; never the key).
    """

    provider: Provider
    weight: float = 1.0
    concurrency: int | None = None
    rate_limits: Sequence[RateLimit] = ()
    name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.provider, Provider):
            raise ConfigurationError(
                "members", f"expected Provider objects, got {type(self.provider).__name__}"
            )
        if isinstance(self.weight, bool) or not (
            isinstance(self.weight, int | float) and math.isfinite(self.weight) and self.weight > 0
        ):
            raise ConfigurationError("weight", f"must be a positive number, got {self.weight!r}")
        if self.concurrency is not None and (
            isinstance(self.concurrency, bool)
            or not isinstance(self.concurrency, int)
            or self.concurrency < 1
        ):
            raise ConfigurationError(
                "concurrency", f"must be a positive integer or None, got {self.concurrency!r}"
            )


@dataclass(frozen=True)
class MemberStats:
    """One member's figures: requests ``sent`` to it, ``succeeded``, ``failed`` there,
    ``failed_over`` (of those failed, how many another member then took), ``rate_limited``
    (429s), ``in_flight`` now, its breaker ``state`` (``closed``/``open``/``half-open``)
    and why it last opened, and its rate ``limits``."""

    name: str
    sent: int
    succeeded: int
    failed: int
    failed_over: int
    rate_limited: int
    in_flight: int
    state: str
    reason: str | None
    limits: LimiterSnapshot


@dataclass(eq=False)
class MemberState:
    """What the pool knows of one member during runs."""

    index: int
    provider: Provider
    weight: float
    concurrency: int | None
    name: str
    limiter: RateLimiter
    breaker: CircuitBreaker
    in_flight: int = 0
    current: float = 0.0  # smooth weighted round-robin
    sent: int = 0
    succeeded: int = 0
    failed: int = 0
    failed_over: int = 0
    rate_limited: int = 0

    @classmethod
    def build(
        cls, index: int, member: PoolMember, learn_limits: bool, breaker: CircuitBreaker
    ) -> MemberState:
        name = member.name or f"{index}:{urlsplit(member.provider.api_base).netloc}"
        return cls(
            index=index,
            provider=member.provider,
            weight=float(member.weight),
            concurrency=member.concurrency,
            name=name,
            limiter=RateLimiter(tuple(member.rate_limits), auto=learn_limits),
            breaker=breaker,
        )

    @property
    def full(self) -> bool:
        """Whether its own concurrency cap is reached."""
        return self.concurrency is not None and self.in_flight >= self.concurrency

    def limiter_wait(self, tokens: int) -> float:
        """Seconds until its limiter could grant one request of ``tokens`` (an estimate)."""
        wait = 0.0
        for limit in self.limiter.snapshot().limits:
            need = min(float(tokens) if limit.kind == "tokens" else 1.0, float(limit.capacity))
            short = need - limit.available
            if short > 0 and limit.capacity > 0:
                wait = max(wait, short * limit.period / limit.capacity)
        return wait

    def stats(self) -> MemberStats:
        return MemberStats(
            name=self.name,
            sent=self.sent,
            succeeded=self.succeeded,
            failed=self.failed,
            failed_over=self.failed_over,
            rate_limited=self.rate_limited,
            in_flight=self.in_flight,
            state=self.breaker.state,
            reason=self.breaker.reason,
            limits=self.limiter.snapshot(),
        )
