"""OpenAI-shaped answer bodies (orjson only): chat completions, SSE events, embeddings, errors."""

from __future__ import annotations

import base64
import math
import random
import re
import sys
from array import array
from typing import Any

import orjson
import xxhash

from fastllm.testing._requests import ChatAnswer, EmbeddingAnswer

__all__ = [
    "JSON",
    "SSE",
    "TEXT",
    "chat_body",
    "chat_events",
    "embedding_body",
    "error_body",
    "mock_embedding",
]

JSON = "application/json"
SSE = "text/event-stream; charset=utf-8"
TEXT = "text/plain; charset=utf-8"
_WORDS = re.compile(r"\s*\S+\s*")


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
