"""Parsing of OpenAI x-ratelimit-* headers and reset durations."""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastllm.limits import RateLimitHeaders, parse_ratelimit_headers, parse_reset_duration
from fastllm.limits.headers import budget_values


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1m30.5s", 90.5),
        ("2h3m", 7380.0),
        ("0.5s", 0.5),
        ("0s", 0.0),
        ("12ms", 0.012),
        ("1h0m0s", 3600.0),
        ("1m", 60.0),
        ("1ms", 0.001),
        ("1m1ms", 60.001),
        ("250us", 0.00025),
        ("3\u00b5s", 3e-6),
        ("7ns", 7e-9),
        ("1d", 86400.0),
        (".5s", 0.5),
        ("3", 3.0),
        ("2.75", 2.75),
        (" 5s ", 5.0),
    ],
)
def test_parse_reset_duration(text: str, seconds: float) -> None:
    assert parse_reset_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "bad", ["", " ", "abc", "1x", "s", "-1s", "1s2", "1 s", "1.2.3s", "nan", "inf", "1e3s", "m5"]
)
def test_parse_reset_duration_rejects_garbage(bad: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_reset_duration(bad)


def test_parse_reset_duration_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_reset_duration(5)  # type: ignore[arg-type]


@given(
    st.integers(min_value=0, max_value=99),
    st.integers(min_value=0, max_value=59),
    st.integers(min_value=0, max_value=59999),
)
def test_go_duration_round_trip(hours: int, minutes: int, millis: int) -> None:
    text = ""
    if hours:
        text += f"{hours}h"
    if hours or minutes:
        text += f"{minutes}m"
    text += f"{millis / 1000:g}s" if millis % 1000 else f"{millis // 1000}s"
    expected = hours * 3600 + minutes * 60 + millis / 1000
    assert parse_reset_duration(text) == pytest.approx(expected)


@given(st.decimals(min_value=0, max_value=10**6, places=3))
def test_plain_seconds_round_trip(value: object) -> None:
    assert parse_reset_duration(str(value)) == pytest.approx(float(str(value)))


FULL = {
    "x-ratelimit-limit-requests": "5000",
    "x-ratelimit-remaining-requests": "4999",
    "x-ratelimit-reset-requests": "12ms",
    "x-ratelimit-limit-tokens": "2000000",
    "x-ratelimit-remaining-tokens": "1999000",
    "x-ratelimit-reset-tokens": "6m0s",
}


def test_parse_full_set() -> None:
    assert parse_ratelimit_headers(FULL) == RateLimitHeaders(
        limit_requests=5000,
        remaining_requests=4999,
        reset_requests=0.012,
        limit_tokens=2_000_000,
        remaining_tokens=1_999_000,
        reset_tokens=360.0,
    )


def test_case_insensitive_plain_dict() -> None:
    headers = {key.title(): value for key, value in FULL.items()}
    assert "X-Ratelimit-Limit-Requests" in headers
    assert parse_ratelimit_headers(headers) == parse_ratelimit_headers(FULL)
    mixed = {"X-RATELIMIT-REMAINING-TOKENS": "7", "x-ratelimit-remaining-requests": "3"}
    assert parse_ratelimit_headers(mixed) == RateLimitHeaders(
        remaining_requests=3, remaining_tokens=7
    )


class CIMultiDictProxy(Mapping[str, str]):
    """Stands in for aiohttp's case-insensitive headers (matched by class name)."""

    def __init__(self, data: Mapping[str, str]) -> None:
        self._data = {key.lower(): value for key, value in data.items()}
        self.items_calls = 0

    def __getitem__(self, key: str) -> str:
        return self._data[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def items(self) -> ItemsView[str, str]:
        self.items_calls += 1
        return self._data.items()


def test_case_insensitive_mapping_is_not_scanned() -> None:
    headers = CIMultiDictProxy({"Content-Type": "application/json", "X-Request-Id": "abc"})
    assert parse_ratelimit_headers(headers) is None
    assert headers.items_calls == 0
    upper = CIMultiDictProxy({key.upper(): value for key, value in FULL.items()})
    assert parse_ratelimit_headers(upper) == parse_ratelimit_headers(FULL)


def test_none_when_absent() -> None:
    assert parse_ratelimit_headers({}) is None
    assert parse_ratelimit_headers({"content-type": "application/json"}) is None
    assert parse_ratelimit_headers({"x-ratelimit-something-else": "1"}) is None


def test_garbage_values_are_ignored() -> None:
    headers = {
        "x-ratelimit-limit-requests": "many",
        "x-ratelimit-remaining-requests": "-3",
        "x-ratelimit-reset-requests": "soon",
        "x-ratelimit-limit-tokens": "1000.0",
        "x-ratelimit-remaining-tokens": "nan",
        "x-ratelimit-reset-tokens": "1s",
    }
    assert parse_ratelimit_headers(headers) == RateLimitHeaders(limit_tokens=1000, reset_tokens=1.0)
    assert parse_ratelimit_headers({"x-ratelimit-limit-requests": "oops"}) is None


def test_partial_headers() -> None:
    parsed = parse_ratelimit_headers({"x-ratelimit-remaining-tokens": "42"})
    assert parsed == RateLimitHeaders(remaining_tokens=42)


def test_budget_values_for_the_limiter() -> None:
    assert budget_values(FULL) == (5000, 4999, 2_000_000, 1_999_000)
    assert budget_values({"X-RateLimit-Remaining-Tokens": "12"}) == (None, None, None, 12)
    assert budget_values({"x-ratelimit-reset-tokens": "1s"}) is None  # resets are not needed
    assert budget_values({"x-ratelimit-limit-tokens": "?"}) is None


def test_budget_values_from_transport_headers() -> None:
    """The transport's own header mapping (names stored lowercase) is read directly."""
    from fastllm.transport import Headers

    mixed = Headers([(key.title(), value) for key, value in FULL.items()])
    assert budget_values(mixed) == (5000, 4999, 2_000_000, 1_999_000)
    assert parse_ratelimit_headers(mixed) == parse_ratelimit_headers(FULL)
    assert budget_values(Headers([("Content-Type", "application/json")])) is None
    partial = Headers([("X-RateLimit-Remaining-Requests", "7")])
    assert budget_values(partial) == (None, 7, None, None)
