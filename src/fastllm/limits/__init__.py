"""Rate limits: budgets, a fair limiter, token estimates, server headers and AIMD concurrency.

* :class:`RateLimit` — "N requests and/or M tokens per period".
* :class:`RateLimiter` — paces requests over several limits at once (fair FIFO),
  corrected by real usage (``settle``), server headers and 429 cooldowns.
* :class:`RedisRateLimiter` — the same interface over budgets shared by processes through
  Redis; :func:`make_limiter` picks it when a limit has ``redis_url``.
* :class:`TokenEstimator` — the tokens to reserve for a request.
* :func:`parse_ratelimit_headers` — OpenAI ``x-ratelimit-*`` headers.
* :class:`AdaptiveConcurrency` — a semaphore whose limit halves on 429s and creeps back.
"""

from fastllm.limits.concurrency import AdaptiveConcurrency
from fastllm.limits.config import RateLimit, parse_period
from fastllm.limits.headers import RateLimitHeaders, parse_ratelimit_headers, parse_reset_duration
from fastllm.limits.rate_limiter import LimiterSnapshot, RateLimiter, Reservation
from fastllm.limits.redis_limiter import RedisRateLimiter, make_limiter
from fastllm.limits.token_estimate import TokenEstimator

__all__ = [
    "AdaptiveConcurrency",
    "LimiterSnapshot",
    "RateLimit",
    "RateLimitHeaders",
    "RateLimiter",
    "RedisRateLimiter",
    "Reservation",
    "TokenEstimator",
    "make_limiter",
    "parse_period",
    "parse_ratelimit_headers",
    "parse_reset_duration",
]
