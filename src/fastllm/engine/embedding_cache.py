"""Per-item cache entries of embeddings: one key and one stored value per input item.

The key of one item, for a request body ``body`` and provider namespace ``ns``, is::

    params = [model, dimensions (null when absent), encoding_format (absent = "float"),
              {every other body field except "input" and "user"}]
    key    = f"{ns}:emb:" + xxh3_128_hex(orjson.dumps(params, OPT_SORT_KEYS) + b"\\n"
                                         + orjson.dumps(item))

so a text embedded with the same model, size and encoding shares one entry across
requests, batch layouts and runs; ``user`` does not change a vector and is left
out, any provider-specific field (``input_type``, ...) is part of the key. The
value is the JSON object ``{"embedding": <float list or base64 string, as
received>, "tokens": <the item's share of the billed tokens>}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import xxhash

from fastllm.engine.embedding_input import Embedding, Item

__all__ = ["decode_entry", "encode_entry", "item_key", "key_prefix"]

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
