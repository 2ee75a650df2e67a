"""Caches of answers keyed by request id: in memory, on disk (SQLite), in Redis (shared).

Every backend implements :class:`CacheProvider`; values are stored as the JSON
bytes of the answer body (:func:`encode_value` / :func:`decode_value`).
"""

from fastllm.cache.base import CacheProvider, CacheStats, CacheValue
from fastllm.cache.codec import CorruptEntryError, decode_value, encode_value
from fastllm.cache.disk import DiskCache
from fastllm.cache.memory import InMemoryCache
from fastllm.cache.redis import RedisCache

__all__ = [
    "CacheProvider",
    "CacheStats",
    "CacheValue",
    "CorruptEntryError",
    "DiskCache",
    "InMemoryCache",
    "RedisCache",
    "decode_value",
    "encode_value",
]
