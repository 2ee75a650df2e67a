"""The mock OpenAI application (:class:`MockApp`): routing, fault injection, delivery, stats.

The replies themselves are built by its base class, ``_replies.ReplyBuilders``.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable, Coroutine
from dataclasses import asdict, fields, replace
from functools import partial
from typing import Any

import orjson
import xxhash

from fastllm.testing._api_routes import ApiRoutes
from fastllm.testing._http_connection import HttpConnection
from fastllm.testing._http_heads import Header, Request
from fastllm.testing._rate_limit import RateLimiter
from fastllm.testing._records import _DROP, _HANG, _SEND, _STREAM, _Reply, _Stats
from fastllm.testing._replies import ReplyBuilders
from fastllm.testing._requests import (
    ChatAnswer,
    EmbeddingAnswer,
    InvalidRequest,
    parse_object,
    read_chat,
    read_embeddings,
)
from fastllm.testing._responses import JSON, error_body
from fastllm.testing.config import MockServerConfig

__all__ = ["MockApp", "Route"]

_RANDOM_FAULTS = ("hang", "drop", "quota_429", "fail_429", "fail_500", "malformed")
_RATE_FIELDS = ("rate_limit_requests", "rate_limit_tokens", "rate_limit_window")
_CLOSE_DELAY = 0.02
_QUOTA = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes."
)

Route = Callable[[Request, HttpConnection], "Coroutine[Any, Any, None] | None"]


class MockApp(ReplyBuilders, ApiRoutes):
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
            "/v1/messages": {"POST": self._messages},
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
        if methods is None and request.path.startswith("/openai/deployments/"):
            return self._azure(request, conn)
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
        decide: Callable[..., _Reply] | None = None,
    ) -> Coroutine[Any, Any, None] | None:
        stats = self.stats
        stats.requests += 1
        stats.by_endpoint[request.path] = stats.by_endpoint.get(request.path, 0) + 1
        reply = (decide or self._decide)(request.body, read)
        cfg = self.config
        delay = cfg.latency
        if cfg.jitter:
            delay = max(0.0, delay + self._rng.uniform(-cfg.jitter, cfg.jitter))
        stats.in_flight += 1
        if stats.in_flight > stats.max_in_flight:
            stats.max_in_flight = stats.in_flight
        slow_stream = reply.action == _STREAM and cfg.stream_chunk_delay > 0
        if reply.action == _HANG or slow_stream:
            return self._answer_later(reply, conn, delay)
        if delay > 0:  # a timer, not a task: the mock must not add its own latency
            conn.answer_later(delay, partial(self._deliver_due, reply, conn), self._abandoned)
            return None
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

    def _deliver_due(self, reply: _Reply, conn: HttpConnection) -> None:
        try:
            self._deliver(reply, conn)
        finally:
            self.stats.in_flight -= 1

    def _abandoned(self) -> None:
        self.stats.in_flight -= 1

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
