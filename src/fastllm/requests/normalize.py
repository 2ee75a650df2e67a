"""Turns whatever the caller gave (Batch lines, bare request dicts) into :class:`Request` s.

Every entry point (``RequestBatch``, a list of dicts, a JSONL file) goes through
here, so the same request always gets the same id and the same checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastllm.errors import RequestFormatError
from fastllm.requests.hashing import clean_body, hash_clean_body, infer_endpoint, sent_body
from fastllm.requests.model import Endpoint, Request
from fastllm.requests.validation import validate_body

__all__ = ["is_batch_line", "request_from_body", "request_from_item", "request_from_line"]


def is_batch_line(item: Mapping[str, Any]) -> bool:
    """True for an OpenAI Batch line (has ``url`` and ``body``), False for a bare body."""
    return "body" in item and "url" in item


def request_from_line(
    line: Mapping[str, Any],
    order: int,
    *,
    line_number: int | None = None,
    share_body: bool = False,
) -> Request:
    """A :class:`Request` from an OpenAI Batch input line.

    The request's body is a cleaned copy of the line's; with ``share_body`` (a line
    nobody else holds, such as one just parsed from a file) it is the line's own body
    when that needs no cleaning.
    """
    if not isinstance(line, Mapping):
        raise RequestFormatError(
            f"a batch line must be an object, got {type(line).__name__}", line=line_number
        )
    custom_id = line.get("custom_id")
    if custom_id is not None and not isinstance(custom_id, str):
        raise RequestFormatError("custom_id must be a string", line=line_number, field="custom_id")
    method = line.get("method", "POST")
    if method != "POST":
        raise RequestFormatError(
            f"method must be 'POST', got {method!r}", line=line_number, field="method"
        )
    endpoint = Endpoint.from_url(line.get("url"), line=line_number)
    raw_body = line.get("body")
    if not isinstance(raw_body, Mapping):
        raise RequestFormatError(
            "body must be an object", line=line_number, field="body", custom_id=custom_id
        )
    body = sent_body(raw_body) if share_body else clean_body(raw_body)
    try:
        validate_body(endpoint, body, line=line_number)
        request_id = hash_clean_body(endpoint, body)
    except RequestFormatError as exc:
        if custom_id is None:
            raise
        raise RequestFormatError(
            str(exc), line=exc.line, field=exc.field, custom_id=custom_id
        ) from exc
    return Request(
        custom_id=custom_id if custom_id is not None else f"{request_id}#{order}",
        endpoint=endpoint,
        body=body,
        request_id=request_id,
        order=order,
    )


def request_from_body(
    raw: Mapping[str, Any], order: int, endpoint: Endpoint | None = None
) -> Request:
    """A :class:`Request` from a bare body (the reference's list-of-dicts form).

    A reference-style ``type`` key (``chat_completion``/``embedding``) picks the
    endpoint and is not sent; without it, ``input`` means embeddings.
    """
    if not isinstance(raw, Mapping):
        raise RequestFormatError(f"a request must be a dict, got {type(raw).__name__}")
    target = endpoint or infer_endpoint(raw)
    body = clean_body(raw)
    body.pop("type", None)
    validate_body(target, body)
    request_id = hash_clean_body(target, body)
    return Request(
        custom_id=f"{request_id}#{order}",
        endpoint=target,
        body=body,
        request_id=request_id,
        order=order,
    )


def request_from_item(item: object, order: int) -> Request:
    """A :class:`Request` from any accepted item: a Request, a Batch line or a bare body.

    An item that is itself a :class:`RequestFormatError` (a reader's verdict on a bad
    file line) is raised, so it becomes that request's failed result.
    """
    if isinstance(item, RequestFormatError):
        raise item
    if isinstance(item, Request):
        if item.order == order:
            return item
        return Request(item.custom_id, item.endpoint, item.body, item.request_id, order)
    if not isinstance(item, Mapping):
        raise RequestFormatError(f"a request must be a dict, got {type(item).__name__}")
    if is_batch_line(item):
        return request_from_line(item, order)
    return request_from_body(item, order)
