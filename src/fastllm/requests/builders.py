"""The OpenAI-style builders of a batch: ``batch.chat.completions`` and ``batch.embeddings``.

``create(...)`` takes the OpenAI parameter names and builds the body directly without
the ``None`` values (nothing injected, nothing renamed); the batch checks it, records
the line and returns the request id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fastllm.requests.model import TRACKING_KEYS, Endpoint

__all__ = ["AddRequest", "ChatBuilder", "CompletionsBuilder", "EmbeddingsBuilder"]

#: Records a cleaned body for an endpoint and returns its request id.
AddRequest = Callable[[Endpoint, dict[str, Any]], str]

_CHAT = Endpoint.CHAT_COMPLETIONS
_EMBEDDINGS = Endpoint.EMBEDDINGS


def _given(*pairs: tuple[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in pairs if value is not None}


def _put_extra(body: dict[str, Any], extra: dict[str, Any]) -> None:
    """Add the caller's other fields, as :func:`~fastllm.requests.hashing.clean_body` would."""
    for key, value in extra.items():
        if value is not None and key not in TRACKING_KEYS:
            body[key] = value


class CompletionsBuilder:
    """``batch.chat.completions``: mirrors ``openai.chat.completions``."""

    def __init__(self, add: AddRequest) -> None:
        self._add = add

    def create(
        self,
        *,
        model: str | None = None,
        messages: list[dict[str, Any]] | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        n: int | None = None,
        stop: str | list[str] | None = None,
        max_completion_tokens: int | None = None,
        max_tokens: int | None = None,
        presence_penalty: float | None = None,
        frequency_penalty: float | None = None,
        logit_bias: dict[str, float] | None = None,
        user: str | None = None,
        response_format: dict[str, Any] | None = None,
        seed: int | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        stream: bool | None = None,
        stream_options: dict[str, Any] | None = None,
        **extra: Any,
    ) -> str:
        """Add a chat completion request; return its request id.

        Parameters are OpenAI's; ``**extra`` passes any other body field through.
        ``model`` and ``messages`` are required: leaving one out raises
        :class:`~fastllm.errors.RequestFormatError` naming it, as any invalid value does.
        """
        # The body as sent, built without the None values (no copy to clean afterwards).
        if model is not None and messages is not None:
            body: dict[str, Any] = {"model": model, "messages": messages}
        else:
            body = _given(("model", model), ("messages", messages))
        if temperature is not None:
            body["temperature"] = temperature
        if top_p is not None:
            body["top_p"] = top_p
        if n is not None:
            body["n"] = n
        if stop is not None:
            body["stop"] = stop
        if max_completion_tokens is not None:
            body["max_completion_tokens"] = max_completion_tokens
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if presence_penalty is not None:
            body["presence_penalty"] = presence_penalty
        if frequency_penalty is not None:
            body["frequency_penalty"] = frequency_penalty
        if logit_bias is not None:
            body["logit_bias"] = logit_bias
        if user is not None:
            body["user"] = user
        if response_format is not None:
            body["response_format"] = response_format
        if seed is not None:
            body["seed"] = seed
        if tools is not None:
            body["tools"] = tools
        if tool_choice is not None:
            body["tool_choice"] = tool_choice
        if stream is not None:
            body["stream"] = stream
        if stream_options is not None:
            body["stream_options"] = stream_options
        if extra:
            _put_extra(body, extra)
        return self._add(_CHAT, body)


class ChatBuilder:
    """``batch.chat``."""

    def __init__(self, add: AddRequest) -> None:
        self.completions = CompletionsBuilder(add)


class EmbeddingsBuilder:
    """``batch.embeddings``: mirrors ``openai.embeddings``."""

    def __init__(self, add: AddRequest) -> None:
        self._add = add

    def create(
        self,
        *,
        model: str | None = None,
        input: str | list[str] | list[int] | list[list[int]] | None = None,
        dimensions: int | None = None,
        encoding_format: Literal["float", "base64"] | None = None,
        user: str | None = None,
        **extra: Any,
    ) -> str:
        """Add an embeddings request; return its request id.

        ``model`` and ``input`` are required (a :class:`~fastllm.errors.RequestFormatError`
        names the one missing).
        """
        if model is not None and input is not None:
            body: dict[str, Any] = {"model": model, "input": input}
        else:
            body = _given(("model", model), ("input", input))
        if dimensions is not None:
            body["dimensions"] = dimensions
        if encoding_format is not None:
            body["encoding_format"] = encoding_format
        if user is not None:
            body["user"] = user
        if extra:
            _put_extra(body, extra)
        return self._add(_EMBEDDINGS, body)
