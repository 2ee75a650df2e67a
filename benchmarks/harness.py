"""Running one system process against the mock server and collecting its JSON line."""

from __future__ import annotations

import json
import multiprocessing
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks import envs
from benchmarks.scenarios import SERVER_DEFAULTS, Scenario, System

SYSTEMS_DIR = Path(__file__).resolve().parent / "systems"


def cpus() -> tuple[int | None, int | None]:
    """(server CPU, client CPU): the first two CPUs this process may use, if there are two."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(allowed) < 2:
        return None, None
    return allowed[0], allowed[1]


def server_pid() -> int | None:
    """The pid of the mock server's process (the runner's only child process)."""
    children = multiprocessing.active_children()
    return children[0].pid if len(children) == 1 else None


def python_for(system: System) -> str:
    """The interpreter that runs ``system`` (its venv is created when missing)."""
    return sys.executable if system.env is None else str(envs.ensure(system.env))


def command(
    system: System, scenario: Scenario, base_url: str, cpu: int | None, pid: int | None
) -> list[str]:
    """The command line of one run (pinned with taskset when it is there)."""
    cmd = [python_for(system), str(SYSTEMS_DIR / system.script)]
    cmd += ["--system", system.name, "--scenario", scenario.name, "--base-url", base_url]
    cmd += ["-n", str(scenario.n), "-c", str(scenario.concurrency), *system.args]
    if scenario.distinct:
        cmd += ["--distinct", str(scenario.distinct)]
    if scenario.retries is not None:
        cmd += ["--retries", str(scenario.retries)]
    if scenario.rerun:
        cmd.append("--rerun")
    if pid is not None:
        cmd += ["--server-pid", str(pid)]
    taskset = shutil.which("taskset")
    if cpu is not None and taskset is not None:
        return [taskset, "-c", str(cpu), *cmd]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    return cmd


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    env["PYTHONNOUSERSITE"] = "1"
    return env


def run_system(
    server: Any, system: System, scenario: Scenario, cpu: int | None, round_no: int
) -> dict[str, Any]:
    """Reset and configure the server, run one system process, return its record."""
    server.configure(**{**SERVER_DEFAULTS, **scenario.server})
    server.reset()
    cmd = command(system, scenario, server.base_url, cpu, server_pid())
    record: dict[str, Any] = {"system": system.name, "scenario": scenario.name, "round": round_no}
    record["command"] = shlex.join(cmd)
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=scenario.timeout, env=_child_env()
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            record["error"] = f"exit {done.returncode}: " + " | ".join(tail)
        else:
            record.update(json.loads(lines[-1]))
    except subprocess.TimeoutExpired:
        record["error"] = f"timed out after {scenario.timeout:.0f} s"
    stats = server.stats()
    record["server_requests_total"] = stats["requests"]
    record["server_by_status"] = stats["by_status"]
    if "error" in record:
        record.update(n=scenario.n, ok=0, failed=scenario.n)
    return record
