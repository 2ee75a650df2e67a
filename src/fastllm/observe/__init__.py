"""Observing runs: statistics, progress bar, summary."""

from fastllm.observe.progress import ProgressTracker
from fastllm.observe.stats import StatsCollector, TokenStats

__all__ = ["ProgressTracker", "StatsCollector", "TokenStats"]
