"""``RequestManager``: the public entry point that runs batches.

It checks its configuration once, then for every run opens an HTTP session with a
connection pool as large as ``concurrency``, hands the input to a
:class:`~fastllm.engine.scheduler.Scheduler` and collects what it emits: every
result in request order (``process_batch``/``aprocess_batch``), as each completes
(``as_completed``), or in order as soon as each is ready (``iter_ordered``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence, Sized
from typing import Any, Literal

from fastllm.cache import CacheProvider
from fastllm.engine.embeddings import EmbeddingStage
from fastllm.engine.ordering import OrderedBuffer, ResultList
from fastllm.engine.results import ResponseWrapper, dummy_response
from fastllm.engine.scheduler import CacheMode, RunSettings, Scheduler
from fastllm.engine.sync_bridge import run_sync
from fastllm.errors import BatchError, ConfigurationError
from fastllm.limits import RateLimit, RateLimiter, RedisRateLimiter, TokenEstimator, make_limiter
from fastllm.observe.progress import ProgressTracker
from fastllm.observe.stats import Prices, StatsCollector, TokenStats
from fastllm.providers.base import Provider
from fastllm.requests.batch import RequestBatch
from fastllm.retry import RetryPolicy

__all__ = ["RequestManager"]

logger = logging.getLogger(__name__)

_CACHE_MODES = ("use", "refresh", "off")
# Streaming runs remember this many recent successes for deduplication (memory stays
# flat); identical requests further apart are answered by the cache, when there is one.
_STREAM_DEDUPE_WINDOW = 4096


class RequestManager:
    """Runs batches of requests against one provider.

    ``concurrency`` is the number of requests in flight (the connection pool is
    sized to match). ``retry_attempts`` counts every try (the first included) and
    ``retry_delay`` is the base of the exponential backoff; pass ``retry_policy`` for
    full control. ``rate_limits``: by default (``None`` or ``"auto"``) the limits the
    server announces in ``x-ratelimit-*`` headers are learned and obeyed; give
    ``RateLimit`` objects to set them yourself (the headers still tighten them), or
    ``"off"`` to ignore them all. ``dedupe=False`` sends identical
    requests separately (deliberate repeated sampling; the cache is then not read).
    Embeddings requests over ``embedding_max_inputs`` inputs or
    ``embedding_max_tokens`` estimated tokens are split and reassembled;
    ``pack_embeddings=True`` packs small ones with identical parameters into shared
    requests; with a cache, embeddings are cached per input text.
    """

    def __init__(
        self,
        provider: Provider,
        concurrency: int = 100,
        timeout: float = 30.0,
        retry_attempts: int = 3,
        retry_delay: float = 1.0,
        show_progress: bool = True,
        caching_provider: CacheProvider | None = None,
        return_dummy_on_error: bool = False,
        dummy_response: Any = None,
        *,
        retry_policy: RetryPolicy | None = None,
        rate_limits: RateLimit | Sequence[RateLimit] | Literal["auto", "off"] | None = None,
        dedupe: bool = True,
        raise_on_error: bool = False,
        prices: Prices | None = None,
        max_cost: float | None = None,
        token_estimator: TokenEstimator | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        embedding_max_inputs: int = 2048,
        embedding_max_tokens: int = 300_000,
        pack_embeddings: bool = False,
    ) -> None:
        if not isinstance(provider, Provider):
            raise ConfigurationError(
                "provider", f"must be a fastllm Provider, got {type(provider).__name__}"
            )
        _check_int("concurrency", concurrency, minimum=1)
        _check_positive("timeout", timeout)
        if max_cost is not None:
            _check_positive("max_cost", max_cost)
        _check_int("embedding_max_inputs", embedding_max_inputs, minimum=1)
        _check_int("embedding_max_tokens", embedding_max_tokens, minimum=1)
        if not isinstance(pack_embeddings, bool):
            raise ConfigurationError(
                "pack_embeddings", f"must be True or False, got {pack_embeddings!r}"
            )
        if caching_provider is not None and not isinstance(caching_provider, CacheProvider):
            raise ConfigurationError(
                "caching_provider",
                f"must be a fastllm CacheProvider, got {type(caching_provider).__name__}",
            )
        self.provider = provider
        self.concurrency = concurrency
        self.timeout = float(timeout)
        self.retry_policy = retry_policy or RetryPolicy(
            attempts=retry_attempts, base_delay=retry_delay, max_delay=max(60.0, retry_delay)
        )
        self.show_progress = show_progress
        self.cache = caching_provider
        self.return_dummy_on_error = return_dummy_on_error
        self._dummy_response = dummy_response
        self.dedupe = dedupe
        self.raise_on_error = raise_on_error
        self.max_cost = max_cost
        self._rate_limits, self._learn_limits = _check_rate_limits(rate_limits)
        self._estimator = token_estimator or TokenEstimator()
        self._sleep = sleep or asyncio.sleep
        self._limiter = self._make_limiter()
        self._prices = prices
        self._stats = StatsCollector(prices)  # checks the prices; replaced by each run's own
        self.embedding_max_inputs = embedding_max_inputs
        self.embedding_max_tokens = embedding_max_tokens
        self.pack_embeddings = pack_embeddings

    # -- synchronous ------------------------------------------------------------------
    def process_batch(
        self,
        batch: Iterable[Any],
        *,
        cache: CacheMode = "use",
        raise_on_error: bool | None = None,
    ) -> list[ResponseWrapper]:
        """Run every request of ``batch``; return their results in request order.

        ``batch`` is a ``RequestBatch``, a list of request dicts, or an iterable of
        OpenAI Batch lines. Works in scripts and inside a running event loop
        (Jupyter). A failed request is a result with ``ok == False``; with
        ``raise_on_error=True`` a :class:`~fastllm.errors.BatchError` carrying every
        result is raised at the end instead.
        """
        return run_sync(
            lambda: self.aprocess_batch(batch, cache=cache, raise_on_error=raise_on_error)
        )

    # -- asynchronous -----------------------------------------------------------------
    async def aprocess_batch(
        self,
        batch: Iterable[Any],
        *,
        cache: CacheMode = "use",
        raise_on_error: bool | None = None,
    ) -> list[ResponseWrapper]:
        """The awaitable form of :meth:`process_batch`."""
        collected = ResultList()
        await self._run(batch, collected.add, cache, completed_limit=None)
        results = collected.results()
        failed = sum(1 for r in results if not r.ok)
        if failed:
            logger.warning("%d of %d requests failed", failed, len(results))
        raising = self.raise_on_error if raise_on_error is None else raise_on_error
        if raising and failed:
            raise BatchError(results)
        return results

    async def as_completed(
        self, batch: Iterable[Any], *, cache: CacheMode = "use"
    ) -> AsyncIterator[ResponseWrapper]:
        """Yield results as they finish (any order; ``result.order`` tells the position).

        Stopping early cancels the rest of the run once the generator is closed; wrap
        it in ``contextlib.aclosing(...)`` to close it at once (what is done stays cached).
        """
        queue: asyncio.Queue[ResponseWrapper | None] = asyncio.Queue()
        run = asyncio.ensure_future(
            self._run(batch, queue.put_nowait, cache, completed_limit=_STREAM_DEDUPE_WINDOW)
        )
        run.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            while (result := await queue.get()) is not None:
                yield result
            await run
        finally:
            await _cancel(run)

    async def iter_ordered(
        self,
        items: Iterable[Any],
        *,
        cache: CacheMode = "use",
        max_ahead: int = 20_000,
    ) -> AsyncIterator[ResponseWrapper]:
        """Yield results in request order as soon as each is ready.

        Reads ``items`` lazily and never runs more than ``max_ahead`` requests past
        the oldest unfinished one, so memory stays flat for any input size.
        """
        _check_int("max_ahead", max_ahead, minimum=1)
        buffer = OrderedBuffer()
        ready = asyncio.Event()
        scheduler_box: list[Scheduler] = []

        def emit(result: ResponseWrapper) -> None:
            buffer.add(result)
            ready.set()

        run = asyncio.ensure_future(
            self._run(
                items,
                emit,
                cache,
                completed_limit=_STREAM_DEDUPE_WINDOW,
                max_ahead=lambda order: order - buffer.next_order >= max_ahead,
                scheduler_box=scheduler_box,
            )
        )
        run.add_done_callback(lambda _: ready.set())
        try:
            while True:
                await ready.wait()
                ready.clear()
                for result in buffer.take():
                    yield result
                if scheduler_box:
                    scheduler_box[0].wake_planner()
                if run.done():
                    for result in buffer.take():
                        yield result
                    await run
                    return
        finally:
            await _cancel(run)

    # -- information --------------------------------------------------------------------
    @property
    def dummy_response(self) -> Any:
        """The answer failed results carry with ``return_dummy_on_error=True``."""
        if self._dummy_response is None:
            self._dummy_response = dummy_response()
        return self._dummy_response

    def stats(self) -> TokenStats:
        """A frozen snapshot of the current (or last) run's statistics."""
        return self._stats.snapshot()

    def cache_key(self, request_id: str) -> str:
        """The key under which this manager caches the answer to ``request_id``."""
        return f"{self.provider.cache_namespace}:{request_id}"

    def __repr__(self) -> str:
        return (
            f"RequestManager(provider={self.provider!r}, concurrency={self.concurrency}, "
            f"timeout={self.timeout:g}, retry_policy={self.retry_policy!r})"
        )

    # -- the run ------------------------------------------------------------------------
    async def _run(
        self,
        batch: Iterable[Any],
        emit: Callable[[ResponseWrapper], None],
        cache: CacheMode,
        *,
        completed_limit: int | None,
        max_ahead: Callable[[int], bool] | None = None,
        scheduler_box: list[Scheduler] | None = None,
    ) -> None:
        if cache not in _CACHE_MODES:
            raise ConfigurationError("cache", f"must be one of {_CACHE_MODES}, got {cache!r}")
        if isinstance(batch, str | bytes) or not isinstance(batch, Iterable):
            raise ConfigurationError(
                "batch",
                f"must be a RequestBatch or an iterable of requests, got {type(batch).__name__}",
            )
        total = len(batch) if isinstance(batch, Sized) else None
        limiter = self._limiter
        settings = RunSettings(
            provider=self.provider,
            concurrency=self.concurrency,
            timeout=self.timeout,
            policy=self.retry_policy,
            limiter=limiter,
            estimator=self._estimator,
            cache=self.cache,
            cache_mode=cache,
            dedupe=self.dedupe,
            max_cost=self.max_cost,
            sleep=self._sleep,
        )
        deliver = self._with_dummy(emit) if self.return_dummy_on_error else emit
        # One collector per run: runs of one manager at the same time count apart.
        stats = StatsCollector(self._prices)
        stats.reset(total)
        stats.limiter_snapshot = limiter.snapshot
        self._stats = stats
        progress = ProgressTracker(stats, self.show_progress)
        logger.info("run started: %s requests, concurrency %d", total or "?", self.concurrency)
        stage = EmbeddingStage(
            settings,
            stats,
            deliver,
            max_inputs=self.embedding_max_inputs,
            max_tokens=self.embedding_max_tokens,
            pack=self.pack_embeddings,
            max_ahead=max_ahead,
        )
        scheduler = Scheduler(
            settings,
            stats,
            stage.emit,
            completed_limit=completed_limit,
            max_ahead=stage.max_ahead,
        )
        if scheduler_box is not None:
            scheduler_box.append(scheduler)
        progress.start()
        try:
            await stage.run(scheduler, RequestBatch.prepared(batch))
        finally:
            stats.finish()
            await progress.stop()
        summary = stats.snapshot()
        logger.info("run finished\n%s", summary.summary())

    def _make_limiter(self) -> RateLimiter | RedisRateLimiter:
        return make_limiter(self._rate_limits, auto=self._learn_limits, sleep=self._sleep)

    def _with_dummy(
        self, emit: Callable[[ResponseWrapper], None]
    ) -> Callable[[ResponseWrapper], None]:
        def deliver(result: ResponseWrapper) -> None:
            if not result.ok:
                result._response = self.dummy_response
            emit(result)

        return deliver


async def _cancel(task: asyncio.Future[None]) -> None:
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(name, f"must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigurationError(name, f"must be at least {minimum}, got {value}")


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(name, f"must be a positive number, got {value!r}")


def _check_rate_limits(
    limits: RateLimit | Sequence[RateLimit] | Literal["auto", "off"] | None,
) -> tuple[list[RateLimit], bool]:
    """The configured limits, and whether to learn limits from the server's headers."""
    if limits is None or limits == "auto":
        return [], True
    if limits == "off":
        return [], False
    if isinstance(limits, RateLimit):
        return [limits], False
    items: Sequence[object] = limits if isinstance(limits, list | tuple) else [limits]
    checked = [limit for limit in items if isinstance(limit, RateLimit)]
    if len(checked) != len(items):
        raise ConfigurationError(
            "rate_limits", f"must be RateLimit objects, 'auto' or 'off', got {limits!r}"
        )
    return checked, False
