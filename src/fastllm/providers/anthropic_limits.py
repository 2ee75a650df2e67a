"""Anthropic's ``anthropic-ratelimit-*`` headers, spoken as OpenAI's ``x-ratelimit-*`` ones.

Anthropic announces, on every answer::

    anthropic-ratelimit-requests-limit / -remaining / -reset        (reset: an RFC 3339 time)
    anthropic-ratelimit-tokens-limit / -remaining / -reset          (the most restrictive now)
    anthropic-ratelimit-input-tokens-* and anthropic-ratelimit-output-tokens-*

The limiter (:mod:`fastllm.limits`) learns from ``x-ratelimit-*`` headers, so the
provider adds those names to the answer's headers instead of teaching the limiter a
second dialect: requests map to requests, and the engine's single token budget
(charged with input plus output tokens) takes ``tokens-*`` when present, else
``input-tokens-*``, the budget long prompts exhaust first. Resets become seconds
from now (``"1.500s"``). Unparsable values are left out.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime

from fastllm.transport import Headers

__all__ = ["with_openai_ratelimit_names"]

_PREFIX = "anthropic-ratelimit-"
_SOURCES = (("requests", ("requests",)), ("tokens", ("tokens", "input-tokens")))


def with_openai_ratelimit_names(headers: Mapping[str, str]) -> Mapping[str, str]:
    """``headers`` plus the ``x-ratelimit-*`` names for its ``anthropic-ratelimit-*`` values.

    Returned unchanged (the same object) when it has no Anthropic limit header.
    """
    if headers.get(_PREFIX + "requests-limit") is None and not _has_tokens(headers):
        return headers
    fields = {name.lower(): value for name, value in headers.items()}
    for kind, sources in _SOURCES:
        for source in sources:
            limit = fields.get(f"{_PREFIX}{source}-limit")
            remaining = fields.get(f"{_PREFIX}{source}-remaining")
            if limit is None and remaining is None:
                continue
            if limit is not None:
                fields[f"x-ratelimit-limit-{kind}"] = limit
            if remaining is not None:
                fields[f"x-ratelimit-remaining-{kind}"] = remaining
            reset = _seconds_until(fields.get(f"{_PREFIX}{source}-reset"))
            if reset is not None:
                fields[f"x-ratelimit-reset-{kind}"] = f"{reset:.3f}s"
            break
    return Headers(fields)


def _has_tokens(headers: Mapping[str, str]) -> bool:
    return any(headers.get(f"{_PREFIX}{source}-limit") is not None for source in _SOURCES[1][1])


def _seconds_until(stamp: str | None) -> float | None:
    """Seconds from now to an RFC 3339 time (0 when past); ``None`` if unparsable."""
    if not stamp:
        return None
    text = stamp.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - time.time())
