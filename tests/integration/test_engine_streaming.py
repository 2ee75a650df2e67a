"""Streaming (SSE assembly), tool calls and pass-through fields, end to end."""

from __future__ import annotations

import json

from fastllm import OpenAIProvider, RequestBatch
from fastllm.errors import ResponseDecodingError
from fastllm.testing import MockServer

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
        },
    }
]


def one(prompt: str, **params: object) -> RequestBatch:
    batch = RequestBatch()
    batch.chat.completions.create(
        model="mock-model", messages=[{"role": "user", "content": prompt}], **params
    )
    return batch


def test_a_stream_is_assembled_into_one_chat_completion(
    provider: OpenAIProvider, make_manager
) -> None:
    prompt = "the quick brown fox jumps over the lazy dog"
    plain, streamed = make_manager(provider).process_batch(
        RequestBatch.merge(
            [one(prompt), one(prompt, stream=True, stream_options={"include_usage": True})]
        )
    )
    assert streamed.ok, streamed.error
    message = streamed.response.choices[0].message
    assert message.content == prompt == plain.response.choices[0].message.content
    assert message.role == "assistant"
    assert streamed.response.choices[0].finish_reason == "stop"
    assert streamed.response.object == "chat.completion"
    assert streamed.usage == plain.usage
    assert streamed.ttft is not None
    assert plain.ttft is None


def test_streams_without_usage_are_counted_and_said(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    server.configure(stream_usage=False)
    manager = make_manager(provider)
    (result,) = manager.process_batch(one("no usage here", stream=True))
    assert result.ok
    assert result.usage is None
    stats = manager.stats()
    assert stats.streams_without_usage == 1
    assert "had no usage" in stats.summary()


def test_truncated_streams_are_retried(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    server.configure(stream_truncate=1.0)
    (failed,) = make_manager(provider, retry_attempts=2).process_batch(one("cut", stream=True))
    assert isinstance(failed.error, ResponseDecodingError)
    assert "truncated" in str(failed.error)
    assert failed.attempts == 2
    server.configure(stream_truncate=0.5, seed=5)
    results = make_manager(provider, retry_attempts=12).process_batch(
        RequestBatch.merge([one(f"s{i}", stream=True) for i in range(20)])
    )
    assert all(r.ok for r in results)
    assert [r.response.choices[0].message.content for r in results] == [f"s{i}" for i in range(20)]


def test_stream_idle_timeout(
    provider: OpenAIProvider, server: MockServer, make_manager, api_key: str
) -> None:
    server.configure(stream_chunk_delay=0.5)
    slow = OpenAIProvider(api_key=api_key, api_base=server.base_url, stream_idle_timeout=0.1)
    (result,) = make_manager(slow, retry_attempts=1).process_batch(
        one("one two three", stream=True)
    )
    assert not result.ok
    assert "within" in str(result.error)


def test_tool_calls_plain_and_streamed(provider: OpenAIProvider, make_manager) -> None:
    batch = RequestBatch.merge(
        [one("find me", tools=TOOLS), one("find me too", tools=TOOLS, stream=True)]
    )
    plain, streamed = make_manager(provider).process_batch(batch)
    for result, text in ((plain, "find me"), (streamed, "find me too")):
        assert result.ok, result.error
        choice = result.response.choices[0]
        assert choice.finish_reason == "tool_calls"
        (call,) = choice.message.tool_calls
        assert call.function.name == "lookup"
        assert json.loads(call.function.arguments) == {"text": text}
        assert call.id


def test_extra_fields_reach_the_server_untouched(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    # The mock truncates to max_completion_tokens (4 characters a token): proof it arrived.
    (result,) = make_manager(provider).process_batch(
        one("abcdefghijklmnop", max_completion_tokens=2, response_format={"type": "text"}, top_k=3)
    )
    assert result.response.choices[0].message.content == "abcdefgh"
    assert result.response.choices[0].finish_reason == "length"
