"""A small, fast HTTP/1.1 client for buffered POSTs, with aiohttp kept for the rest.

The engine opens one :class:`HttpSession` per run and hands it to
``Provider.make_request``::

    response = await session.post(url, data, headers, timeout)  # HttpResponse
    session.aiohttp  # an aiohttp.ClientSession, for streaming or anything else

Modules, each small: :mod:`~fastllm.transport.parser` (responses),
:mod:`~fastllm.transport.headers` (case-insensitive headers, header checks),
:mod:`~fastllm.transport.request` (request heads), :mod:`~fastllm.transport.connection`
(one connection, an ``asyncio.Protocol``), :mod:`~fastllm.transport.pool` (connections
per origin), :mod:`~fastllm.transport.session` and :mod:`~fastllm.transport.errors`.
"""

from fastllm.transport.errors import (
    ConnectError,
    ConnectionLost,
    ProtocolError,
    StaleConnection,
    TransportError,
    TransportTimeout,
)
from fastllm.transport.headers import Headers
from fastllm.transport.parser import HttpResponse
from fastllm.transport.session import HttpSession

__all__ = [
    "ConnectError",
    "ConnectionLost",
    "Headers",
    "HttpResponse",
    "HttpSession",
    "ProtocolError",
    "StaleConnection",
    "TransportError",
    "TransportTimeout",
]
