"""The local limiter's pieces: token buckets, and the reservations and snapshots it hands out.

A :class:`_Bucket` is one budget of a :class:`~fastllm.limits.rate_limiter.RateLimiter`;
a :class:`Reservation` is what one acquire took; :class:`LimitSnapshot` and
:class:`LimiterSnapshot` are frozen views of the budgets (also used by the shared
limiter); a :class:`_Waiter` is one queued acquire.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

__all__ = ["LimitSnapshot", "LimiterSnapshot", "Reservation"]

_REQUESTS = "requests"
_TOKENS = "tokens"


class _Bucket:
    """One budget: a level refilling at ``rate`` per second up to ``capacity``."""

    __slots__ = (
        "auto",
        "capacity",
        "is_tokens",
        "kind",
        "learned_remaining",
        "level",
        "name",
        "period",
        "rate",
        "updated",
    )

    def __init__(
        self, name: str, kind: str, capacity: int, period: float, now: float, *, auto: bool = False
    ) -> None:
        self.name = name
        self.kind = kind
        self.is_tokens = kind == _TOKENS
        self.capacity = float(capacity)
        self.period = period
        self.rate = capacity / period
        self.level = float(capacity)
        self.updated = now
        self.learned_remaining: int | None = None
        self.auto = auto

    def refill(self, now: float) -> None:
        if now > self.updated:
            level = self.level + (now - self.updated) * self.rate
            self.level = level if level < self.capacity else self.capacity
            self.updated = now

    def give_back(self, amount: float, now: float) -> None:
        self.refill(now)
        self.level = min(self.capacity, self.level + amount)

    def resize(self, capacity: int, now: float) -> None:
        self.refill(now)
        self.capacity = float(capacity)
        self.rate = capacity / self.period
        self.level = min(self.level, self.capacity)


class Reservation:
    """What one :meth:`RateLimiter.acquire` took: hand it to ``settle`` or ``cancel``.

    ``tokens`` is the number of tokens currently charged (the estimate, then the real
    usage once settled); ``waited`` the seconds the acquire waited.
    """

    __slots__ = ("_blind", "_buckets", "_open", "tokens", "waited")

    def __init__(
        self, tokens: int, waited: float, buckets: tuple[_Bucket, ...], blind: bool = False
    ) -> None:
        self.tokens = tokens
        self.waited = waited
        self._buckets = buckets
        self._open = True
        self._blind = blind  # granted in auto mode before any limit was known

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`RateLimiter.cancel` gave this reservation back."""
        return not self._open

    def __repr__(self) -> str:
        return f"Reservation(tokens={self.tokens}, waited={self.waited:.3f})"


@dataclass(frozen=True, slots=True)
class LimitSnapshot:
    """One budget at a moment. ``available`` may be negative after an oversize request;
    ``saturation`` is ``1 - available / capacity`` clamped to 0..1."""

    name: str
    kind: str
    capacity: int
    period: float
    available: float
    saturation: float
    learned_remaining: int | None
    auto: bool


@dataclass(frozen=True, slots=True)
class LimiterSnapshot:
    """The limiter at a moment; ``cooldown_until`` is on the limiter's clock, or ``None``."""

    limits: tuple[LimitSnapshot, ...]
    waited_seconds_total: float
    waiting: int
    cooldown_until: float | None


class _Waiter:
    __slots__ = ("cancelled", "deadline", "timer", "tokens", "wake")

    def __init__(self, tokens: int) -> None:
        self.tokens = tokens
        self.wake: asyncio.Future[None] | None = None
        self.timer: asyncio.Task[None] | None = None
        self.deadline = math.inf
        self.cancelled = False
