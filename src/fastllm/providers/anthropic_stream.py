"""Assembling an Anthropic Messages stream (server-sent events) into one Message.

The events, in order: ``message_start`` (id, model, input usage), for each content
block ``content_block_start`` / ``content_block_delta`` (``text_delta``,
``input_json_delta`` with pieces of a tool call's JSON input, ``thinking_delta``...)
/ ``content_block_stop``, then ``message_delta`` (``stop_reason``, cumulative output
usage) and ``message_stop``; ``ping`` may come at any time and an ``error`` event
ends the stream. The result is the Message the non-streamed API would have
returned, so one translation serves both. A stream that ends before
``message_stop`` is truncated, which a retry may fix.
"""

from __future__ import annotations

from typing import Any

import orjson

from fastllm.errors import ResponseDecodingError
from fastllm.providers.http_errors import loads_or_fail, redact

__all__ = ["MessageStreamAssembler"]

#: Error types of an ``error`` event worth another attempt.
_RETRYABLE_ERRORS = frozenset(
    {"overloaded_error", "api_error", "rate_limit_error", "timeout_error"}
)
#: Delta type → the block field its pieces build ("input": JSON text, parsed at the end).
_DELTA_FIELDS = {"text_delta": "text", "thinking_delta": "thinking", "input_json_delta": "input"}


class MessageStreamAssembler:
    """Feed it SSE lines; ``result()`` gives the assembled Anthropic Message as a dict."""

    def __init__(self, secret: str | None = None) -> None:
        self._secret = secret
        self.done = False
        self.content_started = False
        self._message: dict[str, Any] | None = None
        self._blocks: dict[int, dict[str, Any]] = {}
        # pieces per (block, field), joined once at the end: repeated concatenation
        # would cost time quadratic in the length of the answer
        self._pieces: dict[tuple[int, str], list[str]] = {}

    def feed_line(self, line: bytes) -> bool:
        """Take one line of the event stream; True once the stream is complete."""
        line = line.strip()
        if not line.startswith(b"data:"):
            return self.done  # "event:" lines repeat the data's type; comments are ignored
        event = loads_or_fail(line[5:].strip(), self._secret, "a stream event")
        if not isinstance(event, dict):
            raise ResponseDecodingError("stream event is not a JSON object")
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message")
            if not isinstance(message, dict):
                raise ResponseDecodingError("message_start without a message")
            self._message = {**message, "content": []}
        elif kind == "content_block_start":
            block = event.get("content_block")
            if not isinstance(block, dict):
                raise ResponseDecodingError("content_block_start without a content_block")
            self._blocks[_index(event)] = dict(block)
        elif kind == "content_block_delta":
            self._delta(_index(event), event.get("delta"))
        elif kind == "message_delta":
            self._message_delta(event)
        elif kind == "message_stop":
            self.done = True
        elif kind == "error":
            self._error(event.get("error"))
        return self.done

    def _delta(self, index: int, delta: Any) -> None:
        block = self._blocks.get(index)
        if block is None or not isinstance(delta, dict):
            raise ResponseDecodingError(f"a delta for content block {index}, which never started")
        self.content_started = True
        kind = delta.get("type")
        field = _DELTA_FIELDS.get(str(kind))
        if field is not None:
            value = delta.get("partial_json" if field == "input" else field)
            self._pieces.setdefault((index, field), []).append(str(value or ""))
        elif kind == "signature_delta":
            block["signature"] = str(delta.get("signature") or "")

    def _message_delta(self, event: dict[str, Any]) -> None:
        if self._message is None:
            raise ResponseDecodingError("message_delta before message_start")
        delta = event.get("delta")
        if isinstance(delta, dict):
            for key in ("stop_reason", "stop_sequence"):
                if key in delta:
                    self._message[key] = delta[key]
        usage = event.get("usage")
        if isinstance(usage, dict):  # cumulative counts: the latest figure wins
            self._message["usage"] = {**(self._message.get("usage") or {}), **usage}

    def _error(self, error: Any) -> None:
        kind = error.get("type") if isinstance(error, dict) else None
        text = redact(str(error.get("message") if isinstance(error, dict) else error), self._secret)
        raise ResponseDecodingError(
            f"the stream reported an error: {kind}: {text[:300]}",
            retryable=kind in _RETRYABLE_ERRORS,
        )

    def result(self) -> dict[str, Any]:
        """The assembled Message; raises when the stream was truncated."""
        message = self._message
        if message is None:
            raise ResponseDecodingError("the stream ended before message_start")
        if not self.done or message.get("stop_reason") is None:
            raise ResponseDecodingError("the stream ended before message_stop (truncated)")
        for (index, field), pieces in self._pieces.items():
            block = self._blocks[index]
            if field != "input":
                block[field] = str(block.get(field) or "") + "".join(pieces)
                continue
            text = "".join(pieces)
            try:
                block["input"] = orjson.loads(text) if text else {}
            except orjson.JSONDecodeError:
                raise ResponseDecodingError(
                    f"tool input of content block {index} is not valid JSON"
                ) from None
        self._pieces.clear()
        content = [self._blocks[index] for index in sorted(self._blocks)]
        return {**message, "content": content}


def _index(event: dict[str, Any]) -> int:
    index = event.get("index")
    if type(index) is not int or index < 0:
        raise ResponseDecodingError(f"stream event with a bad index: {index!r}")
    return index
