"""Embedding inputs: their items, their estimated size, and how they are cut into parts.

An embeddings ``input`` is cut into consecutive slices of at most ``max_inputs``
items and ``max_tokens`` estimated tokens (:func:`plan_parts`); a part's billed
usage is shared out over its items in proportion to their length (:func:`apportion`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

from fastllm.errors import RequestFormatError

__all__ = [
    "Embedding",
    "Item",
    "apportion",
    "empty_input_error",
    "estimated_tokens",
    "input_items",
    "plan_parts",
    "within",
]

#: One input item: a text or a token array.
Item: TypeAlias = "str | list[int]"
#: One vector as the API sent it: floats, or base64 little-endian float32.
Embedding: TypeAlias = "list[float] | str"

#: Upper bound of tokens per character for the built-in counters (the heuristic
#: counts ~1/4, byte-level BPE at most one per UTF-8 byte): below it no count is needed.
_MAX_TOKENS_PER_CHAR = 4


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
