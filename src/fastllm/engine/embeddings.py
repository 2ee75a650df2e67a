"""The embedding stage: corpus-scale embeddings between the input and the scheduler.

::

    input chunk ──> chat, and embeddings within the caps (no cache, no packing):
        │           passed to the scheduler untouched, which answers and counts them
        │ other embeddings requests: answered by the stage
        ▼
    an empty text or token array? that request fails alone (RequestFormatError)
    an identical request still open? wait for its answer (deduplicated)
        │
        ▼ one bulk per-item cache read for the whole chunk; hits fill their slots
    groups of missing items: one per request, or with packing one per parameter set
        │ (everything but ``input``) and chunk; a text is sent once per group
        ▼ cut under ``max_inputs`` and ``max_tokens`` (estimated)
    part requests (``Request.part``: not counted, not cached whole by the scheduler)
        │
        ▼ scheduler ──> :meth:`EmbeddingStage.emit`
    each part's vectors go to their slots, its usage is shared out over its items,
    its items are written to the cache; a request is emitted once every slot is
    filled (``cached`` when none was sent) or as soon as one of its parts failed,
    with that part's error

An assembled answer is shaped like OpenAI's ``CreateEmbeddingResponse``: ``data``
in input order with ``index`` 0..n-1, vectors as received (float lists, or base64
strings for ``encoding_format="base64"``), ``model`` from the answers, and
``usage`` the tokens of the request's distinct items (their billed shares, those
from the cache included, as a whole cached answer would report them).

The scheduler numbers what it is given by stream position; the stage keeps, for
the unfinished items only, the map back to the caller's orders. Within a chunk
the stream is sorted by the smallest caller order each item serves, which keeps
``iter_ordered``'s ``max_ahead`` window deadlock-free (see
:attr:`EmbeddingStage.max_ahead`). The per-item cache key is documented in
:mod:`fastllm.engine.embedding_cache`.
"""

from __future__ import annotations

import asyncio
import logging
from bisect import bisect_right
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from itertools import islice
from operator import itemgetter

import orjson

from fastllm.cache import CacheProvider
from fastllm.engine.cache_writer import CacheWriter
from fastllm.engine.embedding_cache import decode_entry, item_key, key_prefix
from fastllm.engine.embedding_input import (
    Embedding,
    Item,
    empty_input_error,
    estimated_tokens,
    input_items,
    plan_parts,
    within,
)
from fastllm.engine.embedding_parts import Dest, Group, Parent, Part, vectors_of
from fastllm.engine.results import ResponseWrapper
from fastllm.engine.scheduler import PLAN_CHUNK, RunSettings, Scheduler
from fastllm.errors import FastLLMError, RequestFormatError, ResponseDecodingError
from fastllm.observe.stats import StatsCollector
from fastllm.requests.model import Endpoint, Request
from fastllm.requests.normalize import request_from_item

__all__ = ["EmbeddingStage"]

logger = logging.getLogger(__name__)

_EMBEDDINGS = Endpoint.EMBEDDINGS


class EmbeddingStage:
    """Splits, packs and caches embeddings requests of one run; see the module docstring.

    Use: ``Scheduler(..., emit=stage.emit, max_ahead=stage.max_ahead)`` then
    ``await stage.run(scheduler, items)``. Requests the stage answers are counted in
    ``stats`` once each; the scheduler counts everything it is given whole.
    """

    def __init__(
        self,
        settings: RunSettings,
        stats: StatsCollector,
        emit: Callable[[ResponseWrapper], None],
        *,
        max_inputs: int = 2048,
        max_tokens: int = 300_000,
        pack: bool = False,
        max_ahead: Callable[[int], bool] | None = None,
    ) -> None:
        self._stats = stats
        self._emit = emit
        self._max_inputs = max_inputs
        self._max_tokens = max_tokens
        self._pack = pack
        self._dedupe = settings.dedupe
        self._count = settings.estimator.count
        use_cache = settings.cache is not None and settings.cache_mode != "off"
        self._cache = settings.cache if use_cache else None
        self._read = use_cache and settings.cache_mode == "use" and settings.dedupe
        self._writer: CacheWriter | None = None
        self._namespace = settings.provider.cache_namespace
        # Every embeddings request goes through the stage when it caches or packs.
        self._manage_all = use_cache or pack
        self._ahead = max_ahead
        self._room = asyncio.Event()
        self._parts: dict[int, Part] = {}  # scheduler order -> part in flight
        self._moved: dict[int, int] = {}  # scheduler order -> caller order, where they differ
        self._open: dict[str, Parent] = {}  # request id -> unfinished request (dedupe)
        self._unfinished = 0
        self._next_order = 0  # the caller's numbering
        self._next_stream = 0  # the scheduler's numbering
        self._chunk_base = 0
        self._chunk_orders: list[int] | None = None
        self._chunk_shift = 0
        self._labels = 0

    # -- wiring ---------------------------------------------------------------------------
    async def run(self, scheduler: Scheduler, items: Iterable[object]) -> None:
        """Feed ``items`` through the stage into ``scheduler``; returns when all are emitted."""
        try:
            await scheduler.run(chunks=self._chunks(iter(items)))
        finally:
            if self._writer is not None:
                await self._writer.close()
        if self._unfinished:  # pragma: no cover - an engine bug, never a user error
            logger.error("%d embeddings requests were never answered", self._unfinished)

    @property
    def max_ahead(self) -> Callable[[int], bool] | None:
        """The scheduler's ``max_ahead`` check, in the caller's orders.

        Each stream item is checked with the smallest caller order it serves, and the
        stream is sorted by that order within a chunk (earlier chunks are all admitted).
        So when the planner waits at an item with order ``v``, every request before
        ``v`` is already emitted or in the scheduler's hands and will complete, moving
        the window on; waiting can therefore never block the result it waits for.
        """
        return None if self._ahead is None else self._blocked

    def _blocked(self, stream_order: int) -> bool:
        assert self._ahead is not None
        orders = self._chunk_orders
        if orders is None:
            return self._ahead(stream_order - self._chunk_shift)
        at = stream_order - self._chunk_base
        return self._ahead(orders[at] if 0 <= at < len(orders) else stream_order)

    def emit(self, result: ResponseWrapper) -> None:
        """The scheduler's emit: parts are assembled, everything else renumbered and passed on."""
        order = result.order
        part = self._parts.pop(order, None) if self._parts else None
        if part is not None:
            self._part_answered(part, result)
        else:
            if self._moved:
                outer = self._moved.pop(order, None)
                if outer is not None:
                    result = result.renumbered(outer)
            self._emit(result)
        if self._ahead is not None:
            self._room.set()

    # -- planning -------------------------------------------------------------------------
    async def _chunks(self, items: Iterator[object]) -> AsyncIterator[list[object]]:
        while chunk := list(islice(items, PLAN_CHUNK)):
            if self._ahead is not None:  # bounds what the stage itself answers at once
                while self._ahead(self._next_order):
                    self._room.clear()
                    await self._room.wait()
            stream = await self._prepare(chunk)
            if stream:
                yield stream

    async def _prepare(self, chunk: list[object]) -> list[object]:
        first = self._next_order
        self._next_order += len(chunk)
        if all(isinstance(i, Request) and i.endpoint is not _EMBEDDINGS for i in chunk):
            return self._untouched(chunk, first)
        entries = self._classify(chunk, first)
        hits: dict[str, bytes] = {}
        if self._read and self._cache is not None:
            keys = [k for _, p in entries if isinstance(p, Parent) for k in p.keys]
            hits = await _lookup(self._cache, list(dict.fromkeys(keys)), self._stats)
        return self._number(self._stage(entries, hits))

    def _untouched(self, chunk: list[object], first: int) -> list[object]:
        """A chunk with no embeddings: given as it is, renumbered by one shift."""
        base = self._next_stream
        self._next_stream += len(chunk)
        shift = base - first
        if shift:
            count = len(chunk)
            self._moved.update(
                zip(range(base, base + count), range(first, first + count), strict=True)
            )
        self._chunk_orders = None
        self._chunk_shift = shift
        return chunk

    def _classify(self, chunk: list[object], first: int) -> list[tuple[int, object]]:
        """``(caller order, Request to pass on | Parent | None when already answered)``."""
        entries: list[tuple[int, object]] = []
        for order, item in enumerate(chunk, first):
            if isinstance(item, Request):
                request = item
            else:
                try:
                    request = request_from_item(item, order)
                except RequestFormatError as exc:
                    self._fail_unparsed(order, item, exc)
                    continue
            if request.endpoint is _EMBEDDINGS:
                entries.append((order, self._embeddings(request, order)))
            else:
                entries.append((order, request))
        return entries

    def _embeddings(self, request: Request, order: int) -> object:
        value = request.body.get("input")
        error = empty_input_error(value, request.custom_id)
        if error is not None:
            self._stats.failed_orders(error, 1, 0)
            self._emit(_failed(request, order, error))
            return None
        items, is_tokens = input_items(value)
        if not self._manage_all and not self._too_big(items, is_tokens):
            return request
        if self._dedupe:
            leader = self._open.get(request.request_id)
            if leader is not None:
                leader.followers.append((order, request.custom_id))
                return None
        parent = Parent(request, order, items, is_tokens, self._dedupe)
        if self._cache is not None:
            prefix = key_prefix(request.body)
            namespace = self._namespace
            parent.keys = [item_key(namespace, prefix, item) for item in parent.items]
        if self._dedupe:
            self._open[request.request_id] = parent
        self._unfinished += 1
        return parent

    def _too_big(self, items: list[Item], is_tokens: bool) -> bool:
        if len(items) > self._max_inputs:
            return True
        if within(items, is_tokens, self._max_tokens):
            return False
        return estimated_tokens(items, is_tokens, self._count) > self._max_tokens

    def _stage(
        self, entries: list[tuple[int, object]], hits: dict[str, bytes]
    ) -> list[tuple[int, object]]:
        """The chunk's stream as ``(smallest caller order served, Request | Part)``."""
        staged: list[tuple[int, object]] = []
        packs: dict[tuple[bool, bytes], Group] = {}
        for order, entry in entries:
            if not isinstance(entry, Parent):
                if entry is not None:
                    staged.append((order, entry))
                continue
            parent = entry
            misses = self._cached(parent, hits) if hits else range(len(parent.items))
            if parent.missing == 0:
                self._complete(parent)
                continue
            parent.sent = True
            params = {k: v for k, v in parent.request.body.items() if k != "input"}
            if self._pack:
                key = (parent.is_tokens, orjson.dumps(params, option=orjson.OPT_SORT_KEYS))
                group = packs.get(key)
                if group is None:
                    group = packs[key] = Group(params, self._dedupe)
            else:
                group = Group(params, False)  # the request's items are distinct already
            group.add_all(parent, misses)
            if not self._pack:
                self._cut(group, staged)
        if packs:
            for group in packs.values():
                self._cut(group, staged)
            staged.sort(key=itemgetter(0))
        return staged

    def _cached(self, parent: Parent, hits: dict[str, bytes]) -> list[int]:
        """Fill ``parent`` from the cache hits; return its distinct items still missing."""
        misses: list[int] = []
        for at, key in enumerate(parent.keys):
            raw = hits.get(key)
            entry = decode_entry(raw) if raw is not None else None
            if entry is None:
                misses.append(at)
            else:
                parent.fill(at, entry[0], entry[1], entry[1])
        return misses

    def _cut(self, group: Group, staged: list[tuple[int, object]]) -> None:
        """Cut a group's items into parts under the caps and stage them."""
        items = group.items
        is_tokens = group.dests[0][0].is_tokens
        tokens: list[int] | None = None
        if not within(items, is_tokens, self._max_tokens):
            count = self._count
            tokens = [len(i) if is_tokens else count(i) for i in items]  # type: ignore[arg-type]
        slices = plan_parts(len(items), self._max_inputs, self._max_tokens, tokens)
        extras: list[dict[int, list[Dest]]] = [{} for _ in slices]
        if group.extra:
            starts = [start for start, _ in slices]
            for at, dests in group.extra.items():
                k = bisect_right(starts, at) - 1
                extras[k][at - starts[k]] = dests
        for (start, end), extra in zip(slices, extras, strict=True):
            self._labels += 1
            label = f"{group.dests[start][0].request.custom_id}/part{self._labels}"
            part = Part(group, start, end, extra, label)
            staged.append((part.first_order, part))

    def _number(self, staged: list[tuple[int, object]]) -> list[object]:
        """Give the staged items their stream orders; remember how to map them back."""
        base = self._next_stream
        stream: list[object] = []
        orders: list[int] = []
        for at, (order, entry) in enumerate(staged, base):
            if isinstance(entry, Part):
                self._parts[at] = entry
                stream.append(entry.request(at))
            else:
                if at != order:
                    self._moved[at] = order
                stream.append(entry)
            orders.append(order)
        self._next_stream = base + len(stream)
        self._chunk_base = base
        self._chunk_orders = orders
        return stream

    # -- answers --------------------------------------------------------------------------
    def _part_answered(self, part: Part, result: ResponseWrapper) -> None:
        error: FastLLMError | None = result.error
        if error is None:
            try:
                vectors = vectors_of(result.body, len(part.items))
            except ResponseDecodingError as exc:
                error = exc
            else:
                self._assemble(part, result, vectors)
                return
        for parent in part.parents():
            if not parent.done:
                self._finish(parent, _failed(parent.request, parent.order, error, result), error)

    def _assemble(self, part: Part, result: ResponseWrapper, vectors: list[Embedding]) -> None:
        body = result.body or {}
        write = self._writer_started().add if part.keys else None
        model = body.get("model")
        for parent in part.deliver(vectors, body.get("usage"), write):
            parent.attempts = max(parent.attempts, result.attempts)
            if result.latency is not None:
                parent.latency = max(parent.latency or 0.0, result.latency)
            if parent.model is None and isinstance(model, str):
                parent.model = model
            if parent.missing == 0:
                self._complete(parent)

    def _writer_started(self) -> CacheWriter:
        if self._writer is None:
            assert self._cache is not None
            self._writer = CacheWriter(self._cache, self._stats.cache_failed)
        return self._writer

    def _complete(self, parent: Parent) -> None:
        request = parent.request
        result = ResponseWrapper(
            request_id=request.request_id,
            order=parent.order,
            custom_id=request.custom_id,
            endpoint=_EMBEDDINGS,
            body=parent.body(),
            attempts=parent.attempts,
            cached=not parent.sent,
            latency=parent.latency,
        )
        self._finish(parent, result, None)

    def _finish(self, parent: Parent, result: ResponseWrapper, error: FastLLMError | None) -> None:
        parent.done = True
        parent.slots = []
        self._unfinished -= 1
        if self._open.get(parent.request.request_id) is parent:
            del self._open[parent.request.request_id]
        followers = parent.followers
        count = 1 + len(followers)
        if error is None:
            self._stats.completed(
                count, cached=result.cached, shared=len(followers), tokens=parent.total
            )
        else:
            self._stats.failed_orders(error, count, len(followers))
        self._emit(result)
        for order, custom_id in followers:
            self._emit(result.shared_with(order, custom_id))

    def _fail_unparsed(self, order: int, item: object, error: RequestFormatError) -> None:
        """An item that is not a request: its own failed result (as the scheduler does)."""
        self._stats.failed_orders(error, 1, 0)
        self._emit(ResponseWrapper.unparsed(order, item, error))


def _failed(
    request: Request, order: int, error: FastLLMError, part: ResponseWrapper | None = None
) -> ResponseWrapper:
    return ResponseWrapper(
        request_id=request.request_id,
        order=order,
        custom_id=request.custom_id,
        endpoint=request.endpoint,
        error=error,
        attempts=part.attempts if part is not None else 0,
        latency=part.latency if part is not None else None,
    )


async def _lookup(
    cache: CacheProvider, keys: Sequence[str], stats: StatsCollector
) -> dict[str, bytes]:
    """The stored bytes of the keys present, in one bulk read; a failing cache gives misses."""
    if not keys:
        return {}
    try:
        return await cache.get_many_raw(keys)
    except Exception as exc:  # a broken cache degrades to misses, as for whole requests
        stats.cache_failed()
        logger.warning(
            "embedding cache lookup failed (%s: %s); treating as misses", type(exc).__name__, exc
        )
        return {}
