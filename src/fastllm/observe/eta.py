"""Time left in a run, from the pace of its last half minute."""

from __future__ import annotations

from collections import deque

__all__ = ["EtaEstimator", "format_clock"]


class EtaEstimator:
    """Fed ``(elapsed, completed)`` on every redraw; estimates the seconds left.

    The pace is measured over the last ``window`` seconds, so a burst of cache hits
    at the start does not promise an early finish; before the first completion
    there is no estimate.
    """

    def __init__(self, window: float = 30.0) -> None:
        self._window = window
        self._samples: deque[tuple[float, int]] = deque()

    def update(self, elapsed: float, completed: int) -> None:
        """Record the run's progress at ``elapsed`` seconds."""
        samples = self._samples
        if samples and elapsed <= samples[-1][0]:
            samples[-1] = (samples[-1][0], completed)
            return
        samples.append((elapsed, completed))
        # keep one sample older than the window so the span covers all of it
        while len(samples) > 2 and samples[1][0] <= elapsed - self._window:
            samples.popleft()

    def rate(self) -> float | None:
        """Completions per second over the window (None when nothing finished in it)."""
        if not self._samples:
            return None
        last_time, last_done = self._samples[-1]
        first_time, first_done = self._samples[0]
        if last_time > first_time:
            rate = (last_done - first_done) / (last_time - first_time)
        else:
            rate = last_done / last_time if last_time > 0 else 0.0
        return rate if rate > 0 else None

    def eta(self, remaining: int | None) -> float | None:
        """Seconds until ``remaining`` more orders are done, or None when unknown."""
        if remaining is None:
            return None
        if remaining == 0:
            return 0.0
        rate = self.rate()
        return remaining / rate if rate else None


def format_clock(seconds: float | None) -> str:
    """``H:MM:SS`` (``-:--:--`` when unknown)."""
    if seconds is None:
        return "-:--:--"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
