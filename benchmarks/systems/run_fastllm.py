"""fastllm (this repository): ``RequestBatch`` + ``RequestManager.process_batch``.

``--cache memory|disk`` adds ``InMemoryCache()`` / ``DiskCache(<temp dir>)``
(the systems fastllm-memcache and fastllm-diskcache). The timed section is the
whole job: building the batch from the prompts and ``process_batch``. With
``--rerun`` the batch is built and run once as a warm-up, then ``process_batch``
of the same batch (answered from the cache) is timed ``--reruns`` times and the
median kept (one re-run takes tens of milliseconds: a single preemption would
otherwise decide the figure). ``--transport aiohttp`` sends every request through
aiohttp instead of FastLLM's own HTTP/1.1 client (the system fastllm-aiohttp).
FastLLM picks uvloop by itself.
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
from typing import Any

import _common

import fastllm
from fastllm import DiskCache, InMemoryCache, OpenAIProvider, RequestBatch, RequestManager


def build(texts: list[str]) -> RequestBatch:
    """A batch with one chat request per prompt."""
    batch = RequestBatch()
    create = batch.chat.completions.create
    for text in texts:
        create(model=_common.MODEL, messages=[{"role": "user", "content": text}])
    return batch


def make_manager(args: _common.Args, cache: Any) -> RequestManager:
    """The manager under test (library defaults except what the scenario sets)."""
    options: dict[str, Any] = {}
    if args.retries is not None:
        options["retry_attempts"] = args.retries
    provider = OpenAIProvider(api_key="bench", api_base=args.base_url, transport=args.transport)
    return RequestManager(
        provider,
        concurrency=args.concurrency,
        show_progress=False,
        caching_provider=cache,
        **options,
    )


def main() -> None:
    args = _common.parse_args(
        __doc__ or "", caches=("none", "memory", "disk"), transports=("fast", "aiohttp")
    )
    texts = _common.prompts(args)
    if args.transport == "aiohttp":
        # FastLLM imports aiohttp on first use; import it before the timed section, as
        # the aiohttp baseline does, so the comparison is of the transports alone
        importlib.import_module("aiohttp")
    directory = tempfile.mkdtemp(prefix="fastllm-bench-") if args.cache == "disk" else None
    cache: Any = None
    if args.cache == "memory":
        cache = InMemoryCache()
    elif directory is not None:
        cache = DiskCache(directory)
    try:
        manager = make_manager(args, cache)
        if args.rerun:
            batch = build(texts)
            manager.process_batch(batch)
            runs = []
            for _ in range(args.reruns):
                with _common.measure(args) as one:
                    results = manager.process_batch(batch)
                runs.append(one)
            timed = _common.median_of(runs)
        else:
            with _common.measure(args) as timed:
                results = manager.process_batch(build(texts))
        contents = [r.response.choices[0].message.content if r.ok else None for r in results]
        errors = [_common.describe(r.error) for r in results if not r.ok]
        timed.extra["cached"] = sum(1 for r in results if r.cached)
        verdict = _common.check(args, contents, errors)
    finally:
        if cache is not None and hasattr(cache, "close_sync"):
            cache.close_sync()
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
    _common.emit(args, timed, verdict, f"fastllm {fastllm.__version__}")


if __name__ == "__main__":
    main()
