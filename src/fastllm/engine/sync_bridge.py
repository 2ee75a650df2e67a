"""Running a coroutine from synchronous code, including inside a running event loop.

In a plain script the coroutine runs on a new event loop (uvloop when installed).
Inside a running loop (Jupyter, an async framework) blocking that loop is the
only option a synchronous call has, so the coroutine runs on its own loop in a
worker thread and the caller waits for it; nothing is monkeypatched (no
``nest_asyncio``). Ctrl-C cancels the run cleanly in both cases.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["new_event_loop", "run_sync"]

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A fresh event loop: uvloop's when installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``factory()`` to completion from synchronous code and return its result."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_here(factory)
    return _run_in_thread(factory)


def _run_here(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            return runner.run(factory())
    loop = new_event_loop()  # pragma: no cover - Python 3.10
    task = loop.create_task(factory())
    try:
        return loop.run_until_complete(task)
    except KeyboardInterrupt:
        task.cancel()
        loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
        raise
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _run_in_thread(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    loop = new_event_loop()
    outcome: dict[str, Any] = {}
    started = threading.Event()

    def target() -> None:
        asyncio.set_event_loop(loop)
        try:
            task = loop.create_task(factory())
            outcome["task"] = task
            started.set()
            outcome["result"] = loop.run_until_complete(task)
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            started.set()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=target, name="fastllm-run", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.1)
    except KeyboardInterrupt:
        started.wait()
        task = outcome.get("task")
        if task is not None and not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)
        thread.join()
        raise
    if "error" in outcome:
        raise outcome["error"]
    result: T = outcome["result"]
    return result
