"""Ray Data: run a column of requests through FastLLM, one ``RequestManager`` per actor.

::

    import ray
    from fastllm.integrations.ray import run_dataset

    ds = ray.data.read_json("requests.jsonl")  # one column "request" (or any name)
    out = run_dataset(ds, api_base="https://api.openai.com/v1", actors=4,
                      cache_url="redis://cache-host:6379/0")
    out.write_parquet("answers/")

or by hand: ``ds.map_batches(FastLLMMapper, fn_constructor_kwargs={...},
batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=4))``.

Input: a column of requests, each an OpenAI Batch line or a bare request body, as a
dict or as its JSON text (JSON text is safer: Arrow fills the fields missing from some
rows of a dict column with nulls, which FastLLM drops). Output: the input columns plus
``response`` (the answer's JSON text, null on failure), ``ok``, ``error``
(``"Type: message"``, null on success), ``request_id``, ``custom_id`` and ``cached``.
A failed or malformed row carries its error; it never fails the batch.

Duplicates: inside a batch, identical requests are sent once (the engine's dedup).
Across batches and actors, with ``cache_url`` (a shared :class:`RedisCache`), each
distinct request is sent once per run: before sending, an actor *claims* the requests
not yet cached (``SET NX`` on ``{namespace}:claim:{key}``, expiring after
``claim_ttl`` s); an actor meeting a request claimed by another waits until its answer
is in the cache (or the claim is gone) and then answers from the cache. A request is
sent again only if its first attempt failed (failures are not cached) or took longer
than ``claim_ttl``. Without ``cache_url`` each actor sends each distinct request at
most once per batch, so up to once per batch it appears in.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from fastllm.cache.redis import RedisCache
from fastllm.engine import RequestManager, ResponseWrapper
from fastllm.errors import RequestFormatError
from fastllm.limits import RateLimit
from fastllm.providers import OpenAIProvider
from fastllm.requests.normalize import request_from_item

if TYPE_CHECKING:
    import numpy as np
    import ray.data

__all__ = ["OUTPUT_COLUMNS", "FastLLMMapper", "run_dataset"]

logger = logging.getLogger(__name__)

#: The columns the mapper adds (the input columns are kept).
OUTPUT_COLUMNS = ("response", "ok", "error", "request_id", "custom_id", "cached")
# Compare-and-delete: release a claim only while it is still ours.
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end"


class FastLLMMapper:
    """A callable class for ``Dataset.map_batches(..., batch_format="numpy")``.

    Each actor builds one :class:`~fastllm.engine.RequestManager` from these settings
    and keeps it: ``api_base`` / ``api_key`` (default: ``OPENAI_API_KEY`` in the
    actor's environment, e.g. set through ``runtime_env``; a key passed here travels
    in the actor's arguments) / ``provider_options`` for the
    :class:`~fastllm.providers.OpenAIProvider`; ``concurrency`` requests in flight per
    actor; ``rate_limits`` (``RateLimit`` objects or their keyword dicts; give them
    ``redis_url`` and ``name`` to share them between actors); ``cache_url``,
    ``cache_namespace`` and ``cache_ttl`` for a shared :class:`RedisCache`;
    ``claim_ttl`` (see the module docstring); ``manager_options`` for any other
    ``RequestManager`` argument.
    """

    def __init__(
        self,
        *,
        api_base: str = "https://api.openai.com/v1",
        api_key: str | None = None,
        column: str = "request",
        concurrency: int = 64,
        rate_limits: Sequence[RateLimit | Mapping[str, Any]] | None = None,
        cache_url: str | None = None,
        cache_namespace: str = "fastllm",
        cache_ttl: float | None = None,
        claim_ttl: float = 300.0,
        provider_options: Mapping[str, Any] | None = None,
        manager_options: Mapping[str, Any] | None = None,
    ) -> None:
        provider = OpenAIProvider(
            api_key=api_key or os.environ.get("OPENAI_API_KEY"),
            api_base=api_base,
            **dict(provider_options or {}),
        )
        limits = None
        if rate_limits is not None:
            limits = [r if isinstance(r, RateLimit) else RateLimit(**r) for r in rate_limits]
        self.cache = RedisCache(cache_url, cache_ttl, cache_namespace) if cache_url else None
        options: dict[str, Any] = {"show_progress": False, "rate_limits": limits}
        options.update(manager_options or {})
        self.manager = RequestManager(
            provider, concurrency=concurrency, caching_provider=self.cache, **options
        )
        self.column = column
        self._claim_ms = max(1, round(claim_ttl * 1000))
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._held: set[str] = set()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the batch's requests; return its columns plus :data:`OUTPUT_COLUMNS`."""
        import numpy as np

        items = [_item(value) for value in batch[self.column]]
        results = self._run(items)
        columns: dict[str, list[Any]] = {name: [] for name in OUTPUT_COLUMNS}
        for result in results:
            for name, value in zip(OUTPUT_COLUMNS, _row(result), strict=True):
                columns[name].append(value)
        out = dict(batch)
        for name, values in columns.items():
            dtype = bool if name in ("ok", "cached") else object
            out[name] = np.array(values, dtype=dtype)
        return out

    # -- running, with claims when the cache is shared --------------------------------

    def _run(self, items: list[Any]) -> list[ResponseWrapper | Exception]:
        keys = self._keys(items) if self.cache is not None else {}
        try:
            lost = self._claim(set(keys.values())) if keys else set()
        except Exception as exc:  # claims are an optimisation: never fail the batch
            logger.warning("could not claim requests in Redis (%s); sending them all", exc)
            keys, lost = {}, set()
        now = [i for i in range(len(items)) if keys.get(i) not in lost]
        later = [i for i in range(len(items)) if keys.get(i) in lost]
        results: list[ResponseWrapper | Exception] = [Exception("not run")] * len(items)
        try:
            self._into(results, now, items)
        finally:
            if keys:
                self._release({keys[i] for i in now if i in keys})
        if later:
            self._wait_for({keys[i] for i in later})
            self._into(results, later, items)
        return results

    def _into(
        self, results: list[ResponseWrapper | Exception], rows: list[int], items: list[Any]
    ) -> None:
        if not rows:
            return
        try:
            answers: Sequence[ResponseWrapper | Exception] = self.manager.process_batch(
                [items[i] for i in rows]
            )
        except Exception as exc:  # an engine failure fails these rows, not the batch
            answers = [exc] * len(rows)
        for i, answer in zip(rows, answers, strict=True):
            results[i] = answer

    def _keys(self, items: list[Any]) -> dict[int, str]:
        keys = {}
        for i, item in enumerate(items):
            if not isinstance(item, Exception):
                try:
                    keys[i] = self.manager.cache_key(request_from_item(item, i).request_id)
                except RequestFormatError:
                    continue
        return keys

    def _claim(self, keys: set[str]) -> set[str]:
        """Claim the uncached ``keys``; return those another actor holds."""
        assert self.cache is not None
        client = self.cache.sync_client()
        ordered = sorted(keys)
        pipe = client.pipeline(transaction=False)
        for key in ordered:
            pipe.exists(self.cache.redis_key(key))
        cached = pipe.execute()
        missing = [key for key, hit in zip(ordered, cached, strict=True) if not hit]
        pipe = client.pipeline(transaction=False)
        for key in missing:
            pipe.set(self._claim_key(key), self._owner, nx=True, px=self._claim_ms)
        won = pipe.execute()
        self._held = {key for key, ok in zip(missing, won, strict=True) if ok}
        return {key for key, ok in zip(missing, won, strict=True) if not ok}

    def _release(self, keys: set[str]) -> None:
        held, self._held = keys & self._held, self._held - keys
        if not held or self.cache is None:
            return
        try:
            client = self.cache.sync_client()
            release = client.register_script(_RELEASE)
            pipe = client.pipeline(transaction=False)
            for key in held:
                release(keys=[self._claim_key(key)], args=[self._owner], client=pipe)
            pipe.execute()
        except Exception as exc:  # they expire after claim_ttl anyway
            logger.warning("could not release request claims in Redis: %s", exc)

    def _wait_for(self, keys: set[str]) -> None:
        """Block until each key is cached or no longer claimed (polls, 50 ms to 1 s)."""
        assert self.cache is not None
        client, pause = self.cache.sync_client(), 0.05
        pending = sorted(keys)
        deadline = time.monotonic() + self._claim_ms / 1000 + 5
        while pending and time.monotonic() < deadline:
            pipe = client.pipeline(transaction=False)
            for key in pending:
                pipe.exists(self.cache.redis_key(key))
                pipe.exists(self._claim_key(key))
            try:
                states = pipe.execute()
            except Exception as exc:
                logger.warning("could not check claimed requests in Redis: %s", exc)
                return
            # still pending: not cached and still claimed by another actor
            pending = [k for i, k in enumerate(pending) if not states[2 * i] and states[2 * i + 1]]
            if pending:
                time.sleep(pause)
                pause = min(1.0, pause * 1.5)

    def _claim_key(self, key: str) -> str:
        assert self.cache is not None
        return f"{self.cache.namespace}:claim:{key}"


def _item(value: Any) -> Any:
    """A request dict from a cell (dict or JSON text), or the error that makes it fail."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str | bytes):
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            return RequestFormatError(f"the request is not valid JSON: {exc}")
        if isinstance(parsed, dict):
            return parsed
        return RequestFormatError(f"the request is a JSON {type(parsed).__name__}, not an object")
    return RequestFormatError(f"a request must be a dict or JSON text, got {type(value).__name__}")


def _row(result: ResponseWrapper | Exception) -> tuple[Any, ...]:
    if isinstance(result, Exception):
        return None, False, f"{type(result).__name__}: {result}", None, None, False
    try:
        text = orjson.dumps(result.body).decode() if result.ok else None
    except Exception as exc:  # a corrupt cached answer
        return (
            None,
            False,
            f"{type(exc).__name__}: {exc}",
            result.request_id,
            result.custom_id,
            False,
        )
    error = None if result.error is None else f"{type(result.error).__name__}: {result.error}"
    return text, result.ok, error, result.request_id or None, result.custom_id, result.cached


def run_dataset(
    ds: ray.data.Dataset,
    *,
    actors: int = 2,
    batch_size: int = 256,
    num_cpus: float = 0.5,
    **settings: Any,
) -> ray.data.Dataset:
    """``ds`` mapped through :class:`FastLLMMapper` (lazily, like any Ray transform).

    ``actors`` managers run at once, each given ``num_cpus`` (it mostly waits on the
    network, so less than one CPU each leaves room for the rest of the pipeline) and
    batches of ``batch_size`` rows; ``settings`` are :class:`FastLLMMapper`'s.
    """
    import ray.data

    return ds.map_batches(
        FastLLMMapper,
        fn_constructor_kwargs=settings,
        batch_format="numpy",
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=num_cpus,
    )
