"""``OpenAIProvider``: any OpenAI-compatible API (OpenAI, OpenRouter, vLLM, llama.cpp, LiteLLM).

Sends the body exactly as given; maps connection failures, error statuses, bad
bodies and truncated streams to the typed errors; re-sends once, at once, when a
pooled keep-alive connection turns out to have been closed by the server.

Plain requests go through the session's fast transport (``HttpSession.post``);
streamed ones (``"stream": true``) through its aiohttp session, as does everything
with ``transport="aiohttp"``. This module is the one boundary where either
transport's errors become :mod:`fastllm.errors` exceptions.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import orjson

from fastllm.errors import (
    APIConnectionError,
    APITimeoutError,
    ConfigurationError,
    ResponseDecodingError,
)
from fastllm.providers.base import Provider, ProviderResponse
from fastllm.providers.http_errors import error_from_response, loads_or_fail, redact
from fastllm.providers.sse import StreamAssembler
from fastllm.requests.model import Endpoint, Request
from fastllm.transport import (
    ConnectError,
    HttpSession,
    ProtocolError,
    StaleConnection,
    TransportError,
    TransportTimeout,
)
from fastllm.transport.headers import check_header
from fastllm.transport.request import build_target

if TYPE_CHECKING:
    import aiohttp

__all__ = ["DEFAULT_API_BASE", "OpenAIProvider"]

DEFAULT_API_BASE = "https://api.openai.com/v1"

_TRANSPORTS = ("fast", "aiohttp")


class OpenAIProvider(Provider):
    """An OpenAI-compatible API.

    ``api_key`` and ``api_base`` default to ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL``
    (else OpenAI's URL), as in the openai SDK.
    ``organization`` and ``project`` become the ``OpenAI-Organization`` and
    ``OpenAI-Project`` headers; ``headers`` are added as given. ``stream_idle_timeout``
    bounds the wait between two chunks of a stream (default: the request timeout).
    ``transport="aiohttp"`` sends every request through aiohttp instead of the fast
    HTTP/1.1 client (streams always use aiohttp).
    """

    def __init__(
        self,
        api_key: str | None = None,
        api_base: str | None = None,
        organization: str | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        project: str | None = None,
        stream_idle_timeout: float | None = None,
        transport: Literal["fast", "aiohttp"] = "fast",
    ) -> None:
        if api_key is None:
            api_key = os.environ.get("OPENAI_API_KEY") or None
        if api_base is None:
            api_base = os.environ.get("OPENAI_BASE_URL") or DEFAULT_API_BASE
        super().__init__(api_key, api_base, headers)
        self.organization = organization
        self.project = project
        self.stream_idle_timeout = stream_idle_timeout
        if transport not in _TRANSPORTS:
            raise ConfigurationError("transport", f"must be 'fast' or 'aiohttp', got {transport!r}")
        self.transport = transport
        self._headers = self.get_request_headers()
        self._urls = {e: self.get_request_url(e) for e in Endpoint}
        for name, value in self._headers.items():  # fail here, not on every request
            try:
                check_header(name, value)
            except ValueError as exc:  # names the header, never quotes its value
                raise ConfigurationError("headers", str(exc)) from None
        if transport == "fast":
            try:
                build_target(self._urls[Endpoint.CHAT_COMPLETIONS], self._headers)
            except ValueError as exc:
                raise ConfigurationError("api_base", str(exc)) from None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def get_request_headers(self) -> dict[str, str]:
        """Authorization, content type, organization/project, then the custom headers."""
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if self.organization:
            headers["OpenAI-Organization"] = self.organization
        if self.project:
            headers["OpenAI-Project"] = self.project
        headers.update(self.headers)
        return headers

    async def make_request(
        self, session: HttpSession, request: Request, timeout: float
    ) -> ProviderResponse:
        """POST the request body; return the answer or raise a typed error."""
        data = orjson.dumps(request.body)
        if request.body.get("stream") is True:
            return await self._send_aiohttp(session, request.endpoint, data, timeout, True)
        if self.transport == "aiohttp":
            return await self._send_aiohttp(session, request.endpoint, data, timeout, False)
        return await self._send_fast(session, request.endpoint, data, timeout)

    async def _send_fast(
        self, session: HttpSession, endpoint: Endpoint, data: bytes, timeout: float
    ) -> ProviderResponse:
        url = self._urls[endpoint]
        for resend in (True, False):
            try:
                response = await session.post(url, data, self._headers, timeout)
            except StaleConnection as exc:
                if resend:
                    continue
                raise APIConnectionError(f"connection lost: {self._clean(exc)}") from exc
            except ConnectError as exc:
                raise APIConnectionError(
                    f"cannot connect to {self.api_base}: {self._clean(exc)}"
                ) from exc
            except TransportTimeout as exc:
                raise APITimeoutError(f"no complete answer within {timeout:g} s") from exc
            except ProtocolError as exc:
                # its text quotes the server's bytes, which may echo the key: keep only the
                # redacted text, and raise outside this block so it is not the context.
                message = f"ProtocolError: {self._clean(exc)}"
            except TransportError as exc:
                raise APIConnectionError(f"{type(exc).__name__}: {self._clean(exc)}") from exc
            else:
                if response.status >= 300:  # API calls are never redirected: a 3xx is an error
                    raise error_from_response(
                        response.status, response.body, response.headers, self.api_key
                    )
                raw = response.body
                return ProviderResponse(self._decode(raw, endpoint), raw, response.headers)
            raise APIConnectionError(message)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send_aiohttp(
        self, session: HttpSession, endpoint: Endpoint, data: bytes, timeout: float, stream: bool
    ) -> ProviderResponse:
        import aiohttp  # imported on first use: about 20 MB that the fast path never needs

        # the connection was gone before the server saw the request (a pooled
        # keep-alive connection the server had closed): worth one immediate re-send
        stale = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)
        for resend in (True, False):
            try:
                return await self._post(session, endpoint, data, timeout, stream)
            except aiohttp.ClientResponseError as exc:
                # request_info holds the request headers, Authorization included: keep
                # only the text, and raise outside this block so it is not the context.
                message = f"{type(exc).__name__}: {self._clean(exc)}"
            except aiohttp.ClientConnectorError as exc:
                raise APIConnectionError(
                    f"cannot connect to {self.api_base}: {self._clean(exc)}"
                ) from exc
            except stale as exc:
                if resend:
                    continue
                raise APIConnectionError(f"connection lost: {self._clean(exc)}") from exc
            except asyncio.TimeoutError as exc:
                raise APITimeoutError(f"no complete answer within {timeout:g} s") from exc
            except (aiohttp.ClientError, TransportError) as exc:  # a bad proxy setting
                raise APIConnectionError(f"{type(exc).__name__}: {self._clean(exc)}") from exc
            raise APIConnectionError(message)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post(
        self,
        session: HttpSession,
        endpoint: Endpoint,
        data: bytes,
        timeout: float,
        stream: bool,
    ) -> ProviderResponse:
        sent = time.perf_counter()
        url = self._urls[endpoint]
        async with session.aiohttp.post(
            url,
            data=data,
            headers=self._headers,
            timeout=self._timeout(timeout, stream),
            allow_redirects=False,
            proxy=session.proxy_for(url),
        ) as response:
            if response.status >= 300:  # API calls are never redirected: a 3xx is an error
                raw = await response.read()
                raise error_from_response(response.status, raw, response.headers, self.api_key)
            if stream:
                return await self._read_stream(response, sent)
            raw = await response.read()
            return ProviderResponse(self._decode(raw, endpoint), raw, response.headers)

    async def _read_stream(self, response: aiohttp.ClientResponse, sent: float) -> ProviderResponse:
        ttft: float | None = None
        assembler = StreamAssembler(self.api_key)
        async for line in response.content:
            assembler.feed_line(line)
            if ttft is None and assembler.chunks:
                ttft = time.perf_counter() - sent
            if assembler.done:
                break
        return ProviderResponse(assembler.result(), None, response.headers, ttft)

    def _decode(self, raw: bytes, endpoint: Endpoint) -> dict[str, Any]:
        body = loads_or_fail(raw, self.api_key, "the answer")
        if not isinstance(body, dict):
            raise ResponseDecodingError("the answer is not a JSON object", retryable=False)
        field = "choices" if endpoint is Endpoint.CHAT_COMPLETIONS else "data"
        if not isinstance(body.get(field), list):
            if "error" in body:
                message = redact(str(body["error"]), self.api_key)[:300]
                raise ResponseDecodingError(f"HTTP 200 carrying an error: {message}")
            raise ResponseDecodingError(f"the answer has no {field!r} list", retryable=False)
        return body

    def _timeout(self, seconds: float, stream: bool) -> aiohttp.ClientTimeout:
        key = -seconds if stream else seconds
        found = self._timeouts.get(key)
        if found is None:
            import aiohttp

            if stream:
                idle = self.stream_idle_timeout or seconds
                found = aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=idle)
            else:
                found = aiohttp.ClientTimeout(total=seconds)
            self._timeouts[key] = found
        return found

    def _clean(self, exc: BaseException) -> str:
        return redact(str(exc), self.api_key) or type(exc).__name__
