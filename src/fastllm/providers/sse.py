"""Assembling a streamed chat completion (server-sent events) into one ``ChatCompletion``.

Each ``data:`` event is a ``chat.completion.chunk``; the assembler joins content
and tool-call argument deltas per choice, keeps the finish reason and the usage
chunk (``stream_options.include_usage``). A stream that ends before every choice
has a finish reason is truncated, which a retry may fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastllm.errors import ResponseDecodingError
from fastllm.providers.http_errors import loads_or_fail, redact

__all__ = ["StreamAssembler"]


@dataclass
class _Choice:
    index: int
    role: str = "assistant"
    content: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    finish_reason: str | None = None

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": self.role,
            "content": "".join(self.content) if self.content or not self.tool_calls else None,
        }
        if self.refusal:
            message["refusal"] = "".join(self.refusal)
        if self.tool_calls:
            message["tool_calls"] = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        return message


class StreamAssembler:
    """Feed it SSE lines; ``result()`` gives the ChatCompletion body as a dict."""

    def __init__(self, secret: str | None = None) -> None:
        self._secret = secret
        self.done = False
        self.chunks = 0
        self._choices: dict[int, _Choice] = {}
        self._meta: dict[str, Any] = {}
        self._usage: dict[str, Any] | None = None

    def feed_line(self, line: bytes) -> None:
        """Take one line of the event stream (comments and other fields are ignored)."""
        line = line.strip()
        if not line.startswith(b"data:"):
            return
        data = line[5:].strip()
        if data == b"[DONE]":
            self.done = True
            return
        chunk = loads_or_fail(data, self._secret, "a stream event")
        if not isinstance(chunk, dict):
            raise ResponseDecodingError("stream event is not a JSON object")
        if "error" in chunk:
            message = redact(str(chunk["error"]), self._secret)[:300]
            raise ResponseDecodingError(f"the stream reported an error: {message}")
        self._take(chunk)

    def _take(self, chunk: dict[str, Any]) -> None:
        self.chunks += 1
        for key in ("id", "created", "model", "system_fingerprint", "service_tier"):
            if key in chunk and key not in self._meta:
                self._meta[key] = chunk[key]
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for delta_choice in chunk.get("choices") or ():
            index = delta_choice.get("index", 0)
            choice = self._choices.get(index)
            if choice is None:
                choice = self._choices[index] = _Choice(index)
            delta = delta_choice.get("delta") or {}
            if delta.get("role"):
                choice.role = delta["role"]
            if delta.get("content"):
                choice.content.append(delta["content"])
            if delta.get("refusal"):
                choice.refusal.append(delta["refusal"])
            for call in delta.get("tool_calls") or ():
                _merge_tool_call(choice.tool_calls, call)
            if delta_choice.get("finish_reason"):
                choice.finish_reason = delta_choice["finish_reason"]

    def result(self) -> dict[str, Any]:
        """The assembled ``ChatCompletion`` body; raises when the stream was truncated."""
        if not self._choices:
            raise ResponseDecodingError("the stream ended before any choice arrived")
        unfinished = [c.index for c in self._choices.values() if c.finish_reason is None]
        if unfinished:
            raise ResponseDecodingError(
                f"the stream ended without a finish_reason for choice(s) {unfinished} (truncated)"
            )
        body: dict[str, Any] = {
            "id": self._meta.get("id", ""),
            "object": "chat.completion",
            "created": self._meta.get("created", 0),
            "model": self._meta.get("model", ""),
            "choices": [
                {
                    "index": c.index,
                    "message": c.message(),
                    "finish_reason": c.finish_reason,
                    "logprobs": None,
                }
                for c in sorted(self._choices.values(), key=lambda c: c.index)
            ],
        }
        for key in ("system_fingerprint", "service_tier"):
            if key in self._meta:
                body[key] = self._meta[key]
        if self._usage is not None:
            body["usage"] = self._usage
        return body


def _merge_tool_call(calls: dict[int, dict[str, Any]], delta: dict[str, Any]) -> None:
    index = delta.get("index", len(calls))
    call = calls.get(index)
    if call is None:
        call = calls[index] = {
            "id": "",
            "type": "function",
            "function": {"name": "", "arguments": ""},
        }
    if delta.get("id"):
        call["id"] = delta["id"]
    if delta.get("type"):
        call["type"] = delta["type"]
    function = delta.get("function") or {}
    if function.get("name"):
        call["function"]["name"] += function["name"]
    if function.get("arguments"):
        call["function"]["arguments"] += function["arguments"]
