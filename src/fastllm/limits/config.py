"""Rate-limit configuration: :class:`RateLimit` and :func:`parse_period`.

A :class:`RateLimit` says "at most ``requests`` requests and/or ``tokens`` tokens
per ``per``". Several of them can be combined in one
:class:`~fastllm.limits.rate_limiter.RateLimiter` (e.g. 500 requests per minute
*and* 10 per second *and* 200k tokens per minute).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from fastllm.errors import ConfigurationError

__all__ = ["RateLimit", "parse_period"]

#: Seconds per unit accepted by :func:`parse_period`.
_UNIT_SECONDS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}

_PERIOD_RE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*", re.IGNORECASE)

_PERIOD_HINT = "use e.g. '10s', '1m', '1h', '1d', '500ms' or seconds"


def parse_period(value: str | float) -> float:
    """Seconds in a period: ``"10s"``, ``"1m"``, ``"1.5m"``, ``"1h"``, ``"1d"``, ``"500ms"``.

    A number (or a numeric string without unit) is taken as seconds. The result is
    always positive and finite; anything else raises
    :class:`~fastllm.errors.ConfigurationError` naming ``per``.
    """
    if isinstance(value, bool):
        raise ConfigurationError("per", f"cannot parse period {value!r}; {_PERIOD_HINT}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _PERIOD_RE.fullmatch(value)
        unit = match.group(2).lower() if match else ""
        if match is None or (unit and unit not in _UNIT_SECONDS):
            raise ConfigurationError("per", f"cannot parse period {value!r}; {_PERIOD_HINT}")
        seconds = float(match.group(1)) * _UNIT_SECONDS.get(unit, 1.0)
    else:
        raise ConfigurationError("per", f"cannot parse period {value!r}; {_PERIOD_HINT}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigurationError("per", f"period must be positive and finite, got {value!r}")
    return seconds


def _check_count(argument: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigurationError(argument, f"must be a positive integer or None, got {value!r}")


@dataclass(frozen=True)
class RateLimit:
    """At most ``requests`` requests and/or ``tokens`` tokens per ``per``.

    ``per`` is a duration string (``"10s"``, ``"1m"``, ``"1.5m"``, ``"1h"``, ``"1d"``,
    ``"500ms"``) or seconds as a number. ``name`` labels the limit in statistics; with
    ``redis_url`` it is also the identity of a budget shared by every process that uses
    the same name and Redis server (see :class:`~fastllm.limits.redis_limiter.RedisRateLimiter`).
    ``redis_url`` is left out of the repr: it may hold a password.
    """

    requests: int | None = None
    tokens: int | None = None
    per: str | float = "1m"
    name: str | None = None
    redis_url: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.requests is None and self.tokens is None:
            raise ConfigurationError(
                "requests", "a RateLimit needs requests=..., tokens=... or both; got neither"
            )
        _check_count("requests", self.requests)
        _check_count("tokens", self.tokens)
        parse_period(self.per)
        if self.name is not None and not isinstance(self.name, str):
            raise ConfigurationError("name", f"must be a string or None, got {self.name!r}")
        if self.redis_url is not None and not isinstance(self.redis_url, str):
            raise ConfigurationError(
                "redis_url", f"must be a string or None, got {self.redis_url!r}"
            )

    @property
    def period(self) -> float:
        """The period in seconds."""
        return parse_period(self.per)

    def describe(self) -> str:
        """A short label, e.g. ``"500 requests, 200000 tokens per 1m"``."""
        parts = []
        if self.requests is not None:
            parts.append(f"{self.requests} requests")
        if self.tokens is not None:
            parts.append(f"{self.tokens} tokens")
        per = self.per if isinstance(self.per, str) else f"{self.per:g}s"
        return f"{', '.join(parts)} per {per.strip()}"
