"""fastllm-kit-0.1.9: the reference implementation, from PyPI, in its own venv.

Same calls as the fastllm script (``RequestBatch``, ``RequestManager``,
``OpenAIProvider``, ``InMemoryCache`` / ``DiskCache``). Its ``process_batch`` calls
``asyncio.run``, so uvloop is installed as the event loop policy first. It raises
on the first request that exhausts its retries, losing the batch, so it runs
with ``return_dummy_on_error=True`` and dummy answers count as failures.
``--rerun`` works as in ``run_fastllm.py`` (warm-up, then the median of the re-runs).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import warnings
from importlib.metadata import version
from typing import Any

import _common

from fastllm import DiskCache, InMemoryCache, OpenAIProvider, RequestBatch, RequestManager


def use_uvloop() -> None:
    """Make ``asyncio.run`` use uvloop (the reference creates its loop that way)."""
    try:
        import uvloop
    except ImportError:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def build(texts: list[str]) -> Any:
    """A batch with one chat request per prompt."""
    batch = RequestBatch()
    for text in texts:
        batch.chat.completions.create(
            model=_common.MODEL, messages=[{"role": "user", "content": text}]
        )
    return batch


def content(result: Any) -> str | None:
    """The answer text, None for a failure (the reference's dummy answer)."""
    if result is None or result.response.id == "dummy_id":
        return None
    text: str | None = result.response.choices[0].message.content
    return text


def main() -> None:
    args = _common.parse_args(__doc__ or "", caches=("none", "memory", "disk"))
    use_uvloop()
    texts = _common.prompts(args)
    directory = tempfile.mkdtemp(prefix="fastllm-kit-bench-") if args.cache == "disk" else None
    cache: Any = None
    if args.cache == "memory":
        cache = InMemoryCache()
    elif directory is not None:
        cache = DiskCache(directory)
    options: dict[str, Any] = {}
    if args.retries is not None:
        options["retry_attempts"] = args.retries
    manager = RequestManager(
        provider=OpenAIProvider(api_key="bench", api_base=args.base_url),
        concurrency=args.concurrency,
        show_progress=False,
        caching_provider=cache,
        return_dummy_on_error=True,
        **options,
    )
    try:
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
        contents = [content(r) for r in results]
        failures = sum(1 for text in contents if text is None)
        errors = [f"{failures} dummy answers (retries exhausted)"] if failures else []
        verdict = _common.check(args, contents, errors)
    finally:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
    _common.emit(args, timed, verdict, f"fastllm-kit {version('fastllm-kit')}")


if __name__ == "__main__":
    main()
