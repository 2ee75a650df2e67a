"""OpenAI chat requests to Anthropic's Messages API, and its answers back to ``ChatCompletion``.

Requests are written once, in the OpenAI format, whichever provider runs them. This
module maps them, field by field:

* ``system`` / ``developer`` messages → ``system`` (text blocks, in order);
* content parts: ``text`` → text blocks, ``image_url`` → image blocks (a ``data:``
  URL becomes a base64 source, any other URL a url source);
* assistant ``tool_calls`` → ``tool_use`` blocks; ``tool`` messages → ``tool_result``
  blocks of a user turn (consecutive ones joined, as Anthropic requires);
* ``tools`` → ``{"name", "description", "input_schema"}``; ``tool_choice`` ``auto``/
  ``required``/``none``/a function → ``auto``/``any``/``none``/``tool``;
  ``parallel_tool_calls=False`` → ``disable_parallel_tool_use``;
* ``max_completion_tokens`` or ``max_tokens`` → ``max_tokens`` (required by Anthropic:
  the provider's ``default_max_tokens`` fills in, else the request fails unsent);
* ``stop`` → ``stop_sequences``; ``user`` → ``metadata.user_id``; ``stream_options``
  is dropped (Anthropic always reports usage); ``n`` must be 1;
* every other field (``temperature``, ``top_p``, ``top_k``, ``thinking``, ``metadata``...)
  passes through untouched, so Anthropic-only options work and OpenAI-only ones get
  Anthropic's own 400 naming them.

A request that cannot be translated fails unsent with a
:class:`~fastllm.errors.NotRunError` that says why.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from fastllm.errors import NotRunError

__all__ = [
    "FINISH_REASONS",
    "chat_completion_from_message",
    "messages_request",
]

#: Anthropic ``stop_reason`` → OpenAI ``finish_reason``.
FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_TRANSLATED = frozenset(
    {
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "user",
        "stream_options",
        "n",
        "response_format",
    }
)


def _unsupported(message: str) -> NotRunError:
    return NotRunError(f"not sent: {message} (Anthropic's Messages API)")


def messages_request(body: Mapping[str, Any], default_max_tokens: int | None) -> dict[str, Any]:
    """The Messages API body for an OpenAI chat-completions ``body``."""
    out: dict[str, Any] = {k: v for k, v in body.items() if k not in _TRANSLATED}
    limit = body.get("max_completion_tokens") or body.get("max_tokens") or default_max_tokens
    if not limit:
        raise _unsupported(
            "max_tokens is required: set max_completion_tokens (or max_tokens) on the "
            "request, or AnthropicProvider(default_max_tokens=...)"
        )
    out["max_tokens"] = limit
    if body.get("n") not in (None, 1):
        raise _unsupported("n > 1 is not supported")
    response_format = body.get("response_format")
    if response_format is not None and response_format != {"type": "text"}:
        raise _unsupported("response_format is not supported")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise _unsupported("messages must be a list")
    system, turns = _turns(messages)
    if system:
        out["system"] = system
    out["messages"] = turns
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("tools"):
        out["tools"] = [_tool(tool) for tool in body["tools"]]
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None:
        out["tool_choice"] = choice
    if body.get("user"):
        out["metadata"] = {**(out.get("metadata") or {}), "user_id": body["user"]}
    return out


def _turns(messages: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``system`` blocks and the alternating user/assistant turns."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if not isinstance(message, Mapping):
            raise _unsupported("every message must be an object")
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_blocks(message.get("content"), images=False))
            continue
        if role == "user":
            blocks = _blocks(message.get("content"), images=True)
        elif role == "assistant":
            blocks = _blocks(message.get("content"), images=False)
            blocks.extend(_tool_use(call) for call in message.get("tool_calls") or ())
        elif role == "tool":
            role = "user"
            blocks = [_tool_result(message)]
        else:
            raise _unsupported(f"messages with role {role!r} are not supported")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)  # Anthropic wants turns to alternate
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def _blocks(content: Any, *, images: bool) -> list[dict[str, Any]]:
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise _unsupported("message content must be a string or a list of parts")
    blocks = []
    for part in content:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url" and images:
            blocks.append(_image(part.get("image_url")))
        else:
            raise _unsupported(f"content parts of type {kind!r} are not supported here")
    return blocks


def _image(image_url: Any) -> dict[str, Any]:
    url = image_url.get("url") if isinstance(image_url, Mapping) else image_url
    if not isinstance(url, str) or not url:
        raise _unsupported("an image_url part needs a url")
    if url.startswith("data:"):
        header, _, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if encoding != "base64" or not data:
            raise _unsupported("image data URLs must be base64 (data:<type>;base64,...)")
        source = {"type": "base64", "media_type": media_type, "data": data}
    else:
        source = {"type": "url", "url": url}
    return {"type": "image", "source": source}


def _tool_use(call: Any) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(function, Mapping):
        raise _unsupported("a tool call needs a function")
    arguments = function.get("arguments") or "{}"
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    except orjson.JSONDecodeError:
        raise _unsupported("tool call arguments must be a JSON object") from None
    if not isinstance(parsed, dict):
        raise _unsupported("tool call arguments must be a JSON object")
    return {"type": "tool_use", "id": call.get("id"), "name": function.get("name"), "input": parsed}


def _tool_result(message: Mapping[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.get("tool_call_id")}
    if content:
        result["content"] = content if isinstance(content, str) else _blocks(content, images=True)
    return result


def _tool(tool: Any) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, Mapping) else None
    if not isinstance(function, Mapping) or tool.get("type", "function") != "function":
        raise _unsupported("only function tools are supported")
    out: dict[str, Any] = {
        "name": function.get("name"),
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        out["description"] = function["description"]
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None:
        return {"type": "auto", "disable_parallel_tool_use": True} if parallel is False else None
    if choice == "auto":
        out: dict[str, Any] = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        return {"type": "none"}
    elif isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        out = {"type": "tool", "name": choice["function"].get("name")}
    else:
        raise _unsupported(f"tool_choice {choice!r} is not supported")
    if parallel is False:
        out["disable_parallel_tool_use"] = True
    return out


def chat_completion_from_message(
    message: Mapping[str, Any], *, keep_raw: bool = True
) -> dict[str, Any]:
    """The ``ChatCompletion`` body for an Anthropic ``message``, which is kept under ``anthropic``.

    Text blocks are joined into ``content``; ``tool_use`` blocks become ``tool_calls``
    (``input`` JSON-encoded as ``arguments``); usage counts cached input as prompt tokens.
    """
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in message.get("content") or ():
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            function = {"name": block.get("name", ""), "arguments": arguments}
            calls.append({"id": block.get("id", ""), "type": "function", "function": function})
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        reply["tool_calls"] = calls
    elif reply["content"] is None:
        reply["content"] = ""
    stop_reason = message.get("stop_reason")
    body: dict[str, Any] = {
        "id": message.get("id", ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": reply,
                "finish_reason": FINISH_REASONS.get(str(stop_reason), "stop"),
                "logprobs": None,
            }
        ],
        "usage": _usage(message.get("usage")),
    }
    if keep_raw:
        body["anthropic"] = dict(message)
    return body


def _usage(usage: Any) -> dict[str, Any]:
    if not isinstance(usage, Mapping):
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    cached = int(usage.get("cache_read_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + cached
    prompt += int(usage.get("cache_creation_input_tokens") or 0)
    completion = int(usage.get("output_tokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }
