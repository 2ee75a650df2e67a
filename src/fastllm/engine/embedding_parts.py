"""Pieces of the embedding stage: part arithmetic, per-item cache entries, bookkeeping.

Parts: an embeddings ``input`` is cut into consecutive slices of at most
``max_inputs`` items and ``max_tokens`` estimated tokens (:func:`plan_parts`); a
part's billed usage is shared out over its items in proportion to their length
(:func:`apportion`).

Per-item cache: the key of one item, for a request body ``body`` and provider
namespace ``ns``, is::

    params = [model, dimensions (null when absent), encoding_format (absent = "float"),
              {every other body field except "input" and "user"}]
    key    = f"{ns}:emb:" + xxh3_128_hex(orjson.dumps(params, OPT_SORT_KEYS) + b"\\n"
                                         + orjson.dumps(item))

so a text embedded with the same model, size and encoding shares one entry across
requests, batch layouts and runs; ``user`` does not change a vector and is left
out, any provider-specific field (``input_type``, ...) is part of the key. The
value is the JSON object ``{"embedding": <float list or base64 string, as
received>, "tokens": <the item's share of the billed tokens>}``.

Bookkeeping: a :class:`Parent` is a request the stage answers itself, a
:class:`Group` the distinct items waiting to be cut (one request's, or a pack's),
a :class:`Part` one part request and where each of its vectors goes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

import orjson
import xxhash

from fastllm.errors import RequestFormatError, ResponseDecodingError
from fastllm.requests.hashing import hash_clean_body
from fastllm.requests.model import Endpoint, Request

__all__ = [
    "Dest",
    "Embedding",
    "Group",
    "Item",
    "Parent",
    "Part",
    "apportion",
    "decode_entry",
    "empty_input_error",
    "encode_entry",
    "estimated_tokens",
    "input_items",
    "item_key",
    "key_prefix",
    "plan_parts",
    "vectors_of",
    "within",
]

#: One input item: a text or a token array.
Item: TypeAlias = "str | list[int]"
#: One vector as the API sent it: floats, or base64 little-endian float32.
Embedding: TypeAlias = "list[float] | str"

_EMBEDDINGS = Endpoint.EMBEDDINGS
#: Upper bound of tokens per character for the built-in counters (the heuristic
#: counts ~1/4, byte-level BPE at most one per UTF-8 byte): below it no count is needed.
_MAX_TOKENS_PER_CHAR = 4


# -- the arithmetic ----------------------------------------------------------------------
def plan_parts(
    count: int, max_inputs: int, max_tokens: int, tokens: Sequence[int] | None = None
) -> list[tuple[int, int]]:
    """Consecutive ``(start, end)`` slices of ``count`` items within both caps.

    ``tokens`` holds each item's estimated tokens (None: the token cap cannot be
    reached). An item over ``max_tokens`` on its own goes alone: the server decides.
    """
    if tokens is None:
        return [(s, min(s + max_inputs, count)) for s in range(0, count, max_inputs)]
    parts: list[tuple[int, int]] = []
    start = used = 0
    for i, size in enumerate(tokens):
        if i > start and (i - start >= max_inputs or used + size > max_tokens):
            parts.append((start, i))
            start, used = i, 0
        used += size
    if count > start:
        parts.append((start, count))
    return parts


def apportion(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` split in proportion to ``weights``, in integers that sum to ``total``."""
    whole = sum(weights)
    if whole <= 0:
        return [0] * len(weights)
    shares: list[int] = []
    cumulative = given = 0
    for weight in weights:
        cumulative += weight
        upto = total * cumulative // whole
        shares.append(upto - given)
        given = upto
    return shares


def input_items(value: Any) -> tuple[list[Item], bool]:
    """The items of a (validated) ``input`` and whether they are token arrays."""
    if isinstance(value, str):
        return [value], False
    if isinstance(value[0], int):
        return [value], True
    return value, isinstance(value[0], list)


def empty_input_error(value: Any, custom_id: str | None = None) -> RequestFormatError | None:
    """The error for an empty text or token array in ``input`` (the API rejects them)."""
    if isinstance(value, str):
        at = None if value else "input"
    elif value and isinstance(value[0], str):
        at = f"input[{value.index('')}]" if "" in value else None
    elif value and isinstance(value[0], list):
        at = next((f"input[{i}]" for i, item in enumerate(value) if not item), None)
    else:
        at = None
    if at is None:
        return None
    kind = "token array" if value and isinstance(value[0], list) else "string"
    return RequestFormatError(
        f"an empty {kind} cannot be embedded (the API rejects it)", field=at, custom_id=custom_id
    )


def estimated_tokens(items: list[Item], is_tokens: bool, count: Callable[[str], int]) -> int:
    """Estimated tokens of ``items``: ``count`` of each text, the length of each token array."""
    return sum(map(len, items)) if is_tokens else sum(map(count, items))  # type: ignore[arg-type]


def within(items: list[Item], is_tokens: bool, max_tokens: int) -> bool:
    """True when ``items`` certainly fit ``max_tokens`` without counting them."""
    size = sum(map(len, items))
    return size <= max_tokens if is_tokens else size * _MAX_TOKENS_PER_CHAR <= max_tokens


# -- the bookkeeping ---------------------------------------------------------------------
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


# -- per-item cache entries ----------------------------------------------------------
_NOT_PARAMS = frozenset({"input", "model", "dimensions", "encoding_format", "user"})


def key_prefix(body: Mapping[str, Any]) -> bytes:
    """The bytes every item key of ``body`` starts its hashed text with."""
    extras = {k: v for k, v in body.items() if k not in _NOT_PARAMS}
    params = [
        body.get("model"),
        body.get("dimensions"),
        body.get("encoding_format") or "float",
        extras,
    ]
    return orjson.dumps(params, option=orjson.OPT_SORT_KEYS) + b"\n"


def item_key(namespace: str, prefix: bytes, item: Item) -> str:
    """The cache key of one item (see the module docstring)."""
    return f"{namespace}:emb:{xxhash.xxh3_128_hexdigest(prefix + orjson.dumps(item))}"


def encode_entry(embedding: Embedding, tokens: int) -> bytes:
    """The stored JSON of one item's answer."""
    return orjson.dumps({"embedding": embedding, "tokens": tokens})


def decode_entry(raw: bytes) -> tuple[Embedding, int] | None:
    """``(embedding, tokens)`` of a stored entry; None when it is not one (a miss)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    embedding = value.get("embedding")
    if not isinstance(embedding, list | str):
        return None
    tokens = value.get("tokens")
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
        tokens = 0
    return embedding, tokens
