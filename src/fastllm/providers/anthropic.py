"""``AnthropicProvider``: Anthropic's Messages API behind the OpenAI request and answer format.

A batch written for OpenAI runs unchanged: each chat request is translated
(:mod:`~fastllm.providers.anthropic_translate`), sent to ``{api_base}/messages`` with
``x-api-key`` and ``anthropic-version``, and its answer — whole, or a stream
assembled by :mod:`~fastllm.providers.anthropic_stream` — comes back as a
``ChatCompletion`` body, so ``r.response.choices[0].message.content``, ``tool_calls``
and ``r.usage`` read the same as for OpenAI. The Anthropic Message itself is kept
in the body under ``"anthropic"`` (``r.body["anthropic"]``; ``keep_raw=False`` drops it).

Errors keep Anthropic's status and ``error.type`` as the code: 429 ``rate_limit_error``
and 529 ``overloaded_error`` (a 5xx) are retried, 400/401/403/404/413 are not. Its
``anthropic-ratelimit-*`` headers reach the limiter under the ``x-ratelimit-*`` names
(:mod:`~fastllm.providers.anthropic_limits`). Embeddings do not exist in this API:
such a request fails unsent with a :class:`~fastllm.errors.NotRunError`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

import orjson
import xxhash

from fastllm.errors import APIStatusError, ConfigurationError, NotRunError, ResponseDecodingError
from fastllm.providers.anthropic_limits import with_openai_ratelimit_names
from fastllm.providers.anthropic_stream import MessageStreamAssembler
from fastllm.providers.anthropic_translate import chat_completion_from_message, messages_request
from fastllm.providers.base import Provider, ProviderResponse
from fastllm.providers.exchange import JsonExchange
from fastllm.requests.model import Endpoint, Request

if TYPE_CHECKING:
    from fastllm.transport import HttpSession

__all__ = ["ANTHROPIC_API_BASE", "ANTHROPIC_VERSION", "AnthropicProvider"]

ANTHROPIC_API_BASE = "https://api.anthropic.com/v1"
ANTHROPIC_VERSION = "2023-06-01"


class AnthropicProvider(Provider):
    """Anthropic's Messages API for OpenAI-format chat requests.

    ``api_key`` and ``api_base`` default to ``ANTHROPIC_API_KEY`` and
    ``ANTHROPIC_BASE_URL`` (else ``https://api.anthropic.com/v1``). ``default_max_tokens``
    is sent when a request sets neither ``max_completion_tokens`` nor ``max_tokens``
    (Anthropic requires one; without a default such a request fails unsent).
    ``beta`` names ``anthropic-beta`` features; ``headers`` are added as given.
    """

    def __init__(
        self,
        api_key: str | None = None,
        api_base: str | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        anthropic_version: str = ANTHROPIC_VERSION,
        default_max_tokens: int | None = None,
        beta: list[str] | None = None,
        keep_raw: bool = True,
        stream_idle_timeout: float | None = None,
        transport: Literal["fast", "aiohttp"] = "fast",
    ) -> None:
        if api_key is None:
            api_key = os.environ.get("ANTHROPIC_API_KEY") or None
        if api_base is None:
            api_base = os.environ.get("ANTHROPIC_BASE_URL") or ANTHROPIC_API_BASE
        super().__init__(api_key, api_base, headers)
        if default_max_tokens is not None and (
            isinstance(default_max_tokens, bool)
            or not isinstance(default_max_tokens, int)
            or default_max_tokens < 1
        ):
            raise ConfigurationError(
                "default_max_tokens", f"must be a positive integer, got {default_max_tokens!r}"
            )
        self.anthropic_version = anthropic_version
        self.default_max_tokens = default_max_tokens
        self.beta = list(beta or ())
        self.keep_raw = keep_raw
        # answers are not OpenAI's: never share cache entries with an OpenAI endpoint
        self.cache_namespace = xxhash.xxh3_64_hexdigest(f"anthropic:{self.api_base}".encode())
        self._exchange = JsonExchange(
            self.api_base,
            self.api_key,
            transport=transport,
            stream_idle_timeout=stream_idle_timeout,
        )
        self._headers = self.get_request_headers()
        self._url = f"{self.api_base}/messages"
        self._exchange.check(self._url, self._headers)

    def get_request_url(self, endpoint: Endpoint | str) -> str:
        """``{api_base}/messages`` for chat completions (the only endpoint there is)."""
        return f"{self.api_base}/messages"

    def get_request_headers(self) -> dict[str, str]:
        """``x-api-key``, ``anthropic-version``, ``anthropic-beta``, then the custom headers."""
        headers = {"Content-Type": "application/json", "anthropic-version": self.anthropic_version}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        if self.beta:
            headers["anthropic-beta"] = ",".join(self.beta)
        headers.update(self.headers)
        return headers

    async def make_request(
        self, session: HttpSession, request: Request, timeout: float
    ) -> ProviderResponse:
        """Translate, send, and translate back; raise a typed error on failure."""
        if request.endpoint is not Endpoint.CHAT_COMPLETIONS:
            raise NotRunError(
                f"not sent: Anthropic has no {request.endpoint.value} endpoint; "
                "use an OpenAI-compatible provider for embeddings"
            )
        data = orjson.dumps(messages_request(request.body, self.default_max_tokens))
        try:
            if request.body.get("stream") is True:
                return await self._stream(session, data, timeout)
            answer = await self._exchange.post(session, self._url, data, self._headers, timeout)
        except APIStatusError as exc:
            exc.headers = dict(with_openai_ratelimit_names(exc.headers))
            raise
        message = answer.body
        if not isinstance(message, dict) or not isinstance(message.get("content"), list):
            raise ResponseDecodingError("the answer is not an Anthropic Message", retryable=False)
        body = chat_completion_from_message(message, keep_raw=self.keep_raw)
        return ProviderResponse(body, None, with_openai_ratelimit_names(answer.headers))

    async def _stream(self, session: HttpSession, data: bytes, timeout: float) -> ProviderResponse:
        assembler = MessageStreamAssembler(self.api_key)
        sent = time.perf_counter()
        first: list[float] = []

        def on_line(line: bytes) -> bool:
            done = assembler.feed_line(line)
            if not first and assembler.content_started:
                first.append(time.perf_counter() - sent)
            return done

        headers = await self._exchange.stream(
            session, self._url, data, self._headers, timeout, on_line
        )
        body = chat_completion_from_message(assembler.result(), keep_raw=self.keep_raw)
        return ProviderResponse(
            body, None, with_openai_ratelimit_names(headers), first[0] if first else None
        )
