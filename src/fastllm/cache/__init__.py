"""Caches of answers keyed by request id: in memory, on disk (SQLite), later Redis.

Every backend implements :class:`CacheProvider`; values are stored as the JSON
bytes of the answer body (:func:`encode_value` / :func:`decode_value`).
"""

from fastllm.cache.base import CacheProvider, CacheStats, CacheValue
from fastllm.cache.codec import CorruptEntryError, decode_value, encode_value
from fastllm.cache.disk import DiskCache
from fastllm.cache.memory import InMemoryCache

__all__ = [
    "CacheProvider",
    "CacheStats",
    "CacheValue",
    "CorruptEntryError",
    "DiskCache",
    "InMemoryCache",
    "decode_value",
    "encode_value",
]
