"""RateLimit validation and period parsing."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastllm.errors import ConfigurationError
from fastllm.limits import RateLimit, parse_period


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10.0),
        ("1m", 60.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("500ms", 0.5),
        ("1.5m", 90.0),
        (".5s", 0.5),
        ("2", 2.0),
        (" 3 s ", 3.0),
        ("1M", 60.0),
        ("2min", 120.0),
        (5, 5.0),
        (0.25, 0.25),
    ],
)
def test_parse_period(text: str | float, seconds: float) -> None:
    assert parse_period(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "bad", ["5x", "", "s", "1.5.2s", "-1s", "1 m s", "0s", "0", 0, -1, -0.5, math.nan, math.inf]
)
def test_parse_period_rejects(bad: str | float) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_period(bad)
    assert info.value.argument == "per"
    assert repr(bad) in str(info.value)


def test_parse_period_rejects_bool_and_other_types() -> None:
    with pytest.raises(ConfigurationError, match="per"):
        parse_period(True)
    with pytest.raises(ConfigurationError, match="per"):
        parse_period(None)  # type: ignore[arg-type]


def test_bad_period_message_gives_examples() -> None:
    with pytest.raises(ConfigurationError) as info:
        RateLimit(requests=1, per="5x")
    assert str(info.value) == (
        "per: cannot parse period '5x'; use e.g. '10s', '1m', '1h', '1d', '500ms' or seconds"
    )


@given(st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False))
def test_numbers_are_seconds(value: float) -> None:
    assert parse_period(value) == value


@given(
    st.decimals(min_value="0.001", max_value="100000", places=3),
    st.sampled_from([("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0), ("d", 86400.0)]),
)
def test_period_string_round_trip(number: object, unit: tuple[str, float]) -> None:
    suffix, scale = unit
    assert parse_period(f"{number}{suffix}") == pytest.approx(float(str(number)) * scale)


def test_defaults_and_period() -> None:
    limit = RateLimit(requests=500)
    assert limit.per == "1m"
    assert limit.period == 60.0
    assert limit.tokens is None
    assert RateLimit(tokens=1000, per=10).period == 10.0
    assert RateLimit(requests=5, tokens=10, per="1.5m").period == 90.0


def test_name_and_redis_url_are_stored() -> None:
    limit = RateLimit(requests=5, name="openai-main", redis_url="redis://localhost:6379/0")
    assert limit.name == "openai-main"
    assert limit.redis_url == "redis://localhost:6379/0"
    assert limit.describe() == "5 requests per 1m"
    assert RateLimit(requests=1, tokens=2, per=0.5).describe() == "1 requests, 2 tokens per 0.5s"


def test_frozen() -> None:
    limit = RateLimit(requests=5)
    with pytest.raises(AttributeError):
        limit.requests = 6  # type: ignore[misc]


def test_needs_requests_or_tokens() -> None:
    with pytest.raises(ConfigurationError) as info:
        RateLimit()
    assert info.value.argument == "requests"
    assert "tokens" in str(info.value)


@pytest.mark.parametrize("argument", ["requests", "tokens"])
@pytest.mark.parametrize("bad", [0, -1, True, False, 1.5, "10"])
def test_counts_must_be_positive_ints(argument: str, bad: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        RateLimit(**{argument: bad})  # type: ignore[arg-type]
    assert info.value.argument == argument
    assert repr(bad) in str(info.value)


def test_other_count_still_checked_when_one_is_valid() -> None:
    with pytest.raises(ConfigurationError) as info:
        RateLimit(requests=10, tokens=0)
    assert info.value.argument == "tokens"


def test_bad_name_and_redis_url() -> None:
    with pytest.raises(ConfigurationError) as info:
        RateLimit(requests=1, name=3)  # type: ignore[arg-type]
    assert info.value.argument == "name"
    with pytest.raises(ConfigurationError) as info:
        RateLimit(requests=1, redis_url=b"redis://")  # type: ignore[arg-type]
    assert info.value.argument == "redis_url"


def test_configuration_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="per"):
        RateLimit(requests=1, per="soon")
