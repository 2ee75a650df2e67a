"""``Provider``: where requests go and how they are authenticated.

A provider knows its base URL, its headers and how to turn one
:class:`~fastllm.requests.Request` into a :class:`ProviderResponse`; it raises the
typed errors of :mod:`fastllm.errors` and nothing else. The engine owns retries,
limits, caching and the HTTP session: one :class:`~fastllm.transport.HttpSession`
per run, sized to the run's concurrency, passed to every :meth:`Provider.make_request`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import xxhash

from fastllm.errors import ConfigurationError
from fastllm.requests.model import Endpoint, Request

if TYPE_CHECKING:
    from fastllm.transport import HttpSession

__all__ = ["Provider", "ProviderResponse"]


@dataclass(slots=True)
class ProviderResponse:
    """A successful answer.

    ``body`` is the parsed JSON; ``raw`` the bytes as received when they are the
    body itself (``None`` for an assembled stream); ``ttft`` the seconds to the
    first streamed chunk.
    """

    body: dict[str, Any]
    raw: bytes | None
    headers: Mapping[str, str]
    ttft: float | None = None


class Provider(ABC):
    """Base class of providers: ``api_key``, ``api_base``, ``headers``.

    The API key is kept out of ``repr`` and out of every error message.
    """

    def __init__(
        self,
        api_key: str | None = None,
        api_base: str = "https://api.openai.com/v1",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if api_key is not None and not isinstance(api_key, str):
            raise ConfigurationError("api_key", f"must be a string, got {type(api_key).__name__}")
        self.api_key = api_key
        self.api_base = _check_base_url(api_base)
        self.headers: dict[str, str] = dict(headers or {})
        self.cache_namespace = xxhash.xxh3_64_hexdigest(self.api_base.encode())

    def get_request_url(self, endpoint: Endpoint | str) -> str:
        """The full URL for an endpoint (``/v1/chat/completions`` or a path under ``api_base``)."""
        if isinstance(endpoint, Endpoint) or endpoint.startswith("/v1/"):
            path = Endpoint.from_url(endpoint).path
        else:
            path = endpoint.lstrip("/")
        return f"{self.api_base}/{path}"

    @abstractmethod
    def get_request_headers(self) -> dict[str, str]:
        """The headers sent with every request."""

    @abstractmethod
    async def make_request(
        self, session: HttpSession, request: Request, timeout: float
    ) -> ProviderResponse:
        """Send one request; return its answer or raise a :class:`~fastllm.errors.RequestError`.

        ``session`` is the run's :class:`~fastllm.transport.HttpSession`: either
        ``await session.post(url, data, headers, timeout)`` (the fast path; an
        ``HttpResponse`` with ``status``, ``headers`` and the whole ``body``, or a
        :class:`~fastllm.transport.TransportError`), or ``session.aiohttp``, an
        :class:`aiohttp.ClientSession` sharing the run's connection limit, for
        streaming or anything else. Raise the typed errors: the transport's and
        aiohttp's must be translated here.
        """

    def __repr__(self) -> str:
        key = "[secure]" if self.api_key else None
        return f"{type(self).__name__}(api_base={self.api_base!r}, api_key={key!r})"


def _check_base_url(api_base: object) -> str:
    if not isinstance(api_base, str):
        raise ConfigurationError("api_base", f"must be a string, got {type(api_base).__name__}")
    parts = urlsplit(api_base.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            "api_base",
            f"must be an http(s) URL such as 'https://api.openai.com/v1', got {api_base!r}",
        )
    try:
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError as exc:
        raise ConfigurationError("api_base", f"has an invalid port: {api_base!r}") from exc
    return api_base.strip().rstrip("/")
