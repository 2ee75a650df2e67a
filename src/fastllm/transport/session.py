"""``HttpSession``: the HTTP client of one run — a fast buffered POST, and aiohttp for the rest.

:meth:`HttpSession.post` sends one request and returns the whole answer. It runs on
this package's own HTTP/1.1 client (:mod:`~fastllm.transport.connection` and
:mod:`~fastllm.transport.pool`): a third or less of aiohttp's CPU per request
(through the engine: 212k CPU instructions per request against 566k), and that CPU
is what bounds throughput once hundreds of requests are in flight. Its cost per
request is one future, one write and one parse (no task, no timer: deadlines are
swept by one timer per pool); ``timeout`` bounds the whole exchange, waiting for a
free connection and connecting included.

:attr:`HttpSession.aiohttp` is a lazily created :class:`aiohttp.ClientSession` with
the same connection limit, for what the fast path does not do: streaming
responses, custom providers that prefer aiohttp, and requests that must go through
a proxy. Proxies come from the environment (``HTTP_PROXY``, ``HTTPS_PROXY``,
``ALL_PROXY``, with ``NO_PROXY`` honoured; read once, when the session is created):
a POST to a proxied origin is sent through aiohttp with that proxy and its errors
translated, so callers see the same :class:`HttpResponse` and the same errors.
:meth:`HttpSession.proxy_for` gives the proxy for streamed requests. The aiohttp
session itself has ``trust_env=False``: with ``True`` aiohttp re-reads the
environment and ``~/.netrc`` on every request, which measured 790 instead of
250 µs of CPU per request.

:meth:`HttpSession.close` closes both. Errors are those of
:mod:`fastllm.transport.errors`; a :class:`ValueError` means an unusable URL or header.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

from fastllm.transport.errors import (
    ConnectError,
    ConnectionLost,
    ProtocolError,
    StaleConnection,
    TransportError,
    TransportTimeout,
)
from fastllm.transport.parser import HttpResponse
from fastllm.transport.pool import ConnectionPool
from fastllm.transport.request import Target, build_target

if TYPE_CHECKING:
    import aiohttp

__all__ = ["HttpSession"]

_MAX_TARGETS = 256  # distinct (url, headers) heads kept; a provider uses a handful
_Key = tuple[str, tuple[tuple[str, str], ...]]


class HttpSession:
    """HTTP connections for one run, at most ``limit`` open per origin.

    ``ssl_context`` replaces ``ssl.create_default_context()`` for https (both paths);
    ``connect_timeout`` bounds each connection attempt; idle connections are closed
    after ``keepalive_timeout`` seconds; ``trust_env=False`` ignores proxy variables.
    Use it as ``async with HttpSession(...) as session:`` or call :meth:`close`.
    """

    def __init__(
        self,
        limit: int = 100,
        *,
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout: float = 30.0,
        keepalive_timeout: float = 30.0,
        trust_env: bool = True,
    ) -> None:
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer, got {limit!r}")
        self.limit = limit
        self._ssl_context = ssl_context
        self._default_ssl: ssl.SSLContext | None = None
        self._connect_timeout = connect_timeout
        self._keepalive_timeout = keepalive_timeout
        self._trust_env = trust_env
        self._proxies = getproxies() if trust_env else {}
        self._targets: dict[_Key, tuple[Target, ConnectionPool | None, str | None]] = {}
        self._pools: dict[tuple[str, str, int], ConnectionPool] = {}
        self._aiohttp: aiohttp.ClientSession | None = None
        self._closed = False

    async def post(
        self, url: str, data: bytes, headers: Mapping[str, str], timeout: float
    ) -> HttpResponse:
        """POST ``data`` to ``url``; the whole answer, or a :class:`TransportError`.

        Any status is an answer (redirects are not followed). A
        :class:`StaleConnection` means the request was not processed: send it again.
        """
        key = (url, tuple(headers.items()))
        found = self._targets.get(key)
        if found is None:
            found = self._target(key, url, headers)
        target, pool, proxy = found
        if pool is None:
            return await self._post_aiohttp(url, data, headers, timeout, proxy)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        conn = pool.take_idle() or await pool.acquire(deadline)
        request = b"".join((target.head, b"%d\r\n\r\n" % len(data), data))
        waiter = conn.send(request, deadline, timeout)
        pool.watch(deadline)
        try:
            response = await waiter
        except BaseException:  # failed, timed out or cancelled: the connection is unusable
            pool.discard(conn)
            raise
        if target.keep_alive:
            pool.release(conn)
        else:
            pool.discard(conn)
        return response

    @property
    def aiohttp(self) -> aiohttp.ClientSession:
        """The aiohttp session (created on first use): for streaming and custom providers."""
        if self._closed:
            raise RuntimeError("the HTTP session is closed")
        if self._aiohttp is None:
            import aiohttp  # on first use: about 20 MB that the fast path never needs

            connector = aiohttp.TCPConnector(
                limit=self.limit,
                limit_per_host=0,
                ttl_dns_cache=300,
                keepalive_timeout=self._keepalive_timeout,
                ssl=self._ssl_context if self._ssl_context is not None else True,
            )
            self._aiohttp = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None),
                trust_env=False,
            )
        return self._aiohttp

    def proxy_for(self, url: str) -> str | None:
        """The proxy URL the environment sets for ``url``, or ``None`` (direct).

        :class:`ConnectError` for a proxy that is neither http nor https (SOCKS).
        """
        if not self._proxies:
            return None
        parts = urlsplit(url)
        host = parts.hostname
        proxy = self._proxies.get(parts.scheme.lower()) or self._proxies.get("all")
        if not proxy or not host:
            return None
        if proxy_bypass(host if parts.port is None or ":" in host else f"{host}:{parts.port}"):
            return None
        proxy = proxy if "://" in proxy else f"http://{proxy}"
        scheme = proxy.partition("://")[0].lower()
        if scheme not in ("http", "https"):  # the URL itself is not quoted: it may hold a password
            raise ConnectError(
                f"the environment sets a {scheme!r} proxy for {parts.scheme} URLs: only http"
                " and https proxies are supported (unset it, or list the host in NO_PROXY)"
            )
        return proxy

    async def close(self) -> None:
        """Close every connection, both paths; the session cannot be used afterwards."""
        self._closed = True
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
        self._targets.clear()
        if self._aiohttp is not None:
            await self._aiohttp.close()
        await asyncio.sleep(0)  # let the transports run connection_lost

    async def __aenter__(self) -> HttpSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # -- internals ----------------------------------------------------------------------
    def _target(
        self, key: _Key, url: str, headers: Mapping[str, str]
    ) -> tuple[Target, ConnectionPool | None, str | None]:
        if self._closed:
            raise RuntimeError("the HTTP session is closed")
        target = build_target(url, headers)
        proxy = self.proxy_for(url)
        pool = None if proxy is not None else self._pool(target)
        if len(self._targets) >= _MAX_TARGETS:
            self._targets.clear()
        found = self._targets[key] = (target, pool, proxy)
        return found

    def _pool(self, target: Target) -> ConnectionPool:
        origin = (target.scheme, target.host, target.port)
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = ConnectionPool(
                asyncio.get_running_loop(),
                target.host,
                target.port,
                self._tls() if target.scheme == "https" else None,
                limit=self.limit,
                connect_timeout=self._connect_timeout,
                keepalive_timeout=self._keepalive_timeout,
            )
        return pool

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is not None:
            return self._ssl_context
        if self._default_ssl is None:
            self._default_ssl = ssl.create_default_context()
            self._default_ssl.set_alpn_protocols(["http/1.1"])
        return self._default_ssl

    async def _post_aiohttp(
        self, url: str, data: bytes, headers: Mapping[str, str], timeout: float, proxy: str | None
    ) -> HttpResponse:
        """The proxied path: aiohttp, its errors translated (and never chained: they
        carry the request headers)."""
        import aiohttp

        error: TransportError
        try:
            async with self.aiohttp.post(
                url,
                data=data,
                headers=headers,
                proxy=proxy,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as response:
                body = await response.read()
                return HttpResponse(response.status, response.headers, body, response.reason or "")
        except aiohttp.ClientConnectorError as exc:
            error = ConnectError(f"{type(exc).__name__}: {exc}")
        except asyncio.TimeoutError:
            error = TransportTimeout(f"no complete answer within {timeout:g} s")
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            error = StaleConnection(f"{type(exc).__name__}: {exc}")
        except aiohttp.ClientResponseError as exc:
            error = ProtocolError(f"{type(exc).__name__}: {exc.status}, {exc.message}")
        except aiohttp.ClientError as exc:
            error = ConnectionLost(f"{type(exc).__name__}: {exc}")
        raise error
