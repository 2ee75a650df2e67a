"""One HTTP/1.1 client connection as an :class:`asyncio.Protocol`: one exchange at a time.

:meth:`Connection.send` writes the request bytes and returns a future that the
protocol callbacks complete with the parsed :class:`~fastllm.transport.parser.HttpResponse`
or fail with a :class:`~fastllm.transport.errors.TransportError`. No task, no
stream reader: the bytes go from ``data_received`` straight into the parser.

After an answer the connection stays open for the next request unless the answer
says otherwise (see :attr:`ResponseParser.keep_alive`); it is then closed at once.
When the connection ends before the answer is complete:

* a *reused* connection (it already carried an answer) that ended before any byte
  of this answer raises :class:`StaleConnection` — the server closed it while idle,
  so the request was not processed and may be sent again;
* otherwise :class:`ConnectionLost`;
* a body delimited by the close (no length) completes normally.

Bytes arriving while no request is pending (a server's parting ``408``, garbage)
leave the connection in an unknown state: it is closed. The write side needs no
flow control: a request is written once, whole, and then only read.
"""

from __future__ import annotations

import asyncio
from typing import cast

from fastllm.transport.errors import (
    ConnectionLost,
    ProtocolError,
    StaleConnection,
    TransportTimeout,
)
from fastllm.transport.parser import HttpResponse, ResponseParser

__all__ = ["Connection"]

_NEVER = float("inf")


class Connection(asyncio.Protocol):
    """A client connection; the pool creates it, :meth:`send` uses it, the pool keeps it."""

    __slots__ = (
        "_loop",
        "_parser",
        "_received",
        "_transport",
        "_waiter",
        "closed",
        "deadline",
        "idle_since",
        "keep_alive",
        "reused",
        "timeout",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._parser = ResponseParser()
        self._waiter: asyncio.Future[HttpResponse] | None = None
        self._received = False
        #: Whether the connection has ended or is ending (never used again).
        self.closed = False
        #: Whether the last answer allows another request on this connection.
        self.keep_alive = True
        #: Whether the connection carried an answer before the current exchange.
        self.reused = False
        #: The loop time at which it was last put back into the pool.
        self.idle_since = 0.0
        #: The loop time by which the current exchange must be complete, and its timeout.
        self.deadline = 0.0
        self.timeout = 0.0

    @property
    def usable(self) -> bool:
        """Whether a request may be written: open, and not closing."""
        return not self.closed and not cast(asyncio.Transport, self._transport).is_closing()

    def send(self, data: bytes, deadline: float, timeout: float) -> asyncio.Future[HttpResponse]:
        """Write one whole request; the future completes with its answer.

        ``deadline`` is enforced by the pool's sweep (:meth:`check_deadline`).
        """
        waiter: asyncio.Future[HttpResponse] = self._loop.create_future()
        self._waiter = waiter
        self._received = False
        self.deadline = deadline
        self.timeout = timeout
        try:
            cast(asyncio.Transport, self._transport).write(data)
        except (RuntimeError, OSError) as exc:  # the transport closed under us (uvloop raises)
            self._waiter = None
            self.abort()
            error = StaleConnection if self.reused else ConnectionLost
            waiter.set_exception(error(f"the connection closed before the request was sent: {exc}"))
        return waiter

    def check_deadline(self, now: float) -> float:
        """Fail the pending exchange if its deadline is ``now`` or past.

        Returns the deadline still to watch (``inf`` when nothing is pending any more).
        """
        waiter = self._waiter
        if waiter is None or waiter.done():
            return _NEVER
        if self.deadline > now:
            return self.deadline
        waiter.set_exception(TransportTimeout(f"no complete answer within {self.timeout:g} s"))
        return _NEVER

    def close(self) -> None:
        """Close after flushing what was written (idempotent)."""
        if not self.closed:
            self.closed = True
            if self._transport is not None:
                self._transport.close()

    def abort(self) -> None:
        """Close at once, dropping unsent data (idempotent): after a timeout or an error."""
        self.closed = True
        if self._transport is not None:
            self._transport.abort()

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():  # unsolicited, or the caller gave up
            self._waiter = None
            self.abort()
            return
        self._received = True
        try:
            response = self._parser.feed(data)
        except ProtocolError as exc:
            self._waiter = None
            self.abort()
            waiter.set_exception(exc)
            return
        if response is not None:
            self._waiter = None
            self.keep_alive = self._parser.keep_alive
            self._parser.reset()
            if not self.keep_alive:
                self.close()
            waiter.set_result(response)

    def eof_received(self) -> bool | None:
        self.closed = True  # never reused; connection_lost follows and settles the waiter
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.done():
            return
        if exc is None:
            try:
                response = self._parser.feed_eof()
            except ProtocolError as bad:
                waiter.set_exception(bad)
                return
            if response is not None:
                waiter.set_result(response)
                return
        reason = f": {exc}" if exc is not None else ""
        error: ConnectionLost
        if self._received:
            error = ConnectionLost(f"connection lost before the answer was complete{reason}")
        elif self.reused:
            error = StaleConnection(f"the server had closed the kept-alive connection{reason}")
        else:
            error = ConnectionLost(f"the server closed the connection without answering{reason}")
        error.__cause__ = exc
        waiter.set_exception(error)
