"""Shared rate limits on a real redis-server: pacing, corrections, fallback, processes."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis_server import RedisServer, redis_url_for_session, unique

from fastllm import RateLimit, RequestManager
from fastllm.errors import ConfigurationError
from fastllm.limits import RateLimiter
from fastllm.limits.redis_limiter import RedisRateLimiter, SharedReservation, make_limiter
from fastllm.testing import MockServer, MockServerConfig

pytestmark = pytest.mark.redis

PASSWORD = "pw-NEVER-LEAK-7d1e"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    yield from redis_url_for_session()


def shared(url: str, name: str, **limit: Any) -> RateLimit:
    return RateLimit(name=name, redis_url=url, **limit)


async def test_two_limiters_with_one_name_share_one_budget(redis_url: str) -> None:
    limit = shared(redis_url, unique("pace"), requests=4, per="1s")
    first, second = RedisRateLimiter([limit]), RedisRateLimiter([limit])
    other = RedisRateLimiter([shared(redis_url, unique("other"), requests=4, per="1s")])

    async def take(limiter: RedisRateLimiter, count: int) -> list[float]:
        return [(await limiter.acquire(1)).waited for _ in range(count)]

    started = time.monotonic()
    waits = await asyncio.gather(take(first, 6), take(second, 6))
    elapsed = time.monotonic() - started
    # 4 at once (the bucket starts full), the other 8 at 4 per second: 2 s
    assert 1.8 <= elapsed <= 6.0
    assert sum(w == 0 for w in waits[0] + waits[1]) == 4
    assert all(isinstance(r, SharedReservation) for r in [await other.acquire(1)])
    assert (await other.acquire(1)).waited == 0  # another name is another budget
    assert first.snapshot().limits[0].capacity == 4
    for limiter in (first, second, other):
        await limiter.aclose()


async def test_settle_refunds_and_cancel_gives_back_across_limiters(redis_url: str) -> None:
    name = unique("settle")
    limit = shared(redis_url, name, requests=2, tokens=1000, per="60s")
    first, second = RedisRateLimiter([limit]), RedisRateLimiter([limit])
    big = await first.acquire(800)
    waiting = asyncio.ensure_future(second.acquire(500))  # 300 left: waits ~12 s
    await asyncio.sleep(0.3)
    assert not waiting.done()
    first.settle(big, 100)  # 700 back
    await first.flush()
    granted = await asyncio.wait_for(waiting, 5)
    assert granted.tokens == 500
    # both requests of the minute are used: a third waits until one is cancelled
    third = asyncio.ensure_future(second.acquire(0))
    await asyncio.sleep(0.3)
    assert not third.done()
    first.cancel(big)
    first.cancel(big)  # twice is once
    await first.flush()
    await asyncio.wait_for(third, 5)
    client = redis.Redis.from_url(redis_url)
    state = client.hgetall(f"fastllm:ratelimit:{name}")
    client.close()
    assert float(state[b"r"]) < 1
    # 1000 - 800 + 700 (settle) - 500 + 100 (cancel) = 500, plus a few seconds of refill
    assert 500 <= float(state[b"t"]) <= 600
    for limiter in (first, second):
        await limiter.aclose()


async def test_cooldown_and_learned_remaining_are_shared(redis_url: str) -> None:
    limit = shared(redis_url, unique("cool"), requests=100, per="60s")
    first, second = RedisRateLimiter([limit]), RedisRateLimiter([limit])
    await second.acquire(0)
    first.cooldown(0.8)
    first.cooldown(0.1)  # never shortens
    await first.flush()
    paused = await second.acquire(0)
    assert paused.waited >= 0.5
    first.observe_headers({"x-ratelimit-remaining-requests": "3", "x-other": "1"})
    await first.flush()
    await second.acquire(0)
    snapshot = second.snapshot().limits[0]
    assert snapshot.available < 3
    assert first.snapshot().limits[0].learned_remaining == 3
    for limiter in (first, second):
        await limiter.aclose()


async def test_falls_back_to_a_local_share_and_comes_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = RedisServer(extra=("--requirepass", PASSWORD)).start()
    url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"
    limit = shared(url, unique("fallback"), requests=20, per="1s")
    limiter = RedisRateLimiter([limit], retry_interval=0.3)
    peer = RedisRateLimiter([limit])
    try:
        await peer.acquire(0)  # two workers seen: each falls back to half
        for _ in range(3):
            assert isinstance(await limiter.acquire(0), SharedReservation)
        server.stop()
        with caplog.at_level(logging.WARNING):
            taken = [await limiter.acquire(0) for _ in range(25)]
        warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(warnings) == 1
        assert PASSWORD not in caplog.text
        assert PASSWORD not in repr(limiter)
        assert not limiter.shared
        assert not any(isinstance(r, SharedReservation) for r in taken)
        assert limiter.snapshot().limits[0].capacity == 10  # 20 shared by 2 workers
        assert sum(r.waited > 0 for r in taken) >= 10  # paced at the local share
        limiter.settle(taken[0], 5)  # local reservations settle locally
        server.start()
        deadline = time.monotonic() + 10
        while not limiter.shared and time.monotonic() < deadline:
            await limiter.acquire(0)
            await asyncio.sleep(0.05)
        assert limiter.shared
        assert isinstance(await limiter.acquire(0), SharedReservation)
        assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1
    finally:
        await limiter.aclose()
        await peer.aclose()
        server.stop()


def test_configuration_is_checked(redis_url: str) -> None:
    name = unique("conf")
    with pytest.raises(ConfigurationError, match="name"):
        RedisRateLimiter([RateLimit(requests=1, redis_url=redis_url)])
    with pytest.raises(ConfigurationError, match="mixing"):
        RedisRateLimiter([shared(redis_url, name, requests=1), RateLimit(requests=5)])
    with pytest.raises(ConfigurationError, match="same Redis URL"):
        RedisRateLimiter(
            [shared(redis_url, name, requests=1), shared("redis://x:1/0", "b", requests=1)]
        )
    with pytest.raises(ConfigurationError, match="two shared limits"):
        RedisRateLimiter([shared(redis_url, name, requests=1), shared(redis_url, name, tokens=5)])
    with pytest.raises(ConfigurationError, match="auto"):
        RedisRateLimiter([shared(redis_url, name, requests=1)], auto=True)
    with pytest.raises(ConfigurationError, match="fallback_workers"):
        RedisRateLimiter([shared(redis_url, name, requests=1)], fallback_workers=0)
    assert isinstance(make_limiter([RateLimit(requests=5)]), RateLimiter)
    assert isinstance(make_limiter([], auto=True), RateLimiter)
    routed = make_limiter(shared(redis_url, name, requests=5))
    assert isinstance(routed, RedisRateLimiter)
    assert routed.enabled
    assert not routed.auto


# -- three processes share one budget, a fourth is answered from the shared cache ------

WORKER = textwrap.dedent(
    """
    import json, sys, time
    from fastllm import OpenAIProvider, RateLimit, RequestManager
    from fastllm.cache.redis import RedisCache
    from fastllm.limits.redis_limiter import RedisRateLimiter

    base_url, redis_url, name, namespace, first, count = sys.argv[1:]
    manager = RequestManager(
        OpenAIProvider(api_key="sk-test", api_base=base_url),
        concurrency=50,
        show_progress=False,
        caching_provider=RedisCache(redis_url, namespace=namespace),
        rate_limits=[RateLimit(requests=300, per="10s", name=name, redis_url=redis_url)],
    )
    routed = isinstance(manager._limiter, RedisRateLimiter)
    print(json.dumps({"routed": routed}), flush=True)
    if routed and sys.stdin.readline():
        items = [
            {"model": "mock-model", "messages": [{"role": "user", "content": f"shared {i}"}]}
            for i in range(int(first), int(first) + int(count))
        ]
        started = time.monotonic()
        results = manager.process_batch(items)
        print(json.dumps({
            "ok": sum(r.ok for r in results),
            "cached": sum(r.cached for r in results),
            "elapsed": time.monotonic() - started,
        }), flush=True)
    """
)


def _start(script: Path, *args: object) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    child = subprocess.Popen(
        [sys.executable, str(script), *map(str, args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    return child, json.loads(child.stdout.readline())


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_three_processes_share_300_per_10s_and_a_fourth_hits_the_cache(
    redis_url: str, tmp_path: Path
) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    name, namespace = unique("team"), unique("procs")
    with MockServer(MockServerConfig(latency=0.01), process=True) as server:
        children = [
            _start(script, server.base_url, redis_url, name, namespace, 200 * w, 200)
            for w in range(3)
        ]
        if not all(hello["routed"] for _, hello in children):
            for child, _ in children:
                child.communicate("")
            pytest.skip("RequestManager does not route redis_url limits to RedisRateLimiter yet")
        started = time.monotonic()
        for child, _ in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        reports = [json.loads(child.communicate()[0]) for child, _ in children]
        elapsed = time.monotonic() - started
        assert [r["ok"] for r in reports] == [200, 200, 200]
        # the shared bucket starts full at 300; the other 300 refill at 30/s: >= 10 s
        assert elapsed >= 9.0, reports
        sent = server.stats()["requests"]
        assert sent == 600
        child, _ = _start(script, server.base_url, redis_url, name, namespace, 0, 600)
        report = json.loads(child.communicate("go\n")[0])
        assert report == {**report, "ok": 600, "cached": 600}
        assert server.stats()["requests"] == sent
    print(f"3 processes x 200 requests under one shared 300/10s: {elapsed:.2f} s")


def test_manager_routes_shared_limits_when_the_factory_is_wired(redis_url: str) -> None:
    from fastllm import OpenAIProvider

    limit = shared(redis_url, unique("wired"), requests=300, per="10s")
    manager = RequestManager(
        OpenAIProvider(api_key="sk-x"), show_progress=False, rate_limits=[limit]
    )
    if not isinstance(manager._limiter, RedisRateLimiter):
        pytest.skip("RequestManager._make_limiter does not call make_limiter yet")
    assert manager._limiter.limits == (limit,)
