"""The mock's server-side rate limit and OpenAI's duration format.

:class:`RateLimiter` is the server-side limit: one continuously refilling
bucket per configured limit (capacity = the limit, refilled at limit/window per
second), which is how OpenAI describes its limits; its state gives the
``x-ratelimit-*`` headers.
"""

from __future__ import annotations

import math
import time

__all__ = ["RateLimiter", "format_duration"]


def format_duration(seconds: float) -> str:
    """Format like OpenAI's rate-limit reset headers: ``20ms``, ``1s``, ``6m0s``, ``1m30.5s``."""
    millis = max(0, math.ceil(seconds * 1000 - 1e-6))
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


class _Bucket:
    """A continuously refilling bucket: ``capacity`` per ``window`` seconds."""

    __slots__ = ("capacity", "level", "rate", "stamp")

    def __init__(self, capacity: int, window: float, now: float) -> None:
        self.capacity = float(capacity)
        self.rate = capacity / window
        self.level = float(capacity)
        self.stamp = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait(self, cost: float) -> float:
        """Seconds until ``cost`` fits (0 when it fits now)."""
        return 0.0 if cost <= self.level else (cost - self.level) / self.rate

    def headers(self, kind: str) -> list[tuple[str, str]]:
        reset = (self.capacity - self.level) / self.rate
        return [
            (f"x-ratelimit-limit-{kind}", str(int(self.capacity))),
            (f"x-ratelimit-remaining-{kind}", str(max(0, int(self.level)))),
            (f"x-ratelimit-reset-{kind}", format_duration(reset)),
        ]


class RateLimiter:
    """The server-side limit: a refilling bucket for requests and one for tokens."""

    def __init__(self, requests: int | None, tokens: int | None, window: float) -> None:
        now = time.monotonic()
        self.window = window
        self._buckets: list[tuple[str, _Bucket]] = []
        if requests is not None:
            self._buckets.append(("requests", _Bucket(requests, window, now)))
        if tokens is not None:
            self._buckets.append(("tokens", _Bucket(tokens, window, now)))

    def acquire(self, tokens: int) -> tuple[float, str]:
        """Take one request and ``tokens``; else return (seconds to wait, limit name), untaken."""
        now = time.monotonic()
        wait, kind = 0.0, ""
        for name, bucket in self._buckets:
            bucket.refill(now)
            needed = bucket.wait(1 if name == "requests" else tokens)
            if needed > wait:
                wait, kind = needed, name
        if wait == 0.0:
            for name, bucket in self._buckets:
                bucket.level -= 1 if name == "requests" else tokens
        return wait, kind

    def headers(self) -> list[tuple[str, str]]:
        """The ``x-ratelimit-*`` headers for the current state."""
        now = time.monotonic()
        result: list[tuple[str, str]] = []
        for name, bucket in self._buckets:
            bucket.refill(now)
            result.extend(bucket.headers(name))
        return result
