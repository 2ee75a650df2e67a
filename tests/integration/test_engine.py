"""The engine against the real mock server: order, inputs, deduplication, results."""

from __future__ import annotations

import asyncio

import pytest
from batches import chat_batch

from fastllm import (
    APIConnectionError,
    BatchError,
    ConfigurationError,
    OpenAIProvider,
    RequestBatch,
    RequestFormatError,
    RequestManager,
)
from fastllm.engine import DUMMY_RESPONSE
from fastllm.testing import MockServer, mock_embedding


def contents(results: list) -> list[str]:
    return [r.response.choices[0].message.content for r in results]


def test_results_come_back_in_request_order(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    server.configure(latency=0.005, jitter=0.005)
    prompts = [f"prompt {i}" for i in range(300)]
    results = make_manager(provider, concurrency=50).process_batch(chat_batch(prompts))
    assert contents(results) == prompts
    assert [r.order for r in results] == list(range(300))
    assert all(r.ok and r.attempts == 1 for r in results)
    assert results[0].usage is not None
    assert results[0].usage.total_tokens > 0


def test_accepts_a_list_of_dicts_and_an_iterable_of_batch_lines(
    provider: OpenAIProvider, make_manager
) -> None:
    manager = make_manager(provider)
    dicts = [{"model": "m", "messages": [{"role": "user", "content": f"d{i}"}]} for i in range(5)]
    assert contents(manager.process_batch(dicts)) == [f"d{i}" for i in range(5)]
    batch = chat_batch(["x", "y"])
    lines = (line for line in batch.requests)  # a one-shot generator, length unknown
    results = manager.process_batch(lines)
    assert contents(results) == ["x", "y"]
    assert results[1].custom_id == batch.requests[1]["custom_id"]


def test_identical_requests_reach_the_server_once(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    server.configure(latency=0.01)
    prompts = [f"q{i % 500}" for i in range(5000)]
    manager = make_manager(provider, concurrency=100)
    results = manager.process_batch(chat_batch(prompts))
    assert server.stats()["requests"] == 500
    assert contents(results) == prompts
    stats = manager.stats()
    assert stats.succeeded == 5000
    assert stats.deduplicated == 4500
    assert stats.sent == 500
    assert sum(r.deduplicated for r in results) == 4500


def test_identical_requests_in_flight_together_share_one_call(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    server.configure(latency=0.2)
    results = make_manager(provider, concurrency=50).process_batch(chat_batch(["same"] * 50))
    assert server.stats()["requests"] == 1
    assert contents(results) == ["same"] * 50


def test_dedupe_off_sends_every_copy(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    results = make_manager(provider, dedupe=False).process_batch(
        chat_batch(["same"] * 7, temperature=1.0)
    )
    assert server.stats()["requests"] == 7
    assert all(r.ok for r in results)


def test_embeddings_float_and_base64(provider: OpenAIProvider, make_manager) -> None:
    batch = RequestBatch()
    batch.embeddings.create(model="e", input=["alpha", "beta"], dimensions=16)
    batch.embeddings.create(model="e", input="gamma", dimensions=8, encoding_format="base64")
    first, second = make_manager(provider).process_batch(batch)
    assert first.is_embedding_response
    expected = [mock_embedding("alpha", 16), mock_embedding("beta", 16)]
    assert len(first.embeddings) == 2
    for got, want in zip(first.embeddings, expected, strict=True):
        assert got == pytest.approx(want, rel=1e-6)
    (gamma,) = second.embeddings
    assert gamma == pytest.approx(mock_embedding("gamma", 8), rel=1e-6)
    assert second.embeddings_array().shape == (1, 8)
    assert first.usage is not None
    assert first.usage.completion_tokens == 0
    assert first.response.data[1].index == 1


def test_a_malformed_item_fails_alone(provider: OpenAIProvider, make_manager) -> None:
    items = [
        {"model": "m", "messages": [{"role": "user", "content": "ok1"}]},
        {"model": "m"},
        {"custom_id": "bad-url", "method": "POST", "url": "/v1/nope", "body": {}},
        {"model": "m", "messages": [{"role": "user", "content": "ok2"}]},
    ]
    results = make_manager(provider).process_batch(items)
    assert [r.ok for r in results] == [True, False, False, True]
    assert isinstance(results[1].error, RequestFormatError)
    assert results[1].error.field == "messages"
    assert results[2].custom_id == "bad-url"
    assert "unknown endpoint" in str(results[2].error)
    assert contents([results[0], results[3]]) == ["ok1", "ok2"]


def test_unreachable_base_url_gives_one_typed_error_per_item(make_manager, api_key: str) -> None:
    provider = OpenAIProvider(api_key=api_key, api_base="http://127.0.0.1:9/v1")
    manager = make_manager(provider, retry_attempts=2)
    results = manager.process_batch(chat_batch(["a", "b", "c"]))
    assert len(results) == 3
    for result in results:
        assert not result.ok
        assert isinstance(result.error, APIConnectionError)
        assert result.error.attempts == 2
        assert api_key not in str(result.error)
    assert manager.stats().failed == 3

    async def inside_a_running_loop() -> list:
        return manager.process_batch(chat_batch(["d"]))

    inner = asyncio.run(inside_a_running_loop())
    assert isinstance(inner[0].error, APIConnectionError)


def test_process_batch_works_inside_a_running_loop(provider: OpenAIProvider, make_manager) -> None:
    manager = make_manager(provider)

    async def notebook_cell() -> list:
        return manager.process_batch(chat_batch(["from a notebook"]))

    assert contents(asyncio.run(notebook_cell())) == ["from a notebook"]


async def test_async_apis(provider: OpenAIProvider, make_manager) -> None:
    manager = make_manager(provider)
    prompts = [f"a{i}" for i in range(40)]
    assert contents(await manager.aprocess_batch(chat_batch(prompts))) == prompts
    seen = [r async for r in manager.as_completed(chat_batch(prompts), cache="off")]
    assert sorted(r.order for r in seen) == list(range(40))
    assert {r.response.choices[0].message.content for r in seen} == set(prompts)
    ordered = [r async for r in manager.iter_ordered(iter(chat_batch(prompts).requests))]
    assert [r.order for r in ordered] == list(range(40))
    assert contents(ordered) == prompts


def test_return_dummy_on_error_marks_the_item_failed(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    server.configure(fail_first=1, fail_first_status=400)
    manager = make_manager(provider, return_dummy_on_error=True)
    (result,) = manager.process_batch(chat_batch(["x"]))
    assert not result.ok
    assert result.response is DUMMY_RESPONSE


def test_raise_on_error_carries_every_result(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    server.configure(fail_first=1, fail_first_status=400)
    good = make_manager(provider).process_batch(
        chat_batch(["warm"])
    )  # warms "warm" past fail_first
    assert not good[0].ok
    with pytest.raises(BatchError) as info:
        make_manager(provider, raise_on_error=True).process_batch(chat_batch(["warm", "new"]))
    assert len(info.value.results) == 2
    assert [r.ok for r in info.value.results] == [True, False]
    assert len(info.value.failures) == 1
    assert "1 of 2 requests failed" in str(info.value)


@pytest.mark.parametrize(
    ("options", "argument"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 2.5}, "concurrency"),
        ({"timeout": -1}, "timeout"),
        ({"retry_attempts": 0}, "attempts"),
        ({"retry_delay": -1.0}, "base_delay"),
        ({"max_cost": 0}, "max_cost"),
        ({"rate_limits": "fast"}, "rate_limits"),
        ({"rate_limits": [object()]}, "rate_limits"),
        ({"caching_provider": {}}, "caching_provider"),
    ],
)
def test_bad_configuration_names_the_argument(
    provider: OpenAIProvider, options: dict, argument: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        RequestManager(provider, **options)
    assert info.value.argument == argument


@pytest.mark.parametrize(
    "base", ["localhost:8000", "ftp://x/v1", "http://", "http://h:99999/v1", 5]
)
def test_bad_base_url_is_a_configuration_error(base: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        OpenAIProvider(api_key="k", api_base=base)  # type: ignore[arg-type]
    assert info.value.argument == "api_base"


def test_bad_cache_mode_and_batch(provider: OpenAIProvider, make_manager) -> None:
    manager = make_manager(provider)
    with pytest.raises(ConfigurationError, match="cache"):
        manager.process_batch(chat_batch(["x"]), cache="maybe")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="batch"):
        manager.process_batch("not a batch")


def test_no_key_in_reprs_and_only_asked_for_headers(api_key: str) -> None:
    provider = OpenAIProvider(
        api_key=api_key, api_base="http://127.0.0.1:1/v1", organization="org", headers={"X-A": "1"}
    )
    assert api_key not in repr(provider)
    assert api_key not in repr(RequestManager(provider, show_progress=False))
    assert set(provider.get_request_headers()) == {
        "Content-Type",
        "Authorization",
        "OpenAI-Organization",
        "X-A",
    }


def test_provider_reads_the_openai_environment_variables(monkeypatch, api_key: str) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", api_key)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1234/v1")
    provider = OpenAIProvider()
    assert provider.api_base == "http://127.0.0.1:1234/v1"
    assert provider.get_request_headers()["Authorization"] == f"Bearer {api_key}"
    monkeypatch.delenv("OPENAI_BASE_URL")
    assert OpenAIProvider(api_key="other").api_base == "https://api.openai.com/v1"
