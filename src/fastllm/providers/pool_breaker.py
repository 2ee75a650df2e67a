"""A circuit breaker for one member of a :class:`~fastllm.providers.pool.Pool`.

::

    closed ──N consecutive outage failures──> open ──cooldown──> half-open
      ▲                                         ▲                  │ one probe
      └────────────── probe succeeds ───────────┼──────────────────┤
                                                └─ probe fails ────┘ (cooldown doubles)

While open, the pool sends the member nothing; after the cooldown one request
probes it. A fatal answer (wrong key, no quota) opens it at once for a long
cooldown: a key fixed meanwhile comes back, a dead one costs one probe per cooldown.
The clock is injectable; nothing here sleeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["CircuitBreaker"]


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures for ``cooldown`` s (doubling to a maximum)."""

    def __init__(
        self,
        threshold: int = 3,
        cooldown: float = 1.0,
        max_cooldown: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.base_cooldown = cooldown
        self.max_cooldown = max_cooldown
        self.reason: str | None = None
        self.trips = 0
        self._clock = clock
        self._failures = 0
        self._cooldown = cooldown
        self._open_until: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half-open"`` (the cooldown is over: a probe may go)."""
        if self._open_until is None:
            return "closed"
        return "open" if self._clock() < self._open_until else "half-open"

    def reopens_in(self) -> float:
        """Seconds until a probe may be sent (0 when closed or half-open)."""
        if self._open_until is None:
            return 0.0
        return max(0.0, self._open_until - self._clock())

    def allows(self) -> bool:
        """Whether a request may go now (in half-open state: only while no probe is out)."""
        if self._open_until is None:
            return True
        return not self._probing and self._clock() >= self._open_until

    def sending(self) -> bool:
        """Note that a request is sent; True when it is the half-open state's probe."""
        if self._open_until is not None and not self._probing:
            self._probing = True
            return True
        return False

    def succeeded(self) -> None:
        """An answer: close, and forget past failures."""
        self._failures = 0
        self._open_until = None
        self._probing = False
        self._cooldown = self.base_cooldown
        self.reason = None

    def failed(self, reason: str, probe: bool) -> None:
        """An outage-like failure; opens at the threshold, or at once when it was the probe."""
        self._failures += 1
        if probe or self._open_until is not None:
            self._probing = False
            self._trip(reason, min(self.max_cooldown, self._cooldown * 2))
        elif self._failures >= self.threshold:
            self._trip(reason, self._cooldown)

    def released(self, probe: bool) -> None:
        """A probe ended without telling anything (the request's own fault): allow another."""
        if probe:
            self._probing = False

    def trip(self, reason: str, seconds: float) -> None:
        """Open now for ``seconds`` (a fatal answer)."""
        self._probing = False
        self._trip(reason, seconds)

    def _trip(self, reason: str, cooldown: float) -> None:
        self._cooldown = cooldown
        self._open_until = self._clock() + cooldown
        self.reason = reason
        self.trips += 1
