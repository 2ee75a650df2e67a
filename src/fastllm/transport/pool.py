"""The connections to one origin (scheme, host, port): reuse, a hard limit, fair waiting.

* Idle connections are reused last-in first-out: the most recently used one is the
  least likely to have been closed by the server, and the stack stays ordered by
  idle time, so when its top has been idle longer than ``keepalive_timeout`` every
  idle connection has, and all are closed at once (no timer needed).
* At most ``limit`` connections are open or opening. Beyond that, callers wait in
  FIFO order; a released connection goes straight to the first waiter, and a closed
  one hands its slot to the first waiter, which connects.
* The host name is resolved once for all connections and the addresses cached for
  ``DNS_TTL`` seconds (concurrent connects share one lookup); each address is tried
  in turn. ``https`` connects with TLS (``server_hostname`` = the URL's host).
* Each connect is bounded by ``connect_timeout`` (:class:`ConnectError`) and by the
  request's deadline (:class:`TransportTimeout`).
* Deadlines of exchanges in flight are enforced by one timer per pool, armed at the
  earliest deadline (:meth:`ConnectionPool.watch`). With one timeout for every
  request, as in a run, a new deadline is never the earliest, so sending a request
  arms nothing; when the timer fires it fails what is due and re-arms itself at the
  next deadline of what is still in flight. (A timer per request cost 19k CPU
  instructions per request, a seventh of the whole exchange, under valgrind.)
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections import deque

from fastllm.transport.connection import Connection
from fastllm.transport.errors import ConnectError, ConnectionLost, TransportTimeout

__all__ = ["DNS_TTL", "ConnectionPool"]

#: Seconds a host name's resolved addresses are reused.
DNS_TTL = 300.0
_NEVER = float("inf")
_SLACK = 0.001  # a deadline this close is due (timers may fire a hair early)

_Waiter = asyncio.Future[Connection | None]


class ConnectionPool:
    """Connections to one origin. :meth:`take_idle` or :meth:`acquire`, then release or discard."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        *,
        limit: int,
        connect_timeout: float,
        keepalive_timeout: float,
    ) -> None:
        self._loop = loop
        self._host = host
        self._port = port
        self._ssl = ssl_context
        self._limit = limit
        self._connect_timeout = connect_timeout
        self._keepalive_timeout = keepalive_timeout
        self._idle: list[Connection] = []
        self._waiters: deque[_Waiter] = deque()
        self._open = 0  # connections open or being opened
        self._all: set[Connection] = set()
        self._addresses: list[tuple[int, str]] = []
        self._resolved_until = 0.0
        self._lookup: asyncio.Task[list[tuple[int, str]]] | None = None
        self._closed = False
        self._sweeper: asyncio.TimerHandle | None = None
        self._sweep_at = _NEVER
        try:
            family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
        except ValueError:
            pass  # a name: resolved on first connect
        else:
            self._addresses, self._resolved_until = [(family, host)], float("inf")

    def take_idle(self) -> Connection | None:
        """A kept-alive connection ready for a request, or ``None`` (the synchronous fast path)."""
        idle = self._idle
        while idle:
            conn = idle.pop()
            if not conn.usable:
                self.discard(conn)
            elif self._loop.time() - conn.idle_since > self._keepalive_timeout:
                self.discard(conn)
                while idle:  # below the top, every one has been idle even longer
                    self.discard(idle.pop())
            else:
                return conn
        return None

    async def acquire(self, deadline: float) -> Connection:
        """An idle connection, else a new one, else the first one freed (FIFO), by ``deadline``."""
        if self._closed:
            raise RuntimeError("the HTTP session is closed")
        conn = self.take_idle()
        if conn is not None:
            return conn
        if self._open >= self._limit:
            conn = await self._wait(deadline)
            if conn is not None:
                return conn
        else:
            self._open += 1
        try:  # a slot is ours: open a connection in it
            conn = await self._connect(deadline)
        except BaseException:
            self._open -= 1
            self._hand_slot()
            raise
        self._all.add(conn)
        return conn

    def release(self, conn: Connection) -> None:
        """Give back a connection after a complete answer (closed if it cannot be reused)."""
        if conn.closed or not conn.keep_alive or self._closed:
            self.discard(conn)
            return
        conn.reused = True
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle_since = self._loop.time()
        self._idle.append(conn)

    def watch(self, deadline: float) -> None:
        """Make sure the deadline sweep runs by ``deadline`` (after each send; usually a no-op)."""
        if deadline < self._sweep_at:
            self._arm(deadline)

    def discard(self, conn: Connection) -> None:
        """Abort a connection that failed, timed out or was cancelled (idempotent)."""
        conn.abort()
        self._forget(conn)

    def close(self) -> None:
        """Abort every connection and fail every waiter."""
        self._closed = True
        for conn in list(self._all):
            conn.abort()
        self._all.clear()
        self._idle.clear()
        self._open = 0
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectionLost("the HTTP session was closed"))
        if self._lookup is not None:
            self._lookup.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper, self._sweep_at = None, _NEVER

    # -- internals ----------------------------------------------------------------------
    def _arm(self, when: float) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._sweep_at = when
        self._sweeper = self._loop.call_at(when, self._sweep)

    def _sweep(self) -> None:
        """Fail the exchanges that are due; re-arm at the next deadline still in flight."""
        self._sweeper, self._sweep_at = None, _NEVER
        now = self._loop.time() + _SLACK
        soonest = min((conn.check_deadline(now) for conn in self._all), default=_NEVER)
        if soonest != _NEVER:
            self._arm(soonest)

    def _forget(self, conn: Connection) -> None:
        if conn in self._all:
            self._all.discard(conn)
            self._open -= 1
            self._hand_slot()

    def _hand_slot(self) -> None:
        """A slot is free: let the first live waiter connect in it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._open += 1
                waiter.set_result(None)
                return

    async def _wait(self, deadline: float) -> Connection | None:
        """A released connection, or ``None``: a slot handed over (already counted)."""
        waiter: _Waiter = self._loop.create_future()
        self._waiters.append(waiter)
        timer = self._loop.call_at(deadline, _expire, waiter, "no free connection in time")
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                handed = waiter.result()  # handed over just as we were cancelled: pass it on
                if handed is None:
                    self._open -= 1
                    self._hand_slot()
                else:
                    self.release(handed)
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise
        finally:
            timer.cancel()

    async def _connect(self, deadline: float) -> Connection:
        loop = self._loop
        error: BaseException | None = None
        for family, address in await self._resolve(deadline):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                _, conn = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: Connection(loop),
                        address,
                        self._port,
                        family=family,
                        ssl=self._ssl,
                        server_hostname=self._host if self._ssl is not None else None,
                    ),
                    min(remaining, self._connect_timeout),
                )
            except asyncio.TimeoutError:
                error = TimeoutError(f"no connection within {self._connect_timeout:g} s")
            except OSError as exc:  # refused, unreachable, TLS handshake or certificate
                error = exc
            else:
                return conn
        if deadline <= loop.time():
            raise TransportTimeout("the timeout expired while connecting")
        raise ConnectError(f"cannot connect to {self._host}:{self._port}: {error}") from error

    async def _resolve(self, deadline: float) -> list[tuple[int, str]]:
        if self._addresses and self._loop.time() < self._resolved_until:
            return self._addresses
        if self._lookup is None:
            self._lookup = self._loop.create_task(self._getaddrinfo())
            self._lookup.add_done_callback(_consume)
        lookup = self._lookup
        try:
            return await asyncio.wait_for(asyncio.shield(lookup), deadline - self._loop.time())
        except asyncio.TimeoutError:
            raise TransportTimeout("the timeout expired while resolving the host") from None
        except OSError as exc:
            raise ConnectError(f"cannot resolve {self._host}: {exc}") from exc
        finally:
            if lookup.done() and self._lookup is lookup:
                self._lookup = None

    async def _getaddrinfo(self) -> list[tuple[int, str]]:
        infos = await self._loop.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys((int(info[0]), str(info[4][0])) for info in infos))
        if not addresses:
            raise OSError(f"no address for {self._host}")
        self._addresses, self._resolved_until = addresses, self._loop.time() + DNS_TTL
        return addresses


def _consume(task: asyncio.Task[list[tuple[int, str]]]) -> None:
    """Mark a lookup's failure as seen (its waiters may all have timed out)."""
    if not task.cancelled():
        task.exception()


def _expire(waiter: _Waiter, message: str) -> None:
    if not waiter.done():
        waiter.set_exception(TransportTimeout(message))
