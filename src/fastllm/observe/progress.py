"""``ProgressTracker``: a rich progress bar fed from stats snapshots.

The bar redraws a few times a second from :class:`~fastllm.observe.stats.StatsCollector`
snapshots; nothing is done per request, so the bar costs the same at 10 or
10,000 requests per second.
"""

from __future__ import annotations

import asyncio
import contextlib

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from fastllm.observe.stats import StatsCollector, TokenStats

__all__ = ["ProgressTracker", "describe"]


def describe(stats: TokenStats) -> str:
    """The one-line status shown next to the bar."""
    parts = [
        f"{stats.requests_per_second:,.0f} req/s",
        f"⬆ {stats.prompt_tokens_per_second:,.0f} tok/s",
        f"⬇ {stats.completion_tokens_per_second:,.0f} tok/s",
        f"cache {stats.cache_hits:,}",
        f"dedup {stats.deduplicated:,}",
        f"retries {stats.retries:,}",
        f"errors {stats.failed:,}",
    ]
    if stats.request_limit or stats.token_limit:
        saturation = max(stats.request_saturation, stats.token_saturation)
        parts.append(f"limit {saturation:.0%}")
    if stats.cost_usd is not None:
        parts.append(f"${stats.cost_usd:,.4f}")
    return " · ".join(parts)


class ProgressTracker:
    """Shows a run's progress while it is in a ``with`` block (or between start/stop)."""

    def __init__(
        self,
        stats: StatsCollector,
        show_progress: bool = True,
        *,
        console: Console | None = None,
        refresh_interval: float = 0.2,
    ) -> None:
        self.stats = stats
        self.show_progress = show_progress
        self._interval = refresh_interval
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
            disable=not show_progress,
            refresh_per_second=max(1.0, 1 / refresh_interval),
        )
        self._task_id = self._progress.add_task("requests", total=stats.total, status="")
        self._refresher: asyncio.Task[None] | None = None

    def refresh(self) -> None:
        """Redraw from the current counters."""
        snapshot = self.stats.snapshot()
        total = self.stats.total
        self._progress.update(
            self._task_id,
            completed=snapshot.requests_completed,
            total=total,
            status=describe(snapshot),
        )

    def start(self) -> None:
        """Show the bar and keep it fresh from the running event loop."""
        if not self.show_progress:
            return
        self._progress.start()
        self._refresher = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def stop(self) -> None:
        """Draw the final state and remove the live display."""
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        if self.show_progress:
            self.refresh()
            self._progress.stop()

    async def _refresh_loop(self) -> None:
        while True:
            self.refresh()
            await asyncio.sleep(self._interval)
