"""The mock server's behaviour: :class:`MockServerConfig`, its per-field help and checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["ErrorStyle", "MockServerConfig"]

ErrorStyle = Literal["openai", "detail", "text"]
_FRACTIONS = ("fail_429", "quota_429", "fail_500", "hang", "malformed", "drop", "stream_truncate")
_DELAYS = ("latency", "jitter", "stream_chunk_delay")


@dataclass
class MockServerConfig:
    """Behaviour of the mock server; every field can be changed at run time (``/config``).

    Fractions are shares of API requests; see ``_HELP`` for one line per field.
    """

    latency: float = 0.0
    jitter: float = 0.0
    fail_429: float = 0.0
    retry_after: str | None = "1"
    retry_after_ms: str | None = None
    quota_429: float = 0.0
    fail_500: float = 0.0
    fail_first: int = 0
    fail_first_status: int = 500
    hang: float = 0.0
    malformed: float = 0.0
    drop: float = 0.0
    should_retry: str | None = None
    error_style: ErrorStyle = "openai"
    known_models: list[str] | None = None
    unknown_model_status: int = 404
    stream_chunk_delay: float = 0.0
    stream_truncate: float = 0.0
    stream_usage: bool = True
    close_after_response: bool = False
    rate_limit_requests: int | None = None
    rate_limit_tokens: int | None = None
    rate_limit_window: float = 60.0
    embedding_dim: int = 64
    max_dimensions: int = 3072
    seed: int | None = None
    api_key: str | None = None

    def __post_init__(self) -> None:
        _check_config(self)


# One line of documentation per MockServerConfig field (also the CLI help).
_HELP: dict[str, str] = {
    "latency": "seconds before answering (asyncio sleep, per request)",
    "jitter": "+- uniform seconds added to latency (never below 0)",
    "fail_429": "fraction answered 429 rate_limit_exceeded",
    "retry_after": "exact Retry-After value sent with injected 429s",
    "retry_after_ms": "retry-after-ms value sent with injected 429s",
    "quota_429": "fraction answered 429 insufficient_quota (no Retry-After)",
    "fail_500": "fraction answered 500",
    "fail_first": "the first N requests of every distinct body fail",
    "fail_first_status": "status of the fail_first answers",
    "hang": "fraction never answered (connection kept open)",
    "malformed": "fraction answered 200 with truncated JSON",
    "drop": "fraction whose connection is closed without an answer",
    "should_retry": "x-should-retry header value on error answers",
    "error_style": "error body style: openai, detail or text",
    "known_models": "accepted models (None: every model)",
    "unknown_model_status": "200, 400 or 404 for models not in known_models",
    "stream_chunk_delay": "seconds between SSE events",
    "stream_truncate": "fraction of streams cut after one content chunk",
    "stream_usage": "send the usage chunk when include_usage is requested",
    "close_after_response": "close kept-alive connections ~20 ms after answers",
    "rate_limit_requests": "server-side requests per window",
    "rate_limit_tokens": "server-side tokens per window",
    "rate_limit_window": "rate-limit window in seconds",
    "embedding_dim": "vector size when the request has no dimensions",
    "max_dimensions": "largest accepted dimensions",
    "seed": "seed of the fault RNG",
    "api_key": "key Anthropic/Azure requests must carry (None: any)",
}


def _check_optional(config: MockServerConfig, names: Sequence[str], kind: type) -> None:
    for name in names:
        value = getattr(config, name)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise ValueError(f"{name} must be a {kind.__name__} or None")


def _check_config(config: MockServerConfig) -> None:
    """Raise ValueError for an impossible configuration."""
    for name in _DELAYS:
        if not getattr(config, name) >= 0:
            raise ValueError(f"{name} must be >= 0")
    for name in _FRACTIONS:
        if not 0 <= getattr(config, name) <= 1:
            raise ValueError(f"{name} must be a fraction between 0 and 1")
    _check_optional(config, ("retry_after", "retry_after_ms", "should_retry", "api_key"), str)
    _check_optional(config, ("rate_limit_requests", "rate_limit_tokens", "seed"), int)
    for name in ("stream_usage", "close_after_response"):
        if not isinstance(getattr(config, name), bool):
            raise ValueError(f"{name} must be true or false")
    if config.error_style not in ("openai", "detail", "text"):
        raise ValueError("error_style must be openai, detail or text")
    if config.unknown_model_status not in (200, 400, 404):
        raise ValueError("unknown_model_status must be 200, 400 or 404")
    if not 400 <= config.fail_first_status <= 599 or config.fail_first < 0:
        raise ValueError("fail_first must be >= 0 and fail_first_status a 4xx or 5xx status")
    models = config.known_models
    if models is not None and not all(isinstance(m, str) for m in models):
        raise ValueError("known_models must be a list of model names")
    for name in ("rate_limit_requests", "rate_limit_tokens"):
        value = getattr(config, name)
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1")
    if not config.rate_limit_window > 0:
        raise ValueError("rate_limit_window must be > 0")
    if not 1 <= config.embedding_dim <= config.max_dimensions:
        raise ValueError("embedding_dim must be between 1 and max_dimensions")
