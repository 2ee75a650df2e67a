"""The request model: endpoints, one request line, and the thin seed models.

A :class:`Request` is one line of an OpenAI Batch input file plus the two numbers
FastLLM tracks for it: ``request_id`` (content hash, the cache and dedup key) and
``order`` (its position in the run). Neither is ever sent to a provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from fastllm.errors import RequestFormatError

if TYPE_CHECKING:
    from openai.types import CreateEmbeddingResponse
    from openai.types.chat import ChatCompletion

__all__ = ["TRACKING_KEYS", "Endpoint", "LLMRequest", "LLMResponse", "Message", "Request"]

#: Keys FastLLM may carry inside a request dict for its own bookkeeping; never sent, never hashed.
TRACKING_KEYS = frozenset({"_order_id", "_request_id"})


class Endpoint(str, Enum):
    """The API endpoints FastLLM can call, by their OpenAI Batch ``url``."""

    CHAT_COMPLETIONS = "/v1/chat/completions"
    EMBEDDINGS = "/v1/embeddings"

    @property
    def path(self) -> str:
        """The path relative to an ``api_base`` that ends in ``/v1``."""
        return self.value[len("/v1/") :]

    @classmethod
    def from_url(cls, url: object, *, line: int | None = None) -> Endpoint:
        """The endpoint for a Batch-line ``url``; ``/v1`` may be left out."""
        if isinstance(url, Endpoint):
            return url
        if isinstance(url, str):
            found = _URLS.get(url.strip().rstrip("/"))
            if found is not None:
                return found
        known = ", ".join(e.value for e in cls)
        raise RequestFormatError(
            f"unknown endpoint url {url!r} (expected one of {known})", line=line, field="url"
        )


_URLS: dict[str, Endpoint] = {}
for _endpoint in Endpoint:
    for _form in (_endpoint.value, _endpoint.value[3:], _endpoint.value[4:]):
        _URLS[_form] = _endpoint


@dataclass(slots=True)
class Request:
    """One request of a run.

    ``body`` is exactly what is sent; ``custom_id`` is the Batch-file id, kept for
    output files; ``request_id`` is the content hash; ``order`` the position in the run.
    ``part`` marks a piece of a larger request that the engine splits and reassembles
    (embeddings): it is not a result of its own and is not cached whole.
    """

    custom_id: str
    endpoint: Endpoint
    body: dict[str, Any]
    request_id: str
    order: int
    method: str = "POST"
    part: bool = False

    @property
    def url(self) -> str:
        """The Batch-format url, e.g. ``/v1/chat/completions``."""
        return self.endpoint.value

    def to_batch_line(self) -> dict[str, Any]:
        """This request as an OpenAI Batch input line."""
        return {
            "custom_id": self.custom_id,
            "method": self.method,
            "url": self.url,
            "body": self.body,
        }


class Message(BaseModel):
    """A chat message (``role`` and ``content``; any other field passes through)."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "tool", "developer", "function"]
    content: str | list[dict[str, Any]] | None = None


class LLMRequest(BaseModel):
    """A chat-completion request body (typed core, every other field passes through)."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[Message]

    def to_body(self) -> dict[str, Any]:
        """The JSON body to send: fields the caller set, ``None`` left out."""
        return self.model_dump(exclude_none=True)


class LLMResponse(BaseModel):
    """A thin typed holder for one answer: a ``ChatCompletion`` or ``CreateEmbeddingResponse``.

    A dict is validated into the matching openai type (``data`` means embeddings).
    The openai types are imported on first use: importing them costs about a second.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    request_id: str
    response: Any

    @field_validator("response", mode="before")
    @classmethod
    def _openai_type(cls, value: Any) -> ChatCompletion | CreateEmbeddingResponse:
        from openai.types import CreateEmbeddingResponse
        from openai.types.chat import ChatCompletion

        if isinstance(value, ChatCompletion | CreateEmbeddingResponse):
            return value
        if isinstance(value, Mapping):
            if "data" in value:
                return CreateEmbeddingResponse.model_validate(value)
            return ChatCompletion.model_validate(value)
        kind = type(value).__name__
        raise ValueError(f"must be a ChatCompletion or CreateEmbeddingResponse, got {kind}")
