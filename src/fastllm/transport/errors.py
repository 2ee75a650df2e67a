"""What the transport raises: one small tree under :class:`TransportError`.

::

    TransportError
     ├── ConnectError           no connection: DNS, refused, TLS handshake, connect timeout
     ├── ConnectionLost         the connection ended before the answer was complete
     │    └── StaleConnection   a reused keep-alive connection closed before any byte came back
     ├── ProtocolError          the answer is not valid HTTP/1.1 (or uses an unknown encoding)
     └── TransportTimeout       no complete answer within the request's timeout

A :class:`StaleConnection` means the server had (almost certainly) closed an idle
pooled connection as the request was written: sending the request again, once, at
once, is the expected reaction. Messages never contain request headers; callers
still redact them, since they may quote the URL or the server.
"""

from __future__ import annotations

__all__ = [
    "ConnectError",
    "ConnectionLost",
    "ProtocolError",
    "StaleConnection",
    "TransportError",
    "TransportTimeout",
]


class TransportError(Exception):
    """Base class of every error the transport raises for one exchange."""


class ConnectError(TransportError):
    """No connection could be opened to the origin (or to the proxy)."""


class ConnectionLost(TransportError):
    """The connection was closed or reset before the answer was complete."""


class StaleConnection(ConnectionLost):
    """A reused keep-alive connection was closed before any byte of the answer came back."""


class ProtocolError(TransportError):
    """The answer broke HTTP/1.1: bad status line, oversized head, bad framing or encoding."""


class TransportTimeout(TransportError, TimeoutError):
    """The whole exchange (waiting for a connection included) outlasted its timeout."""
