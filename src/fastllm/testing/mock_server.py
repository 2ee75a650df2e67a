"""An OpenAI-compatible mock HTTP server for tests, demos and benchmarks.

Answers are deterministic (see :mod:`fastllm.testing._requests`): a chat answer's
content is the last user message, an embedding is :func:`mock_embedding` of its
input, tokens are :func:`count_tokens`.  Faults (429s, 500s, hangs, drops,
malformed bodies, truncated streams ...) are injected from :class:`MockServerConfig`,
with one seeded RNG.  Precedence when several apply to a request: fail_first,
invalid request (400), server rate limit, unknown model, then one random draw
over hang, drop, quota_429, fail_429, fail_500, malformed (each fraction is an
absolute share of requests), then the normal answer.

The server-side rate limit is a continuously refilling bucket per limit (like
OpenAI): capacity = the limit, refilled at ``limit / rate_limit_window`` per
second; a request costs 1 request and its prompt tokens plus
``(max_completion_tokens or max_tokens or 0) * n`` tokens, and is refused (429,
not consumed) when either bucket holds less than its cost.

Control endpoints (not counted in the stats): ``GET /stats``, ``POST /reset``,
``GET|POST /config``, ``GET /health``.

Run it with :class:`MockServer` (background thread, or a subprocess with
``process=True``), :func:`serve` (blocking) or ``python -m fastllm.testing.mock_server``.

This module is the public handle; the parts live in :mod:`fastllm.testing.config`
(the configuration), ``_app`` (the request handler), ``_serve`` (the serving loop)
and ``_cli`` (the command line), all re-exported here.  Under them: ``_http``
(the HTTP/1.1 server), ``_requests``, ``_responses``, ``_replies``, ``_rate_limit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import urllib.error
import urllib.request
from dataclasses import replace
from multiprocessing import get_context
from multiprocessing.process import BaseProcess
from typing import Any

import orjson

from fastllm.testing._app import MockApp as MockApp
from fastllm.testing._app import Route as Route
from fastllm.testing._cli import build_parser as build_parser
from fastllm.testing._cli import main
from fastllm.testing._http import new_event_loop
from fastllm.testing._records import FAULT_KINDS as FAULT_KINDS
from fastllm.testing._requests import count_tokens
from fastllm.testing._responses import mock_embedding
from fastllm.testing._serve import _close_loop, _process_main, _run_server, serve
from fastllm.testing.config import ErrorStyle as ErrorStyle
from fastllm.testing.config import MockServerConfig

__all__ = ["MockServer", "MockServerConfig", "count_tokens", "main", "mock_embedding", "serve"]


class MockServer:
    """The mock server in a background thread (default) or a subprocess (``process=True``).

    Use it as a context manager.  ``cpu`` pins the subprocess to one CPU.
    Keyword ``changes`` override fields of ``config``.
    """

    def __init__(
        self,
        config: MockServerConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        process: bool = False,
        cpu: int | None = None,
        **changes: Any,
    ) -> None:
        if cpu is not None and not process:
            raise ValueError("cpu pinning needs process=True")
        config = config or MockServerConfig()
        self._config = replace(config, **changes) if changes else config
        self.host = host
        self.process = process
        self.cpu = cpu
        self._requested_port = port
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._child: BaseProcess | None = None
        self._error: BaseException | None = None
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # -- addresses -------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the server listens on (after start)."""
        if self._port is None:
            raise RuntimeError("the mock server is not running")
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://host:port/v1``, the OpenAI base URL."""
        return self.url + "/v1"

    @property
    def config(self) -> MockServerConfig:
        """The configuration last sent to the server."""
        return self._config

    # -- control ---------------------------------------------------------------------

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        data = None if payload is None else orjson.dumps(payload)
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"content-type": "application/json"}
        )
        try:
            with self._opener.open(request, timeout=30) as response:
                return orjson.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise ValueError(f"mock server refused {method} {path}: {detail}") from exc

    def stats(self) -> dict[str, Any]:
        """The server's counters (``GET /stats``)."""
        result: dict[str, Any] = self._call("GET", "/stats")
        return result

    def reset(self) -> None:
        """Zero the counters, rate-limit state and fail_first memory (``POST /reset``)."""
        self._call("POST", "/reset", {})

    def configure(self, **changes: Any) -> MockServerConfig:
        """Change config fields at run time (``POST /config``); return the new config."""
        replace(self._config, **changes)  # raises TypeError / ValueError before sending
        self._config = MockServerConfig(**self._call("POST", "/config", changes))
        return self._config

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> MockServer:
        """Start serving; returns self once the server accepts connections."""
        if self._port is not None:
            raise RuntimeError("the mock server is already running")
        if self.process:
            self._start_process()
        else:
            self._start_thread()
        return self

    def stop(self) -> None:
        """Stop serving (open and hanging connections are aborted)."""
        child, thread = self._child, self._thread
        self._child = self._thread = None
        self._port = None
        if child is not None:
            child.terminate()
            child.join(10)
            if child.is_alive():  # pragma: no cover - SIGTERM is handled
                child.kill()
                child.join(5)
        if thread is not None:
            loop, stop = self._loop, self._stop_event
            if loop is not None and stop is not None:
                with contextlib.suppress(RuntimeError):  # loop already closed
                    loop.call_soon_threadsafe(stop.set)
            thread.join(30)

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _start_thread(self) -> None:
        ready = threading.Event()
        self._error = None
        thread = threading.Thread(
            target=self._thread_main, args=(ready,), name="fastllm-mock-server", daemon=True
        )
        self._thread = thread
        thread.start()
        ready.wait()
        if self._error is not None or self._port is None:
            thread.join(30)
            self._thread = None
            raise RuntimeError("the mock server did not start") from self._error

    def _thread_main(self, ready: threading.Event) -> None:
        def on_ready(port: int) -> None:
            self._port = port
            ready.set()

        async def run() -> None:
            self._stop_event = asyncio.Event()
            await _run_server(
                self._config, self.host, self._requested_port, on_ready, stop=self._stop_event
            )

        loop = new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(run())
        except BaseException as exc:
            self._error = exc
        finally:
            _close_loop(loop)
            ready.set()

    def _start_process(self) -> None:
        context = get_context("spawn")
        receiver, sender = context.Pipe(duplex=False)
        args = (self._config, self.host, self._requested_port, self.cpu, sender)
        child = context.Process(target=_process_main, args=args, daemon=True)
        child.start()
        sender.close()
        try:
            if not receiver.poll(60):
                raise RuntimeError("the mock server process did not start in time")
            status, value = receiver.recv()
        except (EOFError, RuntimeError) as exc:
            child.kill()
            child.join(5)
            raise RuntimeError("the mock server process did not start") from exc
        finally:
            receiver.close()
        if status != "ok":
            child.join(5)
            raise RuntimeError(f"the mock server process failed: {value}")
        self._child = child
        self._port = int(value)


if __name__ == "__main__":
    main()
