"""Retry rules, backoff, Retry-After, shared cooldown and fault injection, end to end."""

from __future__ import annotations

import pytest

from fastllm import (
    APIConnectionError,
    APITimeoutError,
    OpenAIProvider,
    RequestBatch,
    RetryPolicy,
)
from fastllm.errors import (
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    NotFoundError,
    RateLimitError,
    ResponseDecodingError,
)
from fastllm.testing import MockServer


def chat_batch(n: int, prefix: str = "p") -> RequestBatch:
    batch = RequestBatch()
    for i in range(n):
        batch.chat.completions.create(
            model="mock-model", messages=[{"role": "user", "content": f"{prefix}{i}"}]
        )
    return batch


class RecordingSleep:
    """An injected sleep that records every requested delay (and waits it)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        import asyncio

        self.delays.append(delay)
        await asyncio.sleep(delay)


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503])
def test_retryable_statuses_are_retried(
    provider: OpenAIProvider, server: MockServer, make_manager, status: int
) -> None:
    server.configure(fail_first=1, fail_first_status=status, retry_after=None)
    manager = make_manager(provider)
    results = manager.process_batch(chat_batch(5))
    assert all(r.ok for r in results)
    assert [r.attempts for r in results] == [2] * 5
    assert server.stats()["requests"] == 10
    assert manager.stats().retries == 5


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, None),
        (404, NotFoundError),
        (422, None),
    ],
)
def test_client_errors_are_never_retried(
    provider: OpenAIProvider, server: MockServer, make_manager, status: int, cls: type | None
) -> None:
    server.configure(fail_first=1, fail_first_status=status)
    results = make_manager(provider, retry_attempts=5).process_batch(chat_batch(4))
    assert server.stats()["requests"] == 4
    for result in results:
        assert not result.ok
        assert result.attempts == 1
        assert result.error.status_code == status
        if cls is not None:
            assert isinstance(result.error, cls)


def test_insufficient_quota_is_not_retried(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    server.configure(quota_429=1.0)
    (result,) = make_manager(provider, retry_attempts=5).process_batch(chat_batch(1))
    assert isinstance(result.error, RateLimitError)
    assert result.error.code == "insufficient_quota"
    assert result.attempts == 1


def test_x_should_retry_overrides_the_status_rule(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    server.configure(fail_first=1, fail_first_status=500, should_retry="false")
    (result,) = make_manager(provider).process_batch(chat_batch(1, "a"))
    assert isinstance(result.error, InternalServerError)
    assert result.attempts == 1
    server.configure(fail_first=1, fail_first_status=400, should_retry="true")
    (result,) = make_manager(provider).process_batch(chat_batch(1, "b"))
    assert result.ok
    assert result.attempts == 2


@pytest.mark.parametrize(("header", "expected"), [("retry_after", 0.35), ("retry_after_ms", 0.25)])
def test_retry_after_is_honoured(
    provider: OpenAIProvider, server: MockServer, make_manager, header: str, expected: float
) -> None:
    value = "0.35" if header == "retry_after" else "250"
    changes: dict[str, object] = {"retry_after": None, header: value}
    server.configure(fail_first=1, fail_first_status=429, **changes)
    sleep = RecordingSleep()
    manager = make_manager(provider, retry_delay=0.001, sleep=sleep)
    results = manager.process_batch(chat_batch(3))
    assert all(r.ok for r in results)
    # each of the three retries waited at least what the server asked for
    assert len([d for d in sleep.delays if d >= expected - 1e-9]) >= 3, sleep.delays


def test_backoff_is_exponential_capped_and_jittered() -> None:
    policy = RetryPolicy(attempts=10, base_delay=1.0, max_delay=8.0)
    import random

    rng = random.Random(1)
    for failures in range(1, 10):
        ceiling = min(8.0, 2 ** (failures - 1))
        draws = [policy.delay(failures, None, rng) for _ in range(50)]
        assert all(0 <= d <= ceiling for d in draws)
        assert len(set(draws)) > 1
    assert policy.delay(1, retry_after=30.0, rng=rng) >= 30.0
    assert RetryPolicy(jitter=False, base_delay=0.5).delay(3) == 2.0


def test_timeouts_are_retried_then_reported(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    server.configure(hang=1.0)
    results = make_manager(provider, timeout=0.2, retry_attempts=2).process_batch(chat_batch(3))
    for result in results:
        assert isinstance(result.error, APITimeoutError)
        assert result.error.attempts == 2
    assert server.stats()["requests"] == 6


def test_malformed_json_is_a_decoding_error_after_retries(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    server.configure(malformed=1.0)
    (result,) = make_manager(provider, retry_attempts=2).process_batch(chat_batch(1))
    assert isinstance(result.error, ResponseDecodingError)
    assert result.attempts == 2


def test_dropped_connections_are_recovered(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    server.configure(drop=0.3, seed=3)
    results = make_manager(provider, retry_attempts=8).process_batch(chat_batch(100))
    assert all(r.ok for r in results)


def test_server_closing_pooled_connections_is_not_an_error(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    server.configure(close_after_response=True, latency=0.03)
    manager = make_manager(provider, concurrency=5, retry_attempts=1)
    results = manager.process_batch(chat_batch(60))
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
    assert manager.stats().retries == 0


def test_fault_storm_loses_no_result(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    # Every 429 pauses dispatch for everyone for its Retry-After (shared cooldown), so a
    # short Retry-After keeps this test quick; the benchmark suite runs the "1" second case.
    server.configure(fail_429=0.05, retry_after="0.1", fail_500=0.05, seed=11)
    manager = make_manager(provider, concurrency=100, retry_attempts=3, retry_delay=0.05)
    results = manager.process_batch(chat_batch(2000))
    assert len(results) == 2000
    for i, result in enumerate(results):
        if result.ok:
            assert result.response.choices[0].message.content == f"p{i}"
        else:  # three unlucky draws in a row: reported, typed, after every attempt
            assert isinstance(result.error, RateLimitError | InternalServerError)
            assert result.attempts == 3
    stats = manager.stats()
    server_stats = server.stats()
    assert stats.sent == server_stats["requests"]
    assert stats.succeeded == server_stats["by_status"]["200"]
    assert stats.failed <= 10
    assert stats.retries == stats.sent - 2000


def test_unknown_model_answers_in_all_three_styles(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    batch = RequestBatch()
    batch.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    for status, error_style in ((404, "openai"), (400, "detail"), (404, "text")):
        server.configure(
            known_models=["mock-model"], unknown_model_status=status, error_style=error_style
        )
        (result,) = make_manager(provider).process_batch(batch)
        assert result.error.status_code == status
        assert result.attempts == 1
        assert str(result.error).strip() != f"HTTP {status}:"
    server.configure(known_models=["mock-model"], unknown_model_status=200)
    (result,) = make_manager(provider).process_batch(batch)
    assert result.ok


def test_connection_refused_is_typed(make_manager, api_key: str) -> None:
    provider = OpenAIProvider(api_key=api_key, api_base="http://127.0.0.1:9/v1")
    (result,) = make_manager(provider, retry_attempts=1).process_batch(chat_batch(1))
    assert type(result.error) is APIConnectionError
    assert "cannot connect" in str(result.error)


def test_a_stray_429_delays_only_its_own_request(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    server.configure(fail_429=0.03, retry_after="0.5", seed=4)
    sleep = RecordingSleep()
    manager = make_manager(provider, concurrency=20, sleep=sleep)
    results = manager.process_batch(chat_batch(200))
    assert all(r.ok for r in results)
    limited = server.stats()["faults"]["fail_429"]
    assert limited >= 1
    # every wait was a backoff of one request for its Retry-After: nobody else paused
    assert len(sleep.delays) == limited
    assert all(delay >= 0.5 for delay in sleep.delays)
    assert manager.stats().limiter_wait_seconds == 0.0


def test_limits_the_server_announces_are_learned_by_default(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    # The server allows 20 requests per 2 s and says so in x-ratelimit-* headers; the
    # client is told nothing, learns the budget from the first answers and paces itself.
    server.configure(rate_limit_requests=20, rate_limit_window=2.0)
    manager = make_manager(provider, concurrency=10, retry_attempts=10)
    results = manager.process_batch(chat_batch(40))
    assert all(r.ok for r in results)
    assert server.stats()["rate_limited"] <= 2
    assert manager.stats().request_limit == 20


def test_an_exhausted_budget_pauses_everyone(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    # Limits ignored ("off"): 429s saying the budget is used up (remaining 0) pause all
    # dispatch for their Retry-After; everything still gets through.
    server.configure(rate_limit_requests=20, rate_limit_window=2.0)
    sleep = RecordingSleep()
    manager = make_manager(
        provider, concurrency=10, retry_attempts=20, rate_limits="off", sleep=sleep
    )
    results = manager.process_batch(chat_batch(40))
    assert all(r.ok for r in results)
    assert server.stats()["rate_limited"] >= 1
    assert manager.stats().limiter_wait_seconds > 0  # dispatch waited for the pauses
