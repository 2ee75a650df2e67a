"""AnthropicProvider end to end against the mock's Messages API, side by side with OpenAI."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fastllm import OpenAIProvider, RequestBatch, RequestManager, ResponseWrapper
from fastllm.errors import (
    AuthenticationError,
    InternalServerError,
    NotRunError,
    RateLimitError,
    ResponseDecodingError,
)
from fastllm.providers import AnthropicProvider
from fastllm.testing import MockServer

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "look a text up",
            "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
        },
    }
]


def chat_batch(n: int = 12) -> RequestBatch:
    """Plain, streamed and tool-calling requests, in the OpenAI format, one batch for both."""
    batch = RequestBatch()
    for i in range(n):
        kind = i % 4
        batch.chat.completions.create(
            model="model-x",
            messages=[
                {"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": f"question number {i}"},
            ],
            max_completion_tokens=50,
            **({"stream": True, "stream_options": {"include_usage": True}} if kind % 2 else {}),
            **({"tools": TOOLS} if kind >= 2 else {}),
        )
    return batch


def read_result(result: ResponseWrapper) -> tuple[Any, ...]:
    """The code a user writes once to read a result, whatever the provider."""
    message = result.response.choices[0].message
    calls = [(c.function.name, c.function.arguments) for c in message.tool_calls or ()]
    usage = result.usage
    assert usage is not None
    return (
        message.content,
        calls,
        result.response.choices[0].finish_reason,
        usage.prompt_tokens > 0,
        usage.completion_tokens > 0,
        usage.total_tokens == usage.prompt_tokens + usage.completion_tokens,
    )


def test_the_same_batch_reads_the_same_through_openai_and_anthropic(
    server: MockServer, api_key: str, make_manager: Callable[..., RequestManager]
) -> None:
    server.configure(api_key=api_key)
    openai = make_manager(OpenAIProvider(api_key=api_key, api_base=server.base_url))
    anthropic = make_manager(AnthropicProvider(api_key=api_key, api_base=server.base_url))
    from_openai = [read_result(r) for r in openai.process_batch(chat_batch())]
    from_anthropic = [read_result(r) for r in anthropic.process_batch(chat_batch())]
    assert from_openai == from_anthropic
    assert from_openai[0][:3] == ("question number 0", [], "stop")
    assert from_openai[1][0] == "question number 1"  # streamed
    assert from_openai[2][1] == [("lookup", '{"text":"question number 2"}')]
    assert from_openai[3][1:3] == ([("lookup", '{"text":"question number 3"}')], "tool_calls")
    assert server.stats()["by_endpoint"] == {"/v1/chat/completions": 12, "/v1/messages": 12}


def test_the_anthropic_message_is_kept_and_the_cache_is_apart_from_openai(
    server: MockServer, make_manager: Callable[..., RequestManager]
) -> None:
    anthropic = AnthropicProvider(api_key="k", api_base=server.base_url)
    openai = OpenAIProvider(api_key="k", api_base=server.base_url)
    assert anthropic.cache_namespace != openai.cache_namespace
    [result] = make_manager(anthropic).process_batch(chat_batch(1))
    raw = result.body["anthropic"]
    assert raw["type"] == "message"
    assert raw["stop_reason"] == "end_turn"
    assert raw["content"] == [{"type": "text", "text": "question number 0"}]
    quiet = AnthropicProvider(api_key="k", api_base=server.base_url, keep_raw=False)
    [result] = make_manager(quiet).process_batch(chat_batch(1))
    assert "anthropic" not in result.body


def test_conversation_with_tool_results_images_and_stop_is_accepted(
    server: MockServer, make_manager: Callable[..., RequestManager]
) -> None:
    provider = AnthropicProvider(api_key="k", api_base=server.base_url, default_max_tokens=64)
    batch = RequestBatch()
    batch.chat.completions.create(
        model="model-x",
        messages=[
            {"role": "developer", "content": [{"type": "text", "text": "Be exact."}]},
            {"role": "user", "content": "what is in the picture?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"text": "cat"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "and this one"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                ],
            },
        ],
        stop="END",
        temperature=0.5,
        tools=TOOLS,
        tool_choice="none",
    )
    [result] = make_manager(provider).process_batch(batch)
    assert result.ok, result.error
    assert result.response.choices[0].message.content == "and this one"


def test_requests_that_cannot_be_translated_fail_unsent(
    server: MockServer, make_manager: Callable[..., RequestManager]
) -> None:
    provider = AnthropicProvider(api_key="k", api_base=server.base_url)
    batch = RequestBatch()
    batch.chat.completions.create(model="m", messages=[{"role": "user", "content": "no max"}])
    batch.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "two"}], max_tokens=5, n=2
    )
    batch.embeddings.create(model="e", input=["a"])
    results = make_manager(provider).process_batch(batch)
    assert [type(r.error) for r in results] == [NotRunError] * 3
    assert "max_tokens is required" in str(results[0].error)
    assert "n > 1" in str(results[1].error)
    assert "embeddings" in str(results[2].error)
    assert server.stats()["requests"] == 0


def test_error_shapes_and_statuses(
    server: MockServer, api_key: str, make_manager: Callable[..., RequestManager]
) -> None:
    server.configure(api_key=api_key, fail_first=1, fail_first_status=529)
    provider = AnthropicProvider(api_key=api_key, api_base=server.base_url)
    [result] = make_manager(provider).process_batch(chat_batch(1))
    assert result.ok
    assert result.attempts == 2

    server.reset()  # fail_first counts per distinct body: forget the one above
    [failed] = make_manager(provider, retry_attempts=1).process_batch(chat_batch(1))
    assert isinstance(failed.error, InternalServerError)
    assert failed.error.status_code == 529
    assert failed.error.code == "overloaded_error"

    server.configure(fail_first=0)
    wrong = AnthropicProvider(api_key="sk-wrong-" + api_key, api_base=server.base_url)
    [denied] = make_manager(wrong).process_batch(chat_batch(1))
    assert isinstance(denied.error, AuthenticationError)
    assert denied.attempts == 1
    assert denied.error.code == "authentication_error"
    assert api_key not in repr(denied.error) + str(denied.error.body)

    server.configure(fail_429=1.0, retry_after="0")
    [limited] = make_manager(provider, retry_attempts=2).process_batch(chat_batch(1))
    assert isinstance(limited.error, RateLimitError)
    assert limited.error.code == "rate_limit_error"


def test_truncated_streams_are_retried_then_reported(
    server: MockServer, make_manager: Callable[..., RequestManager]
) -> None:
    server.configure(stream_truncate=1.0)
    provider = AnthropicProvider(api_key="k", api_base=server.base_url)
    results = make_manager(provider, retry_attempts=2).process_batch(chat_batch(2))
    assert results[0].ok  # not streamed
    assert isinstance(results[1].error, ResponseDecodingError)
    assert "truncated" in str(results[1].error)
    assert results[1].attempts == 2


def test_anthropic_ratelimit_headers_are_learned(
    server: MockServer, make_manager: Callable[..., RequestManager]
) -> None:
    server.configure(rate_limit_requests=40, rate_limit_tokens=100_000, rate_limit_window=60.0)
    provider = AnthropicProvider(api_key="k", api_base=server.base_url)
    manager = make_manager(provider, concurrency=4)
    results = manager.process_batch(chat_batch(8))
    assert all(r.ok for r in results)
    stats = manager.stats()
    assert stats.request_limit == 40
    assert server.stats()["rate_limited"] == 0


@pytest.mark.parametrize("stream", [False, True])
def test_time_to_first_token_and_stream_flag(
    server: MockServer, make_manager: Callable[..., RequestManager], stream: bool
) -> None:
    provider = AnthropicProvider(api_key="k", api_base=server.base_url)
    batch = RequestBatch()
    batch.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi there"}], max_tokens=9, stream=stream
    )
    [result] = make_manager(provider).process_batch(batch)
    assert result.ok
    assert (result.ttft is not None) == stream


def test_the_aiohttp_transport_sends_the_same(
    server: MockServer, api_key: str, make_manager: Callable[..., RequestManager]
) -> None:
    server.configure(api_key=api_key)
    provider = AnthropicProvider(api_key=api_key, api_base=server.base_url, transport="aiohttp")
    results = make_manager(provider).process_batch(chat_batch(4))
    assert [read_result(r)[0] for r in results[:2]] == ["question number 0", "question number 1"]
    wrong = AnthropicProvider(api_key="x", api_base=server.base_url, transport="aiohttp")
    [denied] = make_manager(wrong).process_batch(chat_batch(1))
    assert isinstance(denied.error, AuthenticationError)


def test_unreachable_and_misconfigured(make_manager: Callable[..., RequestManager]) -> None:
    from fastllm.errors import APIConnectionError, ConfigurationError

    with pytest.raises(ConfigurationError):
        AnthropicProvider(api_key="k", api_base="ftp://example.com/v1")
    with pytest.raises(ConfigurationError):
        AnthropicProvider(api_key="k", headers={"x-bad": "a\r\nb"})
    with pytest.raises(ConfigurationError):
        AnthropicProvider(api_key="k", default_max_tokens=0)
    nowhere = AnthropicProvider(api_key="sk-nowhere", api_base="http://127.0.0.1:9/v1")
    [result] = make_manager(nowhere, retry_attempts=1).process_batch(chat_batch(1))
    assert isinstance(result.error, APIConnectionError)
    assert "sk-nowhere" not in str(result.error)
