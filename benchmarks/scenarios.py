"""The systems under test and the scenarios S1..S6 (what runs, with which settings)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from benchmarks import envs

BASELINE = "aiohttp-raw"


@dataclass(frozen=True)
class System:
    """One client: a script in ``benchmarks/systems/`` run by a venv's python."""

    name: str
    script: str
    env: envs.Env | None  # None: the project venv (the runner's interpreter)
    args: tuple[str, ...] = ()


SYSTEMS: dict[str, System] = {
    s.name: s
    for s in (
        System(BASELINE, "run_aiohttp.py", envs.AIOHTTP),
        System("fastllm", "run_fastllm.py", None),
        System("fastllm-memcache", "run_fastllm.py", None, ("--cache", "memory")),
        System("fastllm-diskcache", "run_fastllm.py", None, ("--cache", "disk")),
        System("fastllm-aiohttp", "run_fastllm.py", None, ("--transport", "aiohttp")),
        System("openai-sdk", "run_openai.py", envs.OPENAI),
        System("fastllm-kit-0.1.9", "run_fastllm_kit.py", envs.FASTLLM_KIT),
        System(
            "fastllm-kit-0.1.9-memcache",
            "run_fastllm_kit.py",
            envs.FASTLLM_KIT,
            ("--cache", "memory"),
        ),
        System(
            "fastllm-kit-0.1.9-diskcache",
            "run_fastllm_kit.py",
            envs.FASTLLM_KIT,
            ("--cache", "disk"),
        ),
    )
}

_ALL = (
    BASELINE,
    "fastllm",
    "fastllm-memcache",
    "fastllm-diskcache",
    "fastllm-aiohttp",
    "openai-sdk",
    "fastllm-kit-0.1.9",
)
_CLIENTS = (BASELINE, "fastllm", "openai-sdk", "fastllm-kit-0.1.9")
_CACHED = (
    "fastllm-memcache",
    "fastllm-diskcache",
    "fastllm-kit-0.1.9-memcache",
    "fastllm-kit-0.1.9-diskcache",
)


@dataclass(frozen=True)
class Scenario:
    """A workload: request count, concurrency, mock-server settings and the systems run."""

    name: str
    title: str
    n: int
    concurrency: int
    systems: tuple[str, ...]
    server: dict[str, Any] = field(default_factory=dict)
    distinct: int = 0  # distinct prompts; 0: every request distinct
    retries: int | None = None
    rerun: bool = False  # warm-up run, then the timed re-run (cache scenarios)
    timeout: float = 900.0  # seconds one system process may take

    def shrunk(self, factor: int) -> Scenario:
        """The same scenario with ``factor`` times fewer requests (``--quick``)."""
        distinct = max(1, self.distinct // factor) if self.distinct else 0
        return replace(self, n=max(1, self.n // factor), distinct=distinct)


_FAULTS = {"fail_429": 0.10, "retry_after": "1", "fail_500": 0.05}

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("S1", "0 ms latency, every request distinct", 5_000, 100, _ALL),
        Scenario(
            "S2",
            "200 ms latency (ideal: c / 0.2 s = 2,500 req/s)",
            5_000,
            500,
            _ALL,
            server={"latency": 0.2},
            timeout=600.0,
        ),
        Scenario(
            "S3",
            "cached re-run of 5,000 distinct requests (only the re-run is timed)",
            5_000,
            100,
            _CACHED,
            rerun=True,
        ),
        Scenario("S4", "100,000 requests at 0 ms (memory)", 100_000, 200, (BASELINE, "fastllm")),
        Scenario(
            "S5",
            "5,000 requests, 500 distinct prompts, no cache (requests reaching the server)",
            5_000,
            100,
            _CLIENTS,
            distinct=500,
        ),
        Scenario(
            "S6",
            "injected faults: 10% 429 (Retry-After: 1), 5% 500; retry budget 5",
            2_000,
            100,
            _CLIENTS,
            server=_FAULTS,
            retries=5,
        ),
    )
}

#: Server settings every scenario starts from (a scenario's ``server`` overrides them).
SERVER_DEFAULTS: dict[str, Any] = {
    "latency": 0.0,
    "fail_429": 0.0,
    "fail_500": 0.0,
    "retry_after": "1",
    "seed": 20_240_601,
}
