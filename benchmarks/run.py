"""FastLLM side by side with its baselines, in one run: ``python -m benchmarks.run``.

The bundled mock server runs in its own process pinned to the first CPU; every
system runs as a separate process pinned to the second, systems interleaved
(A B C A B C ...) for ``--repeats`` rounds, the server reset before each run.
Prints a Markdown report and writes it to ``benchmarks/results/<out>.md``, with
the raw records in ``<out>.jsonl``. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

from benchmarks import envs, harness, report
from benchmarks.scenarios import SCENARIOS, SYSTEMS, Scenario

RESULTS = Path(__file__).resolve().parent / "results"
QUICK_FACTOR = 10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="e.g. S1,S4")
    parser.add_argument("--systems", default="", help="only these systems (default: all)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument(
        "--quick", action="store_true", help=f"n/{QUICK_FACTOR}, 1 repeat: a smoke check"
    )
    parser.add_argument("--out", default=None, help="results name (default: latest, quick)")
    return parser.parse_args(argv)


def select(args: argparse.Namespace) -> dict[str, Scenario]:
    """The scenarios to run, shrunk for ``--quick``, restricted to ``--systems``."""
    names = [name.strip().upper() for name in args.scenarios.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        raise SystemExit(
            f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}"
        )
    only = {name.strip() for name in args.systems.split(",") if name.strip()}
    if only - set(SYSTEMS):
        raise SystemExit(f"unknown system(s): {', '.join(sorted(only - set(SYSTEMS)))}")
    chosen = {}
    for name in names:
        scenario = SCENARIOS[name].shrunk(QUICK_FACTOR) if args.quick else SCENARIOS[name]
        if only:
            kept = tuple(s for s in scenario.systems if s in only)
            scenario = Scenario(**{**scenario.__dict__, "systems": kept})
        if scenario.systems:
            chosen[name] = scenario
    return chosen


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def header(
    argv: list[str],
    repeats: int,
    records: list[dict[str, Any]],
    load_start: str,
    cpu_pair: tuple[int | None, int | None],
) -> list[str]:
    """Date, command, machine and versions: the top of the report."""
    versions = dict.fromkeys(r["version"] for r in records if r.get("version"))
    cpu_server, cpu_client = cpu_pair
    placement = (
        f"mock server pinned to CPU {cpu_server}, each system process to CPU {cpu_client}"
        if cpu_client is not None
        else "not pinned (fewer than 2 CPUs)"
    )
    return [
        "# FastLLM benchmark results",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- command: `python -m benchmarks.run{' ' + shlex.join(argv) if argv else ''}`",
        f"- machine: nproc {os.cpu_count()}, {_cpu_model()}, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}",
        f"- load average (1/5/15 min): {load_start} at start, {_load()} at end",
        f"- placement: {placement}; systems interleaved, {repeats} round(s); "
        "figures are medians over the rounds",
        f"- versions: {', '.join(versions) or '—'}",
    ]


def _summary(record: dict[str, Any]) -> str:
    if "error" in record:
        return f"ERROR {record['error'][:200]}"
    return (
        f"{record['req_per_s']:>10,.0f} req/s  lost {record['n'] - record['ok']:>5}  "
        f"server {record['server_requests']:>6}  rss {record['peak_rss_mb']:.0f} MB"
    )


def run(scenarios: dict[str, Scenario], repeats: int, jsonl: Path) -> list[dict[str, Any]]:
    """Every round of every scenario; records are appended to ``jsonl`` as they come."""
    from fastllm.testing import MockServer, MockServerConfig

    needed = {SYSTEMS[name].env for s in scenarios.values() for name in s.systems}
    for env in needed:
        if env is not None:
            envs.ensure(env)
    cpu_server, cpu_client = harness.cpus()
    records: list[dict[str, Any]] = []
    config = MockServerConfig()
    with (
        MockServer(config, process=True, cpu=cpu_server) as server,
        jsonl.open("w") as sink,
    ):
        if cpu_server is not None:
            os.sched_setaffinity(0, {cpu_server})  # the runner only waits: keep CPU 1 free
        for scenario in scenarios.values():
            for round_no in range(1, repeats + 1):
                for name in scenario.systems:
                    record = harness.run_system(
                        server, SYSTEMS[name], scenario, cpu_client, round_no
                    )
                    records.append(record)
                    sink.write(json.dumps(record) + "\n")
                    sink.flush()
                    print(
                        f"{scenario.name} {round_no}/{repeats} {name:28s} {_summary(record)}",
                        file=sys.stderr,
                        flush=True,
                    )
    return records


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    scenarios = select(args)
    repeats = 1 if args.quick else max(1, args.repeats)
    out = args.out or ("quick" if args.quick else "latest")
    RESULTS.mkdir(parents=True, exist_ok=True)
    load_start = _load()
    cpu_pair = harness.cpus()  # before the runner pins itself to the server's CPU
    records = run(scenarios, repeats, RESULTS / f"{out}.jsonl")
    top = header(argv, repeats, records, load_start, cpu_pair)
    text = report.markdown(top, scenarios, records)
    if args.quick:
        text = text.replace("## Bars", "## Bars (quick run: indicative only)", 1)
    (RESULTS / f"{out}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
