"""Single-flight bookkeeping: one network request per distinct request id.

A :class:`Flight` is a request on its way to the provider, with the orders of the
identical requests that arrived while it was in flight (``followers``). Once it
succeeds, its result is remembered in :class:`CompletedWindow` so identical
requests later in the run are answered without a second call.
"""

from __future__ import annotations

from collections import OrderedDict

from fastllm.engine.results import ResponseWrapper
from fastllm.requests.model import Request

__all__ = ["CompletedWindow", "Flight"]


class Flight:
    """One distinct request being sent, retried, and fanned out to its followers."""

    __slots__ = ("attempts", "cache_key", "followers", "request", "sent_at", "started")

    def __init__(self, request: Request, cache_key: str) -> None:
        self.request = request
        self.cache_key = cache_key
        self.followers: list[tuple[int, str]] = []
        self.attempts = 0
        self.started: float | None = None
        self.sent_at = 0.0


class CompletedWindow:
    """Successful results by request id; with ``limit``, only the most recent ones.

    Unbounded for runs that return every result anyway (nothing extra is kept
    alive; a plain dict, half an ordered dict's memory); bounded for streaming runs
    so memory stays flat for any input size.
    """

    __slots__ = ("_items", "_limit")

    def __init__(self, limit: int | None) -> None:
        self._limit = limit
        self._items: dict[str, ResponseWrapper] = {} if limit is None else OrderedDict()

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._items

    def get(self, request_id: str) -> ResponseWrapper | None:
        """The remembered result, or None."""
        return self._items.get(request_id)

    def add(self, result: ResponseWrapper) -> None:
        """Remember a successful result."""
        items = self._items
        items[result.request_id] = result
        if self._limit is not None and len(items) > self._limit:
            assert isinstance(items, OrderedDict)
            items.popitem(last=False)
