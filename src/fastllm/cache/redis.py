"""A cache shared by every process that reaches one Redis server.

Layout: one Redis string per entry, key ``"{namespace}:{key}"``, value the JSON body
exactly as :func:`~fastllm.cache.codec.encode_value` gives it: no key, no metadata,
no pickle. ``ttl`` becomes ``SET ... PX``, so Redis owns expiry. Reads are pipelined
``MGET`` chunks of 1,000 keys and writes pipelined ``SET`` chunks: one round trip per
call (per 1,000 keys for writes).

Connections are :class:`fastllm._redis.RedisEndpoint`'s: one asyncio client per event
loop (``process_batch`` runs each batch on a new loop), closed with that loop. The
URL's password never appears in a repr, an error or a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from fastllm._redis import RedisEndpoint
from fastllm.cache.base import CacheProvider, CacheStats, CacheValue, check_positive
from fastllm.cache.codec import encode_value, looks_like_object
from fastllm.errors import CacheError, ConfigurationError

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = ["RedisCache"]

logger = logging.getLogger(__name__)

_V = TypeVar("_V")
_CHUNK = 1000  # keys per MGET / pipelined SET batch / SCAN page
_GLOB_SPECIAL = frozenset("*?[]\\")


class RedisCache(CacheProvider):
    """A cache in Redis, shared by every process and machine that uses the same server.

    ``url`` e.g. ``redis://:password@host:6379/0`` (``rediss://`` for TLS); ``ttl``:
    seconds an entry lives after it was stored (``None``: forever; Redis' own
    eviction policy still applies); ``namespace``: the key prefix, so several caches
    can share one database (``clear`` removes only its own namespace; pick namespaces
    that are not ``"other:..."`` prefixes of each other). The server is pinged when the
    cache is created: an unreachable one raises ``CacheError`` naming the URL (with
    its password masked) right there. A call that fails later raises ``CacheError``
    too; the engine then degrades to misses / unwritten answers with a warning.
    ``stats()`` scans the namespace (see there). Any use after ``close`` raises
    ``CacheError``.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        ttl: float | None = None,
        namespace: str = "fastllm",
        *,
        timeout: float = 5.0,
    ) -> None:
        check_positive("ttl", ttl)
        check_positive("timeout", timeout)
        if not isinstance(namespace, str) or not namespace:
            raise ConfigurationError("namespace", f"must be a non-empty string, got {namespace!r}")
        self._endpoint = RedisEndpoint(url, missing=CacheError, timeout=timeout)
        self._namespace = namespace
        self._prefix = namespace + ":"
        self._ttl = ttl
        self._px = None if ttl is None else max(1, round(ttl * 1000))
        self._hits = self._misses = self._writes = self._errors = 0
        self._closed = False
        try:
            self._endpoint.sync().ping()
        except self._endpoint.errors as exc:
            self._endpoint.close_sync()
            raise CacheError(f"cannot reach the Redis cache at {self.url}: {exc}") from exc

    @property
    def url(self) -> str:
        """The server's URL with its password masked."""
        return self._endpoint.url

    @property
    def namespace(self) -> str:
        """The key prefix (without the ``:``)."""
        return self._namespace

    @property
    def ttl(self) -> float | None:
        """The time to live in seconds, ``None`` when entries never expire."""
        return self._ttl

    def redis_key(self, key: str) -> str:
        """The Redis key under which ``key`` is stored."""
        return self._prefix + key

    def sync_client(self) -> redis.Redis:
        """The synchronous redis-py client of this cache (for coordination, e.g. claims)."""
        self._check_open()
        return self._endpoint.sync()

    def __repr__(self) -> str:
        return f"RedisCache(url={self.url!r}, namespace={self._namespace!r}, ttl={self._ttl!r})"

    async def get_many(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The decoded objects of the entries among ``keys`` (one round trip)."""
        found: dict[str, dict[str, Any]] = {}
        corrupt: list[str] = []
        loads = orjson.loads
        for key, blob in (await self._fetch(keys)).items():
            try:
                obj = loads(blob)
            except orjson.JSONDecodeError:
                obj = None
            if type(obj) is dict:
                found[key] = obj
            else:
                corrupt.append(key)
        return await self._hits_only(found, corrupt, len(dict.fromkeys(keys)))

    async def get_many_raw(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The stored JSON bytes of the entries among ``keys``, not decoded."""
        found: dict[str, bytes] = {}
        corrupt: list[str] = []
        for key, blob in (await self._fetch(keys)).items():
            if looks_like_object(blob):
                found[key] = blob
            else:
                corrupt.append(key)
        return await self._hits_only(found, corrupt, len(dict.fromkeys(keys)))

    async def put_many(self, items: Mapping[str, CacheValue]) -> None:
        """Store every item (with the TTL), in pipelined chunks of 1,000."""
        try:
            encoded = [(self._prefix + key, encode_value(value)) for key, value in items.items()]
        except Exception:
            self._errors += 1
            raise
        client = await self._client()
        try:
            for chunk in _chunks(encoded):
                pipe = client.pipeline(transaction=False)
                for name, blob in chunk:
                    pipe.set(name, blob, px=self._px)
                await pipe.execute()
        except self._endpoint.errors as exc:
            raise self._fail("write", exc) from exc
        self._writes += len(encoded)

    async def clear(self) -> None:
        """Delete every entry of this namespace (SCAN + UNLINK, 1,000 keys at a time)."""
        client = await self._client()
        try:
            batch: list[bytes] = []
            async for name in client.scan_iter(match=self._pattern(), count=_CHUNK):
                batch.append(name)
                if len(batch) >= _CHUNK:
                    await client.unlink(*batch)
                    batch.clear()
            if batch:
                await client.unlink(*batch)
        except self._endpoint.errors as exc:
            raise self._fail("clear", exc) from exc

    def stats(self) -> CacheStats:
        """Entries and bytes of this namespace; counters of this object. Synchronous.

        Costs a full ``SCAN`` of the database plus one ``STRLEN`` per entry (pipelined,
        1,000 at a time): fine for a report, not for a hot loop.
        """
        self._check_open()
        client = self._endpoint.sync()
        entries = size = 0
        try:
            page: list[bytes] = []
            for name in client.scan_iter(match=self._pattern(), count=_CHUNK):
                page.append(name)
                if len(page) >= _CHUNK:
                    size += self._sizes(client, page)
                    entries += len(page)
                    page.clear()
            size += self._sizes(client, page)
            entries += len(page)
        except self._endpoint.errors as exc:
            raise self._fail("read", exc) from exc
        return CacheStats(entries, size, self._hits, self._misses, self._writes, self._errors)

    async def close(self) -> None:
        """Close the connections. Idempotent."""
        if not self._closed:
            self._closed = True
            await self._endpoint.aclose()

    def close_sync(self) -> None:
        """``close`` for synchronous callers (the CLI)."""
        self._closed = True
        self._endpoint.close_sync()

    # -- internals -------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise CacheError(f"the Redis cache at {self.url} is closed")

    async def _client(self) -> redis.asyncio.Redis:
        self._check_open()
        return await self._endpoint.client()

    def _fail(self, action: str, exc: BaseException) -> CacheError:
        self._errors += 1
        return CacheError(f"cannot {action} the Redis cache at {self.url}: {exc}")

    def _pattern(self) -> str:
        escaped = "".join("\\" + c if c in _GLOB_SPECIAL else c for c in self._prefix)
        return escaped + "*"

    async def _fetch(self, keys: Sequence[str]) -> dict[str, bytes]:
        unique = list(dict.fromkeys(keys))
        client = await self._client()
        if not unique:
            return {}
        try:
            pipe = client.pipeline(transaction=False)
            for chunk in _chunks(unique):
                pipe.mget([self._prefix + key for key in chunk])
            replies = await pipe.execute()
        except self._endpoint.errors as exc:
            raise self._fail("read", exc) from exc
        values = (value for reply in replies for value in reply)
        return {key: value for key, value in zip(unique, values, strict=True) if value is not None}

    async def _hits_only(
        self, found: dict[str, _V], corrupt: list[str], asked: int
    ) -> dict[str, _V]:
        if corrupt:
            self._errors += len(corrupt)
            logger.warning(
                "Redis cache %s: %d corrupt entries treated as misses and deleted (first: %r)",
                self.url,
                len(corrupt),
                corrupt[0],
            )
            try:
                client = await self._client()
                await client.unlink(*(self._prefix + key for key in corrupt))
            except self._endpoint.errors as exc:
                self._errors += 1
                logger.warning(
                    "Redis cache %s: could not delete corrupt entries: %s", self.url, exc
                )
        self._hits += len(found)
        self._misses += asked - len(found)
        return found

    @staticmethod
    def _sizes(client: redis.Redis, names: list[bytes]) -> int:
        if not names:
            return 0
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.strlen(name)
        return sum(int(n) for n in pipe.execute())


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
