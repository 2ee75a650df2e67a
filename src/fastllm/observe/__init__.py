"""Observing runs: statistics, cost, progress display and the end-of-run summary."""

from fastllm.observe.pricing import Prices, PriceTable
from fastllm.observe.progress import ProgressTracker
from fastllm.observe.stats import StatsCollector, TokenStats

__all__ = ["PriceTable", "Prices", "ProgressTracker", "StatsCollector", "TokenStats"]
