"""Redis connections shared by the Redis cache and the Redis rate limiter.

redis-py's asyncio client belongs to the event loop that opened it, and
``RequestManager.process_batch`` runs every batch on a new loop, so
:class:`RedisEndpoint` opens one client per loop and closes it when that loop shuts
down (a parked async generator, which the loop finalises in ``shutdown_asyncgens``,
as ``asyncio.run`` and ``asyncio.Runner`` do), or on ``aclose()``. Every call gets one
retry without backoff and ``timeout`` seconds, so a dead server is noticed quickly.
The URL's password never appears in a repr, an error or a log line (:func:`redact_url`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastllm.errors import ConfigurationError

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = ["RedisEndpoint", "redact_url"]


def redact_url(url: str) -> str:
    """``url`` with its password masked as ``***`` (user info and ``password=`` queries)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:***@{host}" if colon else f"***@{host}"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = urlencode([(k, "***" if "pass" in k.lower() else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class RedisEndpoint:
    """One Redis URL: a synchronous client and one asyncio client per event loop.

    ``missing`` builds the exception raised when the ``redis`` package is not
    installed; ``timeout`` bounds connecting and every call (seconds). ``before_close``
    runs with a loop's client just before that client is closed at loop shutdown.
    """

    def __init__(
        self,
        url: str,
        *,
        missing: Callable[[str], Exception],
        timeout: float = 5.0,
        before_close: Callable[[redis.asyncio.Redis], Awaitable[None]] | None = None,
    ) -> None:
        if not isinstance(url, str) or not url:
            raise ConfigurationError("url", f"must be a Redis URL string, got {url!r}")
        try:
            import redis as sync_redis
            import redis.asyncio as async_redis
            from redis.backoff import NoBackoff
        except ImportError as exc:
            raise missing(
                "Redis support needs the redis package: pip install 'fastllm-kit[redis]'"
            ) from exc
        self.url = redact_url(url)
        if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise ConfigurationError(
                "url", f"must start with redis://, rediss:// or unix://, got {self.url!r}"
            )
        self._url = url
        self._timeout = timeout
        self._before_close = before_close
        self._sync_module = sync_redis
        self._async_module = async_redis
        self._no_backoff = NoBackoff
        self._sync: redis.Redis | None = None
        try:
            self.sync()  # parses the URL now; connects on first use
        except ValueError as exc:
            raise ConfigurationError("url", f"not a usable Redis URL {self.url!r}: {exc}") from exc
        self._clients: dict[int, tuple[asyncio.AbstractEventLoop, redis.asyncio.Redis, Any]] = {}
        self.errors: tuple[type[BaseException], ...] = (sync_redis.RedisError, OSError)

    def __repr__(self) -> str:
        return f"RedisEndpoint({self.url!r})"

    def sync(self) -> redis.Redis:
        """The synchronous client (created on first use)."""
        if self._sync is None:
            retry = self._sync_module.retry.Retry(self._no_backoff(), 1)
            self._sync = self._sync_module.Redis.from_url(
                self._url,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                retry=retry,
            )
        return self._sync

    async def client(self) -> redis.asyncio.Redis:
        """The asyncio client of the running event loop (opened on first use in it)."""
        loop = asyncio.get_running_loop()
        entry = self._clients.get(id(loop))
        if entry is not None and entry[0] is loop:
            return entry[1]
        for key, (old_loop, _, _) in list(self._clients.items()):
            if old_loop.is_closed():  # closed without shutdown_asyncgens: just forget it
                del self._clients[key]
        retry = self._async_module.retry.Retry(self._no_backoff(), 1)
        client = self._async_module.Redis.from_url(
            self._url,
            socket_timeout=self._timeout,
            socket_connect_timeout=self._timeout,
            retry=retry,
        )
        guard = self._guard(loop, client)
        self._clients[id(loop)] = (loop, client, guard)
        await guard.__anext__()  # parked until the loop finalises async generators
        return client

    async def _guard(
        self, loop: asyncio.AbstractEventLoop, client: redis.asyncio.Redis
    ) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            try:
                if self._before_close is not None:
                    await self._before_close(client)
            finally:
                entry = self._clients.get(id(loop))
                if entry is not None and entry[1] is client:
                    del self._clients[id(loop)]
                await client.aclose()

    async def aclose(self) -> None:
        """Close the running loop's client and the synchronous one (others are dropped)."""
        loop = asyncio.get_running_loop()
        entry = self._clients.get(id(loop))
        if entry is not None and entry[0] is loop:
            await entry[2].aclose()  # runs the guard's clean-up
        self._clients.clear()
        self.close_sync()

    def close_sync(self) -> None:
        """Close the synchronous client."""
        if self._sync is not None:
            self._sync.close()
            self._sync = None
