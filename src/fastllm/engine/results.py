"""``ResponseWrapper``: one result of a run, successful or not.

The answer is kept as it arrived (the JSON bytes of a network or cache answer, or
a dict the engine assembled), decoded on first access of ``body`` (the bytes are
then dropped) and turned into the openai type (``ChatCompletion`` or
``CreateEmbeddingResponse``) on first access of ``response``: a run of a million
cached answers pays for neither unless it reads them. A failed result has
``ok == False`` and the typed exception in ``error``.
"""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import orjson

from fastllm.errors import ResponseDecodingError
from fastllm.requests.model import Endpoint

if TYPE_CHECKING:
    from openai.types import CompletionUsage, CreateEmbeddingResponse
    from openai.types.chat import ChatCompletion

    from fastllm.errors import FastLLMError
    from fastllm.requests.model import Request

__all__ = ["ResponseWrapper", "dummy_response", "total_tokens_in", "total_tokens_of"]

_DUMMY_BODY: dict[str, Any] = {
    "id": "dummy_id",
    "object": "chat.completion",
    "created": 0,
    "model": "dummy_model",
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": "dummy_content"},
        }
    ],
    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
}
_dummy: ChatCompletion | None = None


def dummy_response() -> ChatCompletion:
    """The placeholder answer of ``return_dummy_on_error=True`` (the reference's behaviour)."""
    global _dummy
    if _dummy is None:
        from openai.types.chat import ChatCompletion

        _dummy = ChatCompletion.model_validate(_DUMMY_BODY)
    return _dummy


def __getattr__(name: str) -> Any:
    if name == "DUMMY_RESPONSE":  # built on first use: the openai types are slow to import
        return dummy_response()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ResponseWrapper:
    """The result for one request, with ``request_id``, ``custom_id`` and its order.

    ``order`` is the position of the request in its run; ``cached`` is True when the
    answer came from the cache, ``deduplicated`` when it was shared from an
    identical request of the same run; ``attempts`` counts the HTTP attempts made;
    ``latency`` is seconds from first send to answer.
    """

    # One slot per field and nothing else (no __dict__): a million results are a
    # million of these. ``_answer`` is the JSON bytes as received, or the dict.
    __slots__ = (
        "_answer",
        "_response",
        "attempts",
        "cached",
        "custom_id",
        "deduplicated",
        "endpoint",
        "error",
        "latency",
        "order",
        "request_id",
        "ttft",
    )

    def __init__(
        self,
        *,
        request_id: str,
        order: int,
        custom_id: str,
        endpoint: Endpoint,
        body: dict[str, Any] | None = None,
        raw: bytes | None = None,
        error: FastLLMError | None = None,
        response: ChatCompletion | CreateEmbeddingResponse | None = None,
        attempts: int = 0,
        cached: bool = False,
        deduplicated: bool = False,
        latency: float | None = None,
        ttft: float | None = None,
    ) -> None:
        self.request_id = request_id
        self.order = order
        self.custom_id = custom_id
        self.endpoint = endpoint
        self._answer: bytes | dict[str, Any] | None = body if body is not None else raw
        self._response = response
        self.error = error
        self.attempts = attempts
        self.cached = cached
        self.deduplicated = deduplicated
        self.latency = latency
        self.ttft = ttft

    @classmethod
    def from_cache(cls, request: Request, raw: bytes) -> ResponseWrapper:
        """The result of ``request`` answered by the cache's JSON bytes ``raw``.

        The engine's hot path for a cached re-run: fields are set directly, which
        costs a third of the keyword constructor.
        """
        result = cls.__new__(cls)
        result.request_id = request.request_id
        result.order = request.order
        result.custom_id = request.custom_id
        result.endpoint = request.endpoint
        result._answer = raw
        result._response = None
        result.error = None
        result.attempts = 0
        result.cached = True
        result.deduplicated = False
        result.latency = None
        result.ttft = None
        return result

    def shared_with(self, order: int, custom_id: str) -> ResponseWrapper:
        """The same result for another order of an identical request (deduplicated)."""
        result = ResponseWrapper.__new__(ResponseWrapper)
        result.request_id = self.request_id
        result.order = order
        result.custom_id = custom_id
        result.endpoint = self.endpoint
        result._answer = self._answer
        result._response = self._response if self.error is not None else None
        result.error = self.error
        result.attempts = self.attempts
        result.cached = self.cached
        result.deduplicated = True
        result.latency = self.latency
        result.ttft = self.ttft
        return result

    @classmethod
    def unparsed(cls, order: int, item: object, error: FastLLMError) -> ResponseWrapper:
        """The failed result of an input item that is not a valid request."""
        custom_id = item.get("custom_id") if isinstance(item, dict) else None
        return cls(
            request_id="",
            order=order,
            custom_id=custom_id if isinstance(custom_id, str) else f"#{order}",
            endpoint=Endpoint.CHAT_COMPLETIONS,
            error=error,
        )

    def renumbered(self, order: int) -> ResponseWrapper:
        """This result placed at another order (the engine maps internal orders back)."""
        self.order = order
        return self

    @property
    def ok(self) -> bool:
        """True when the request succeeded."""
        return self.error is None

    @property
    def body(self) -> dict[str, Any] | None:
        """The answer as parsed JSON (``None`` for a failure).

        An answer kept as bytes is decoded on first access (and the bytes dropped);
        one that turns out not to be JSON raises
        :class:`~fastllm.errors.ResponseDecodingError`.
        """
        answer = self._answer
        if isinstance(answer, bytes):
            try:
                answer = orjson.loads(answer)
            except orjson.JSONDecodeError as exc:
                raise ResponseDecodingError(f"the cached answer is corrupt: {exc}") from exc
            if not isinstance(answer, dict):
                raise ResponseDecodingError("the cached answer is not a JSON object")
            self._answer = answer
        return answer

    def _total_tokens(self) -> int:
        """``usage.total_tokens`` of the answer (0 when it has none), without decoding bytes."""
        answer = self._answer
        if isinstance(answer, bytes):
            return total_tokens_of(None, answer)
        return total_tokens_of(answer)

    @property
    def response(self) -> Any:  # ChatCompletion | CreateEmbeddingResponse | None
        """The answer as an openai type; for a failure ``None`` (or the dummy answer)."""
        if self._response is None and (body := self.body) is not None:
            from openai.types import CreateEmbeddingResponse
            from openai.types.chat import ChatCompletion
            from pydantic import ValidationError

            model = (
                CreateEmbeddingResponse if self.endpoint is Endpoint.EMBEDDINGS else ChatCompletion
            )
            try:
                self._response = model.model_validate(body)
            except ValidationError:
                # Servers that are only nearly OpenAI-compatible: keep what they sent.
                self._response = model.construct(**body)
        return self._response

    @property
    def is_embedding_response(self) -> bool:
        """True for the answer of an embeddings request."""
        return self.endpoint is Endpoint.EMBEDDINGS and self.ok

    @property
    def usage(self) -> CompletionUsage | None:
        """Token usage; embeddings report ``completion_tokens=0``."""
        body = self.body
        usage = body.get("usage") if body else None
        if not isinstance(usage, dict):
            return None
        from openai.types import CompletionUsage

        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        return CompletionUsage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=int(usage.get("total_tokens") or prompt + completion),
        )

    @property
    def embeddings(self) -> list[list[float]]:
        """The vectors of an embeddings answer in input order (base64 decoded); ``[]`` otherwise."""
        body = self.body
        if not self.is_embedding_response or body is None:
            return []
        items = sorted(body.get("data") or (), key=lambda item: item.get("index", 0))
        return [_as_floats(item.get("embedding")) for item in items]

    def embeddings_array(self) -> Any:
        """The vectors as an ``(n, dim)`` float32 numpy array (needs numpy)."""
        import numpy as np

        return np.asarray(self.embeddings, dtype=np.float32)

    def __repr__(self) -> str:
        state = "ok" if self.ok else f"error={type(self.error).__name__}"
        extra = " cached" if self.cached else ""
        return f"<ResponseWrapper #{self.order} {self.request_id[:12]} {state}{extra}>"


def _as_floats(embedding: object) -> list[float]:
    if isinstance(embedding, str):
        raw = base64.b64decode(embedding)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    if isinstance(embedding, list):
        return [float(x) for x in embedding]
    return []


_TOTAL_KEY = b'"total_tokens"'
_NUMBER = re.compile(rb"\s*:\s*(\d{1,15})(?!\d)")  # longer is not a token count


def total_tokens_of(body: dict[str, Any] | None, raw: bytes | None = None) -> int:
    """``usage.total_tokens`` of an answer: of ``body``, or read from ``raw`` undecoded."""
    if body is not None:
        usage = body.get("usage")
        return int(usage.get("total_tokens") or 0) if isinstance(usage, dict) else 0
    return total_tokens_in((raw,)) if raw is not None else 0


def total_tokens_in(raws: Iterable[bytes]) -> int:
    """The sum of ``usage.total_tokens`` over answers kept as JSON bytes, not decoded.

    In JSON text a quote inside a string is escaped, so a ``"total_tokens"`` in the
    bytes is a key, and the last one is the usage's (answers put ``usage`` last).
    One loop for a whole cached chunk: this runs for every cache hit.
    """
    total = 0
    for raw in raws:
        at = raw.rfind(_TOTAL_KEY)
        if at >= 0 and (number := _NUMBER.match(raw, at + len(_TOTAL_KEY))) is not None:
            total += int(number[1])
    return total
