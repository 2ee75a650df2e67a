"""Statistics, cost, progress and logging of real runs, checked against the mock server."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from rich.console import Console

from fastllm import BatchError, InMemoryCache, OpenAIProvider, RequestBatch, RequestManager
from fastllm.engine import manager as manager_module
from fastllm.errors import NotRunError
from fastllm.observe import ProgressTracker
from fastllm.testing import MockServer, count_tokens

MODEL = "mock-model"


def chat_batch(prompts: list[str], **params: object) -> RequestBatch:
    batch = RequestBatch()
    for text in prompts:
        batch.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": text}], **params
        )
    return batch


def twice_each(distinct: int) -> list[str]:
    """``2 * distinct`` prompts: each distinct one twice, the copies in the second half."""
    return [f"observed prompt number {i % distinct}" for i in range(2 * distinct)]


# -- counts against the server --------------------------------------------------------------


def test_stats_match_what_the_server_saw(
    provider: OpenAIProvider, server: MockServer, make_manager: Callable[..., RequestManager]
) -> None:
    server.configure(fail_500=0.2, seed=1)
    prompts = twice_each(100)
    manager = make_manager(provider, concurrency=10, retry_attempts=2)
    results = manager.process_batch(chat_batch(prompts))
    seen = server.stats()
    stats = manager.stats()

    distinct = 100
    answered = seen["by_status"].get("200", 0)
    errors = seen["by_status"].get("500", 0)
    assert answered + errors == seen["requests"]
    assert errors > 0, "the seed should inject some 500s"
    # every attempt reached the server; each 500 on a first attempt was retried once
    assert stats.sent == seen["requests"]
    assert stats.retries == stats.sent - distinct
    both_failed = errors - stats.retries  # distinct requests whose two attempts got 500
    assert answered == distinct - both_failed
    # every distinct request has two orders: its own and one copy sharing its outcome
    assert stats.requests_total == stats.requests_completed == 200
    assert stats.failed == 2 * both_failed
    assert stats.succeeded == 200 - 2 * both_failed
    assert stats.deduplicated == 100
    assert stats.cache_hits == 0
    assert stats.errors_by_type == ({"InternalServerError": stats.failed} if both_failed else {})
    assert stats.in_flight == 0
    # billed tokens are the server's sums over its 200 answers
    assert stats.prompt_tokens == seen["prompt_tokens"]
    assert stats.completion_tokens == seen["completion_tokens"]
    assert stats.total_tokens == seen["prompt_tokens"] + seen["completion_tokens"]
    own_answers = [r for r in results[:distinct] if r.ok]
    assert stats.prompt_tokens == sum(count_tokens(prompts[r.order]) for r in own_answers)
    # and the results agree with the counts
    assert sum(not r.ok for r in results) == stats.failed
    assert sum(r.deduplicated for r in results) == stats.deduplicated
    copies = [r for r in results if r.ok and r.deduplicated]
    assert stats.saved_tokens == sum(r.usage.total_tokens for r in copies if r.usage)
    # timings
    assert stats.latency_p50 is not None
    assert stats.latency_p95 is not None
    assert stats.latency_p99 is not None
    assert 0 < stats.latency_p50 <= stats.latency_p95 <= stats.latency_p99
    assert stats.ttft_p50 is None  # nothing was streamed
    assert stats.elapsed_time > 0
    assert stats.requests_per_second == pytest.approx(200 / stats.elapsed_time)
    assert manager.stats().elapsed_time == stats.elapsed_time  # frozen once the run ended
    text = stats.summary()
    assert f"{stats.sent:,} sent, {stats.retries:,} retries" in text
    assert f"{stats.prompt_tokens:,} prompt" in text


def test_a_cached_rerun_counts_cache_hits(
    provider: OpenAIProvider, server: MockServer, make_manager: Callable[..., RequestManager]
) -> None:
    server.configure(fail_500=0.5, seed=3)
    batch = chat_batch(twice_each(100))
    manager = make_manager(provider, retry_attempts=2, caching_provider=InMemoryCache())
    first = manager.process_batch(batch)
    failed = {r.request_id for r in first if not r.ok}
    assert failed, "half the attempts fail: some requests must fail twice"

    server.configure(fail_500=0.0)
    server.reset()
    second = manager.process_batch(batch)
    seen = server.stats()
    stats = manager.stats()
    assert all(r.ok for r in second)
    assert stats.cache_hits == 100 - len(failed)
    assert stats.sent == len(failed) == seen["requests"]
    assert stats.deduplicated == 100
    assert stats.succeeded == 200
    assert stats.cache_hit_ratio == pytest.approx((100 - len(failed)) / 100)
    assert stats.prompt_tokens == seen["prompt_tokens"]
    assert stats.completion_tokens == seen["completion_tokens"]
    assert sum(r.cached and not r.deduplicated for r in second) == stats.cache_hits
    not_sent = [r for r in second if r.cached or r.deduplicated]
    assert stats.saved_tokens == sum(r.usage.total_tokens for r in not_sent if r.usage)
    assert f"{stats.cache_hits:,} from cache" in stats.summary()


def test_streams_report_time_to_first_token_and_missing_usage(
    provider: OpenAIProvider, server: MockServer, make_manager: Callable[..., RequestManager]
) -> None:
    server.configure(stream_chunk_delay=0.002)
    prompts = [f"streamed answer number {i}" for i in range(12)]
    with_usage = chat_batch(prompts, stream=True, stream_options={"include_usage": True})
    manager = make_manager(provider)
    manager.process_batch(with_usage)
    stats = manager.stats()
    assert stats.ttft_p50 is not None
    assert stats.latency_p50 is not None
    assert 0 <= stats.ttft_p50 <= stats.latency_p50
    assert stats.streams_without_usage == 0
    assert stats.prompt_tokens == server.stats()["prompt_tokens"] > 0
    assert "first token p50" in stats.summary()

    server.configure(stream_usage=False)
    manager.process_batch(chat_batch(prompts, stream=True))
    stats = manager.stats()
    assert stats.streams_without_usage == 12
    assert stats.total_tokens == 0
    assert "had no usage" in stats.summary()


async def test_stats_are_live_during_a_run(
    provider: OpenAIProvider, server: MockServer, make_manager: Callable[..., RequestManager]
) -> None:
    server.configure(latency=0.002)
    manager = make_manager(provider, concurrency=2)
    before = manager.stats()
    assert before.elapsed_time == 0.0
    assert before.requests_completed == 0
    seen: list[Any] = []
    async for _ in manager.as_completed(chat_batch([f"live {i}" for i in range(30)])):
        seen.append(manager.stats())
    during = seen[len(seen) // 2]
    assert during.requests_total == 30
    assert 0 < during.requests_completed < 30
    assert during.elapsed_time > 0
    after = manager.stats()
    assert after.requests_completed == 30
    assert after.elapsed_time >= during.elapsed_time
    assert manager.stats().elapsed_time == after.elapsed_time
    assert [s.requests_completed for s in seen] == sorted(s.requests_completed for s in seen)


# -- cost -----------------------------------------------------------------------------------


def test_max_cost_stops_sending_and_keeps_the_finished_results(
    provider: OpenAIProvider, server: MockServer, make_manager: Callable[..., RequestManager]
) -> None:
    prompts = [f"budget prompt number {i:02d}" for i in range(20)]
    usd_per_token = 0.25
    prices = {MODEL: (usd_per_token * 1e6, usd_per_token * 1e6)}
    max_cost = 9.0
    spent, sendable = 0.0, 0
    while spent < max_cost:  # the answer echoes the prompt: as many completion tokens
        spent += 2 * count_tokens(prompts[sendable]) * usd_per_token
        sendable += 1
    assert 2 < sendable < 10

    manager = make_manager(provider, concurrency=1, prices=prices, max_cost=max_cost)
    results = manager.process_batch(chat_batch(prompts))
    stats = manager.stats()
    assert server.stats()["requests"] == sendable == stats.sent
    assert all(r.ok for r in results[:sendable])
    rest = results[sendable:]
    assert all(isinstance(r.error, NotRunError) for r in rest)
    assert all(r.error is not None and r.error.attempts == 0 for r in rest)
    assert all("cost budget of $9 was reached" in str(r.error) for r in rest)
    assert stats.cost_usd == pytest.approx(spent)
    assert stats.cost_usd >= max_cost
    assert stats.failed == len(rest) == 20 - sendable
    assert stats.errors_by_type == {"NotRunError": len(rest)}
    assert stats.prompt_tokens == server.stats()["prompt_tokens"]
    assert f"cost       ${spent:,.2f}" in stats.summary()

    server.reset()
    with pytest.raises(BatchError) as caught:
        manager.process_batch(chat_batch(prompts), raise_on_error=True)
    assert len(caught.value.results) == 20
    assert len(caught.value.failures) == 20 - sendable
    assert f"{20 - sendable} NotRunError" in str(caught.value)


def test_cost_of_a_run_with_prices(
    provider: OpenAIProvider, server: MockServer, make_manager: Callable[..., RequestManager]
) -> None:
    manager = make_manager(provider, prices={MODEL: (2.0, 8.0)})
    manager.process_batch(chat_batch([f"priced {i}" for i in range(25)]))
    seen = server.stats()
    expected = (seen["prompt_tokens"] * 2.0 + seen["completion_tokens"] * 8.0) / 1e6
    assert manager.stats().cost_usd == pytest.approx(expected)
    assert manager.stats().unpriced_tokens == 0


# -- progress and logs of real runs ---------------------------------------------------------


@pytest.fixture
def no_forced_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "JUPYTER_COLUMNS"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_forced_tty")
def test_piped_output_gets_plain_progress_on_stderr(
    provider: OpenAIProvider,
    make_manager: Callable[..., RequestManager],
    capsys: pytest.CaptureFixture[str],
) -> None:
    manager = make_manager(provider, show_progress=True)
    manager.process_batch(chat_batch([f"piped {i}" for i in range(40)]))
    out, err = capsys.readouterr()
    assert out == ""  # stdout may carry the program's own output
    assert "fastllm: 40/40 (100%) requests" in err
    assert "40/40 done in" in err
    assert "\x1b[" not in err


def test_a_terminal_gets_the_live_bar_and_the_summary(
    provider: OpenAIProvider,
    make_manager: Callable[..., RequestManager],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    console = Console(record=True, width=200, force_terminal=True, color_system=None)
    monkeypatch.setattr(
        manager_module, "ProgressTracker", partial(ProgressTracker, console=console)
    )
    manager = make_manager(provider, show_progress=True, prices={MODEL: (1.0, 1.0)})
    manager.process_batch(chat_batch([f"bar {i % 30}" for i in range(60)]))
    text = console.export_text()
    final = text[text.rindex("requests ━") :]
    assert "60/60" in final
    assert "dedup 30" in final
    assert "$0.0" in final
    assert "ETA 0:00:00" in final
    assert "60/60 done in" in final


def test_show_progress_false_is_silent(
    provider: OpenAIProvider,
    make_manager: Callable[..., RequestManager],
    capsys: pytest.CaptureFixture[str],
) -> None:
    make_manager(provider, show_progress=False).process_batch(chat_batch(["quiet"] * 5))
    assert capsys.readouterr() == ("", "")


def test_log_levels(
    provider: OpenAIProvider,
    server: MockServer,
    make_manager: Callable[..., RequestManager],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="fastllm")
    server.configure(fail_500=0.3, seed=5)
    make_manager(provider, retry_attempts=2).process_batch(
        chat_batch([f"logged {i}" for i in range(100)])
    )
    fastllm = [r for r in caplog.records if r.name.startswith("fastllm")]
    loud = [r for r in fastllm if r.levelno >= logging.INFO]
    # INFO and above: run start, run end, and at most one warning about failures
    assert len(loud) <= 3
    assert any(r.getMessage().startswith("run started") for r in loud)
    assert any(r.getMessage().startswith("run finished") for r in loud)
    retries = [r for r in fastllm if r.getMessage().startswith("retrying request")]
    assert retries
    assert all(r.levelno == logging.DEBUG for r in retries)
    assert all(r.name == "fastllm.engine.scheduler" for r in retries)
