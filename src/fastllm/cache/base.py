"""The cache protocol every backend implements.

A cache maps a request id (the hash of what is sent, see
``fastllm.requests.hashing``) to the JSON body of the answer. Backends implement
bulk primitives, one round trip for many keys (``get_many``, ``put_many``); the
single-key methods of the reference API (``exists``, ``get``, ``put``) are built
on top of them here, so a new backend (Redis, ...) only writes the bulk ones.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import orjson

from fastllm.errors import ConfigurationError

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["CacheProvider", "CacheStats", "CacheValue"]

CacheValue: TypeAlias = "bytes | Mapping[str, Any] | BaseModel"
"""What ``put`` accepts: the raw JSON body, its parsed object, or a pydantic model of it."""

_ProviderT = TypeVar("_ProviderT", bound="CacheProvider")


def check_positive(name: str, value: float | None, *, integer: bool = False) -> None:
    """Raise ``ConfigurationError`` naming ``name`` unless ``value`` is None or > 0."""
    if value is None:
        return
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        expected = "an integer" if integer else "a number"
        raise ConfigurationError(name, f"must be {expected} or None, got {value!r}")
    if not value > 0:  # also rejects NaN
        raise ConfigurationError(name, f"must be > 0 (or None for no limit), got {value!r}")


@dataclass(frozen=True)
class CacheStats:
    """A snapshot of a cache.

    ``entries`` and ``size_bytes`` describe what is stored (``size_bytes`` counts
    the encoded JSON bodies); ``hits``, ``misses``, ``writes`` and ``errors`` are
    counted by this cache object since it was created. ``errors`` counts corrupt or
    unreadable entries met and operations that failed.
    """

    entries: int
    size_bytes: int
    hits: int
    misses: int
    writes: int
    errors: int


class CacheProvider(ABC):
    """An asynchronous key -> JSON-object store.

    Values go in as :data:`CacheValue` and come out as a fresh ``dict`` on every
    read, so callers may mutate what they get. A corrupt entry is never an
    exception to the caller: it is a miss (logged, counted in ``stats().errors``,
    removed). Use as ``async with Backend(...) as cache:`` to close it on exit.
    """

    @abstractmethod
    async def get_many(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The stored objects of ``keys`` that are present: only the hits."""

    async def get_many_raw(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The hits' stored JSON bytes, not decoded: the engine's fast path.

        Backends that store bytes return them as they are (checked only to look like a
        JSON object); this default re-encodes what :meth:`get_many` decoded. The dict
        is a new one, the caller's to change.
        """
        return {key: orjson.dumps(value) for key, value in (await self.get_many(keys)).items()}

    @abstractmethod
    async def put_many(self, items: Mapping[str, CacheValue]) -> None:
        """Store every item, replacing an existing value of the same key."""

    @abstractmethod
    async def clear(self) -> None:
        """Remove every entry."""

    @abstractmethod
    def stats(self) -> CacheStats:
        """Entries, size and the counters of this cache object."""

    async def close(self) -> None:  # noqa: B027 - a no-op default is the intent
        """Release the backend's resources. Idempotent; the default does nothing."""

    async def exists(self, key: str) -> bool:
        """Whether ``key`` has a (live, readable) entry."""
        return key in await self.get_many((key,))

    async def get(self, key: str) -> dict[str, Any]:
        """The stored object of ``key``; ``KeyError`` when absent (as the reference does)."""
        found = await self.get_many((key,))
        try:
            return found[key]
        except KeyError:
            raise KeyError(key) from None

    async def put(self, key: str, value: CacheValue) -> None:
        """Store one value."""
        await self.put_many({key: value})

    async def __aenter__(self: _ProviderT) -> _ProviderT:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
