"""The Anthropic translation, stream assembly and rate-limit header renaming, as pure functions."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import orjson
import pytest

from fastllm.errors import NotRunError, ResponseDecodingError
from fastllm.limits import parse_ratelimit_headers
from fastllm.providers.anthropic_limits import with_openai_ratelimit_names
from fastllm.providers.anthropic_stream import MessageStreamAssembler
from fastllm.providers.anthropic_translate import chat_completion_from_message, messages_request


def test_a_full_conversation_is_translated() -> None:
    body = {
        "model": "claude-x",
        "messages": [
            {"role": "system", "content": "One."},
            {"role": "developer", "content": [{"type": "text", "text": "Two."}]},
            {"role": "user", "content": "look"},
            {
                "role": "assistant",
                "content": "calling",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                    {
                        "id": "c2",
                        "type": "function",
                        "function": {"name": "g", "arguments": '{"a": 1}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "r1"},
            {"role": "tool", "tool_call_id": "c2", "content": "r2"},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/i.png"}},
                ],
            },
        ],
        "max_completion_tokens": 100,
        "stop": "END",
        "temperature": 0.2,
        "top_k": 5,
        "tools": [{"type": "function", "function": {"name": "f", "description": "d"}}],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "user": "u1",
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    out = messages_request(body, None)
    assert out["system"] == [{"type": "text", "text": "One."}, {"type": "text", "text": "Two."}]
    assert out["max_tokens"] == 100
    assert out["stop_sequences"] == ["END"]
    assert (out["temperature"], out["top_k"], out["stream"]) == (0.2, 5, True)
    assert out["tools"] == [
        {"name": "f", "input_schema": {"type": "object", "properties": {}}, "description": "d"}
    ]
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert out["metadata"] == {"user_id": "u1"}
    assert "stream_options" not in out
    assert "max_completion_tokens" not in out
    user, assistant, results = out["messages"]
    assert user == {"role": "user", "content": [{"type": "text", "text": "look"}]}
    assert assistant["content"][1:] == [
        {"type": "tool_use", "id": "c1", "name": "f", "input": {}},
        {"type": "tool_use", "id": "c2", "name": "g", "input": {"a": 1}},
    ]
    assert results["role"] == "user"
    assert results["content"] == [
        {"type": "tool_result", "tool_use_id": "c1", "content": "r1"},
        {"type": "tool_result", "tool_use_id": "c2", "content": "r2"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAAA"},
        },
        {"type": "image", "source": {"type": "url", "url": "https://x.test/i.png"}},
    ]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"max_tokens": None}, "max_tokens is required"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"messages": [{"role": "function", "content": "x"}]}, "role 'function'"),
        ({"tool_choice": "sometimes", "tools": []}, "tool_choice"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "'input_audio'",
        ),
    ],
)
def test_untranslatable_requests_say_why(change: dict[str, object], words: str) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5}
    body.update(change)
    with pytest.raises(NotRunError, match=words):
        messages_request(body, None)


def test_default_max_tokens_fills_in() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    assert messages_request(body, 77)["max_tokens"] == 77


def test_answers_become_chat_completions() -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "model": "claude-x",
        "content": [
            {"type": "thinking", "thinking": "hmm"},
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"q": "é"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 3},
    }
    body = chat_completion_from_message(message)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me look."
    [call] = choice["message"]["tool_calls"]
    assert call["id"] == "toolu_1"
    assert orjson.loads(call["function"]["arguments"]) == {"q": "é"}
    assert body["usage"]["prompt_tokens"] == 15
    assert body["usage"]["total_tokens"] == 18
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": 5}
    assert body["anthropic"] == message
    for reason, finish in [("end_turn", "stop"), ("max_tokens", "length"), ("refusal", None)]:
        body = chat_completion_from_message({**message, "stop_reason": reason}, keep_raw=False)
        assert body["choices"][0]["finish_reason"] == (finish or "content_filter")
        assert "anthropic" not in body


def _sse(kind: str, **data: object) -> list[bytes]:
    return [f"event: {kind}".encode(), b"data: " + orjson.dumps({"type": kind, **data}), b""]


def test_a_stream_with_text_and_a_tool_call_is_assembled() -> None:
    lines = [
        *_sse("message_start", message={"id": "m1", "model": "c", "usage": {"input_tokens": 9}}),
        *_sse("content_block_start", index=0, content_block={"type": "text", "text": ""}),
        *_sse("ping"),
        *_sse("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hel"}),
        *_sse("content_block_delta", index=0, delta={"type": "text_delta", "text": "lo"}),
        *_sse("content_block_stop", index=0),
        *_sse(
            "content_block_start",
            index=1,
            content_block={"type": "tool_use", "id": "t1", "name": "f", "input": {}},
        ),
        *_sse(
            "content_block_delta",
            index=1,
            delta={"type": "input_json_delta", "partial_json": '{"a"'},
        ),
        *_sse(
            "content_block_delta",
            index=1,
            delta={"type": "input_json_delta", "partial_json": ": 2}"},
        ),
        *_sse("message_delta", delta={"stop_reason": "tool_use"}, usage={"output_tokens": 12}),
        *_sse("message_stop"),
    ]
    assembler = MessageStreamAssembler()
    assert [assembler.feed_line(line) for line in lines][-2] is True  # the message_stop data line
    message = assembler.result()
    assert message["content"] == [
        {"type": "text", "text": "Hello"},
        {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 2}},
    ]
    assert message["usage"] == {"input_tokens": 9, "output_tokens": 12}
    body = chat_completion_from_message(message)
    assert body["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_errors_and_truncation() -> None:
    assembler = MessageStreamAssembler(secret="sk-secret")
    assembler.feed_line(b'data: {"type": "message_start", "message": {"id": "m"}}')
    with pytest.raises(ResponseDecodingError, match="truncated"):
        assembler.result()
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "busy sk-secret"}}
    with pytest.raises(ResponseDecodingError) as caught:
        assembler.feed_line(b"data: " + orjson.dumps(error))
    assert caught.value.retryable
    assert "sk-secret" not in str(caught.value)
    bad = {"type": "error", "error": {"type": "invalid_request_error", "message": "no"}}
    with pytest.raises(ResponseDecodingError) as caught:
        MessageStreamAssembler().feed_line(b"data: " + orjson.dumps(bad))
    assert not caught.value.retryable
    orphan = {"type": "content_block_delta", "index": 3, "delta": {"type": "text_delta"}}
    with pytest.raises(ResponseDecodingError, match="never started"):
        MessageStreamAssembler().feed_line(b"data: " + orjson.dumps(orphan))


def test_anthropic_ratelimit_headers_are_renamed() -> None:
    reset = datetime.fromtimestamp(time.time() + 30, timezone.utc).isoformat()
    headers = {
        "Anthropic-Ratelimit-Requests-Limit": "50",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": reset.replace("+00:00", "Z"),
        "anthropic-ratelimit-input-tokens-limit": "40000",
        "anthropic-ratelimit-input-tokens-remaining": "39000",
        "anthropic-ratelimit-input-tokens-reset": "not a date",
    }
    parsed = parse_ratelimit_headers(with_openai_ratelimit_names(headers))
    assert parsed is not None
    assert (parsed.limit_requests, parsed.remaining_requests) == (50, 49)
    assert (parsed.limit_tokens, parsed.remaining_tokens) == (40000, 39000)
    assert parsed.reset_requests is not None
    assert 28 < parsed.reset_requests <= 30
    assert parsed.reset_tokens is None
    plain = {"content-type": "application/json"}
    assert with_openai_ratelimit_names(plain) is plain
