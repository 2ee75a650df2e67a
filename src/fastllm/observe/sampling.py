"""Percentiles in fixed memory: a uniform reservoir sample of a run's latencies."""

from __future__ import annotations

import random
from collections.abc import Sequence

__all__ = ["Reservoir", "percentile"]


class Reservoir:
    """At most ``size`` values, a uniform sample of all values added (Algorithm R).

    Every value is kept until ``size`` are seen, so percentiles are exact for
    runs up to that size and unbiased estimates beyond it.
    """

    __slots__ = ("_rng", "_size", "count", "values")

    def __init__(self, size: int = 4096, seed: int = 0) -> None:
        self._size = size
        self._rng = random.Random(seed)
        self.count = 0
        self.values: list[float] = []

    def add(self, value: float) -> None:
        """Offer one value to the sample."""
        self.count += 1
        if len(self.values) < self._size:
            self.values.append(value)
            return
        slot = self._rng.randrange(self.count)
        if slot < self._size:
            self.values[slot] = value

    def percentiles(self, *qs: float) -> tuple[float | None, ...]:
        """The ``q`` quantiles (0..1) of the sample; None each when it is empty."""
        ordered = sorted(self.values)
        return tuple(percentile(ordered, q) for q in qs)


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile of sorted values, interpolating linearly (numpy's default)."""
    if not ordered:
        return None
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
