"""An OpenAI-compatible mock HTTP server for tests, demos and benchmarks.

Answers are deterministic (see :mod:`fastllm.testing._responses`): a chat answer's
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
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import math
import os
import random
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import MISSING, asdict, dataclass, fields, replace
from http import HTTPStatus
from multiprocessing import get_context
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Literal

import orjson
import xxhash

from fastllm.testing._http import Header, HttpConnection, HttpServer, Request, new_event_loop
from fastllm.testing._responses import (
    JSON,
    SSE,
    ChatAnswer,
    EmbeddingAnswer,
    InvalidRequest,
    RateLimiter,
    chat_body,
    chat_events,
    count_tokens,
    embedding_body,
    error_body,
    format_duration,
    mock_embedding,
    parse_object,
    read_chat,
    read_embeddings,
)

__all__ = ["MockServer", "MockServerConfig", "count_tokens", "main", "mock_embedding", "serve"]

ErrorStyle = Literal["openai", "detail", "text"]
_FRACTIONS = ("fail_429", "quota_429", "fail_500", "hang", "malformed", "drop", "stream_truncate")
_DELAYS = ("latency", "jitter", "stream_chunk_delay")


@dataclass
class MockServerConfig:
    """Behaviour of the mock server; every field can be changed at run time (``/config``).

    Fractions are shares of API requests; see ``_HELP`` for one line per field.
    """

    latency: float = 0.0
    jitter: float = 0.0
    fail_429: float = 0.0
    retry_after: str | None = "1"
    retry_after_ms: str | None = None
    quota_429: float = 0.0
    fail_500: float = 0.0
    fail_first: int = 0
    fail_first_status: int = 500
    hang: float = 0.0
    malformed: float = 0.0
    drop: float = 0.0
    should_retry: str | None = None
    error_style: ErrorStyle = "openai"
    known_models: list[str] | None = None
    unknown_model_status: int = 404
    stream_chunk_delay: float = 0.0
    stream_truncate: float = 0.0
    stream_usage: bool = True
    close_after_response: bool = False
    rate_limit_requests: int | None = None
    rate_limit_tokens: int | None = None
    rate_limit_window: float = 60.0
    embedding_dim: int = 64
    max_dimensions: int = 3072
    seed: int | None = None

    def __post_init__(self) -> None:
        _check_config(self)


# One line of documentation per MockServerConfig field (also the CLI help).
_HELP: dict[str, str] = {
    "latency": "seconds before answering (asyncio sleep, per request)",
    "jitter": "+- uniform seconds added to latency (never below 0)",
    "fail_429": "fraction answered 429 rate_limit_exceeded",
    "retry_after": "exact Retry-After value sent with injected 429s",
    "retry_after_ms": "retry-after-ms value sent with injected 429s",
    "quota_429": "fraction answered 429 insufficient_quota (no Retry-After)",
    "fail_500": "fraction answered 500",
    "fail_first": "the first N requests of every distinct body fail",
    "fail_first_status": "status of the fail_first answers",
    "hang": "fraction never answered (connection kept open)",
    "malformed": "fraction answered 200 with truncated JSON",
    "drop": "fraction whose connection is closed without an answer",
    "should_retry": "x-should-retry header value on error answers",
    "error_style": "error body style: openai, detail or text",
    "known_models": "accepted models (None: every model)",
    "unknown_model_status": "200, 400 or 404 for models not in known_models",
    "stream_chunk_delay": "seconds between SSE events",
    "stream_truncate": "fraction of streams cut after one content chunk",
    "stream_usage": "send the usage chunk when include_usage is requested",
    "close_after_response": "close kept-alive connections ~20 ms after answers",
    "rate_limit_requests": "server-side requests per window",
    "rate_limit_tokens": "server-side tokens per window",
    "rate_limit_window": "rate-limit window in seconds",
    "embedding_dim": "vector size when the request has no dimensions",
    "max_dimensions": "largest accepted dimensions",
    "seed": "seed of the fault RNG",
}


def _check_optional(config: MockServerConfig, names: Sequence[str], kind: type) -> None:
    for name in names:
        value = getattr(config, name)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise ValueError(f"{name} must be a {kind.__name__} or None")


def _check_config(config: MockServerConfig) -> None:
    """Raise ValueError for an impossible configuration."""
    for name in _DELAYS:
        if not getattr(config, name) >= 0:
            raise ValueError(f"{name} must be >= 0")
    for name in _FRACTIONS:
        if not 0 <= getattr(config, name) <= 1:
            raise ValueError(f"{name} must be a fraction between 0 and 1")
    _check_optional(config, ("retry_after", "retry_after_ms", "should_retry"), str)
    _check_optional(config, ("rate_limit_requests", "rate_limit_tokens", "seed"), int)
    for name in ("stream_usage", "close_after_response"):
        if not isinstance(getattr(config, name), bool):
            raise ValueError(f"{name} must be true or false")
    if config.error_style not in ("openai", "detail", "text"):
        raise ValueError("error_style must be openai, detail or text")
    if config.unknown_model_status not in (200, 400, 404):
        raise ValueError("unknown_model_status must be 200, 400 or 404")
    if not 400 <= config.fail_first_status <= 599 or config.fail_first < 0:
        raise ValueError("fail_first must be >= 0 and fail_first_status a 4xx or 5xx status")
    models = config.known_models
    if models is not None and not all(isinstance(m, str) for m in models):
        raise ValueError("known_models must be a list of model names")
    for name in ("rate_limit_requests", "rate_limit_tokens"):
        value = getattr(config, name)
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1")
    if not config.rate_limit_window > 0:
        raise ValueError("rate_limit_window must be > 0")
    if not 1 <= config.embedding_dim <= config.max_dimensions:
        raise ValueError("embedding_dim must be between 1 and max_dimensions")


# -- the application -----------------------------------------------------------------

FAULT_KINDS = (
    "fail_first",
    "unknown_model",
    "hang",
    "drop",
    "quota_429",
    "fail_429",
    "fail_500",
    "malformed",
    "stream_truncate",
)
_RANDOM_FAULTS = ("hang", "drop", "quota_429", "fail_429", "fail_500", "malformed")
_RATE_FIELDS = ("rate_limit_requests", "rate_limit_tokens", "rate_limit_window")
_CLOSE_DELAY = 0.02
_SEND, _STREAM, _HANG, _DROP = range(4)
_SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"
_STATUS_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request (injected by the mock server).", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to sample from this model.", "invalid_request_error", None),
    404: ("The model does not exist.", "invalid_request_error", "model_not_found"),
    429: ("Rate limit reached for requests.", "requests", "rate_limit_exceeded"),
}
_QUOTA = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes."
)

Route = Callable[[Request, HttpConnection], "Coroutine[Any, Any, None] | None"]


class _Reply:
    """An answer decided for one API request, delivered now or after the latency."""

    __slots__ = (
        "action",
        "body",
        "completion",
        "content_type",
        "events",
        "headers",
        "prompt",
        "status",
    )

    def __init__(
        self,
        action: int,
        headers: list[Header],
        status: int = 200,
        body: bytes = b"",
        content_type: str = JSON,
        events: list[bytes] | None = None,
        tokens: tuple[int, int] = (0, 0),
    ) -> None:
        self.action = action
        self.headers = headers
        self.status = status
        self.body = body
        self.content_type = content_type
        self.events = events or []
        self.prompt, self.completion = tokens


class _Stats:
    """The counters served by ``GET /stats``."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.clear()

    def clear(self) -> None:
        self.requests = 0
        self.by_endpoint: dict[str, int] = {}
        self.by_status: dict[int, int] = {}
        self.faults = dict.fromkeys(FAULT_KINDS, 0)
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.rate_limited = 0
        self.max_in_flight = self.in_flight
        self.bodies: dict[int, int] = {}
        self.max_body_repeats = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_endpoint": dict(self.by_endpoint),
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "distinct_bodies": len(self.bodies),
            "max_body_repeats": self.max_body_repeats,
            "faults": dict(self.faults),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "rate_limited": self.rate_limited,
        }


class MockApp:
    """Routes requests, injects faults, keeps the stats; ``handle`` is the HTTP handler."""

    def __init__(self, config: MockServerConfig) -> None:
        self.config = config
        self.stats = _Stats()
        self._rng = random.Random(config.seed)
        self._limiter = self._new_limiter()
        self._faulty = any(getattr(config, name) for name in _RANDOM_FAULTS)
        self._ids = itertools.count(1)
        self._prefix = f"{random.getrandbits(32):08x}"
        self._routes: dict[str, dict[str, Route]] = {
            "/v1/chat/completions": {"POST": self._chat},
            "/v1/embeddings": {"POST": self._embeddings},
            "/v1/models": {"GET": self._models},
            "/stats": {"GET": self._get_stats},
            "/reset": {"POST": self._reset},
            "/config": {"GET": self._get_config, "POST": self._set_config},
            "/health": {"GET": self._health},
        }

    def _new_limiter(self) -> RateLimiter | None:
        cfg = self.config
        if cfg.rate_limit_requests is None and cfg.rate_limit_tokens is None:
            return None
        return RateLimiter(cfg.rate_limit_requests, cfg.rate_limit_tokens, cfg.rate_limit_window)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{self._prefix}{next(self._ids):06x}"

    # -- routing ---------------------------------------------------------------------

    def handle(self, request: Request, conn: HttpConnection) -> Coroutine[Any, Any, None] | None:
        """Answer one request (synchronously when possible)."""
        methods = self._routes.get(request.path)
        route = methods.get(request.method) if methods is not None else None
        if route is not None:
            return route(request, conn)
        counted = request.path.startswith("/v1/") or methods is None
        if counted:
            self._count(request.path)
        headers = [("x-request-id", self._new_id("req_"))]
        if methods is None:
            message = f"Invalid URL ({request.method} {request.path})"
            reply = self._error(404, message, "invalid_request_error", None, headers)
        else:
            headers.append(("allow", ", ".join(methods)))
            message = f"Method {request.method} not allowed on {request.path}"
            reply = self._error(405, message, "invalid_request_error", None, headers)
        conn.send(reply.status, reply.body, reply.content_type, reply.headers)
        if counted:
            self._sent(reply, conn)
        return None

    def _count(self, path: str) -> None:
        stats = self.stats
        stats.requests += 1
        stats.by_endpoint[path] = stats.by_endpoint.get(path, 0) + 1

    def _chat(self, request: Request, conn: HttpConnection) -> Coroutine[Any, Any, None] | None:
        return self._api(request, conn, read_chat)

    def _embeddings(
        self, request: Request, conn: HttpConnection
    ) -> Coroutine[Any, Any, None] | None:
        cfg = self.config

        def read(body: bytes) -> EmbeddingAnswer:
            return read_embeddings(body, cfg.embedding_dim, cfg.max_dimensions)

        return self._api(request, conn, read)

    # -- API requests ----------------------------------------------------------------

    def _api(
        self,
        request: Request,
        conn: HttpConnection,
        read: Callable[[bytes], ChatAnswer | EmbeddingAnswer],
    ) -> Coroutine[Any, Any, None] | None:
        stats = self.stats
        stats.requests += 1
        stats.by_endpoint[request.path] = stats.by_endpoint.get(request.path, 0) + 1
        reply = self._decide(request.body, read)
        cfg = self.config
        delay = cfg.latency
        if cfg.jitter:
            delay = max(0.0, delay + self._rng.uniform(-cfg.jitter, cfg.jitter))
        stats.in_flight += 1
        if stats.in_flight > stats.max_in_flight:
            stats.max_in_flight = stats.in_flight
        slow_stream = reply.action == _STREAM and cfg.stream_chunk_delay > 0
        if delay > 0 or reply.action == _HANG or slow_stream:
            return self._answer_later(reply, conn, delay)
        try:
            self._deliver(reply, conn)
        finally:
            stats.in_flight -= 1
        return None

    def _remember(self, body: bytes) -> int:
        stats = self.stats
        key = xxhash.xxh3_64_intdigest(body)
        repeats = stats.bodies.get(key, 0) + 1
        stats.bodies[key] = repeats
        if repeats > stats.max_body_repeats:
            stats.max_body_repeats = repeats
        return repeats

    def _decide(self, body: bytes, read: Callable[[bytes], ChatAnswer | EmbeddingAnswer]) -> _Reply:
        cfg = self.config
        limiter = self._limiter
        headers: list[Header] = [("x-request-id", self._new_id("req_"))]
        if self._remember(body) <= cfg.fail_first:
            self._limit_headers(headers)
            return self._injected(cfg.fail_first_status, headers, "fail_first")
        try:
            parsed = read(body)
        except InvalidRequest as exc:
            self._limit_headers(headers)
            return self._error(
                400, exc.message, "invalid_request_error", exc.code, headers, exc.param
            )
        if limiter is not None:
            wait, kind = limiter.acquire(parsed.cost)
            headers.extend(limiter.headers())
            if wait > 0:
                return self._limited(wait, kind, headers)
        known = cfg.known_models
        if known is not None and cfg.unknown_model_status != 200 and parsed.model not in known:
            self.stats.faults["unknown_model"] += 1
            message = f"The model `{parsed.model}` does not exist or you do not have access to it."
            status = cfg.unknown_model_status
            return self._error(
                status, message, "invalid_request_error", "model_not_found", headers, "model"
            )
        fault = self._draw_fault() if self._faulty else None
        if fault is None:
            return self._success(parsed, headers)
        self.stats.faults[fault] += 1
        if fault == "hang":
            return _Reply(_HANG, headers)
        if fault == "drop":
            return _Reply(_DROP, headers)
        if fault == "quota_429":
            return self._error(429, _QUOTA, "insufficient_quota", "insufficient_quota", headers)
        if fault == "fail_429":
            return self._injected(429, headers)
        if fault == "fail_500":
            return self._injected(500, headers)
        return self._success(parsed, headers, malformed=True)

    def _draw_fault(self) -> str | None:
        """One draw over the random faults; each fraction is an absolute share of requests."""
        draw = self._rng.random()
        for name in _RANDOM_FAULTS:
            share: float = getattr(self.config, name)
            if draw < share:
                return name
            draw -= share
        return None

    def _limit_headers(self, headers: list[Header]) -> None:
        if self._limiter is not None:
            headers.extend(self._limiter.headers())

    # -- replies ---------------------------------------------------------------------

    def _error(
        self,
        status: int,
        message: str,
        err_type: str,
        code: str | None,
        headers: list[Header],
        param: str | None = None,
    ) -> _Reply:
        cfg = self.config
        if cfg.should_retry is not None:
            headers.append(("x-should-retry", cfg.should_retry))
        body, content_type = error_body(cfg.error_style, message, err_type, code, param)
        return _Reply(_SEND, headers, status, body, content_type)

    def _injected(self, status: int, headers: list[Header], fault: str | None = None) -> _Reply:
        cfg = self.config
        if fault is not None:
            self.stats.faults[fault] += 1
        if status == 429:
            if cfg.retry_after is not None:
                headers.append(("retry-after", cfg.retry_after))
            if cfg.retry_after_ms is not None:
                headers.append(("retry-after-ms", cfg.retry_after_ms))
        default: tuple[str, str, str | None] = (_SERVER_ERROR, "server_error", "server_error")
        if status < 500:
            default = (HTTPStatus(status).phrase, "invalid_request_error", None)
        message, err_type, code = _STATUS_ERRORS.get(status, default)
        return self._error(status, message, err_type, code, headers)

    def _limited(self, wait: float, kind: str, headers: list[Header]) -> _Reply:
        self.stats.rate_limited += 1
        headers.append(("retry-after", str(max(1, math.ceil(wait)))))
        headers.append(("retry-after-ms", str(math.ceil(wait * 1000))))
        window = format_duration(self.config.rate_limit_window)
        message = (
            f"Rate limit reached for {kind} per {window} (mock server). "
            f"Please try again in {format_duration(wait)}."
        )
        return self._error(429, message, kind, "rate_limit_exceeded", headers)

    def _success(
        self, parsed: ChatAnswer | EmbeddingAnswer, headers: list[Header], malformed: bool = False
    ) -> _Reply:
        if isinstance(parsed, EmbeddingAnswer):
            body = embedding_body(parsed)
            if malformed:
                return _Reply(_SEND, headers, body=body[: len(body) // 2])
            return _Reply(_SEND, headers, body=body, tokens=(parsed.prompt_tokens, 0))
        completion_id = "chatcmpl-" + headers[0][1][4:]  # the request id's unique part
        created = int(time.time())
        tokens = (parsed.prompt_tokens, parsed.completion_tokens)
        if not parsed.stream:
            body = chat_body(parsed, completion_id, created)
            if malformed:
                return _Reply(_SEND, headers, body=body[: len(body) // 2])
            return _Reply(_SEND, headers, body=body, tokens=tokens)
        if malformed:
            body = chat_events(parsed, completion_id, created, False, False)[0]
            return _Reply(_STREAM, headers, content_type=SSE, events=[body[: len(body) // 2]])
        cfg = self.config
        truncate = bool(cfg.stream_truncate) and self._rng.random() < cfg.stream_truncate
        if truncate:
            self.stats.faults["stream_truncate"] += 1
            tokens = (0, 0)
        usage = parsed.include_usage and cfg.stream_usage
        events = chat_events(parsed, completion_id, created, usage, truncate)
        return _Reply(_STREAM, headers, content_type=SSE, events=events, tokens=tokens)

    # -- delivery --------------------------------------------------------------------

    def _deliver(self, reply: _Reply, conn: HttpConnection) -> None:
        if reply.action == _DROP:
            conn.drop()
            return
        if reply.action == _SEND:
            conn.send(reply.status, reply.body, reply.content_type, reply.headers)
        else:
            conn.start_stream(reply.status, reply.content_type, reply.headers)
            conn.write_chunks(reply.events)
            conn.end_stream()
        self._sent(reply, conn)

    def _sent(self, reply: _Reply, conn: HttpConnection) -> None:
        stats = self.stats
        stats.by_status[reply.status] = stats.by_status.get(reply.status, 0) + 1
        stats.prompt_tokens += reply.prompt
        stats.completion_tokens += reply.completion
        if self.config.close_after_response:
            conn.close_soon(_CLOSE_DELAY)

    async def _answer_later(self, reply: _Reply, conn: HttpConnection, delay: float) -> None:
        try:
            if delay > 0:
                await asyncio.sleep(delay)
            if reply.action == _HANG:
                await asyncio.get_running_loop().create_future()  # until the client leaves
            elif reply.action == _STREAM and self.config.stream_chunk_delay > 0:
                conn.start_stream(reply.status, reply.content_type, reply.headers)
                for index, event in enumerate(reply.events):
                    if index:
                        await asyncio.sleep(self.config.stream_chunk_delay)
                    conn.write_chunks((event,))
                conn.end_stream()
                self._sent(reply, conn)
            else:
                self._deliver(reply, conn)
        finally:
            self.stats.in_flight -= 1

    # -- control endpoints -----------------------------------------------------------

    def _json(self, conn: HttpConnection, value: Any, status: int = 200) -> None:
        headers = [("x-request-id", self._new_id("req_"))]
        conn.send(status, orjson.dumps(value), JSON, headers)

    def _models(self, request: Request, conn: HttpConnection) -> None:
        self._count(request.path)
        names = self.config.known_models or ["mock-model"]
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "fastllm"} for n in names]
        reply = _Reply(_SEND, [("x-request-id", self._new_id("req_"))])
        reply.body = orjson.dumps({"object": "list", "data": data})
        self._deliver(reply, conn)

    def _get_stats(self, request: Request, conn: HttpConnection) -> None:
        self._json(conn, self.stats.snapshot())

    def _reset(self, request: Request, conn: HttpConnection) -> None:
        self.reset()
        self._json(conn, {"ok": True})

    def _health(self, request: Request, conn: HttpConnection) -> None:
        self._json(conn, {"status": "ok"})

    def _get_config(self, request: Request, conn: HttpConnection) -> None:
        self._json(conn, asdict(self.config))

    def _set_config(self, request: Request, conn: HttpConnection) -> None:
        try:
            self.reconfigure(parse_object(request.body))
        except (InvalidRequest, TypeError, ValueError) as exc:
            body, content_type = error_body("openai", str(exc), "invalid_request_error", None)
            conn.send(400, body, content_type, [("x-request-id", self._new_id("req_"))])
            return
        self._json(conn, asdict(self.config))

    def reset(self) -> None:
        """Zero the stats, rate-limit state, fail_first memory; reseed the RNG."""
        self.stats.clear()
        self._rng = random.Random(self.config.seed)
        self._limiter = self._new_limiter()

    def reconfigure(self, changes: dict[str, Any]) -> None:
        """Apply config changes (ValueError for unknown fields or bad values)."""
        unknown = sorted(set(changes) - {f.name for f in fields(MockServerConfig)})
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(unknown)}")
        old, self.config = self.config, replace(self.config, **changes)
        if old.seed != self.config.seed:
            self._rng = random.Random(self.config.seed)
        if any(getattr(old, name) != getattr(self.config, name) for name in _RATE_FIELDS):
            self._limiter = self._new_limiter()
        self._faulty = any(getattr(self.config, name) for name in _RANDOM_FAULTS)


# -- running -------------------------------------------------------------------------


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


# -- command line --------------------------------------------------------------------


def _optional(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        return None if text.lower() in ("", "none") else convert(text)

    return parse


def _models(text: str) -> list[str] | None:
    if text.lower() in ("", "none"):
        return None
    return [name.strip() for name in text.split(",") if name.strip()]


_CLI_TYPES: dict[str, Callable[[str], Any]] = {
    "float": float,
    "int": int,
    "int | None": _optional(int),
    "str | None": _optional(str),
    "list[str] | None": _models,
}


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``python -m fastllm.testing.mock_server`` (one flag per field)."""
    parser = argparse.ArgumentParser(
        prog="python -m fastllm.testing.mock_server",
        description="Run the FastLLM mock OpenAI-compatible server.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port (0: pick a free one)")
    parser.add_argument("--cpu", type=int, default=None, help="pin the server to this CPU")
    for item in fields(MockServerConfig):
        flag = "--" + item.name.replace("_", "-")
        default = None if item.default is MISSING else item.default
        help_text = f"{_HELP[item.name]} (default: {default})"
        if item.type == "bool":
            action = argparse.BooleanOptionalAction
            parser.add_argument(flag, action=action, default=default, help=help_text)
        elif item.name == "error_style":
            choices = ["openai", "detail", "text"]
            parser.add_argument(flag, choices=choices, default=default, help=help_text)
        else:
            kind = _CLI_TYPES[str(item.type)]
            parser.add_argument(flag, type=kind, default=default, help=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m fastllm.testing.mock_server``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = MockServerConfig(
            **{f.name: getattr(args, f.name) for f in fields(MockServerConfig)}
        )
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    if args.cpu is not None:
        _pin(args.cpu)

    def ready(port: int) -> None:
        print(f"fastllm mock server listening on http://{args.host}:{port}/v1", flush=True)

    serve(config, args.host, args.port, ready)


if __name__ == "__main__":
    main()
