"""Parsing of OpenAI ``x-ratelimit-*`` response headers.

OpenAI (and many compatible servers) announce their per-minute budgets on every
answer::

    x-ratelimit-limit-requests: 5000       x-ratelimit-limit-tokens: 2000000
    x-ratelimit-remaining-requests: 4999   x-ratelimit-remaining-tokens: 1999000
    x-ratelimit-reset-requests: 12ms       x-ratelimit-reset-tokens: 6m0s

The resets are Go-style durations. Values that cannot be parsed are ignored.
:func:`learned_period` reads the window of a learned budget from its reset.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from fastllm.transport.headers import Headers

__all__ = [
    "AUTO_PERIOD",
    "RateLimitHeaders",
    "learned_period",
    "parse_ratelimit_headers",
    "parse_reset_duration",
]

#: The period assumed for limits learned from headers (OpenAI's limits are per minute).
AUTO_PERIOD = 60.0

_UNIT_SECONDS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # micro sign, as Go prints microseconds
    "\u03bcs": 1e-6,  # Greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
# Longest units first so "ms" is not read as "m" followed by garbage.
_UNITS = "|".join(sorted(_UNIT_SECONDS, key=len, reverse=True))
_PART_RE = re.compile(rf"({_NUMBER})({_UNITS})")
_DURATION_RE = re.compile(rf"(?:{_NUMBER}(?:{_UNITS}))+")
_PLAIN_RE = re.compile(_NUMBER)


def parse_reset_duration(text: str) -> float:
    """Seconds in an OpenAI reset duration: ``"1s"``, ``"6m0s"``, ``"20ms"``, ``"1m30.5s"``.

    Go-style compounds of ``h``/``m``/``s``/``ms``/``us``/``ns`` (and ``d``) are
    summed; a plain number is seconds. Raises :class:`ValueError` for anything else.
    """
    if not isinstance(text, str):
        raise ValueError(f"not a duration: {text!r}")
    return _parse_duration(text.strip())


@lru_cache(maxsize=1024)
def _parse_duration(text: str) -> float:
    if _PLAIN_RE.fullmatch(text):
        seconds = float(text)
    elif _DURATION_RE.fullmatch(text):
        seconds = sum(float(num) * _UNIT_SECONDS[unit] for num, unit in _PART_RE.findall(text))
    else:
        raise ValueError(f"not a duration: {text!r}")
    if not math.isfinite(seconds):
        raise ValueError(f"not a finite duration: {text!r}")
    return seconds


@dataclass(frozen=True)
class RateLimitHeaders:
    """The ``x-ratelimit-*`` values of one answer; ``None`` where absent or unparsable.

    Limits and remaining counts are integers, resets are seconds.
    """

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens: float | None = None


_KEYS = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
)
#: The four the limiter needs: limits and remaining counts, not resets.
_BUDGET_KEYS = _KEYS[:4]
_PREFIX = "x-ratelimit-"
#: Mapping types whose ``get`` already ignores case (aiohttp/multidict, httpx, requests).
_CASE_INSENSITIVE_TYPES = frozenset(
    {"CIMultiDict", "CIMultiDictProxy", "Headers", "CaseInsensitiveDict"}
)


def _count(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        count = int(value)  # the usual case: a plain integer
    except (TypeError, ValueError):
        pass
    else:
        return count if count >= 0 else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return _non_negative(int(number)) if math.isfinite(number) else None


def _non_negative(number: int) -> int | None:
    return number if number >= 0 else None


def _duration(value: str | None) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return _parse_duration(value.strip())
    except ValueError:
        return None


def _raw_values(headers: Mapping[str, str], keys: tuple[str, ...]) -> list[str | None] | None:
    """The values of the (lowercase) ``keys``, matched ignoring case; ``None`` if none."""
    if type(headers) is Headers:
        # the transport's own answers: names are stored lowercase, so look them up directly
        raw: list[str | None] = list(map(headers._fields.get, keys))
    else:
        raw = list(map(headers.get, keys))
    if None in raw and type(headers).__name__ not in _CASE_INSENSITIVE_TYPES:
        # A plain mapping may spell the names in another case: look once through its keys.
        for key, value in headers.items():
            if isinstance(key, str) and key[:12].lower() == _PREFIX:
                lowered = key.lower()
                if lowered in keys:
                    index = keys.index(lowered)
                    if raw[index] is None:
                        raw[index] = value
    if raw.count(None) == len(raw):
        return None
    return raw


def budget_values(
    headers: Mapping[str, str],
) -> tuple[int | None, int | None, int | None, int | None] | None:
    """``(limit_requests, remaining_requests, limit_tokens, remaining_tokens)``, cheaply.

    The limiter's fast path (resets are not parsed); ``None`` when no value is usable.
    """
    raw = _raw_values(headers, _BUDGET_KEYS)
    if raw is None:
        return None
    values = (_count(raw[0]), _count(raw[1]), _count(raw[2]), _count(raw[3]))
    if values == (None, None, None, None):
        return None
    return values


def parse_ratelimit_headers(headers: Mapping[str, str]) -> RateLimitHeaders | None:
    """The rate-limit headers of an answer, or ``None`` when it has no usable one.

    Names are matched case-insensitively (a plain ``dict`` works as well as
    aiohttp's ``CIMultiDictProxy``); garbage values are ignored.
    """
    raw = _raw_values(headers, _KEYS)
    if raw is None:
        return None
    parsed = RateLimitHeaders(
        limit_requests=_count(raw[0]),
        remaining_requests=_count(raw[1]),
        reset_requests=_duration(raw[4]),
        limit_tokens=_count(raw[2]),
        remaining_tokens=_count(raw[3]),
        reset_tokens=_duration(raw[5]),
    )
    if parsed == _EMPTY:
        return None
    return parsed


_EMPTY = RateLimitHeaders()


def learned_period(
    kind: str, limit: int, remaining: int | None, headers: Mapping[str, str]
) -> float:
    """The server's window, from how long it says the used part takes to refill.

    For a continuously refilling budget ``reset = used / limit * period``, so
    ``period = reset * limit / used``. Without a usable reset (or with nothing used
    yet) OpenAI's one minute is assumed. ``kind`` is ``"requests"`` or ``"tokens"``.
    """
    parsed = parse_ratelimit_headers(headers)
    reset = None
    if parsed is not None:
        reset = parsed.reset_requests if kind == "requests" else parsed.reset_tokens
    used = limit - remaining if remaining is not None else 0
    if not reset or used <= 0:
        return AUTO_PERIOD
    return min(86_400.0, max(1.0, reset * limit / used))
