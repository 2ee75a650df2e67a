"""FastLLM: run very large batches of OpenAI-compatible requests, fast, in order, losing nothing.

>>> from fastllm import RequestBatch, RequestManager, OpenAIProvider
"""

from importlib.metadata import PackageNotFoundError, version

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
from fastllm.providers import OpenAIProvider, Provider
from fastllm.requests import (
    Endpoint,
    LLMRequest,
    LLMResponse,
    Message,
    Request,
    RequestBatch,
    compute_request_hash,
)
from fastllm.retry import RetryPolicy

try:
    __version__ = version("fastllm-kit")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
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
