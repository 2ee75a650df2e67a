"""Bookkeeping of the embedding stage: who waits for which vector of which part request.

A :class:`Parent` is a request the stage answers itself, a :class:`Group` the
distinct items waiting to be cut (one request's, or a pack's), a :class:`Part` one
part request and where each of its vectors goes. How inputs are cut is in
:mod:`fastllm.engine.embedding_input`, the per-item cache entries in
:mod:`fastllm.engine.embedding_cache`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastllm.engine.embedding_cache import encode_entry
from fastllm.engine.embedding_input import Embedding, Item, apportion
from fastllm.errors import ResponseDecodingError
from fastllm.requests.hashing import hash_clean_body
from fastllm.requests.model import Endpoint, Request

__all__ = ["Dest", "Group", "Parent", "Part", "vectors_of"]

_EMBEDDINGS = Endpoint.EMBEDDINGS


class Parent:
    """One request the stage answers itself: its slots, usage and who waits for it."""

    __slots__ = (
        "attempts",
        "done",
        "dups",
        "first",
        "followers",
        "is_tokens",
        "items",
        "keys",
        "latency",
        "missing",
        "model",
        "order",
        "prompt",
        "request",
        "sent",
        "slots",
        "total",
    )

    def __init__(
        self, request: Request, order: int, items: list[Item], is_tokens: bool, dedupe: bool
    ) -> None:
        self.request = request
        self.order = order
        self.is_tokens = is_tokens
        self.slots: list[Embedding | None] = [None] * len(items)
        self.missing = len(items)
        self.items = items  # the distinct items (all of them without dedupe)
        self.first: Sequence[int] = range(len(items))  # the slot of each distinct item
        self.dups: dict[int, list[int]] = {}  # distinct item -> its other slots
        if dedupe and (is_tokens or len(dict.fromkeys(items)) < len(items)):
            self._distinct(items)
        self.keys: list[str] = []  # the cache key of each distinct item (with a cache)
        self.prompt = self.total = self.attempts = 0
        self.latency: float | None = None
        self.model: str | None = None
        self.sent = self.done = False
        self.followers: list[tuple[int, str]] = []

    def _distinct(self, items: list[Item]) -> None:
        seen: dict[object, int] = {}
        distinct: list[Item] = []
        first: list[int] = []
        for slot, item in enumerate(items):
            key = item if isinstance(item, str) else tuple(item)
            at = seen.setdefault(key, len(distinct))
            if at == len(distinct):
                distinct.append(item)
                first.append(slot)
            else:
                self.dups.setdefault(at, []).append(slot)
        self.items, self.first = distinct, first

    def fill(self, at: int, embedding: Embedding, prompt: int, total: int) -> None:
        """The vector of distinct item ``at`` arrived (with its share of the usage)."""
        self.slots[self.first[at]] = embedding
        self.missing -= 1
        if self.dups:
            for slot in self.dups.get(at, ()):
                self.slots[slot] = embedding
                self.missing -= 1
        self.prompt += prompt
        self.total += total

    def body(self) -> dict[str, Any]:
        """The assembled answer, shaped like OpenAI's ``CreateEmbeddingResponse``."""
        data = [
            {"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(self.slots)
        ]
        return {
            "object": "list",
            "data": data,
            "model": self.model or self.request.body.get("model"),
            "usage": {"prompt_tokens": self.prompt, "total_tokens": self.total},
        }


Dest = tuple[Parent, int]


class Group:
    """Distinct items waiting to be cut into parts: one request's, or a pack's."""

    __slots__ = ("dests", "extra", "index", "items", "keys", "params")

    def __init__(self, params: dict[str, Any], dedupe: bool) -> None:
        self.params = params
        self.items: list[Item] = []
        self.dests: list[Dest] = []  # who each item is for
        self.extra: dict[int, list[Dest]] = {}  # item -> further requests sharing it
        self.keys: list[str] = []
        self.index: dict[object, int] | None = {} if dedupe else None

    def add(self, parent: Parent, at: int) -> None:
        item = parent.items[at]
        if self.index is not None:
            found = self.index.setdefault(
                item if isinstance(item, str) else tuple(item), len(self.items)
            )
            if found != len(self.items):
                self.extra.setdefault(found, []).append((parent, at))
                return
        self.items.append(item)
        self.dests.append((parent, at))
        if parent.keys:
            self.keys.append(parent.keys[at])

    def add_all(self, parent: Parent, ats: Sequence[int]) -> None:
        """Add distinct items ``ats`` (ascending) of ``parent``."""
        if self.index is not None:
            for at in ats:
                self.add(parent, at)
            return
        every = len(ats) == len(parent.items)
        self.items.extend(parent.items if every else [parent.items[at] for at in ats])
        self.dests.extend([(parent, at) for at in ats])
        if parent.keys:
            self.keys.extend(parent.keys if every else [parent.keys[at] for at in ats])


class Part:
    """One part request: consecutive items of a group, and where their vectors go."""

    __slots__ = ("dests", "extra", "items", "keys", "label", "params")

    def __init__(
        self,
        group: Group,
        start: int,
        end: int,
        extra: dict[int, list[Dest]],
        label: str,
    ) -> None:
        self.params = group.params
        self.items = group.items[start:end]
        self.dests = group.dests[start:end]
        self.keys = group.keys[start:end]
        self.extra = extra
        self.label = label

    @property
    def first_order(self) -> int:
        """The smallest caller order this part serves (items are added in order)."""
        return self.dests[0][0].order

    def request(self, order: int) -> Request:
        """The part as a request numbered ``order`` in the scheduler's stream."""
        body = {**self.params, "input": self.items}
        return Request(
            self.label, _EMBEDDINGS, body, hash_clean_body(_EMBEDDINGS, body), order, part=True
        )

    def deliver(
        self,
        vectors: list[Embedding],
        usage: object,
        write: Callable[[str, bytes], object] | None = None,
    ) -> list[Parent]:
        """Hand each vector and its share of ``usage`` to the requests it serves.

        Returns the unfinished requests served (once each, in order); with ``write``,
        each item's cache entry is passed to it.
        """
        prompt, total = _usage_tokens(usage)
        weights = [max(1, len(item)) for item in self.items]
        prompts = apportion(prompt, weights)
        totals = prompts if total == prompt else apportion(total, weights)
        served: dict[Parent, None] = {}
        last: Parent | None = None
        for i, (parent, at) in enumerate(self.dests):
            if parent is not last:
                served[parent] = None
                last = parent
            if not parent.done:
                parent.fill(at, vectors[i], prompts[i], totals[i])
        for i, dests in self.extra.items():
            for parent, at in dests:
                served[parent] = None
                if not parent.done:
                    parent.fill(at, vectors[i], prompts[i], totals[i])
        if write is not None:
            for key, vector, tokens in zip(self.keys, vectors, totals, strict=True):
                write(key, encode_entry(vector, tokens))
        return [parent for parent in served if not parent.done]

    def parents(self) -> list[Parent]:
        """Every request served, once each."""
        found = dict.fromkeys(parent for parent, _ in self.dests)
        for dests in self.extra.values():
            found.update(dict.fromkeys(parent for parent, _ in dests))
        return list(found)


def _usage_tokens(usage: object) -> tuple[int, int]:
    """``(prompt_tokens, total_tokens)`` of an answer's usage (0 where missing or odd)."""
    if not isinstance(usage, Mapping):
        return 0, 0
    prompt = usage.get("prompt_tokens")
    total = usage.get("total_tokens")
    prompt = prompt if isinstance(prompt, int) and not isinstance(prompt, bool) else 0
    total = total if isinstance(total, int) and not isinstance(total, bool) else prompt
    return max(0, prompt), max(0, total)


def vectors_of(body: dict[str, Any] | None, count: int) -> list[Embedding]:
    """The ``count`` vectors of a part's answer in input order; raises when malformed."""
    data = body.get("data") if body is not None else None
    if not isinstance(data, list) or len(data) != count:
        got = len(data) if isinstance(data, list) else "none"
        raise ResponseDecodingError(
            f"an embeddings answer held {got} vectors for {count} inputs", retryable=False
        )
    if any(not isinstance(d, dict) or d.get("index") != i for i, d in enumerate(data)):
        data = sorted(data, key=lambda d: d.get("index", 0) if isinstance(d, dict) else 0)
    vectors = [d.get("embedding") if isinstance(d, dict) else None for d in data]
    if not all(isinstance(v, list | str) for v in vectors):
        raise ResponseDecodingError("an embeddings answer lacks a vector", retryable=False)
    return vectors  # type: ignore[return-value]
