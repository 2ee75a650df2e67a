"""Turning the runs' records into the Markdown report: one table per scenario, then the bars."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.scenarios import BASELINE, Scenario

Record = dict[str, Any]


@dataclass
class Row:
    """The figures of one system in one scenario, over its repeats."""

    system: str
    runs: list[Record]  # the successful runs
    errors: list[str]  # why the other runs produced no figures

    def values(self, key: str) -> list[float]:
        return [r[key] for r in self.runs if r.get(key) is not None]

    def median(self, key: str) -> float | None:
        values = self.values(key)
        return statistics.median(values) if values else None

    def most(self, key: str) -> float | None:
        values = self.values(key)
        return max(values) if values else None


def rows(scenario: Scenario, records: Sequence[Record]) -> list[Row]:
    """One row per system of ``scenario``, in the scenario's order."""
    result = []
    for name in scenario.systems:
        mine = [r for r in records if r["scenario"] == scenario.name and r["system"] == name]
        if not mine:
            continue
        good = [r for r in mine if "error" not in r]
        result.append(Row(name, good, [r["error"] for r in mine if "error" in r]))
    return result


def _num(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _lost(row: Row) -> str:
    """Lost results: the worst completed round, and how many rounds produced nothing."""
    worst = max([r["n"] - r["ok"] for r in row.runs] + [-1])
    text = "—" if worst < 0 else f"{worst:,}"
    if row.errors:
        text += f" + {len(row.errors)} run(s) failed"
    return text


def scenario_table(scenario: Scenario, records: Sequence[Record]) -> list[str]:
    """The Markdown table of one scenario."""
    table = rows(scenario, records)
    base = next((r.median("req_per_s") for r in table if r.system == BASELINE), None)
    lines = [
        f"### {scenario.name}: {scenario.title}",
        "",
        f"n = {scenario.n:,}, concurrency = {scenario.concurrency}"
        + (f", {scenario.distinct:,} distinct prompts" if scenario.distinct else "")
        + (f", retry budget {scenario.retries}" if scenario.retries is not None else "")
        + (", server " + ", ".join(f"{k}={v}" for k, v in scenario.server.items()))
        * bool(scenario.server),
        "",
        "| system | req/s median | req/s min–max | × aiohttp-raw | seconds median | lost "
        "| server requests | peak RSS MB | client CPU % | server CPU % |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in table:
        rate = row.median("req_per_s")
        rates = row.values("req_per_s")
        span = f"{min(rates):,.0f}–{max(rates):,.0f}" if rates else "—"
        ratio = f"{rate / base:.2f}×" if rate and base else "—"
        served = row.values("server_requests")
        served_text = _num(statistics.median(served)) if served else "—"
        if served and min(served) != max(served):
            served_text += f" ({min(served):,.0f}–{max(served):,.0f})"
        lines.append(
            f"| {row.system} | {_num(rate)} | {span} | {ratio} | {_num(row.median('seconds'), 3)} "
            f"| {_lost(row)} | {served_text} | {_num(row.most('peak_rss_mb'), 1)} "
            f"| {_num(row.median('client_cpu_pct'))} | {_num(row.median('server_cpu_pct'))} |"
        )
    for row in table:
        for error in dict.fromkeys(row.errors):
            lines.append(f"\n- {row.system} failed a run: `{error[:300]}`")
        notes = {e for r in row.runs for e in r.get("errors", [])}
        for note in sorted(notes)[:3]:
            lines.append(f"\n- {row.system} reported: `{note[:200]}`")
    lines.append("")
    return lines


@dataclass(frozen=True)
class Bar:
    """A target for one scenario: a description and a check over its rows."""

    scenario: str
    text: str
    check: Callable[[dict[str, Row]], tuple[str, bool | None]]


def _rate_ratio(rows_: dict[str, Row]) -> tuple[str, bool | None]:
    mine, base = rows_.get("fastllm"), rows_.get(BASELINE)
    rate = mine.median("req_per_s") if mine else None
    base_rate = base.median("req_per_s") if base else None
    if not rate or not base_rate:
        return "no figure", None
    ratio = rate / base_rate
    return f"{rate:,.0f} vs {base_rate:,.0f} req/s = {ratio:.2f}×", ratio >= 0.8


def _at_least(system: str, key: str, bar: float, unit: str) -> Callable[..., Any]:
    def check(rows_: dict[str, Row]) -> tuple[str, bool | None]:
        row = rows_.get(system)
        value = row.median(key) if row and not row.errors else None
        return ("no figure", None) if value is None else (f"{value:,.0f} {unit}", value >= bar)

    return check


def _rss(rows_: dict[str, Row]) -> tuple[str, bool | None]:
    row = rows_.get("fastllm")
    peak = row.most("peak_rss_mb") if row else None
    return ("no figure", None) if peak is None else (f"{peak:,.1f} MB (max)", peak < 200)


def _exactly_distinct(distinct: int) -> Callable[..., Any]:
    def check(rows_: dict[str, Row]) -> tuple[str, bool | None]:
        row = rows_.get("fastllm")
        served = row.values("server_requests") if row and not row.errors else []
        if not served:
            return "no figure", None
        text = ", ".join(f"{v:,.0f}" for v in served) + " requests"
        return text, all(v == distinct for v in served)

    return check


def _nothing_lost(rows_: dict[str, Row]) -> tuple[str, bool | None]:
    row = rows_.get("fastllm")
    if not row or not row.runs or row.errors:
        return "no figure", None
    lost = [r["n"] - r["ok"] for r in row.runs]
    return "lost " + ", ".join(str(v) for v in lost), max(lost) == 0


def bars(scenarios: dict[str, Scenario]) -> list[Bar]:
    """The targets, for the scenarios that were run."""
    s5 = scenarios.get("S5")
    distinct = s5.distinct if s5 else 500
    found = [
        Bar("S1", "fastllm ≥ 0.8× aiohttp-raw (medians)", _rate_ratio),
        Bar("S2", "fastllm ≥ 2,250 req/s", _at_least("fastllm", "req_per_s", 2250, "req/s")),
        Bar(
            "S3",
            "fastllm-memcache ≥ 150,000 req/s",
            _at_least("fastllm-memcache", "req_per_s", 150_000, "req/s"),
        ),
        Bar(
            "S3",
            "fastllm-diskcache ≥ 50,000 req/s",
            _at_least("fastllm-diskcache", "req_per_s", 50_000, "req/s"),
        ),
        Bar("S4", "fastllm peak RSS < 200 MB", _rss),
        Bar("S5", f"fastllm sends exactly {distinct:,} requests", _exactly_distinct(distinct)),
        Bar("S6", "fastllm loses no result (no formal bar)", _nothing_lost),
    ]
    return [bar for bar in found if bar.scenario in scenarios]


def bars_table(scenarios: dict[str, Scenario], records: Sequence[Record]) -> list[str]:
    """The Markdown table of the bars and whether they were met."""
    lines = ["| scenario | bar | figure | met |", "|---|---|---|---|"]
    for bar in bars(scenarios):
        by_system = {row.system: row for row in rows(scenarios[bar.scenario], records)}
        figure, met = bar.check(by_system)
        verdict = {True: "yes", False: "**no**", None: "—"}[met]
        lines.append(f"| {bar.scenario} | {bar.text} | {figure} | {verdict} |")
    return [*lines, ""]


def markdown(header: list[str], scenarios: dict[str, Scenario], records: Sequence[Record]) -> str:
    """The whole report."""
    lines = [*header, "", "## Bars", "", *bars_table(scenarios, records), "## Results", ""]
    for scenario in scenarios.values():
        lines += scenario_table(scenario, records)
    return "\n".join(lines).rstrip() + "\n"
