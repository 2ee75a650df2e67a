"""A run killed with SIGKILL, then re-run with the same DiskCache, pays only for what it lost.

The first run is a real separate process: it is killed mid-run without any chance to
clean up (no ``finally``, no flush at exit). The re-run must answer every request
correctly, and the server must have received at most ``n + concurrency`` requests in
all: what was answered before the kill comes back from the disk.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fastllm import DiskCache, OpenAIProvider, RequestBatch, RequestManager
from fastllm.testing import MockServer, MockServerConfig

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

N, CONCURRENCY = 4_000, 50

# The first run, in its own interpreter: the same batch the re-run builds below.
FIRST_RUN = """
import sys
from fastllm import DiskCache, OpenAIProvider, RequestBatch, RequestManager

base_url, directory, n, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
batch = RequestBatch()
for i in range(n):
    batch.chat.completions.create(model="m", messages=[{"role": "user", "content": f"crash {i}"}])
manager = RequestManager(
    OpenAIProvider(api_key="sk-crash", api_base=base_url),
    concurrency=concurrency,
    caching_provider=DiskCache(directory),
    show_progress=False,
)
print("started", flush=True)
manager.process_batch(batch)
print("finished", flush=True)
"""


def build_batch(n: int) -> RequestBatch:
    batch = RequestBatch()
    for i in range(n):
        batch.chat.completions.create(
            model="m", messages=[{"role": "user", "content": f"crash {i}"}]
        )
    return batch


def kill_mid_run(server: MockServer, directory: Path, tmp_path: Path) -> int:
    """Start the first run, SIGKILL it once the server has seen a third of it."""
    stderr = (tmp_path / "first-run.err").open("w")
    args = [server.base_url, directory, N, CONCURRENCY]
    proc = subprocess.Popen(
        [sys.executable, "-c", FIRST_RUN, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "started\n", (tmp_path / "first-run.err").read_text()
        deadline = time.monotonic() + 60
        while server.stats()["requests"] < N // 3:
            assert proc.poll() is None, (tmp_path / "first-run.err").read_text()
            assert time.monotonic() < deadline, "the first run made no progress"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert "finished" not in rest  # killed mid-run, not after
    time.sleep(0.2)  # requests already on the wire still reach the server's count
    sent: int = server.stats()["requests"]
    return sent


@pytest.mark.slow
def test_a_sigkilled_run_resumes_from_the_disk_cache(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    # 50 in flight at 50 ms: about 4 s for the whole batch, killed after ~1.5 s
    with MockServer(MockServerConfig(latency=0.05), process=True) as server:
        sent_before_kill = kill_mid_run(server, directory, tmp_path)
        assert N // 3 <= sent_before_kill < N

        manager = RequestManager(
            OpenAIProvider(api_key="sk-crash", api_base=server.base_url),
            concurrency=CONCURRENCY,
            caching_provider=DiskCache(directory),
            show_progress=False,
        )
        results = manager.process_batch(build_batch(N))
        total_sent = server.stats()["requests"]

    assert len(results) == N
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
    for i, result in enumerate(results):
        assert result.response.choices[0].message.content == f"crash {i}"
    cached = sum(r.cached for r in results)
    # everything the first run had answered, except what was in flight, came from disk
    assert cached >= sent_before_kill - CONCURRENCY
    assert total_sent == N - cached + sent_before_kill
    assert total_sent <= N + CONCURRENCY, (sent_before_kill, cached, total_sent)
