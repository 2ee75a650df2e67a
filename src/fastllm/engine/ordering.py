"""Collecting results: by position for a whole batch, or released in order as they are ready."""

from __future__ import annotations

from collections import deque
from typing import cast

from fastllm.engine.results import ResponseWrapper

__all__ = ["OrderedBuffer", "ResultList"]


class ResultList:
    """Results placed by order; ``results()`` gives them in request order."""

    def __init__(self) -> None:
        self._items: list[ResponseWrapper | None] = []

    def add(self, result: ResponseWrapper) -> None:
        """Place one result."""
        items = self._items
        index = result.order
        if index < len(items):
            items[index] = result
            return
        if index > len(items):
            items.extend([None] * (index - len(items)))
        items.append(result)  # the usual case: results mostly arrive in order

    def results(self) -> list[ResponseWrapper]:
        """Every result, in request order (all must have arrived)."""
        items = self._items
        if None in items:  # an engine bug
            missing = [i for i, r in enumerate(items) if r is None]
            raise RuntimeError(f"results missing for orders {missing[:10]}")
        return cast("list[ResponseWrapper]", items[:])


class OrderedBuffer:
    """Releases results strictly in order, holding only those that arrived early."""

    def __init__(self) -> None:
        self.next_order = 0
        self._early: dict[int, ResponseWrapper] = {}
        self._ready: deque[ResponseWrapper] = deque()

    def add(self, result: ResponseWrapper) -> None:
        """Take one result (in any order)."""
        if result.order != self.next_order:
            self._early[result.order] = result
            return
        self._ready.append(result)
        self.next_order += 1
        while self.next_order in self._early:
            self._ready.append(self._early.pop(self.next_order))
            self.next_order += 1

    def take(self) -> list[ResponseWrapper]:
        """The results ready to be released, in order."""
        ready = list(self._ready)
        self._ready.clear()
        return ready

    @property
    def held(self) -> int:
        """Results waiting for an earlier one."""
        return len(self._early)
