"""FastLLM: run very large batches of OpenAI-compatible requests, fast, in order, losing nothing.

>>> from fastllm import RequestBatch, RequestManager, OpenAIProvider
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastllm._version import __version__ as __version__
from fastllm.cache import CacheProvider, DiskCache, InMemoryCache, RedisCache
from fastllm.engine import RequestManager, ResponseWrapper
from fastllm.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    BatchError,
    CacheError,
    ConfigurationError,
    FastLLMError,
    RateLimitError,
    RequestError,
    RequestFormatError,
)
from fastllm.limits import RateLimit
from fastllm.observe import ProgressTracker, TokenStats
from fastllm.providers import (
    AnthropicProvider,
    AzureOpenAIProvider,
    OpenAIProvider,
    Pool,
    PoolMember,
    Provider,
)
from fastllm.requests import Endpoint, Request, RequestBatch, compute_request_hash
from fastllm.retry import RetryPolicy

if TYPE_CHECKING:
    from fastllm.requests.seed_models import LLMRequest, LLMResponse, Message

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AnthropicProvider",
    "AzureOpenAIProvider",
    "BatchError",
    "CacheError",
    "CacheProvider",
    "ConfigurationError",
    "DiskCache",
    "Endpoint",
    "FastLLMError",
    "InMemoryCache",
    "LLMRequest",
    "LLMResponse",
    "Message",
    "OpenAIProvider",
    "Pool",
    "PoolMember",
    "ProgressTracker",
    "Provider",
    "RateLimit",
    "RateLimitError",
    "RedisCache",
    "Request",
    "RequestBatch",
    "RequestError",
    "RequestFormatError",
    "RequestManager",
    "ResponseWrapper",
    "RetryPolicy",
    "TokenStats",
    "compute_request_hash",
]


def __getattr__(name: str) -> Any:
    """``Message``, ``LLMRequest`` and ``LLMResponse``, imported on first access."""
    if name in {"LLMRequest", "LLMResponse", "Message"}:
        from fastllm.requests import seed_models

        return getattr(seed_models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
