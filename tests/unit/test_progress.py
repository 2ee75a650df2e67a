"""ProgressTracker: what each display shows, and that it shows nothing when told so."""

from __future__ import annotations

import asyncio
import io
import logging
import sys
from typing import Any

import pytest
from rich.console import Console

from fastllm.errors import InternalServerError
from fastllm.limits import LimiterSnapshot
from fastllm.limits.rate_limiter import LimitSnapshot
from fastllm.observe import ProgressTracker, StatsCollector
from fastllm.observe import progress as progress_module
from fastllm.observe.displays import describe, progress_line
from fastllm.observe.eta import EtaEstimator, format_clock

NEVER = 3600.0  # a refresh interval the tests never reach: they redraw by hand


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def limiter() -> LimiterSnapshot:
    def limit(kind: str, capacity: int, available: float) -> LimitSnapshot:
        return LimitSnapshot(
            kind, kind, capacity, 60.0, available, 1 - available / capacity, None, False
        )

    return LimiterSnapshot((limit("tokens", 1000, 250), limit("requests", 50, 45)), 0.0, 0, None)


def busy_run(clock: Clock, *, total: int | None = 200, limits: bool = True) -> StatsCollector:
    """A run at t=10 s: 150 of 200 done (120 ok, 30 failed), known numbers everywhere."""
    stats = StatsCollector({"m": (100.0, 200.0)}, clock=clock)
    stats.reset(total)
    if limits:
        stats.limiter_snapshot = limiter
    return stats


def feed(stats: StatsCollector) -> None:
    for _ in range(50):
        stats.sending()
        stats.sent_done()
        stats.answered("m", {"prompt_tokens": 40, "completion_tokens": 10}, 0.2, None, False)
    stats.completed(80, cached=False, shared=30, tokens=50)
    stats.completed(40, cached=True, shared=0, tokens=50)
    for _ in range(7):
        stats.retrying()
    stats.failed_orders(InternalServerError("boom", status_code=500), 30, 5)


def terminal() -> Console:
    return Console(record=True, width=200, force_terminal=True, color_system=None)


# -- the live bar -------------------------------------------------------------------------


async def test_live_bar_shows_every_field() -> None:
    clock = Clock()
    stats = busy_run(clock)
    console = terminal()
    tracker = ProgressTracker(stats, console=console, refresh_interval=NEVER)
    assert tracker.mode == "live"
    tracker.start()
    clock.now = 10.0
    feed(stats)
    tracker.refresh()
    stats.finish()
    await tracker.stop()
    text = console.export_text()
    final = text[text.rindex("requests ━") :]
    assert "150/200" in final
    assert "0:00:10" in final  # elapsed
    assert "15.0 req/s" in final
    assert "⬆ 200 tok/s" in final  # 50 answers x 40 prompt tokens / 10 s
    assert "⬇ 50 tok/s" in final
    assert "cache 40" in final
    assert "dedup 35" in final
    assert "retries 7" in final
    assert "errors 30" in final
    assert "tok limit 75%" in final
    assert "req limit 10%" in final
    assert "$0.3000" in final  # 50 x (40 x 100 + 10 x 200) / 1e6
    assert "ETA 0:00:03" in final  # 50 left at 15 per second
    # the summary is printed once, under the final bar
    assert text.count("150/200 done in 10.0 s") == 1
    assert "120 ok, 30 failed; 40 from cache, 35 deduplicated" in final


async def test_the_bar_leaves_out_limits_and_cost_when_not_configured() -> None:
    clock = Clock()
    stats = StatsCollector(clock=clock)
    stats.reset(10)
    console = terminal()
    console.print(ProgressTracker(stats, console=console).renderable())
    text = console.export_text()
    assert "0/10" in text
    assert "limit" not in text
    assert "$" not in text
    assert "ETA -:--:--" in text


async def test_unknown_total_shows_a_count_and_no_eta() -> None:
    clock = Clock()
    stats = busy_run(clock, total=None, limits=False)
    clock.now = 10.0
    feed(stats)
    console = terminal()
    console.print(ProgressTracker(stats, console=console).renderable())
    text = console.export_text()
    assert "150 " in text
    assert "/" not in text.split("\n")[0].replace("req/s", "").replace("tok/s", "")
    assert "ETA" not in text


async def test_async_context_manager_and_periodic_redraws() -> None:
    clock = Clock()
    stats = busy_run(clock, limits=False)
    console = terminal()
    tracker = ProgressTracker(stats, console=console, refresh_interval=0.001)
    async with tracker:
        clock.now = 10.0
        feed(stats)
        while "150/200" not in console.export_text(clear=False):
            await _tick()
    assert "150/200" in console.export_text()


async def _tick() -> None:
    await asyncio.sleep(0.001)


async def test_a_broken_console_never_fails_the_run(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("stdout is gone")

    stats = busy_run(Clock())
    console = Console(file=Broken(), force_terminal=True)
    tracker = ProgressTracker(stats, console=console, refresh_interval=NEVER)
    tracker.start()  # the first draw fails: no display from then on
    tracker.refresh()
    await tracker.stop()
    assert "progress display failed, the run goes on: OSError: stdout is gone" in caplog.text

    stdout = sys.stdout
    tracker = ProgressTracker(stats, console=terminal(), refresh_interval=NEVER)
    tracker.start()
    assert sys.stdout is not stdout  # the live display shows prints above the bar
    assert tracker.console is not None
    tracker.console.file = Broken()  # breaks after the first draw
    await tracker.stop()
    assert caplog.text.count("progress display failed") == 2
    assert sys.stdout is stdout  # given back all the same


# -- nothing at all -----------------------------------------------------------------------


async def test_show_progress_false_prints_nothing(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = Clock()
    stats = busy_run(clock)
    console = terminal()
    for tracker in (
        ProgressTracker(stats, show_progress=False),
        ProgressTracker(stats, show_progress=False, console=console),
    ):
        assert tracker.mode == "off"
        tracker.start()
        feed(stats)
        tracker.refresh()
        await tracker.stop()
    assert console.export_text() == ""
    assert capsys.readouterr() == ("", "")
    assert not [r for r in caplog.records if r.name.startswith("fastllm.progress")]


# -- logs and pipes -----------------------------------------------------------------------


async def test_not_a_terminal_means_plain_lines_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    clock = Clock()
    stats = busy_run(clock)
    console = Console(file=io.StringIO())  # a pipe or a CI log
    tracker = ProgressTracker(stats, console=console)
    assert tracker.mode == "plain"
    assert tracker.refresh_interval == 10.0
    tracker.start()
    clock.now = 10.0
    feed(stats)
    tracker.refresh()  # what the 10 s timer does
    stats.finish()
    await tracker.stop()
    out, err = capsys.readouterr()
    assert out == ""
    assert console.file.getvalue() == ""  # type: ignore[attr-defined]
    lines = err.splitlines()
    assert lines[0].startswith("fastllm: 150/200 (75%) requests · 0:00:10 elapsed · 15.0 req/s")
    assert lines[0] == lines[1]  # the periodic line, then the final one
    assert "\x1b" not in err  # no terminal control codes in logs
    assert "150/200 done in 10.0 s" in err  # the summary follows the last line
    assert "ETA 0:00:03" in lines[1]


async def test_plain_lines_go_to_the_log_when_logging_shows_them(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fastllm.progress")
    clock = Clock()
    stats = busy_run(clock)
    tracker = ProgressTracker(stats, console=Console(file=io.StringIO()))
    tracker.start()
    clock.now = 10.0
    feed(stats)
    await tracker.stop()
    assert capsys.readouterr() == ("", "")
    records = [r for r in caplog.records if r.name == "fastllm.progress"]
    assert len(records) == 1  # the final line; the engine logs the summary itself
    assert records[0].levelno == logging.INFO
    assert records[0].getMessage().startswith("fastllm: 150/200 (75%) requests")


def test_progress_line_and_describe() -> None:
    clock = Clock()
    stats = busy_run(clock)
    clock.now = 10.0
    feed(stats)
    snap = stats.snapshot()
    assert describe(snap, 3.3).endswith("$0.3000 · ETA 0:00:03")
    assert progress_line(snap).startswith("fastllm: 150/200 (75%) requests · 0:00:10 elapsed")


# -- notebooks ----------------------------------------------------------------------------


class FakeHandle:
    def __init__(self) -> None:
        self.updates: list[Any] = []

    def update(self, obj: Any) -> None:
        self.updates.append(obj)


class FakeDisplay:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, dict[str, Any]]] = []
        self.handle = FakeHandle()

    def __call__(self, obj: Any, **kwargs: Any) -> FakeHandle:
        self.calls.append((obj, kwargs))
        return self.handle


async def test_notebook_updates_one_output_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    display = FakeDisplay()
    monkeypatch.setattr(progress_module, "_ipython_display", lambda: display)
    clock = Clock()
    stats = busy_run(clock)
    tracker = ProgressTracker(stats, console=Console(force_jupyter=True), refresh_interval=NEVER)
    assert tracker.mode == "notebook"
    assert ProgressTracker(stats, console=Console(force_jupyter=True)).refresh_interval == 1.0
    tracker.start()
    clock.now = 10.0
    feed(stats)
    tracker.refresh()
    await tracker.stop()
    assert len(display.calls) == 1  # one output ...
    assert display.calls[0][1] == {"display_id": True}
    assert len(display.handle.updates) == 2  # ... replaced in place
    final = display.handle.updates[-1]._repr_mimebundle_()
    assert "150/200" in final["text/plain"]
    assert "150/200 done in 10.0 s" in final["text/plain"]  # the summary stays with the bar
    assert final["text/html"].startswith("<pre")
    assert "cache 40" in final["text/html"]


def test_a_notebook_without_ipython_display_falls_back_to_plain_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(progress_module, "_ipython_display", lambda: None)
    tracker = ProgressTracker(StatsCollector(), console=Console(force_jupyter=True))
    assert tracker.mode == "plain"


def test_the_terminal_redraws_five_times_a_second() -> None:
    assert ProgressTracker(StatsCollector(), console=terminal()).refresh_interval == 0.2


# -- ETA ----------------------------------------------------------------------------------


def test_eta_uses_the_recent_pace() -> None:
    eta = EtaEstimator(window=30.0)
    eta.update(0.0, 0)
    eta.update(1.0, 500)  # a burst of cache hits
    for second in range(2, 62):
        eta.update(float(second), 500 + (second - 1) * 2)  # then 2 per second
    assert eta.rate() == pytest.approx(2.0)
    assert eta.eta(100) == pytest.approx(50.0)
    assert eta.eta(0) == 0.0
    assert eta.eta(None) is None


def test_eta_is_unknown_before_progress_and_during_a_stall() -> None:
    eta = EtaEstimator(window=5.0)
    eta.update(0.0, 0)
    assert eta.eta(10) is None
    eta.update(1.0, 10)
    assert eta.eta(10) == pytest.approx(1.0)
    for second in range(2, 20):
        eta.update(float(second), 10)
    assert eta.eta(10) is None
    assert format_clock(None) == "-:--:--"
    assert format_clock(3725) == "1:02:05"
