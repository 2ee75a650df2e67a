"""What is worth retrying, and how long the server asked us to wait.

Retried: 408, 409, 429 (except ``insufficient_quota``), 5xx, connection errors and
timeouts, answers cut short (truncated streams, broken bodies). Never retried:
400, 401, 403, 404, 422 and other 4xx, requests never sent. A server's
``x-should-retry: true|false`` overrides the status rule, as OpenAI documents.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping

from fastllm.errors import (
    APIConnectionError,
    APIStatusError,
    ResponseDecodingError,
)

__all__ = ["RETRYABLE_STATUSES", "is_retryable", "parse_retry_after", "parse_should_retry"]

RETRYABLE_STATUSES = frozenset({408, 409, 429})


def is_retryable(error: BaseException) -> bool:
    """True when another attempt may succeed."""
    if isinstance(error, APIStatusError):
        if error.should_retry is not None:
            return error.should_retry
        if error.status_code == 429:
            return error.code != "insufficient_quota"
        return error.status_code in RETRYABLE_STATUSES or error.status_code >= 500
    if isinstance(error, ResponseDecodingError):
        return error.retryable
    return isinstance(error, APIConnectionError)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds, decimals or a date)."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000.0
        except ValueError:
            pass
        else:
            if value >= 0:
                return value
    text = headers.get("retry-after")
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        parsed = email.utils.parsedate_tz(text)
        if parsed is None:
            return None
        value = email.utils.mktime_tz(parsed) - time.time()
    return max(0.0, value)


def parse_should_retry(headers: Mapping[str, str]) -> bool | None:
    """The server's ``x-should-retry`` verdict: True, False, or None when absent."""
    value = headers.get("x-should-retry")
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    return None
