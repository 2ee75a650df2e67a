"""A minimal, fast HTTP/1.1 server built on :class:`asyncio.Protocol`.

Only what the mock OpenAI server needs, with as little work per request as
possible.  Request heads are parsed in ``_http_heads``; each connection is an
:class:`~fastllm.testing._http_connection.HttpConnection` (keep-alive,
pipelining, streaming, and the handler contract).  This module holds the
listening socket, the answer tasks and the write batching: answers are queued
and handed to the transports once per event-loop iteration, so a busy server
computes many answers back to back and then sends them back to back
(measurably cheaper per request than writing each answer as soon as it is
ready).
"""

from __future__ import annotations

import asyncio

from fastllm.testing._http_connection import Handler, HttpConnection

__all__ = ["HttpServer", "new_event_loop"]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop event loop when uvloop is importable, else a default asyncio loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is an optional extra
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


class HttpServer:
    """A listening socket plus the connections and tasks it owns."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections: set[HttpConnection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.AbstractServer | None = None
        self._queued: list[HttpConnection] = []
        self._flush_handle: asyncio.Handle | None = None

    async def start(self, host: str, port: int) -> int:
        """Start listening; return the real port (useful with port 0)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: HttpConnection(self), host, port, reuse_address=True, backlog=4096
        )
        sockets = self._server.sockets
        return int(sockets[0].getsockname()[1]) if sockets else port

    def queue(self, connection: HttpConnection) -> None:
        """Flush ``connection`` at the end of this event-loop iteration."""
        if not self._queued:
            self._flush_handle = asyncio.get_running_loop().call_soon(self.flush)
        self._queued.append(connection)

    def flush(self) -> None:
        """Hand every queued answer to its transport."""
        queued, self._queued = self._queued, []
        self._flush_handle = None
        for connection in queued:
            connection.flush()

    def track(self, task: asyncio.Task[None]) -> None:
        """Keep a reference to a running answer task until it is done."""
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def close(self) -> None:
        """Stop listening, abort every connection and wait for every answer task to end."""
        if self._server is not None:
            self._server.close()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._queued.clear()
        for connection in list(self.connections):
            connection.abort()
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
