"""The run loop: a planner feeding a bounded pool of workers, with no chunk barrier.

::

    items ──planner──> parse, id, dedup, bulk cache lookup ──queue──> workers (N)
                          │ hits, duplicates: emitted at once           │ limiter, send, classify
                          ▼                                              ▼
                        emit(result) <──── fan-out to followers <──── success / final failure
                                                                         │ retryable: back into
                                                                         └ the queue after backoff

The planner pulls items lazily and stops when ``max_pending`` flights are
outstanding (queued, sending or backing off) or, for ordered output, when it is
``max_ahead`` orders past the oldest result not yet emitted; memory therefore does
not grow with the input. A failed attempt goes to the run's
:class:`~fastllm.engine.retrying.Retrier`, which gives up or puts it back into the
same queue after its backoff, behind the work already there: first-pass work and
retries interleave and a slow request never holds the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, Literal

import orjson

from fastllm.cache import CacheProvider
from fastllm.engine.cache_writer import CacheWriter
from fastllm.engine.inflight import CompletedWindow, Flight
from fastllm.engine.results import ResponseWrapper, total_tokens_in, total_tokens_of
from fastllm.engine.retrying import Retrier
from fastllm.errors import APIError, NotRunError, RequestError, RequestFormatError
from fastllm.limits import AdaptiveConcurrency, RateLimiter, RedisRateLimiter, TokenEstimator
from fastllm.observe.stats import StatsCollector
from fastllm.providers.base import Provider
from fastllm.requests.model import Request
from fastllm.requests.normalize import request_from_item
from fastllm.retry import RetryPolicy
from fastllm.transport import HttpSession

__all__ = ["PLAN_CHUNK", "CacheMode", "ChunkSource", "RunSettings", "Scheduler"]

logger = logging.getLogger(__name__)

CacheMode = Literal["use", "refresh", "off"]
PLAN_CHUNK = 1024


@dataclass(frozen=True)
class RunSettings:
    """Everything a run needs besides its input and its output."""

    provider: Provider
    concurrency: int
    timeout: float
    policy: RetryPolicy
    limiter: RateLimiter | RedisRateLimiter
    estimator: TokenEstimator
    cache: CacheProvider | None
    cache_mode: CacheMode
    dedupe: bool
    max_cost: float | None
    sleep: Callable[[float], Awaitable[None]]


class Scheduler:
    """Runs one batch: call :meth:`run` once; results go to ``emit`` as they are final."""

    def __init__(
        self,
        settings: RunSettings,
        stats: StatsCollector,
        emit: Callable[[ResponseWrapper], None],
        *,
        completed_limit: int | None = None,
        max_ahead: Callable[[int], bool] | None = None,
    ) -> None:
        self._s = settings
        self._session: HttpSession | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._stats = stats
        self._emit = emit
        self._ahead_blocked = max_ahead
        self._use_cache = settings.cache is not None and settings.cache_mode != "off"
        self._read_cache = self._use_cache and settings.cache_mode == "use" and settings.dedupe
        self._writer = (
            CacheWriter(settings.cache, stats.cache_failed)
            if self._use_cache and settings.cache
            else None
        )
        self._concurrency = AdaptiveConcurrency(settings.concurrency, min_signals=2)
        self._queue: asyncio.Queue[Flight | None] = asyncio.Queue()
        self._inflight: dict[str, Flight] = {}
        self._completed = CompletedWindow(completed_limit)
        self._outstanding = 0
        self._max_pending = settings.concurrency * 2 + PLAN_CHUNK
        self._room = asyncio.Event()
        self._planning = True
        self._retrier = Retrier(
            settings.policy,
            settings.limiter,
            self._concurrency,
            stats,
            sleep=settings.sleep,
            give_up=lambda flight, error: self._finish(flight, None, error),
            requeue=self._queue.put_nowait,
        )
        self._namespace = settings.provider.cache_namespace

    # -- the run ----------------------------------------------------------------------
    async def run(
        self, items: Iterable[object] | None = None, *, chunks: ChunkSource | None = None
    ) -> None:
        """Process every item (or every chunk ``chunks`` yields); returns when all are emitted.

        Workers and the HTTP session are created on demand, so a run answered from
        the cache opens no connection at all.
        """
        try:
            await self._plan(chunks if chunks is not None else _chunked(iter(items or ())))
            await asyncio.gather(*self._workers)
        finally:
            tasks = (*self._workers, *self._retrier.backoffs)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._writer is not None:
                await self._writer.close()
            if self._session is not None:
                await self._session.close()

    def _dispatch(self, flight: Flight) -> None:
        """Queue a flight, adding a worker while there are fewer than flights to run."""
        self._outstanding += 1
        self._queue.put_nowait(flight)
        if len(self._workers) < self._s.concurrency and len(self._workers) < self._outstanding:
            if self._session is None:
                self._session = _open_session(self._s.concurrency)
            self._workers.append(asyncio.ensure_future(self._work(self._session)))

    # -- planner ----------------------------------------------------------------------
    async def _plan(self, chunks: ChunkSource) -> None:
        order = 0
        async for chunk in chunks:
            requests: list[Request] = []
            for item in chunk:
                if isinstance(item, Request) and item.order == order:
                    requests.append(item)  # the usual case: checked and numbered already
                else:
                    try:
                        requests.append(request_from_item(item, order))
                    except RequestFormatError as exc:
                        self._fail_unparsed(order, item, exc)
                order += 1
            await self._admit(requests)
        self._planning = False
        self._maybe_finish()

    async def _admit(self, requests: list[Request]) -> None:
        """Admit one chunk: answered from the cache, shared, or dispatched.

        A hit's key was neither in flight nor done when it was looked up, and cannot
        become so except by its own first occurrence here (taking the hit); so the hit
        is taken before the dedupe check and the identical requests after it share it.
        Hits are answered in bulk: held back and emitted (and counted) together at the
        end of the chunk, or before the planner waits for room, since what it waits
        for may be the consumer taking these very results.
        """
        prefix = f"{self._namespace}:"
        keys = [prefix + request.request_id for request in requests]
        hits = await self._cache_lookup(requests, keys) if self._read_cache else {}
        answered: list[ResponseWrapper] = []
        answers: list[bytes] = []  # their bytes, for the token count
        dedupe = self._s.dedupe
        for request, key in zip(requests, keys, strict=True):
            if self._outstanding >= self._max_pending or self._ahead_blocked is not None:
                await self._make_room(request.order, answered, answers)
            raw = hits.pop(key, None) if hits else None
            if raw is not None:
                result = ResponseWrapper.from_cache(request, raw)
                self._completed.add(result)  # the cache is read only when deduplicating
                answered.append(result)
                answers.append(raw)
                continue
            if dedupe and self._shared(request):
                continue
            flight = Flight(request, key)
            if dedupe:
                self._inflight[request.request_id] = flight
            self._dispatch(flight)
        self._answer_from_cache(answered, answers)

    def _shared(self, request: Request) -> bool:
        """When an identical request is in flight or done: attach to it or answer from it."""
        flight = self._inflight.get(request.request_id)
        if flight is not None:
            flight.followers.append((request.order, request.custom_id))
            return True
        done = self._completed.get(request.request_id)
        if done is None:
            return False
        self._stats.completed(1, cached=False, shared=1, tokens=done._total_tokens())
        self._emit(done.shared_with(request.order, request.custom_id))
        return True

    async def _cache_lookup(self, requests: list[Request], keys: list[str]) -> dict[str, bytes]:
        """The cached bytes of the chunk's keys that are present (one bulk read)."""
        assert self._s.cache is not None
        inflight, completed = self._inflight, self._completed
        wanted = [
            key
            for request, key in zip(requests, keys, strict=True)
            if not request.part
            and request.request_id not in inflight
            and request.request_id not in completed
        ]
        if not wanted:
            return {}
        try:
            return await self._s.cache.get_many_raw(list(dict.fromkeys(wanted)))
        except Exception as exc:  # a broken cache degrades to misses
            self._stats.cache_failed()
            logger.warning(
                "cache lookup failed (%s: %s); treating as misses", type(exc).__name__, exc
            )
            return {}

    def _answer_from_cache(self, answered: list[ResponseWrapper], answers: list[bytes]) -> None:
        """Count and emit the cache hits held back; empties both lists."""
        if not answered:
            return
        self._stats.cache_answered(len(answered), total_tokens_in(answers))
        emit = self._emit
        for result in answered:
            emit(result)
        answered.clear()
        answers.clear()

    async def _make_room(
        self, order: int, answered: list[ResponseWrapper], answers: list[bytes]
    ) -> None:
        """Wait until ``order`` may be admitted; the hits held back are emitted first."""
        if self._full(order):
            self._answer_from_cache(answered, answers)
            await self._wait_for_room(order)

    def _full(self, order: int) -> bool:
        """Whether ``order`` must wait: too many flights, or too far ahead of the consumer."""
        return self._outstanding >= self._max_pending or (
            self._ahead_blocked is not None and self._ahead_blocked(order)
        )

    async def _wait_for_room(self, order: int) -> None:
        while self._full(order):
            self._room.clear()
            await self._room.wait()

    def _fail_unparsed(self, order: int, item: object, error: RequestFormatError) -> None:
        self._stats.failed_orders(error, 1, 0)
        self._emit(ResponseWrapper.unparsed(order, item, error))

    # -- workers ----------------------------------------------------------------------
    async def _work(self, session: HttpSession) -> None:
        queue = self._queue
        while True:
            # take queued work without creating a ``get()`` coroutine; wait only when empty
            flight = await queue.get() if queue.empty() else queue.get_nowait()
            if flight is None:
                return
            await self._attempt(flight, session)

    async def _attempt(self, flight: Flight, session: HttpSession) -> None:
        request = flight.request
        settings = self._s
        stats = self._stats
        if settings.max_cost is not None and stats.cost >= settings.max_cost:
            verb = "not retried" if flight.attempts else "not sent"
            error = NotRunError(f"{verb}: the cost budget of ${settings.max_cost:g} was reached")
            error.attempts = flight.attempts
            self._finish(flight, None, error)
            return
        limiter = settings.limiter
        body = request.body
        estimate = 0  # tokens matter to token budgets only: without one, skip the estimate
        if limiter.counts_tokens:
            estimate = settings.estimator.estimate(request.endpoint, body)
        concurrency = self._concurrency
        if not concurrency.try_acquire():  # the synchronous fast paths spare two coroutines
            await concurrency.acquire()
        try:
            reservation = limiter.try_acquire(estimate)
            if reservation is None:
                reservation = await limiter.acquire(estimate)
                if reservation.waited > 0:
                    logger.debug(
                        "request %s waited %.2f s for the rate limits",
                        request.custom_id,
                        reservation.waited,
                    )
        except BaseException:
            concurrency.release()
            raise
        now = time.perf_counter()
        if flight.started is None:
            flight.started = now
        flight.sent_at = now
        flight.attempts += 1
        stats.sending()
        try:
            answer = await settings.provider.make_request(session, request, settings.timeout)
        except RequestError as exc:
            failure: RequestError = exc
        except BaseException:  # cancelled: give everything back, then stop
            stats.sent_done()
            concurrency.release()
            limiter.cancel(reservation)
            raise
        except Exception as exc:  # a custom provider broke its contract: keep the run alive
            failure = APIError(f"provider raised {type(exc).__name__}: {exc}")
            failure.__cause__ = exc
        else:
            done = time.perf_counter()
            stats.sent_done()
            concurrency.release()
            concurrency.on_success()
            limiter.observe_headers(answer.headers)
            answer_body = answer.body
            usage = answer_body.get("usage")
            limiter.settle_answer(reservation, body, usage, estimate)
            stats.answered(
                answer_body.get("model") or body.get("model"),
                usage if isinstance(usage, dict) else None,
                done - flight.started,
                answer.ttft,
                body.get("stream") is True,
            )
            if self._writer is None or request.part:
                self._finish(flight, answer, None, done)
                return
            raw = answer.raw if answer.raw is not None else orjson.dumps(answer_body)
            stored = self._writer.add(flight.cache_key, raw)
            self._finish(flight, answer, None, done)
            # this worker sends nothing more until the answer is stored: a crash then
            # loses at most `concurrency` paid answers (see engine/cache_writer.py)
            await asyncio.shield(stored)
            return
        stats.sent_done()
        concurrency.release()
        limiter.settle(reservation, 0)
        self._retrier.failed(flight, failure)

    # -- completion -------------------------------------------------------------------
    def _finish(
        self, flight: Flight, answer: Any, error: RequestError | None, now: float | None = None
    ) -> None:
        """Emit a flight's final result (and its followers'); ``now``: a fresh perf_counter."""
        request = flight.request
        if self._s.dedupe:
            self._inflight.pop(request.request_id, None)
        followers = flight.followers
        # A result keeps the answer's bytes, not the parsed dict (a third of the memory
        # for a million results); parts are read at once by their assembler, so keep theirs.
        body = raw = None
        if answer is not None:
            if answer.raw is not None and not request.part:
                raw = answer.raw
            else:
                body = answer.body
        result = ResponseWrapper(
            request_id=request.request_id,
            order=request.order,
            custom_id=request.custom_id,
            endpoint=request.endpoint,
            body=body,
            raw=raw,
            error=error,
            attempts=flight.attempts,
            latency=(
                (time.perf_counter() if now is None else now) - flight.started
                if flight.started
                else None
            ),
            ttft=answer.ttft if answer is not None else None,
        )
        count = 1 + len(followers)
        if request.part:  # a piece of a larger request: its assembler counts the result
            pass
        elif error is None:
            self._stats.completed(
                count, cached=False, shared=len(followers), tokens=total_tokens_of(answer.body)
            )
            if self._s.dedupe:
                self._completed.add(result)
        else:
            self._stats.failed_orders(error, count, len(followers))
            logger.debug("request %s failed: %s", request.custom_id, error)
        self._emit(result)
        for order, custom_id in followers:
            self._emit(result.shared_with(order, custom_id))
        self._outstanding -= 1
        self._room.set()
        if not self._outstanding:
            self._maybe_finish()

    def wake_planner(self) -> None:
        """Re-check the planner's room (after the consumer took ordered results)."""
        self._room.set()

    def _maybe_finish(self) -> None:
        if not self._planning and self._outstanding == 0:
            for _ in self._workers:
                self._queue.put_nowait(None)


def _open_session(concurrency: int) -> HttpSession:
    """The run's HTTP session: at most ``concurrency`` connections (fast path and aiohttp)."""
    return HttpSession(limit=concurrency)


#: An async iterator of chunks of input items (the planner's source).
ChunkSource = AsyncIterator[list[object]]


async def _chunked(items: Iterator[object]) -> ChunkSource:
    """Chunks of ``PLAN_CHUNK`` items from a plain iterator."""
    while chunk := list(islice(items, PLAN_CHUNK)):
        yield chunk
