"""One client connection of the mock's HTTP/1.1 server (:class:`HttpConnection`); it handles:

* requests with a ``Content-Length`` body (chunked *request* bodies get 501);
* keep-alive by default, ``Connection: close`` and HTTP/1.0 honoured;
* pipelined requests answered strictly in order: while one request is being
  answered asynchronously, later ones wait in the buffer;
* ``Expect: 100-continue`` answered;
* plain responses with ``Content-Length`` and streamed responses with chunked
  transfer encoding.

A handler is a plain function ``handler(request, connection)``.  It either
answers synchronously through the connection (``send``, ``start_stream`` ...)
and returns ``None`` - the fast path, no task is created -, or schedules its answer
with :meth:`HttpConnection.answer_later` (a timer, no task: the delayed answers of
a latency setting) and returns ``None``, or returns a coroutine that the connection
runs as a task.  Either way the next request is read only once this one is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

from fastllm.testing._http_heads import (
    MAX_HEAD,
    Header,
    ProtocolError,
    Request,
    _head_bytes,
    parse_head,
)

if TYPE_CHECKING:
    from fastllm.testing._http import HttpServer

__all__ = ["Handler", "HttpConnection"]

log = logging.getLogger("fastllm.testing.mock_server")

MAX_BUFFERED = 4 * 1024 * 1024  # pipelined bytes held while busy before reading pauses

Handler = Callable[["Request", "HttpConnection"], "Coroutine[Any, Any, None] | None"]

_ERROR_IDS = itertools.count(1)


class HttpConnection(asyncio.Protocol):
    """One client connection: parses requests and writes the handler's answers."""

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._handler = server.handler
        self._transport: asyncio.Transport | None = None
        self._buf: bytes | bytearray = b""
        self._pending: tuple[Request, int] | None = None
        self._request: Request | None = None
        self._busy = False
        self._paused = False
        self._started = False
        self._raw_stream = False
        self._task: asyncio.Task[None] | None = None
        self._later: tuple[asyncio.TimerHandle, Callable[[], None]] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._out: list[bytes] = []
        self._close_after_flush = False

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Remember the transport and disable Nagle's algorithm."""
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection and cancel any answer still in progress."""
        self._server.connections.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._later is not None:
            handle, abandon = self._later
            self._later = None
            handle.cancel()
            abandon()
        self._transport = None
        self._out.clear()

    def data_received(self, data: bytes) -> None:
        """Buffer the bytes and answer every complete request, unless one is in progress."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        buf = self._buf
        if buf:  # rare: a partial or pipelined request is waiting; grow in place
            if not isinstance(buf, bytearray):
                buf = bytearray(buf)
            buf += data
            self._buf = buf
        else:
            self._buf = data
        if not self._busy:
            self._process()
        elif len(self._buf) > MAX_BUFFERED and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()

    def eof_received(self) -> bool:
        """The client closed its side: close ours too (an answer in progress is abandoned)."""
        self.flush()
        return False

    # -- parsing and dispatch --------------------------------------------------------

    @property
    def closing(self) -> bool:
        """True once the connection is closed or about to be."""
        transport = self._transport
        return transport is None or self._close_after_flush or transport.is_closing()

    def _process(self) -> None:
        transport = self._transport
        if transport is None:
            return
        data = self._buf
        pos = 0
        try:  # (connection_lost never runs synchronously inside this loop)
            while not self._busy and not self._close_after_flush and not transport.is_closing():
                pending = self._pending
                if pending is None:
                    while data.startswith(b"\r\n", pos):
                        pos += 2
                    end = data.find(b"\r\n\r\n", pos)
                    if end < 0:
                        if len(data) - pos > MAX_HEAD:
                            raise ProtocolError(431, "request head too large")
                        break
                    pending = parse_head(bytes(data[pos:end]))
                    pos = end + 4
                    self._pending = pending
                request, length = pending
                if len(data) - pos < length:
                    self._maybe_continue(request)
                    break
                request.body = bytes(data[pos : pos + length])
                pos += length
                self._pending = None
                self._dispatch(request)
        except ProtocolError as exc:
            self._fail(exc)
            pos = len(data)
        self._buf = data[pos:] if pos else data
        if self._paused and not self._busy:
            self._paused = False
            transport.resume_reading()

    def _maybe_continue(self, request: Request) -> None:
        if request.continued or self._transport is None:
            return
        if request.headers.get("expect", "").lower() == "100-continue":
            request.continued = True
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _dispatch(self, request: Request) -> None:
        self._request = request
        self._started = False
        try:
            coro = self._handler(request, self)
        except Exception:
            log.exception("mock server handler failed")
            self._internal_error()
            return
        if coro is not None:
            self._busy = True
            task = asyncio.get_running_loop().create_task(coro)
            task.add_done_callback(self._answered)
            self._task = task
            self._server.track(task)

    def answer_later(
        self, delay: float, answer: Callable[[], None], abandon: Callable[[], None]
    ) -> None:
        """Call ``answer`` in ``delay`` seconds, or ``abandon`` if the connection ends first.

        Cheaper than a task for an answer that only waits (one timer, no coroutine);
        later requests on this connection wait until it has run.
        """
        self._busy = True
        handle = asyncio.get_running_loop().call_later(delay, self._answer_due, answer)
        self._later = (handle, abandon)

    def _answer_due(self, answer: Callable[[], None]) -> None:
        self._later = None
        try:
            answer()
        except Exception:
            log.exception("mock server handler failed")
            self._internal_error()
        self._busy = False
        if self._transport is not None:
            self._process()

    def _answered(self, task: asyncio.Task[None]) -> None:
        if self._task is task:
            self._task = None
        if task.cancelled():
            return
        if task.exception() is not None:
            log.error("mock server handler failed", exc_info=task.exception())
            self._internal_error()
        self._busy = False
        if self._transport is not None:
            self._process()

    def _fail(self, exc: ProtocolError) -> None:
        self._request = Request("GET", "/", "", "HTTP/1.1", b"", keep_alive=False)
        self._started = False
        headers = [("x-request-id", f"req_http_{next(_ERROR_IDS)}")]
        self.send(exc.status, exc.message.encode(), "text/plain; charset=utf-8", headers)

    def _internal_error(self) -> None:
        if self._started or self.closing:
            self.abort()
            return
        if self._request is not None:
            self._request.keep_alive = False
        self.send(500, b"internal mock server error", "text/plain; charset=utf-8")

    # -- answering -------------------------------------------------------------------
    # Writes are queued and flushed once per event-loop iteration (HttpServer.flush):
    # the answers to many connections are computed back to back, then sent back to
    # back, which keeps both the interpreter's and the kernel's caches warm.

    def _write(self, data: bytes) -> None:
        if not self._out:
            self._server.queue(self)
        self._out.append(data)

    def _close(self) -> None:
        """Close once the queued output has been handed to the transport."""
        self._close_after_flush = True
        if not self._out and self._transport is not None:
            self._transport.close()

    def flush(self) -> None:
        """Hand the queued output to the transport (then close, if asked)."""
        transport = self._transport
        if transport is None:
            return
        out = self._out
        if out:
            transport.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()
        if self._close_after_flush:
            transport.close()

    def _writable(self) -> Request | None:
        request = self._request
        if request is None or self.closing:
            return None
        return request

    def send(
        self, status: int, body: bytes, content_type: str, headers: Sequence[Header] = ()
    ) -> None:
        """Write a complete answer with a Content-Length body."""
        request = self._writable()
        if request is None:
            return
        self._started = True
        framing = f"content-length: {len(body)}\r\n"
        self._write(_head_bytes(status, content_type, framing, headers, request) + body)
        if not request.keep_alive:
            self._close()

    def start_stream(self, status: int, content_type: str, headers: Sequence[Header] = ()) -> None:
        """Write the head of a streamed answer (chunked; raw until close for HTTP/1.0)."""
        request = self._writable()
        if request is None:
            return
        self._started = True
        self._raw_stream = request.version == "HTTP/1.0"
        if self._raw_stream:
            request.keep_alive = False
            head = _head_bytes(status, content_type, "", headers, request)
        else:
            framing = "transfer-encoding: chunked\r\n"
            head = _head_bytes(status, content_type, framing, headers, request)
        self._write(head)

    def write_chunks(self, chunks: Iterable[bytes]) -> None:
        """Write body pieces of a streamed answer, one HTTP chunk each, in one write."""
        if self._writable() is None:
            return
        if self._raw_stream:
            self._write(b"".join(chunks))
            return
        self._write(b"".join([b"%x\r\n%b\r\n" % (len(chunk), chunk) for chunk in chunks if chunk]))

    def end_stream(self) -> None:
        """Finish a streamed answer (and close the connection when it is not kept alive)."""
        request = self._writable()
        if request is None:
            return
        if not self._raw_stream:
            self._write(b"0\r\n\r\n")
        if not request.keep_alive:
            self._close()

    def drop(self) -> None:
        """Close the connection without answering the current request."""
        if self._transport is not None:
            self._close()

    def abort(self) -> None:
        """Close the connection at once, discarding unsent data."""
        self._out.clear()
        if self._transport is not None:
            self._transport.abort()

    def close_soon(self, delay: float) -> None:
        """Close the connection after ``delay`` seconds unless a new request arrives first."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, self._close_idle)

    def _close_idle(self) -> None:
        self._timer = None
        if not self._busy and not self._buf and self._pending is None and not self.closing:
            self.drop()
