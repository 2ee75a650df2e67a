"""What every system script shares: arguments, prompts, timing, checking, the JSON line.

Standard library only (uvloop is used when the venv has it): the scripts run in
their own virtualenvs, each with a different set of packages.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
import urllib.request
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")
MODEL = "m"
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass
class Args:
    """The command line of a system script."""

    system: str
    scenario: str
    base_url: str
    n: int
    concurrency: int
    distinct: int
    retries: int | None
    cache: str
    transport: str
    rerun: bool
    reruns: int
    cpu: int | None
    server_pid: int | None


def parse_args(
    description: str, caches: Sequence[str] = ("none",), transports: Sequence[str] = ("default",)
) -> Args:
    """Parse the arguments the runner passes to every system script."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--system", required=True, help="name reported in the JSON line")
    parser.add_argument("--scenario", default="adhoc")
    parser.add_argument("--base-url", required=True, help="OpenAI base URL (…/v1)")
    parser.add_argument("-n", type=int, required=True, help="requests")
    parser.add_argument("-c", "--concurrency", type=int, required=True)
    parser.add_argument("--distinct", type=int, default=0, help="distinct prompts (0: n)")
    parser.add_argument("--retries", type=int, default=None, help="retry budget (None: default)")
    parser.add_argument("--cache", choices=list(caches), default="none")
    parser.add_argument("--transport", choices=list(transports), default=transports[0])
    parser.add_argument("--rerun", action="store_true", help="warm-up run, time the re-run")
    parser.add_argument("--reruns", type=int, default=5, help="timed re-runs (median kept)")
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to a CPU")
    parser.add_argument("--server-pid", type=int, default=None, help="to measure server CPU")
    ns = parser.parse_args()
    args = Args(
        system=ns.system,
        scenario=ns.scenario,
        base_url=ns.base_url.rstrip("/"),
        n=ns.n,
        concurrency=ns.concurrency,
        distinct=ns.distinct or ns.n,
        retries=ns.retries,
        cache=ns.cache,
        transport=ns.transport,
        rerun=ns.rerun,
        reruns=max(1, ns.reruns),
        cpu=ns.cpu,
        server_pid=ns.server_pid,
    )
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    return args


def prompts(args: Args) -> list[str]:
    """The user message of request ``i``; the mock server's answer must equal it."""
    return [f"prompt {i % args.distinct}" for i in range(args.n)]


def run_async(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on a fresh uvloop loop (asyncio's when uvloop is missing)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(factory())
    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(factory())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _server_root(base_url: str) -> str:
    return base_url[: -len("/v1")] if base_url.endswith("/v1") else base_url


def server_requests(base_url: str) -> int:
    """API requests the mock server has received since its last reset."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(_server_root(base_url) + "/stats", timeout=30) as response:
        return int(json.loads(response.read())["requests"])


def _process_cpu(pid: int | None) -> float | None:
    """CPU seconds (user + system) used so far by process ``pid`` (Linux only)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (ru_maxrss is KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / 1024 if sys.platform == "darwin" else peak / 1024


@dataclass
class Measure:
    """The figures of one timed section."""

    seconds: float = 0.0
    client_cpu: float = 0.0
    server_cpu: float | None = None
    server_requests: int = 0
    peak_rss_mb: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


@contextmanager
def measure(args: Args) -> Iterator[Measure]:
    """Time the body; count the server requests it caused; note CPU and peak RSS at its end."""
    result = Measure()
    before_requests = server_requests(args.base_url)
    server_before = _process_cpu(args.server_pid)
    cpu_before = _own_cpu()
    start = time.perf_counter()
    yield result
    result.seconds = time.perf_counter() - start
    result.client_cpu = _own_cpu() - cpu_before
    result.peak_rss_mb = peak_rss_mb()
    server_after = _process_cpu(args.server_pid)
    if server_before is not None and server_after is not None:
        result.server_cpu = server_after - server_before
    result.server_requests = server_requests(args.base_url) - before_requests


def median_of(runs: list[Measure]) -> Measure:
    """The run of median time (server requests summed over all; every time kept)."""
    ordered = sorted(runs, key=lambda m: m.seconds)
    chosen = ordered[(len(ordered) - 1) // 2]
    chosen.server_requests = sum(m.server_requests for m in runs)
    chosen.peak_rss_mb = max(m.peak_rss_mb for m in runs)
    chosen.extra["rerun_seconds"] = [round(m.seconds, 6) for m in runs]
    return chosen


def check(args: Args, contents: Sequence[str | None], errors: Sequence[str]) -> dict[str, Any]:
    """Compare the answers with the prompts: count, order and content must all match.

    ``contents[i]`` is the answer text of request ``i`` (None for a failure);
    ``errors`` are descriptions of the failures seen (a few are reported).
    """
    expected = prompts(args)
    failed = abs(len(expected) - len(contents))
    wrong: list[str] = list(errors[:3])
    for index, (want, got) in enumerate(zip(expected, contents, strict=False)):
        if got != want:
            failed += 1
            if len(wrong) < 3 and got is not None:
                wrong.append(f"#{index}: expected {want!r}, got {got!r}")
    if len(contents) != len(expected):
        wrong.append(f"expected {len(expected)} results, got {len(contents)}")
    return {"ok": args.n - min(failed, args.n), "failed": min(failed, args.n), "errors": wrong}


def emit(args: Args, timed: Measure, verdict: dict[str, Any], version: str) -> None:
    """Print the one JSON line the runner reads."""
    seconds = max(timed.seconds, 1e-9)
    line: dict[str, Any] = {
        "system": args.system,
        "scenario": args.scenario,
        "n": args.n,
        "concurrency": args.concurrency,
        "seconds": round(seconds, 6),
        "req_per_s": round(args.n / seconds, 1),
        "ok": verdict["ok"],
        "failed": verdict["failed"],
        "peak_rss_mb": round(timed.peak_rss_mb, 1),
        "server_requests": timed.server_requests,
        "client_cpu_pct": round(100 * timed.client_cpu / seconds, 1),
        "server_cpu_pct": (
            None if timed.server_cpu is None else round(100 * timed.server_cpu / seconds, 1)
        ),
        "version": version,
        "python": sys.version.split()[0],
        "errors": verdict["errors"],
        **timed.extra,
    }
    print(json.dumps(line), flush=True)


def describe(error: BaseException | None) -> str:
    """A short description of a failure, for the report."""
    if error is None:
        return "failed (no error attached)"
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text[:120]}"
