"""Where the progress goes: a live terminal bar, a notebook output, or plain lines.

* :class:`LiveDisplay` — a rich ``Live`` bar redrawn in place on a terminal; the
  final state stays on screen, the summary is printed below it.
* :class:`NotebookDisplay` — one notebook output, replaced in place through an
  IPython display handle (no widgets needed), so a cell is never flooded; the
  last update holds the final bar and the summary.
* :class:`PlainDisplay` — for logs and pipes: a plain status line now and then.
  It is a log record (INFO, logger ``fastllm.progress``) when logging is set up
  to show it, else a line on stderr (like tqdm), so it is never lost and never
  printed twice; stdout, which may carry the program's output, is left alone.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from fastllm.observe.eta import format_clock
from fastllm.observe.stats import TokenStats
from fastllm.observe.summary import format_usd

__all__ = [
    "LiveDisplay",
    "NotebookDisplay",
    "PlainDisplay",
    "describe",
    "progress_line",
    "render_progress",
]

progress_logger = logging.getLogger("fastllm.progress")

_NOTEBOOK_HTML = (
    '<pre style="white-space:pre;overflow-x:auto;line-height:normal;'
    "font-family:Menlo,'DejaVu Sans Mono',consolas,'Courier New',monospace\">{code}</pre>"
)


def describe(stats: TokenStats, eta: float | None = None) -> str:
    """The status shown under the bar: rates, reuse, trouble, limits, cost, ETA."""
    parts = [
        f"{stats.requests_per_second:,.1f} req/s",
        f"⬆ {stats.prompt_tokens_per_second:,.0f} tok/s",
        f"⬇ {stats.completion_tokens_per_second:,.0f} tok/s",
        f"cache {stats.cache_hits:,}",
        f"dedup {stats.deduplicated:,}",
        f"retries {stats.retries:,}",
        f"errors {stats.failed:,}",
    ]
    if stats.token_limit:
        parts.append(f"tok limit {stats.token_saturation:.0%}")
    if stats.request_limit:
        parts.append(f"req limit {stats.request_saturation:.0%}")
    if stats.cost_usd is not None:
        parts.append(format_usd(stats.cost_usd))
    if stats.requests_total is not None:
        parts.append(f"ETA {format_clock(eta)}")
    return " · ".join(parts)


def progress_line(stats: TokenStats, eta: float | None = None) -> str:
    """One plain line: done/total, elapsed, then :func:`describe`."""
    done = f"{stats.requests_completed:,}"
    if stats.requests_total is not None:
        share = stats.requests_completed / stats.requests_total if stats.requests_total else 1.0
        done += f"/{stats.requests_total:,} ({share:.0%})"
    return (
        f"fastllm: {done} requests · {format_clock(stats.elapsed_time)} elapsed · "
        f"{describe(stats, eta)}"
    )


def render_progress(stats: TokenStats, eta: float | None = None) -> RenderableType:
    """The bar line (description, bar, done/total, elapsed) above the status line."""
    total = stats.requests_total
    done = stats.requests_completed
    bar = ProgressBar(
        total=float(total) if total is not None else None,
        completed=float(done),
        width=40,
        pulse=total is None,
        animation_time=stats.elapsed_time,
    )
    counted = f"{done:,}/{total:,}" if total is not None else f"{done:,}"
    grid = Table.grid(padding=(0, 1))
    grid.add_row(
        Text("requests", style="bold"),
        bar,
        Text(counted, style="progress.download"),
        Text(format_clock(stats.elapsed_time), style="progress.elapsed"),
    )
    return Group(grid, Text(describe(stats, eta), style="progress.description"))


class LiveDisplay:
    """A bar redrawn in place on a terminal console."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._live: Live | None = None

    def show(self, view: RenderableType) -> None:
        """Draw ``view`` (starting the live display on the first call)."""
        if self._live is None:
            self._live = Live(view, console=self.console, auto_refresh=False, transient=False)
            self._live.start(refresh=True)
        else:
            self._live.update(view, refresh=True)

    def close(self, view: RenderableType, summary: str) -> None:
        """Leave ``view`` on screen and print ``summary`` below it."""
        try:
            self.show(view)
        finally:  # give stdout/stderr back even when the console broke
            if self._live is not None:
                self._live.stop()
                self._live = None
        self.console.print(summary, markup=False, highlight=False)


class NotebookDisplay:
    """One notebook output updated in place (``display`` is IPython's)."""

    def __init__(self, display: Callable[..., Any], width: int = 120) -> None:
        self._display = display
        self._width = width
        self._handle: Any = None

    def show(self, view: RenderableType) -> None:
        """Replace the output with ``view``."""
        bundle = _MimeBundle(*self._export(view))
        if self._handle is None:
            self._handle = self._display(bundle, display_id=True)
        else:
            self._handle.update(bundle)

    def close(self, view: RenderableType, summary: str) -> None:
        """The final bar with the summary below it, in the same output."""
        self.show(Group(view, Text(""), Text(summary)))

    def _export(self, view: RenderableType) -> tuple[str, str]:
        console = Console(
            record=True,
            file=io.StringIO(),
            width=self._width,
            color_system="truecolor",
            force_terminal=True,
            force_jupyter=False,
        )
        console.print(view)
        text = console.export_text(clear=False)
        html = console.export_html(inline_styles=True, code_format=_NOTEBOOK_HTML)
        return text, html


class PlainDisplay:
    """Plain status lines for logs and pipes (see the module docstring for where)."""

    def __init__(self, write: Callable[[str], None] | None = None) -> None:
        self._write = write or _stderr_line
        self.via_logging = write is None and _logging_shows_progress()

    def show(self, line: str) -> None:
        """Emit one status line."""
        if self.via_logging:
            progress_logger.info("%s", line)
        else:
            self._write(line)

    def close(self, line: str, summary: str) -> None:
        """The last status line; the summary too unless it goes to the log anyway
        (the engine logs it at INFO when the run finishes)."""
        self.show(line)
        if not self.via_logging:
            self._write(summary)


class _MimeBundle:
    """What a notebook displays: rich's HTML, with the text for plain frontends."""

    def __init__(self, text: str, html: str) -> None:
        self.text = text
        self.html = html

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": self.text, "text/html": self.html}


def _logging_shows_progress() -> bool:
    return progress_logger.isEnabledFor(logging.INFO) and progress_logger.hasHandlers()


def _stderr_line(line: str) -> None:
    stream = sys.stderr
    stream.write(line + "\n")
    stream.flush()
