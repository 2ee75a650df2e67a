"""Reading mock requests, building OpenAI-shaped answers (orjson only) and rate-limit state.

The mock's answers are deterministic so that tests can check every one:

* a chat answer's content is the text of the last user message (list-of-parts
  content: the text parts concatenated with no separator);
* tokens are counted with :func:`count_tokens` (one token per 4 characters);
* an embedding is :func:`mock_embedding` of the input.

:class:`RateLimiter` is the server-side limit: one continuously refilling
bucket per configured limit (capacity = the limit, refilled at limit/window per
second), which is how OpenAI describes its limits; its state gives the
``x-ratelimit-*`` headers.
"""

from __future__ import annotations

import base64
import math
import random
import re
import sys
import time
from array import array
from typing import Any

import orjson
import xxhash

__all__ = [
    "JSON",
    "SSE",
    "TEXT",
    "ChatAnswer",
    "EmbeddingAnswer",
    "InvalidRequest",
    "RateLimiter",
    "chat_body",
    "chat_events",
    "count_tokens",
    "embedding_body",
    "error_body",
    "format_duration",
    "mock_embedding",
    "parse_object",
    "read_chat",
    "read_embeddings",
]

JSON = "application/json"
SSE = "text/event-stream; charset=utf-8"
TEXT = "text/plain; charset=utf-8"
_CHARS_PER_TOKEN = 4
_MAX_N = 128
_WORDS = re.compile(r"\s*\S+\s*")


def count_tokens(text: str) -> int:
    """The mock's token count: one token per 4 characters, at least 1 (``max(1, ceil(len/4))``)."""
    return max(1, (len(text) + 3) // 4)


def mock_embedding(text: str | list[int], dim: int) -> list[float]:
    """The deterministic unit vector (float32-representable) the mock returns for ``text``.

    A list of ints is one token array.  The vector comes from a PRNG seeded with
    an xxhash of the input, so equal inputs always give equal vectors.
    """
    if dim < 1:
        raise ValueError("dim must be at least 1")
    if isinstance(text, str):
        key = text.encode("utf-8")
    else:
        key = b"\x00tokens:" + ",".join([str(int(token)) for token in text]).encode()
    rng = random.Random(xxhash.xxh64_intdigest(key))
    raw = [rng.random() * 2.0 - 1.0 for _ in range(dim)]
    norm = math.sqrt(math.fsum(x * x for x in raw)) or 1.0
    return array("f", [x / norm for x in raw]).tolist()


def format_duration(seconds: float) -> str:
    """Format like OpenAI's rate-limit reset headers: ``20ms``, ``1s``, ``6m0s``, ``1m30.5s``."""
    millis = max(0, math.ceil(seconds * 1000 - 1e-6))
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


class InvalidRequest(Exception):
    """A request the mock rejects with 400, described like OpenAI does."""

    def __init__(
        self, message: str, param: str | None = None, code: str | None = "invalid_request_error"
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


def error_body(
    style: str, message: str, err_type: str, code: str | None, param: str | None = None
) -> tuple[bytes, str]:
    """An error body in ``style`` (openai, detail or text) and its content type."""
    if style == "openai":
        error = {"message": message, "type": err_type, "param": param, "code": code}
        return orjson.dumps({"error": error}), JSON
    if style == "detail":
        return orjson.dumps({"detail": message}), JSON
    return message.encode("utf-8"), TEXT


def parse_object(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or :class:`InvalidRequest`."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly.)",
            code=None,
        ) from None
    if not isinstance(payload, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return payload


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        ]
        return "".join([t for t in texts if isinstance(t, str)])
    raise InvalidRequest("Invalid type for 'messages[].content'.", param="messages")


def _positive_int(payload: dict[str, Any], name: str, upper: int | None = None) -> int | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest(f"Invalid '{name}': expected an integer >= 1.", param=name)
    if upper is not None and value > upper:
        raise InvalidRequest(f"Invalid '{name}': expected at most {upper}.", param=name)
    return value


def _model(payload: dict[str, Any]) -> str:
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest(
            "you must provide a model parameter", param="model", code="missing_required_parameter"
        )
    return model


def _tool_name(payload: dict[str, Any]) -> str | None:
    tools = payload.get("tools")
    if not tools:
        return None
    choice = payload.get("tool_choice")
    if choice == "none":
        return None
    try:
        if isinstance(choice, dict):
            return str(choice["function"]["name"])
        return str(tools[0]["function"]["name"])
    except (KeyError, IndexError, TypeError):
        raise InvalidRequest("Invalid 'tools' or 'tool_choice'.", param="tools") from None


class ChatAnswer:
    """What the mock answers to one chat request."""

    __slots__ = (
        "completion_tokens",
        "content",
        "cost",
        "finish_reason",
        "include_usage",
        "model",
        "n",
        "prompt_tokens",
        "stream",
        "tool_name",
    )

    def __init__(self, payload: dict[str, Any]) -> None:
        self.model = _model(payload)
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidRequest(
                "Missing required parameter: 'messages'.",
                param="messages",
                code="missing_required_parameter",
            )
        prompt_tokens = 0
        last_user = ""
        for message in messages:
            if type(message) is not dict:
                raise InvalidRequest("Invalid type for 'messages[]'.", param="messages")
            content = message.get("content")
            text = content if type(content) is str else _text_of(content)
            prompt_tokens += (len(text) + 3) // 4 or 1  # count_tokens, inlined
            if message.get("role") == "user":
                last_user = text
        self.prompt_tokens = prompt_tokens
        n = payload.get("n")
        self.n = 1 if n is None else _positive_int(payload, "n", _MAX_N) or 1
        limit = payload.get("max_completion_tokens")
        name = "max_completion_tokens"
        if limit is None:
            limit = payload.get("max_tokens")
            name = "max_tokens"
        if limit is not None and (type(limit) is not int or limit < 1):
            raise InvalidRequest(f"Invalid '{name}': expected an integer >= 1.", param=name)
        self.cost = prompt_tokens + (limit or 0) * self.n
        self.stream = payload.get("stream") is True
        options = payload.get("stream_options")
        self.include_usage = isinstance(options, dict) and options.get("include_usage") is True
        self.tool_name = _tool_name(payload)
        if self.tool_name is not None:
            self.content = orjson.dumps({"text": last_user}).decode()
            self.finish_reason = "tool_calls"
            tokens = count_tokens(self.content)
        else:
            self.content = last_user
            self.finish_reason = "stop"
            tokens = count_tokens(last_user)
            if limit is not None and limit < tokens:
                self.content = last_user[: limit * _CHARS_PER_TOKEN]
                self.finish_reason = "length"
                tokens = limit
        self.completion_tokens = tokens * self.n


def read_chat(body: bytes) -> ChatAnswer:
    """Read and check a chat-completions request body."""
    return ChatAnswer(parse_object(body))


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _message(answer: ChatAnswer, call_id: str) -> dict[str, Any]:
    if answer.tool_name is None:
        return {"role": "assistant", "content": answer.content, "refusal": None}
    function = {"name": answer.tool_name, "arguments": answer.content}
    call = {"id": call_id, "type": "function", "function": function}
    return {"role": "assistant", "content": None, "refusal": None, "tool_calls": [call]}


def chat_body(answer: ChatAnswer, completion_id: str, created: int) -> bytes:
    """A ``chat.completion`` object."""
    message = _message(answer, "call_" + completion_id[9:])
    choices = [
        {"index": i, "message": message, "logprobs": None, "finish_reason": answer.finish_reason}
        for i in range(answer.n)
    ]
    return orjson.dumps(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": answer.model,
            "choices": choices,
            "usage": _usage(answer.prompt_tokens, answer.completion_tokens),
            "system_fingerprint": "fp_mock",
        }
    )


def _pieces(text: str, tool: bool) -> list[str]:
    if tool:
        step = max(1, math.ceil(len(text) / 3))
        return [text[i : i + step] for i in range(0, len(text), step)]
    pieces = _WORDS.findall(text) or ([text] if text else [])
    if len(pieces) < 2 and len(text) >= 2:
        half = len(text) // 2
        pieces = [text[:half], text[half:]]
    return pieces


def _deltas(answer: ChatAnswer) -> list[dict[str, Any]]:
    """The deltas of one choice after its first (role) delta."""
    tool = answer.tool_name is not None
    if not tool:
        return [{"content": piece} for piece in _pieces(answer.content, tool)]
    return [
        {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
        for piece in _pieces(answer.content, tool)
    ]


def _first_delta(answer: ChatAnswer, call_id: str) -> dict[str, Any]:
    if answer.tool_name is None:
        return {"role": "assistant", "content": ""}
    function = {"name": answer.tool_name, "arguments": ""}
    call = {"index": 0, "id": call_id, "type": "function", "function": function}
    return {"role": "assistant", "content": None, "tool_calls": [call]}


def chat_events(
    answer: ChatAnswer, completion_id: str, created: int, usage: bool, truncate: bool
) -> list[bytes]:
    """The SSE events of a streamed answer, ``data: [DONE]`` included.

    ``truncate`` keeps only the role chunk and one content chunk (no finish_reason).
    """
    base: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": answer.model,
        "system_fingerprint": "fp_mock",
    }
    if usage:
        base["usage"] = None

    def event(choices: list[dict[str, Any]]) -> bytes:
        return b"data: " + orjson.dumps({**base, "choices": choices}) + b"\n\n"

    call_id = "call_" + completion_id[9:]
    deltas = [_first_delta(answer, call_id), *_deltas(answer)]
    events: list[bytes] = []
    for index in range(1 if truncate else answer.n):
        for delta in deltas[:2] if truncate else deltas:
            events.append(event([{"index": index, "delta": delta, "finish_reason": None}]))
        if not truncate:
            final = {"index": index, "delta": {}, "finish_reason": answer.finish_reason}
            events.append(event([final]))
    if usage and not truncate:
        base["usage"] = _usage(answer.prompt_tokens, answer.completion_tokens)
        events.append(event([]))
    events.append(b"data: [DONE]\n\n")
    return events


def _embedding_items(value: Any) -> list[str | list[int]]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise InvalidRequest("'$.input' is invalid. Please check the API reference.", "input")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return [value]
    items: list[str | list[int]] = []
    for item in value:
        ok = isinstance(item, str) or (isinstance(item, list) and all(type(t) is int for t in item))
        if not ok or not item:
            raise InvalidRequest("'$.input' is invalid. Please check the API reference.", "input")
        items.append(item)
    return items


class EmbeddingAnswer:
    """What the mock answers to one embeddings request."""

    __slots__ = ("base64", "cost", "dim", "items", "model", "prompt_tokens")

    def __init__(self, payload: dict[str, Any], default_dim: int, max_dim: int) -> None:
        self.model = _model(payload)
        if "input" not in payload:
            raise InvalidRequest(
                "Missing required parameter: 'input'.",
                param="input",
                code="missing_required_parameter",
            )
        self.items = _embedding_items(payload["input"])
        self.dim = _positive_int(payload, "dimensions", max_dim) or default_dim
        encoding = payload.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise InvalidRequest("Invalid 'encoding_format'.", param="encoding_format")
        self.base64 = encoding == "base64"
        self.prompt_tokens = sum(
            [count_tokens(item) if isinstance(item, str) else len(item) for item in self.items]
        )
        self.cost = self.prompt_tokens


def read_embeddings(body: bytes, default_dim: int, max_dim: int) -> EmbeddingAnswer:
    """Read and check an embeddings request body."""
    return EmbeddingAnswer(parse_object(body), default_dim, max_dim)


def _encode_base64(vector: list[float]) -> str:
    packed = array("f", vector)
    if sys.byteorder == "big":  # pragma: no cover - OpenAI sends little-endian float32
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def embedding_body(answer: EmbeddingAnswer) -> bytes:
    """A ``list`` of ``embedding`` objects, float lists or base64 strings."""
    data = []
    for index, item in enumerate(answer.items):
        vector = mock_embedding(item, answer.dim)
        embedding: list[float] | str = _encode_base64(vector) if answer.base64 else vector
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    usage = {"prompt_tokens": answer.prompt_tokens, "total_tokens": answer.prompt_tokens}
    return orjson.dumps({"object": "list", "data": data, "model": answer.model, "usage": usage})


class _Bucket:
    """A continuously refilling bucket: ``capacity`` per ``window`` seconds."""

    __slots__ = ("capacity", "level", "rate", "stamp")

    def __init__(self, capacity: int, window: float, now: float) -> None:
        self.capacity = float(capacity)
        self.rate = capacity / window
        self.level = float(capacity)
        self.stamp = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait(self, cost: float) -> float:
        """Seconds until ``cost`` fits (0 when it fits now)."""
        return 0.0 if cost <= self.level else (cost - self.level) / self.rate

    def headers(self, kind: str) -> list[tuple[str, str]]:
        reset = (self.capacity - self.level) / self.rate
        return [
            (f"x-ratelimit-limit-{kind}", str(int(self.capacity))),
            (f"x-ratelimit-remaining-{kind}", str(max(0, int(self.level)))),
            (f"x-ratelimit-reset-{kind}", format_duration(reset)),
        ]


class RateLimiter:
    """The server-side limit: a refilling bucket for requests and one for tokens."""

    def __init__(self, requests: int | None, tokens: int | None, window: float) -> None:
        now = time.monotonic()
        self.window = window
        self._buckets: list[tuple[str, _Bucket]] = []
        if requests is not None:
            self._buckets.append(("requests", _Bucket(requests, window, now)))
        if tokens is not None:
            self._buckets.append(("tokens", _Bucket(tokens, window, now)))

    def acquire(self, tokens: int) -> tuple[float, str]:
        """Take one request and ``tokens``; else return (seconds to wait, limit name), untaken."""
        now = time.monotonic()
        wait, kind = 0.0, ""
        for name, bucket in self._buckets:
            bucket.refill(now)
            needed = bucket.wait(1 if name == "requests" else tokens)
            if needed > wait:
                wait, kind = needed, name
        if wait == 0.0:
            for name, bucket in self._buckets:
                bucket.level -= 1 if name == "requests" else tokens
        return wait, kind

    def headers(self) -> list[tuple[str, str]]:
        """The ``x-ratelimit-*`` headers for the current state."""
        now = time.monotonic()
        result: list[tuple[str, str]] = []
        for name, bucket in self._buckets:
            bucket.refill(now)
            result.extend(bucket.headers(name))
        return result
