"""The one place where an HTTP error answer becomes a typed :mod:`fastllm.errors` exception.

Servers disagree on error bodies: OpenAI sends ``{"error": {"message", "code"}}``,
FastAPI-style servers ``{"detail": ...}``, proxies plain text. All become an
:class:`~fastllm.errors.APIStatusError` subclass with a readable message, the
``code`` when there is one, the Retry-After the server asked for, and any API key
redacted from the text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from fastllm.errors import APIStatusError, ResponseDecodingError, status_error_class
from fastllm.retry.classify import parse_retry_after, parse_should_retry

__all__ = ["error_from_response", "loads_or_fail", "redact"]

_MAX_MESSAGE = 500


def loads_or_fail(data: bytes, secret: str | None, what: str) -> Any:
    """``data`` parsed as JSON, or a :class:`ResponseDecodingError` with a redacted preview.

    Raised outside the ``except`` block on purpose: the decoder's error would be kept
    as the context, and its ``.doc`` is the whole unredacted text.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    preview = redact(data[:200].decode("utf-8", "replace"), secret)
    raise ResponseDecodingError(f"{what} is not valid JSON: {preview!r}")


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``[secure]``."""
    if secret and secret in text:
        return text.replace(secret, "[secure]")
    return text


def error_from_response(
    status: int, raw: bytes, headers: Mapping[str, str], secret: str | None
) -> APIStatusError:
    """The typed exception for an error answer (``status`` >= 400, or a redirect)."""
    text = redact(raw.decode("utf-8", "replace"), secret)
    body: dict[str, Any]
    try:
        parsed = orjson.loads(text) if text else None
    except orjson.JSONDecodeError:
        parsed = None
    body = parsed if isinstance(parsed, dict) else {"message": text.strip()}
    message, code = _message_and_code(body)
    if 300 <= status < 400:
        where = redact(headers.get("location", "?"), secret)
        message = f"redirected to {where}; API calls are not redirected (check api_base)"
    cls = status_error_class(status)
    return cls(
        message[:_MAX_MESSAGE] or f"HTTP {status} with an empty body",
        status_code=status,
        body=body,
        code=code,
        retry_after=parse_retry_after(headers),
        should_retry=parse_should_retry(headers),
        headers={k.lower(): redact(v, secret) for k, v in headers.items()},
    )


def _message_and_code(body: Mapping[str, Any]) -> tuple[str, str | None]:
    error = body.get("error")
    if isinstance(error, Mapping):
        code = error.get("code") or error.get("type")
        return str(error.get("message") or ""), str(code) if code else None
    if isinstance(error, str):
        return error, None
    detail = body.get("detail")
    if detail is not None:
        return detail if isinstance(detail, str) else orjson.dumps(detail).decode(), None
    return str(body.get("message") or ""), None
