"""``ResponseWrapper``: one result of a run, successful or not.

The answer is kept as the parsed JSON body and turned into the openai type
(``ChatCompletion`` or ``CreateEmbeddingResponse``) on first access, so a run of a
million cached answers does not pay for a million model validations it may never
read. A failed result has ``ok == False`` and the typed exception in ``error``.
"""

from __future__ import annotations

import base64
import struct
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError

from fastllm.errors import ResponseDecodingError
from fastllm.requests.model import Endpoint

if TYPE_CHECKING:
    from openai.types import CompletionUsage, CreateEmbeddingResponse
    from openai.types.chat import ChatCompletion

    from fastllm.errors import FastLLMError

__all__ = ["ResponseWrapper", "dummy_response", "total_tokens_of"]

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

    ``cached`` is True when the answer came from the cache, ``deduplicated`` when it
    was shared from an identical request of the same run; ``attempts`` counts the
    HTTP attempts made; ``latency`` is seconds from first send to answer.
    """

    __slots__ = (
        "_body",
        "_order_id",
        "_raw",
        "_response",
        "attempts",
        "cached",
        "custom_id",
        "deduplicated",
        "endpoint",
        "error",
        "latency",
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
        self._order_id = order
        self.custom_id = custom_id
        self.endpoint = endpoint
        self._body = body
        self._raw = raw
        self._response = response
        self.error = error
        self.attempts = attempts
        self.cached = cached
        self.deduplicated = deduplicated
        self.latency = latency
        self.ttft = ttft

    def shared_with(self, order: int, custom_id: str) -> ResponseWrapper:
        """The same result for another order of an identical request (deduplicated)."""
        return ResponseWrapper(
            request_id=self.request_id,
            order=order,
            custom_id=custom_id,
            endpoint=self.endpoint,
            body=self._body,
            raw=self._raw,
            error=self.error,
            response=self._response if self.error is not None else None,
            attempts=self.attempts,
            cached=self.cached,
            deduplicated=True,
            latency=self.latency,
            ttft=self.ttft,
        )

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
        self._order_id = order
        return self

    @property
    def ok(self) -> bool:
        """True when the request succeeded."""
        return self.error is None

    @property
    def order(self) -> int:
        """The position of the request in its run."""
        return self._order_id

    @property
    def body(self) -> dict[str, Any] | None:
        """The answer as parsed JSON (``None`` for a failure).

        A cached answer is decoded on first access; one that turns out not to be JSON
        raises :class:`~fastllm.errors.ResponseDecodingError`.
        """
        if self._body is None and self._raw is not None:
            try:
                body = orjson.loads(self._raw)
            except orjson.JSONDecodeError as exc:
                raise ResponseDecodingError(f"the cached answer is corrupt: {exc}") from exc
            if not isinstance(body, dict):
                raise ResponseDecodingError("the cached answer is not a JSON object")
            self._body = body
        return self._body

    @property
    def response(self) -> Any:  # ChatCompletion | CreateEmbeddingResponse | None
        """The answer as an openai type; for a failure ``None`` (or the dummy answer)."""
        if self._response is None and self.body is not None:
            from openai.types import CreateEmbeddingResponse
            from openai.types.chat import ChatCompletion

            model = (
                CreateEmbeddingResponse if self.endpoint is Endpoint.EMBEDDINGS else ChatCompletion
            )
            try:
                self._response = model.model_validate(self._body)
            except ValidationError:
                # Servers that are only nearly OpenAI-compatible: keep what they sent.
                self._response = model.construct(**(self._body or {}))
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
        return f"<ResponseWrapper #{self._order_id} {self.request_id[:12]} {state}{extra}>"


def _as_floats(embedding: object) -> list[float]:
    if isinstance(embedding, str):
        raw = base64.b64decode(embedding)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    if isinstance(embedding, list):
        return [float(x) for x in embedding]
    return []


def total_tokens_of(body: dict[str, Any] | None, raw: bytes | None = None) -> int:
    """``usage.total_tokens`` of an answer, read from the raw bytes without decoding them.

    In JSON text a quote inside a string is escaped, so the last ``"total_tokens":``
    in the bytes is a key: the usage's (answers put ``usage`` last). The number runs
    to the next ``,`` or ``}``; ``int`` ignores the whitespace around it.
    """
    if body is not None:
        usage = body.get("usage")
        return int(usage.get("total_tokens") or 0) if isinstance(usage, dict) else 0
    if raw is None:
        return 0
    at = raw.rfind(b'"total_tokens"')
    if at < 0:
        return 0
    colon = raw.find(b":", at + 14) + 1
    comma, brace = raw.find(b",", colon), raw.find(b"}", colon)
    end = min(comma, brace) if comma > 0 and brace > 0 else max(comma, brace)
    try:
        return int(raw[colon:end]) if colon > 0 and end > 0 else 0
    except ValueError:
        return 0
