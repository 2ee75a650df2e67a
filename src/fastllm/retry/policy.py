"""``RetryPolicy``: how many attempts, how long between them, and when to give up.

Backoff is exponential with full jitter (a uniform draw between 0 and the capped
exponential), which spreads a burst of failures out instead of retrying it in
lockstep. A server's Retry-After is honoured as a floor. ``deadline`` bounds the
total time one request may spend across all its attempts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from fastllm.errors import ConfigurationError

__all__ = ["RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """Retry settings. ``attempts`` counts every try, the first included (1 = no retry)."""

    attempts: int = 3
    base_delay: float = 1.0
    max_delay: float = 60.0
    deadline: float | None = None
    jitter: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise ConfigurationError("attempts", f"must be an integer, got {self.attempts!r}")
        if self.attempts < 1:
            raise ConfigurationError("attempts", f"must be at least 1, got {self.attempts}")
        if self.base_delay < 0:
            raise ConfigurationError("base_delay", f"must be >= 0, got {self.base_delay}")
        if self.max_delay < self.base_delay:
            raise ConfigurationError(
                "max_delay", f"must be >= base_delay ({self.base_delay}), got {self.max_delay}"
            )
        if self.deadline is not None and self.deadline <= 0:
            raise ConfigurationError("deadline", f"must be positive, got {self.deadline}")

    def delay(
        self,
        failed_attempts: int,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> float:
        """Seconds to wait after ``failed_attempts`` failures (1 after the first)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (failed_attempts - 1))
        wait = (rng or random).uniform(0.0, ceiling) if self.jitter else ceiling
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait
