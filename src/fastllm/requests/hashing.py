"""Stable request ids: the key for caching and deduplication.

The id is the xxh3-128 hash of the canonical JSON (sorted keys, no whitespace) of
the endpoint url and the body. Top-level keys whose value is ``None`` are absent
(the API treats them so), and the tracking keys ``_order_id``/``_request_id`` are
never part of it. Every other field (sampling parameters, ``seed``, ``n``, tools,
``response_format``, provider-specific extras) is part of the key, so the same
request gets the same id whether it comes from a ``RequestBatch``, a list of dicts
or a JSONL line, and any change to what is sent gives another id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import xxhash

from fastllm.errors import RequestFormatError
from fastllm.requests.model import TRACKING_KEYS, Endpoint

__all__ = [
    "clean_body",
    "compute_request_hash",
    "digest_clean_body",
    "hash_clean_body",
    "infer_endpoint",
    "sent_body",
]

_LEGACY_TYPES = {"chat_completion": Endpoint.CHAT_COMPLETIONS, "embedding": Endpoint.EMBEDDINGS}


def clean_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body as sent: without tracking keys and without top-level ``None`` values."""
    return {k: v for k, v in body.items() if v is not None and k not in TRACKING_KEYS}


def sent_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` itself when it is a dict with nothing to clean, else :func:`clean_body` of it.

    For bodies nobody else will change (parsed from a file, built by FastLLM): a
    body that needs no cleaning is then not copied.
    """
    if type(body) is dict:
        for key, value in body.items():
            if value is None or key in TRACKING_KEYS:
                return clean_body(body)
        return body
    return clean_body(body)


def digest_clean_body(endpoint: Endpoint, body: Mapping[str, Any]) -> bytes:
    """The 16 bytes of the request id of an already cleaned body (its hex is the id)."""
    try:
        # ``_value_``: the url without the (slow) ``Enum.value`` descriptor
        canonical = orjson.dumps((endpoint._value_, body), option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:
        raise RequestFormatError(f"body is not JSON-serialisable: {exc}", field="body") from exc
    return xxhash.xxh3_128_digest(canonical)


def hash_clean_body(endpoint: Endpoint, body: Mapping[str, Any]) -> str:
    """The request id of an already cleaned body (the engine's fast path)."""
    return digest_clean_body(endpoint, body).hex()


def infer_endpoint(body: Mapping[str, Any]) -> Endpoint:
    """The endpoint a bare body is meant for: ``type`` (reference style), else its fields."""
    legacy = body.get("type")
    if legacy is not None:
        try:
            return _LEGACY_TYPES[legacy]
        except (KeyError, TypeError):  # unknown, or not even a string
            raise RequestFormatError(
                f"unknown request type {legacy!r} (expected 'chat_completion' or 'embedding')",
                field="type",
            ) from None
    if "input" in body and "messages" not in body:
        return Endpoint.EMBEDDINGS
    return Endpoint.CHAT_COMPLETIONS


def compute_request_hash(request: Mapping[str, Any], endpoint: Endpoint | str | None = None) -> str:
    """The stable id of a request body (hex string).

    ``endpoint`` is the Batch url (``/v1/chat/completions`` or ``/v1/embeddings``);
    when omitted it is inferred from the body (a reference-style ``type`` key, else
    ``input`` means embeddings). A ``type`` key is not part of the body sent.
    """
    if not isinstance(request, Mapping):
        raise RequestFormatError(f"request must be a dict, got {type(request).__name__}")
    target = Endpoint.from_url(endpoint) if endpoint is not None else infer_endpoint(request)
    body = clean_body(request)
    body.pop("type", None)
    return hash_clean_body(target, body)
