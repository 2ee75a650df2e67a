"""Disk cache backends compared: ``fastllm.DiskCache`` (SQLite WAL) vs ``diskcache``.

``python -m benchmarks.cache_backends`` (from the repository root). Each store runs in
its own process, ``taskset -c 1 <venv python> benchmarks/systems/cache_store.py ...``:
``fastllm.DiskCache`` with the project's interpreter, ``diskcache.Cache(dir,
disk=diskcache.JSONDisk)`` in the ``cache-diskcache`` venv (made on first use, see
``envs.py``). Per round, in a fresh temporary directory each, the stores take turns
(the first one alternates between rounds):

1. write ``--n`` entries in groups of ``--group``, one transaction per group;
2. read them all back (``get_many_raw`` in chunks of ``--chunk`` keys / ``get`` per
   key), plus ``get_many`` (decoded dicts) for ``fastllm.DiskCache``;
3. ``--writers`` processes write ``--per-writer`` distinct entries each into one
   directory at once; the wall time runs from the first writer's start to the last
   one's end, then a fresh process checks that every entry reads back equal;
4. the bytes of the directory after (1), the store closed.

Figures are medians over ``--rounds`` rounds, with the range. Prints a Markdown
report and writes it to ``benchmarks/results/<out>.md``. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import envs

RESULTS = Path(__file__).resolve().parent / "results"
SCRIPT = Path(__file__).resolve().parent / "systems" / "cache_store.py"
TIMEOUT = 300.0
MB = 1e6


@dataclass(frozen=True)
class Store:
    """A store under test: its name in ``cache_store.py``, its label, its interpreter."""

    name: str
    label: str
    python: str


@dataclass
class Rounds:
    """What the rounds measured for one store."""

    write_s: list[float] = field(default_factory=list)
    read_s: list[float] = field(default_factory=list)
    read_decoded_s: list[float] = field(default_factory=list)
    read_missing: list[int] = field(default_factory=list)
    disk_bytes: list[int] = field(default_factory=list)
    value_bytes: int = 0
    value_range: tuple[int, int] = (0, 0)
    concurrent_s: list[float] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    writer_errors: list[str] = field(default_factory=list)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The runner's command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cache_backends", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds (median kept)")
    parser.add_argument("--n", type=int, default=5_000, help="entries written then read")
    parser.add_argument("--group", type=int, default=64, help="entries per write transaction")
    parser.add_argument("--chunk", type=int, default=1_024, help="keys per bulk read")
    parser.add_argument("--writers", type=int, default=4, help="concurrent writer processes")
    parser.add_argument("--per-writer", type=int, default=2_000, help="entries per writer")
    parser.add_argument("--out", default="cache_backends", help="results/<out>.md")
    return parser.parse_args(argv)


def pinning() -> list[str]:
    """``taskset -c 1`` when taskset exists and CPU 1 is ours, else nothing."""
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    if shutil.which("taskset") is None or 1 not in allowed:
        return []
    return ["taskset", "-c", "1"]


def store_command(store: Store, phase: str, directory: Path, *options: str) -> list[str]:
    """The command line of one measuring process."""
    return [
        *pinning(),
        store.python,
        str(SCRIPT),
        phase,
        "--store",
        store.name,
        "--dir",
        str(directory),
        *options,
    ]


def run_json(command: list[str]) -> dict[str, Any]:
    """Run ``command`` to completion and parse the JSON line it prints last."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(command)} exited {done.returncode}:\n{done.stderr.strip()[-2000:]}"
        )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def single(store: Store, args: argparse.Namespace, into: Rounds) -> None:
    """Phases (1), (2) and (4) in a fresh directory."""
    with tempfile.TemporaryDirectory(prefix=f"cache-bench-{store.name}-") as tmp:
        options = ["--n", str(args.n), "--group", str(args.group), "--chunk", str(args.chunk)]
        result = run_json(store_command(store, "single", Path(tmp) / "cache", *options))
    into.write_s.append(result["write_s"])
    into.read_s.append(result["read_s"])
    if "read_decoded_s" in result:
        into.read_decoded_s.append(result["read_decoded_s"])
    into.read_missing.append(args.n - result["read_found"])
    into.disk_bytes.append(result["disk_bytes"])
    into.value_bytes = result["value_bytes"]
    into.value_range = (result["value_range"][0], result["value_range"][1])


def concurrent(store: Store, args: argparse.Namespace, into: Rounds) -> None:
    """Phase (3): the writers start together once all have opened the store."""
    with tempfile.TemporaryDirectory(prefix=f"cache-bench-{store.name}-") as tmp:
        directory = Path(tmp) / "cache"
        options = ["--n", str(args.per_writer), "--group", str(args.group)]
        writers = [
            subprocess.Popen(
                store_command(store, "write", directory, *options, "--part", str(part)),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for part in range(args.writers)
        ]
        for writer in writers:  # each prints "ready" once its store is open
            assert writer.stdout is not None
            writer.stdout.readline()
        for writer in writers:
            assert writer.stdin is not None
            writer.stdin.write("go\n")
            writer.stdin.flush()
        spans: list[tuple[float, float]] = []
        for part, writer in enumerate(writers):
            out, err = writer.communicate(timeout=TIMEOUT)
            if writer.returncode != 0:
                into.writer_errors.append(f"writer {part} exited {writer.returncode}: {err[-300:]}")
                continue
            result = json.loads(out.strip().splitlines()[-1])
            spans.append((result["start"], result["end"]))
            if result["errors"]:
                into.writer_errors.append(
                    f"writer {part}: {result['errors']} failed groups, {result['first_error']}"
                )
        options = ["--n", str(args.per_writer), "--parts", str(args.writers)]
        options += ["--chunk", str(args.chunk)]
        check = run_json(store_command(store, "verify", directory, *options))
    into.concurrent_s.append(max(end for _, end in spans) - min(start for start, _ in spans))
    into.lost.append(check["expected"] - check["matched"])


def median_range(values: Sequence[float], fmt: Callable[[float], str]) -> str:
    """``median (min–max)`` of ``values``, each formatted by ``fmt``."""
    if not values:
        return "—"
    middle = fmt(statistics.median(values))
    if len(values) == 1:
        return middle
    return f"{middle} ({fmt(min(values))}–{fmt(max(values))})"


def rates(count: int, seconds: Sequence[float]) -> list[float]:
    """Entries per second of each round."""
    return [count / s for s in seconds]


def winner(
    ours: Sequence[float],
    theirs: Sequence[float],
    labels: tuple[str, str],
    *,
    suffix: str = "",
    smaller_wins: bool = False,
) -> str:
    """Which median wins (the larger, or the smaller for sizes), and by how much."""
    if not ours or not theirs:
        return "—"
    a, b = statistics.median(ours), statistics.median(theirs)
    if a == b:
        return "equal"
    ours_wins = (a < b) if smaller_wins else (a > b)
    ratio = max(a, b) / min(a, b)
    return f"{labels[0] if ours_wins else labels[1]} {ratio:.2f}×{suffix}"


def _per_s(value: float) -> str:
    return f"{value:,.0f}"


def _secs(value: float) -> str:
    return f"{value:.3f}"


def _mbs(value: float) -> str:
    return f"{value / MB:.2f}"


def table(args: argparse.Namespace, stores: tuple[Store, Store], data: dict[str, Rounds]) -> str:
    """The Markdown table of the run."""
    ours, theirs = (data[s.name] for s in stores)
    short = ("DiskCache", "diskcache")
    total = args.writers * args.per_writer
    rows = [
        (
            f"(1) write {args.n:,} in groups of {args.group}, entries/s",
            median_range(rates(args.n, ours.write_s), _per_s),
            median_range(rates(args.n, theirs.write_s), _per_s),
            winner(rates(args.n, ours.write_s), rates(args.n, theirs.write_s), short),
        ),
        (
            f"(2) read {args.n:,} back, entries/s: DiskCache `get_many_raw` "
            f"({args.chunk:,}-key chunks, bytes), diskcache `get` per key (dicts)",
            median_range(rates(args.n, ours.read_s), _per_s),
            median_range(rates(args.n, theirs.read_s), _per_s),
            winner(rates(args.n, ours.read_s), rates(args.n, theirs.read_s), short),
        ),
        (
            f"(2') read {args.n:,} back decoded, entries/s: DiskCache `get_many` (dicts) "
            "vs the same diskcache `get`",
            median_range(rates(args.n, ours.read_decoded_s), _per_s),
            median_range(rates(args.n, theirs.read_s), _per_s),
            winner(rates(args.n, ours.read_decoded_s), rates(args.n, theirs.read_s), short),
        ),
        (
            f"(3) {args.writers} processes × {args.per_writer:,} entries at once, wall s",
            median_range(ours.concurrent_s, _secs),
            median_range(theirs.concurrent_s, _secs),
            winner(rates(total, ours.concurrent_s), rates(total, theirs.concurrent_s), short),
        ),
        (
            f"(3) the same, entries/s ({total:,} / wall)",
            median_range(rates(total, ours.concurrent_s), _per_s),
            median_range(rates(total, theirs.concurrent_s), _per_s),
            "",
        ),
        (
            f"(3) lost of {total:,} (worst round); failed writer groups",
            f"{max(ours.lost, default=0)}; {len(ours.writer_errors)}",
            f"{max(theirs.lost, default=0)}; {len(theirs.writer_errors)}",
            "",
        ),
        (
            f"(4) on disk after (1), MB (store closed; bodies: {ours.value_bytes / MB:.2f} MB)",
            median_range(ours.disk_bytes, _mbs),
            median_range(theirs.disk_bytes, _mbs),
            winner(ours.disk_bytes, theirs.disk_bytes, short, suffix=" smaller", smaller_wins=True),
        ),
    ]
    lines = [
        f"| measurement | {stores[0].label} | {stores[1].label} | better |",
        "|---|--:|--:|--:|",
    ]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join(lines)


def version_line(stores: tuple[Store, Store]) -> str:
    """Python, SQLite and package versions, as each store's interpreter reports them."""
    parts: dict[str, str] = {}
    for store in stores:
        with tempfile.TemporaryDirectory() as tmp:
            parts.update(run_json(store_command(store, "versions", Path(tmp))))
    return ", ".join(f"{name} {version}" for name, version in parts.items())


def load_average() -> str:
    """The 1/5/15-minute load averages."""
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def report(
    args: argparse.Namespace,
    stores: tuple[Store, Store],
    data: dict[str, Rounds],
    load_at_start: str,
) -> str:
    """The whole Markdown report: context, table, notes."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    argv = shlex.join(sys.argv[1:])
    command = "python -m benchmarks.cache_backends" + (f" {argv}" if argv else "")
    first = data[stores[0].name]
    pinned = " ".join(pinning()) or "not pinned (no taskset or no CPU 1)"
    notes = []
    for store in stores:
        missing = data[store.name].read_missing
        if any(missing):
            notes.append(f"- {store.label}: phase (2) missed up to {max(missing)} entries")
        notes += [f"- {store.label}: {error}" for error in data[store.name].writer_errors]
    lines = [
        "# Disk cache backends: SQLite WAL (`fastllm.DiskCache`) vs `diskcache`",
        "",
        f"- date: {now}",
        f"- command: `{command}`",
        f"- machine: nproc {os.cpu_count()}, {platform.machine()}, Linux {platform.release()}",
        f"- versions: {version_line(stores)}",
        f"- load average (1/5/15 min): {load_at_start} at start, {load_average()} at end",
        f"- placement: every measuring process `{pinned}` (the {args.writers} writers of (3) "
        f"share that CPU); {args.rounds} round(s), stores alternating first; a fresh temp "
        "directory per phase; figures are median (min–max) over the rounds",
        "- workload: keys `openai:<32 hex>`, values compact OpenAI chat-completion JSON "
        f"bodies, {first.value_bytes / args.n:.0f} bytes on average "
        f"({first.value_range[0]}–{first.value_range[1]}); DiskCache is given the bytes, "
        "diskcache the parsed dicts (JSONDisk serialises objects, zlib level 1); only "
        "the store calls are timed",
        "",
        table(args, stores, data),
    ]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Run the rounds, print the report, write it to ``results/<out>.md``."""
    args = parse_args(argv)
    stores = (
        Store("fastllm", "`fastllm.DiskCache` (SQLite WAL)", sys.executable),
        Store(
            "diskcache",
            "`diskcache.Cache(disk=JSONDisk)`",
            str(envs.ensure(envs.CACHE_DISKCACHE)),
        ),
    )
    data = {store.name: Rounds() for store in stores}
    load_at_start = load_average()
    for round_ in range(args.rounds):
        order = stores if round_ % 2 == 0 else stores[::-1]
        print(f"round {round_ + 1}/{args.rounds}", file=sys.stderr, flush=True)
        for store in order:
            single(store, args, data[store.name])
        for store in order:
            concurrent(store, args, data[store.name])
    text = report(args, stores, data, load_at_start)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.md").write_text(text)


if __name__ == "__main__":
    main()
