"""``ProgressTracker``: the run's progress, redrawn on a timer from stats snapshots.

Nothing happens per request: a timer task reads a
:class:`~fastllm.observe.stats.StatsCollector` snapshot and redraws, so the
display costs the same at 10 or 10,000 requests per second. Where it goes
depends on the console (see :mod:`fastllm.observe.displays`):

======================  ==========================================  ===========
console                 display                                     redraws
======================  ==========================================  ===========
a terminal              live rich bar, final state kept + summary   5 per s
a notebook              one output updated in place + summary       1 per s
anything else (CI, |)   plain line to the log or stderr + summary   every 10 s
======================  ==========================================  ===========

``show_progress=False`` prints nothing at all (and rich is never imported); the
summary stays available as ``manager.stats().summary()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from fastllm.observe.eta import EtaEstimator
from fastllm.observe.stats import StatsCollector, TokenStats

if TYPE_CHECKING:  # rich and the displays load with the first display, not at import
    from rich.console import Console, RenderableType

    from fastllm.observe.displays import LiveDisplay, NotebookDisplay, PlainDisplay

__all__ = ["ProgressTracker"]

logger = logging.getLogger(__name__)

Mode = Literal["off", "live", "notebook", "plain"]

_INTERVALS: dict[Mode, float] = {"live": 0.2, "notebook": 1.0, "plain": 10.0, "off": 1.0}


class ProgressTracker:
    """Shows a run's progress between :meth:`start` and :meth:`stop` (or ``async with``).

    ``console`` defaults to a new rich console on stdout; ``refresh_interval``
    overrides the redraw period of the chosen display (seconds).
    """

    def __init__(
        self,
        stats: StatsCollector,
        show_progress: bool = True,
        *,
        console: Console | None = None,
        refresh_interval: float | None = None,
    ) -> None:
        self.stats = stats
        self.show_progress = show_progress
        self.console = console if console is not None or not show_progress else _new_console()
        self._notebook_display: Callable[..., Any] | None = None
        self.mode: Mode = self._choose_mode()
        self.refresh_interval = refresh_interval or _INTERVALS[self.mode]
        self._eta = EtaEstimator()
        self._display: LiveDisplay | NotebookDisplay | PlainDisplay | None = None
        self._refresher: asyncio.Task[None] | None = None

    # -- drawing ------------------------------------------------------------------------
    def current(self) -> tuple[TokenStats, float | None]:
        """A snapshot now and the estimated seconds left (also feeds the estimate)."""
        snapshot = self.stats.snapshot()
        self._eta.update(snapshot.elapsed_time, snapshot.requests_completed)
        return snapshot, self._eta.eta(snapshot.requests_remaining)

    def renderable(self) -> RenderableType:
        """The bar and status for the counters now (for embedding in your own display)."""
        from fastllm.observe.displays import render_progress

        return render_progress(*self.current())

    def refresh(self) -> None:
        """Redraw from the current counters (a plain line in plain mode)."""
        if self._display is None:
            return
        from fastllm.observe.displays import PlainDisplay, progress_line, render_progress

        snapshot, eta = self.current()
        if isinstance(self._display, PlainDisplay):
            self._display.show(progress_line(snapshot, eta))
        else:
            self._display.show(render_progress(snapshot, eta))

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Show the progress and keep it fresh from the running event loop."""
        if self.mode == "off" or self._display is not None:
            return
        from fastllm.observe.displays import PlainDisplay

        self._display = self._make_display()
        if not isinstance(self._display, PlainDisplay):
            try:
                self.refresh()
            except Exception as exc:  # a broken display must never fail the run
                self._display = None
                _display_failed(exc)
                return
        self._refresher = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def stop(self) -> None:
        """Draw the final state, then the run's summary."""
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        display, self._display = self._display, None
        if display is None:
            return
        from fastllm.observe.displays import PlainDisplay, progress_line, render_progress

        snapshot, eta = self.current()
        try:
            if isinstance(display, PlainDisplay):
                display.close(progress_line(snapshot, eta), snapshot.summary())
            else:
                display.close(render_progress(snapshot, eta), snapshot.summary())
        except Exception as exc:  # a broken display must never fail the run
            _display_failed(exc)

    async def __aenter__(self) -> ProgressTracker:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- helpers ------------------------------------------------------------------------
    def _choose_mode(self) -> Mode:
        console = self.console
        if not self.show_progress or console is None:
            return "off"
        if console.is_jupyter:
            self._notebook_display = _ipython_display()
            return "notebook" if self._notebook_display is not None else "plain"
        if console.is_terminal and not console.is_dumb_terminal:
            return "live"
        return "plain"

    def _make_display(self) -> LiveDisplay | NotebookDisplay | PlainDisplay:
        from fastllm.observe.displays import LiveDisplay, NotebookDisplay, PlainDisplay

        if self.mode == "live":
            assert self.console is not None
            return LiveDisplay(self.console)
        if self.mode == "notebook":
            assert self._notebook_display is not None
            return NotebookDisplay(self._notebook_display)
        return PlainDisplay()

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_interval)
            try:
                self.refresh()
            except Exception as exc:  # stop redrawing; the run goes on
                _display_failed(exc)
                return


def _new_console() -> Console:
    from rich.console import Console

    return Console()


def _display_failed(exc: Exception) -> None:
    logger.warning("progress display failed, the run goes on: %s: %s", type(exc).__name__, exc)


def _ipython_display() -> Callable[..., Any] | None:
    try:
        module = importlib.import_module("IPython.display")
    except ImportError:
        return None
    display: Callable[..., Any] | None = getattr(module, "display", None)
    return display
