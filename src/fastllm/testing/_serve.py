"""Running a :class:`MockApp` on an event loop: :func:`serve` and the subprocess entry."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import threading
import warnings
from collections.abc import Callable
from multiprocessing.connection import Connection

from fastllm.testing._app import MockApp
from fastllm.testing._http import HttpServer, new_event_loop
from fastllm.testing.config import MockServerConfig

__all__ = ["serve"]


async def _run_server(
    config: MockServerConfig,
    host: str,
    port: int,
    ready: Callable[[int], None] | None,
    stop: asyncio.Event,
) -> None:
    server = HttpServer(MockApp(config).handle)
    real_port = await server.start(host, port)
    try:
        if ready is not None:
            ready(real_port)
        await stop.wait()
    finally:
        await server.close()


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    try:
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


async def _serve_until_signal(
    config: MockServerConfig, host: str, port: int, ready: Callable[[int], None] | None
) -> None:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
    try:
        await _run_server(config, host, port, ready, stop)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def serve(
    config: MockServerConfig,
    host: str = "127.0.0.1",
    port: int = 8000,
    ready: Callable[[int], None] | None = None,
) -> None:
    """Run the mock server until SIGINT/SIGTERM; ``ready(port)`` is called once listening."""
    gc.freeze()  # the objects of imported modules are never garbage: keep them out of collections
    loop = new_event_loop()
    try:
        loop.run_until_complete(_serve_until_signal(config, host, port, ready))
    except KeyboardInterrupt:
        pass
    finally:
        _close_loop(loop)
        gc.unfreeze()


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    else:  # pragma: no cover - not Linux
        warnings.warn("cannot pin the mock server to a CPU on this platform", stacklevel=2)


def _process_main(
    config: MockServerConfig, host: str, port: int, cpu: int | None, sender: Connection
) -> None:
    def ready(real_port: int) -> None:
        sender.send(("ok", real_port))
        sender.close()

    try:
        if cpu is not None:
            _pin(cpu)
        serve(config, host, port, ready)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            sender.send(("error", repr(exc)))
        raise
