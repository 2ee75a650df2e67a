"""The thin typed seed models of the reference design: ``Message``, ``LLMRequest``, ``LLMResponse``.

Kept apart from the request model so that pydantic is imported only by code that
uses them (``fastllm.Message`` and friends are loaded on first access): a run
never needs them, and pydantic is about 13 MB of every process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

if TYPE_CHECKING:
    from openai.types import CreateEmbeddingResponse
    from openai.types.chat import ChatCompletion

__all__ = ["LLMRequest", "LLMResponse", "Message"]


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
