"""The request model: the endpoints and one request line.

A :class:`Request` is one line of an OpenAI Batch input file plus the two numbers
FastLLM tracks for it: ``request_id`` (content hash, the cache and dedup key) and
``order`` (its position in the run). Neither is ever sent to a provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from fastllm.errors import RequestFormatError

__all__ = ["TRACKING_KEYS", "Endpoint", "Request"]

#: Keys FastLLM may carry inside a request dict for its own bookkeeping; never sent, never hashed.
TRACKING_KEYS = frozenset({"_order_id", "_request_id"})


class Endpoint(str, Enum):
    """The API endpoints FastLLM can call, by their OpenAI Batch ``url``."""

    CHAT_COMPLETIONS = "/v1/chat/completions"
    EMBEDDINGS = "/v1/embeddings"

    @property
    def path(self) -> str:
        """The path relative to an ``api_base`` that ends in ``/v1``."""
        return self.value[len("/v1/") :]

    @classmethod
    def from_url(cls, url: object, *, line: int | None = None) -> Endpoint:
        """The endpoint for a Batch-line ``url``; ``/v1`` may be left out."""
        if isinstance(url, Endpoint):
            return url
        if isinstance(url, str):
            found = _URLS.get(url.strip().rstrip("/"))
            if found is not None:
                return found
        known = ", ".join(e.value for e in cls)
        raise RequestFormatError(
            f"unknown endpoint url {url!r} (expected one of {known})", line=line, field="url"
        )


_URLS: dict[str, Endpoint] = {}
for _endpoint in Endpoint:
    for _form in (_endpoint.value, _endpoint.value[3:], _endpoint.value[4:]):
        _URLS[_form] = _endpoint


@dataclass(slots=True)
class Request:
    """One request of a run.

    ``body`` is exactly what is sent; ``custom_id`` is the Batch-file id, kept for
    output files; ``request_id`` is the content hash; ``order`` the position in the run.
    ``part`` marks a piece of a larger request that the engine splits and reassembles
    (embeddings): it is not a result of its own and is not cached whole.
    """

    custom_id: str
    endpoint: Endpoint
    body: dict[str, Any]
    request_id: str
    order: int
    method: str = "POST"
    part: bool = False

    @property
    def url(self) -> str:
        """The Batch-format url, e.g. ``/v1/chat/completions``."""
        return self.endpoint.value

    def to_batch_line(self) -> dict[str, Any]:
        """This request as an OpenAI Batch input line."""
        return {
            "custom_id": self.custom_id,
            "method": self.method,
            "url": self.url,
            "body": self.body,
        }
