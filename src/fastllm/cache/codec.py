"""The stored form of cached values: JSON bytes of one JSON object (orjson).

Nothing else is ever stored or read back: no pickle, so a cache file from an
untrusted place can at worst give wrong answers, never run code.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import orjson

from fastllm.cache.base import CacheValue
from fastllm.errors import CacheError

__all__ = ["CorruptEntryError", "decode_value", "encode_value", "looks_like_object"]

_JSON_WHITESPACE = b" \t\r\n"


class CorruptEntryError(CacheError):
    """Stored bytes are not the JSON text of a JSON object."""


def encode_value(value: CacheValue) -> bytes:
    """The JSON bytes to store for ``value``.

    ``bytes`` (a raw HTTP body) are passed through unchanged after a cheap check
    that they look like one JSON object (``{`` first and ``}`` last, ignoring
    whitespace); a mapping is serialised with orjson; a pydantic model with
    ``model_dump(mode="json", exclude_unset=True)``, so an openai model validates
    back to an equal model. Raises ``CacheError`` for a value that is not (or
    cannot be serialised to) a JSON object, ``TypeError`` for another type.
    """
    if isinstance(value, bytes):
        if not looks_like_object(value):
            head = value[:40]
            raise CacheError(f"cannot cache bytes that are not a JSON object: {head!r}")
        return value
    if isinstance(value, (bytearray, memoryview)):
        return encode_value(bytes(value))
    pydantic = sys.modules.get("pydantic")  # a model exists only if pydantic is loaded
    if pydantic is not None and isinstance(value, pydantic.BaseModel):
        data: Any = value.model_dump(mode="json", exclude_unset=True, warnings=False)
    elif isinstance(value, Mapping):
        data = value if isinstance(value, dict) else dict(value)
    else:
        raise TypeError(
            f"cannot cache a {type(value).__name__}: expected JSON bytes, a mapping "
            "or a pydantic model"
        )
    try:
        return orjson.dumps(data)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise CacheError(f"cannot cache a value that is not JSON-serialisable: {exc}") from exc


def looks_like_object(data: object) -> bool:
    """A cheap check that ``data`` is bytes shaped like one JSON object (``{`` … ``}``).

    The fast read path hands such bytes on undecoded; a body that passes this check
    but is still not JSON is reported when it is first decoded.
    """
    if type(data) is not bytes:
        return False
    if data.startswith(b"{") and data.endswith(b"}"):  # what every writer stores
        return True
    stripped = data.strip(_JSON_WHITESPACE)
    return stripped.startswith(b"{") and stripped.endswith(b"}")


def decode_value(data: bytes) -> dict[str, Any]:
    """The JSON object stored as ``data``; ``CorruptEntryError`` when it is not one."""
    try:
        obj = orjson.loads(data)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise CorruptEntryError(f"cache entry is not valid JSON: {exc}") from exc
    if type(obj) is not dict:
        raise CorruptEntryError(f"cache entry is a JSON {type(obj).__name__}, not an object")
    return obj
