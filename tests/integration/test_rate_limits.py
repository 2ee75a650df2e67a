"""Rate limits end to end: pacing, matching a server's own limits, learning them."""

from __future__ import annotations

import time

import pytest

from fastllm import OpenAIProvider, RateLimit, RequestBatch
from fastllm.testing import MockServer


def chat_batch(n: int, max_tokens: int | None = None) -> RequestBatch:
    batch = RequestBatch()
    for i in range(n):
        batch.chat.completions.create(
            model="mock-model",
            messages=[{"role": "user", "content": f"rate limited prompt {i}"}],
            max_completion_tokens=max_tokens,
        )
    return batch


def test_600_requests_under_300_per_10s(provider: OpenAIProvider, make_manager) -> None:
    manager = make_manager(provider, concurrency=50, rate_limits=RateLimit(requests=300, per="10s"))
    started = time.monotonic()
    results = manager.process_batch(chat_batch(600))
    elapsed = time.monotonic() - started
    assert all(r.ok for r in results)
    # 300 at once (the bucket starts full), the other 300 at 30/s
    assert 9.0 <= elapsed <= 25.0
    stats = manager.stats()
    assert stats.request_limit == 300
    assert stats.limiter_wait_seconds > 0


def _server_limited(server: MockServer) -> None:
    # 600 requests and 60,000 tokens a minute, scaled to a 6-second window
    server.configure(rate_limit_requests=60, rate_limit_tokens=6000, rate_limit_window=6.0)


def test_matching_the_servers_limits_gets_no_429_and_uses_the_budget(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    _server_limited(server)
    manager = make_manager(
        provider,
        concurrency=20,
        rate_limits=RateLimit(requests=60, tokens=6000, per="6s"),
    )
    started = time.monotonic()
    results = manager.process_batch(chat_batch(120, max_tokens=20))
    elapsed = time.monotonic() - started
    assert all(r.ok for r in results)
    stats = server.stats()
    assert stats["rate_limited"] == 0
    assert stats["by_status"].get("429", 0) == 0
    allowed = 60 + 10 * elapsed  # a full bucket, then 10 a second
    assert 120 / allowed >= 0.85


def test_auto_limits_learned_from_headers_keep_429s_rare(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    _server_limited(server)
    manager = make_manager(provider, concurrency=10, rate_limits="auto", retry_attempts=5)
    results = manager.process_batch(chat_batch(120, max_tokens=20))
    assert all(r.ok for r in results)
    stats = server.stats()
    assert stats["rate_limited"] <= 0.02 * 120
    snapshot = manager.stats()
    assert snapshot.request_limit == 60


@pytest.mark.parametrize("per", ["5x", "", -1, 0])
def test_bad_periods_are_configuration_errors(per: object) -> None:
    from fastllm import ConfigurationError

    with pytest.raises(ConfigurationError) as info:
        RateLimit(requests=1, per=per)  # type: ignore[arg-type]
    assert info.value.argument == "per"
