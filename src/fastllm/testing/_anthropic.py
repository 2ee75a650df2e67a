"""The mock's Anthropic Messages API: reading requests, and the answer, stream and error bodies.

Answers follow the mock's OpenAI rules (see :mod:`fastllm.testing._requests`): the
text is the last user message's (text blocks joined), tokens are one per 4
characters, ``max_tokens`` cuts the text (``stop_reason: "max_tokens"``), and with
``tools`` (unless ``tool_choice`` is ``none``) the answer is a ``tool_use`` block of
the first (or chosen) tool with input ``{"text": <last user text>}``. The request is
checked as Anthropic does: ``model``, ``max_tokens`` and ``messages`` are required.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import orjson

from fastllm.limits.headers import parse_reset_duration
from fastllm.testing._http_heads import Header
from fastllm.testing._requests import ChatAnswer, InvalidRequest, parse_object

__all__ = [
    "ERROR_TYPES",
    "anthropic_error",
    "anthropic_limit_headers",
    "message_body",
    "message_events",
    "read_messages",
]

#: HTTP status → Anthropic ``error.type``.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def anthropic_error(status: int, message: str) -> bytes:
    """An Anthropic error body for ``status``."""
    kind = ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


def read_messages(body: bytes) -> ChatAnswer:
    """Check a Messages request; the answer, worked out by the OpenAI rules."""
    payload = parse_object(body)
    if not isinstance(payload.get("max_tokens"), int) or isinstance(payload["max_tokens"], bool):
        raise InvalidRequest("max_tokens: Field required", param="max_tokens")
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: Field required", param="messages")
    chat: list[dict[str, Any]] = []
    system = payload.get("system")
    if system:
        chat.append({"role": "system", "content": system})
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise InvalidRequest("messages: roles must be 'user' or 'assistant'", "messages")
        chat.append({"role": message["role"], "content": message.get("content")})
    openai_like: dict[str, Any] = {
        "model": payload.get("model"),
        "messages": chat,
        "max_tokens": payload["max_tokens"],
        "stream": payload.get("stream") is True,
    }
    tools = payload.get("tools")
    if tools:
        if not all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in tools):
            raise InvalidRequest("tools: every tool needs a name", param="tools")
        openai_like["tools"] = [
            {"type": "function", "function": {"name": t["name"]}} for t in tools
        ]
        choice = payload.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") == "none":
            openai_like["tool_choice"] = "none"
        elif isinstance(choice, dict) and choice.get("type") == "tool":
            openai_like["tool_choice"] = {"function": {"name": choice.get("name")}}
    return ChatAnswer(openai_like)


def _usage(answer: ChatAnswer) -> dict[str, int]:
    return {"input_tokens": answer.prompt_tokens, "output_tokens": answer.completion_tokens}


def _block(answer: ChatAnswer, message_id: str) -> dict[str, Any]:
    if answer.tool_name is None:
        return {"type": "text", "text": answer.content}
    tool_id = "toolu_" + message_id[4:]
    return {
        "type": "tool_use",
        "id": tool_id,
        "name": answer.tool_name,
        "input": orjson.loads(answer.content),
    }


def _message(answer: ChatAnswer, message_id: str, content: list[Any]) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": answer.model,
        "content": content,
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _usage(answer),
    }


def message_body(answer: ChatAnswer, message_id: str) -> bytes:
    """A Messages API answer."""
    message = _message(answer, message_id, [_block(answer, message_id)])
    message["stop_reason"] = _STOP_REASONS[answer.finish_reason]
    return orjson.dumps(message)


def _event(kind: str, data: Mapping[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


def message_events(answer: ChatAnswer, message_id: str, truncate: bool) -> list[bytes]:
    """The SSE events of a streamed answer; ``truncate`` stops after the first delta."""
    start = _message(answer, message_id, [])
    start["usage"] = {"input_tokens": answer.prompt_tokens, "output_tokens": 1}
    block = _block(answer, message_id)
    tool = block["type"] == "tool_use"
    text = answer.content
    step = max(1, math.ceil(len(text) / 3))
    pieces = [text[i : i + step] for i in range(0, len(text), step)] or [""]
    opened = {**block, "input": {}} if tool else {"type": "text", "text": ""}
    events = [
        _event("message_start", {"message": start}),
        _event("content_block_start", {"index": 0, "content_block": opened}),
        _event("ping", {}),
    ]
    for piece in pieces[:1] if truncate else pieces:
        delta = (
            {"type": "input_json_delta", "partial_json": piece}
            if tool
            else {"type": "text_delta", "text": piece}
        )
        events.append(_event("content_block_delta", {"index": 0, "delta": delta}))
    if truncate:
        return events
    stop = {"stop_reason": _STOP_REASONS[answer.finish_reason], "stop_sequence": None}
    events.append(_event("content_block_stop", {"index": 0}))
    usage = {"output_tokens": answer.completion_tokens}
    events.append(_event("message_delta", {"delta": stop, "usage": usage}))
    events.append(_event("message_stop", {}))
    return events


def anthropic_limit_headers(headers: list[Header]) -> list[Header]:
    """The mock limiter's ``x-ratelimit-*`` headers renamed as Anthropic's (RFC 3339 resets)."""
    now = time.time()
    out: list[Header] = []
    for name, value in headers:
        if not name.startswith("x-ratelimit-"):
            out.append((name, value))
            continue
        field, _, kind = name[len("x-ratelimit-") :].partition("-")  # limit-requests
        if field == "reset":
            moment = datetime.fromtimestamp(now + parse_reset_duration(value), timezone.utc)
            value = moment.isoformat().replace("+00:00", "Z")
        out.append((f"anthropic-ratelimit-{kind}-{field}", value))
    return out
