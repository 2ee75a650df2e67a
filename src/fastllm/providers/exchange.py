"""``JsonExchange``: one JSON POST (whole, or as a stream of lines) with every failure typed.

Providers other than :class:`~fastllm.providers.OpenAIProvider` — Anthropic, Azure,
pools' members, a user's own — differ in URLs, headers and body shapes, not in how
bytes travel. This module is where, for them, the transport's and aiohttp's
exceptions become :mod:`fastllm.errors` ones, an error status becomes an
:class:`~fastllm.errors.APIStatusError` (through
:func:`~fastllm.providers.http_errors.error_from_response`), and a pooled keep-alive
connection the server had closed is re-sent once, at once. The API key (``secret``)
is redacted from every message.

Plain requests take the session's fast path (``HttpSession.post``), or aiohttp with
``transport="aiohttp"``; streams always take aiohttp, and their lines are handed to
a callback inside the same error mapping, so a connection that breaks mid-stream is
an :class:`~fastllm.errors.APIConnectionError` like any other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from fastllm.errors import APIConnectionError, APITimeoutError, ConfigurationError, NotRunError
from fastllm.providers.http_errors import error_from_response, loads_or_fail, redact
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

__all__ = ["JsonAnswer", "JsonExchange"]

_T = TypeVar("_T")


@dataclass(slots=True)
class JsonAnswer:
    """A successful (2xx) answer: the parsed JSON ``body``, the ``raw`` bytes, the ``headers``."""

    body: Any
    raw: bytes
    headers: Mapping[str, str]


class JsonExchange:
    """Sends JSON to one API; ``where`` names it in connection errors (never the key).

    ``stream_idle_timeout`` bounds the wait between two lines of a stream (default:
    the request's timeout).
    """

    def __init__(
        self,
        where: str,
        secret: str | None,
        *,
        transport: Literal["fast", "aiohttp"] = "fast",
        stream_idle_timeout: float | None = None,
    ) -> None:
        if transport not in ("fast", "aiohttp"):
            raise ConfigurationError("transport", f"must be 'fast' or 'aiohttp', got {transport!r}")
        self.where = where
        self.transport = transport
        self.stream_idle_timeout = stream_idle_timeout
        self._secret = secret

    def check(self, url: str, headers: Mapping[str, str]) -> None:
        """Raise :class:`ConfigurationError` now for a URL or header that cannot be sent.

        Called by providers' constructors, so a typo fails there and not on every
        request. Header values are never quoted (they hold the key).
        """
        for name, value in headers.items():
            try:
                check_header(name, value)
            except ValueError as exc:
                raise ConfigurationError("headers", str(exc)) from None
        if self.transport == "fast":
            try:
                build_target(url, headers)
            except ValueError as exc:
                raise ConfigurationError("api_base", self._clean(exc)) from None

    async def post(
        self,
        session: HttpSession,
        url: str,
        data: bytes,
        headers: Mapping[str, str],
        timeout: float,
    ) -> JsonAnswer:
        """POST ``data``; the parsed answer, or a typed error (status, connection, decoding)."""
        if self.transport == "fast":
            status, raw, answer_headers = await self._post_fast(
                session, url, data, headers, timeout
            )
        else:
            status, raw, answer_headers = await self._post_aiohttp(
                session, url, data, headers, timeout
            )
        if status >= 300:  # API calls are never redirected: a 3xx is an error
            raise error_from_response(status, raw, answer_headers, self._secret)
        return JsonAnswer(loads_or_fail(raw, self._secret, "the answer"), raw, answer_headers)

    async def stream(
        self,
        session: HttpSession,
        url: str,
        data: bytes,
        headers: Mapping[str, str],
        timeout: float,
        on_line: Callable[[bytes], bool],
    ) -> Mapping[str, str]:
        """POST ``data`` and feed each line of the answer to ``on_line`` until it returns True.

        Returns the answer's headers. An error status raises before any line is fed.
        """
        received = False

        async def read(response: aiohttp.ClientResponse) -> Mapping[str, str]:
            nonlocal received
            async for line in response.content:
                received = True
                if on_line(line):
                    break
            return response.headers

        for resend in (True, False):
            try:
                return await self._aiohttp_call(session, url, data, headers, timeout, read)
            except _StaleAiohttp as exc:
                if resend and not received:  # nothing of the answer was seen: re-send once
                    continue
                raise APIConnectionError(
                    f"connection lost: {self._clean(exc.cause)}"
                ) from exc.cause
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the fast path ------------------------------------------------------------------

    async def _post_fast(
        self,
        session: HttpSession,
        url: str,
        data: bytes,
        headers: Mapping[str, str],
        timeout: float,
    ) -> tuple[int, bytes, Mapping[str, str]]:
        for resend in (True, False):
            try:
                response = await session.post(url, data, headers, timeout)
            except StaleConnection as exc:
                if resend:
                    continue
                raise APIConnectionError(f"connection lost: {self._clean(exc)}") from exc
            except ConnectError as exc:
                raise APIConnectionError(
                    f"cannot connect to {self.where}: {self._clean(exc)}"
                ) from exc
            except TransportTimeout as exc:
                raise APITimeoutError(f"no complete answer within {timeout:g} s") from exc
            except ProtocolError as exc:
                # its text quotes the server's bytes (maybe the key): keep the redacted
                # text only, raised outside this block so the original is not the context
                message = f"ProtocolError: {self._clean(exc)}"
            except TransportError as exc:
                raise APIConnectionError(f"{type(exc).__name__}: {self._clean(exc)}") from exc
            except ValueError as exc:  # an unusable URL or header: never sent
                raise NotRunError(f"not sent: {self._clean(exc)}") from None
            else:
                return response.status, response.body, response.headers
            raise APIConnectionError(message)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- aiohttp ------------------------------------------------------------------------

    async def _post_aiohttp(
        self,
        session: HttpSession,
        url: str,
        data: bytes,
        headers: Mapping[str, str],
        timeout: float,
    ) -> tuple[int, bytes, Mapping[str, str]]:
        async def read(response: aiohttp.ClientResponse) -> tuple[int, bytes, Mapping[str, str]]:
            return response.status, await response.read(), response.headers

        for resend in (True, False):
            try:
                return await self._aiohttp_call(
                    session, url, data, headers, timeout, read, stream=False
                )
            except _StaleAiohttp as exc:
                if resend:
                    continue
                raise APIConnectionError(
                    f"connection lost: {self._clean(exc.cause)}"
                ) from exc.cause
        raise AssertionError("unreachable")  # pragma: no cover

    async def _aiohttp_call(
        self,
        session: HttpSession,
        url: str,
        data: bytes,
        headers: Mapping[str, str],
        timeout: float,
        read: Callable[[aiohttp.ClientResponse], Awaitable[_T]],
        *,
        stream: bool = True,
    ) -> _T:
        """One aiohttp POST; error statuses of streams raise here, the rest is ``read``'s."""
        import aiohttp  # imported on first use: the fast path never needs it

        error: Exception | None = None
        try:
            async with session.aiohttp.post(
                url,
                data=data,
                headers=dict(headers),
                timeout=self._timeout(timeout, stream),
                allow_redirects=False,
                proxy=session.proxy_for(url),
            ) as response:
                if stream and response.status >= 300:
                    raw = await response.read()
                    error = error_from_response(
                        response.status, raw, response.headers, self._secret
                    )
                else:
                    return await read(response)
        except aiohttp.ClientResponseError as exc:
            # request_info holds the request headers, key included: keep only the text
            message = f"{type(exc).__name__}: {self._clean(exc)}"
        except aiohttp.ClientConnectorError as exc:
            raise APIConnectionError(f"cannot connect to {self.where}: {self._clean(exc)}") from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            raise _StaleAiohttp(exc) from None
        except asyncio.TimeoutError as exc:
            raise APITimeoutError(f"no complete answer within {timeout:g} s") from exc
        except (aiohttp.ClientError, TransportError) as exc:
            raise APIConnectionError(f"{type(exc).__name__}: {self._clean(exc)}") from exc
        if error is not None:
            raise error
        raise APIConnectionError(message)

    def _timeout(self, seconds: float, stream: bool) -> aiohttp.ClientTimeout:
        import aiohttp

        if stream:
            idle = self.stream_idle_timeout or seconds
            return aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=idle)
        return aiohttp.ClientTimeout(total=seconds)

    def _clean(self, exc: BaseException) -> str:
        return redact(str(exc), self._secret) or type(exc).__name__


class _StaleAiohttp(Exception):
    """aiohttp lost a connection (maybe a pooled one the server had closed): maybe re-send."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause
