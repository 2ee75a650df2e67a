"""The mock's non-OpenAI routes: Anthropic's ``/v1/messages`` and Azure OpenAI's deployment URLs.

A base class of :class:`~fastllm.testing._app.MockApp`, using its config, stats,
RNG, server-side limiter and delivery. Anthropic requests get the same faults as
OpenAI ones (same config fields, one RNG), in Anthropic's shapes: errors as
``{"type": "error", "error": {"type", "message"}}`` (``fail_500`` is a 500
``api_error``; ``fail_first_status=529`` gives ``overloaded_error``; ``quota_429`` is
Anthropic's 400 "credit balance is too low"), limits as ``anthropic-ratelimit-*``.
Azure requests (``/openai/deployments/{deployment}/chat/completions|embeddings?
api-version=...``) are answered as OpenAI ones once the URL and key are checked; a
body without ``model`` gets the deployment's name.

With ``api_key`` set in the config, requests must carry it: ``x-api-key`` for
Anthropic, ``api-key`` (or ``Authorization: Bearer``) for Azure, else 401.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Coroutine
from typing import Any

import orjson

from fastllm.testing._anthropic import (
    anthropic_error,
    anthropic_limit_headers,
    message_body,
    message_events,
    read_messages,
)
from fastllm.testing._http_connection import HttpConnection
from fastllm.testing._http_heads import Header, Request
from fastllm.testing._rate_limit import RateLimiter
from fastllm.testing._records import _DROP, _HANG, _SEND, _STREAM, _Reply, _Stats
from fastllm.testing._requests import ChatAnswer, EmbeddingAnswer, InvalidRequest, parse_object
from fastllm.testing._responses import JSON, SSE, error_body
from fastllm.testing.config import MockServerConfig

__all__ = ["ApiRoutes"]

_AZURE_PREFIX = "/openai/deployments/"
_AZURE_OPERATIONS = ("chat/completions", "embeddings")
_CREDIT = "Your credit balance is too low to access the Anthropic API."
_Answer = Coroutine[Any, Any, None] | None
_Read = Callable[[bytes], ChatAnswer | EmbeddingAnswer]


class ApiRoutes:
    """The Anthropic and Azure handlers, a base class of ``MockApp``."""

    config: MockServerConfig
    stats: _Stats
    _rng: random.Random
    _limiter: RateLimiter | None
    _faulty: bool
    _new_id: Callable[[str], str]
    _remember: Callable[[bytes], int]
    _draw_fault: Callable[[], str | None]
    _count: Callable[[str], None]
    _sent: Callable[[_Reply, HttpConnection], None]
    _chat: Callable[[Request, HttpConnection], _Answer]
    _embeddings: Callable[[Request, HttpConnection], _Answer]
    _api: Callable[..., _Answer]

    # -- Anthropic ---------------------------------------------------------------------

    def _messages(self, request: Request, conn: HttpConnection) -> _Answer:
        headers = request.headers
        key = self.config.api_key
        if key is not None and headers.get("x-api-key") != key:
            self._refuse(request, conn, anthropic_error(401, "invalid x-api-key"))
            return None
        if not headers.get("anthropic-version"):
            message = "anthropic-version: header is required"
            self._refuse(request, conn, anthropic_error(400, message), 400)
            return None
        return self._api(request, conn, read_messages, self._decide_anthropic)

    def _refuse(
        self, request: Request, conn: HttpConnection, body: bytes, status: int = 401
    ) -> None:
        self._count(request.path)
        reply = _Reply(_SEND, [("request-id", self._new_id("req_"))], status, body)
        conn.send(reply.status, reply.body, reply.content_type, reply.headers)
        self._sent(reply, conn)

    def _decide_anthropic(self, body: bytes, read: _Read) -> _Reply:
        cfg = self.config
        headers: list[Header] = [("request-id", self._new_id("req_"))]
        if self._remember(body) <= cfg.fail_first:
            self.stats.faults["fail_first"] += 1
            return self._anthropic_fault(cfg.fail_first_status, headers)
        try:
            parsed = read(body)
        except InvalidRequest as exc:
            return _Reply(_SEND, headers, 400, anthropic_error(400, exc.message))
        assert isinstance(parsed, ChatAnswer)
        limiter = self._limiter
        if limiter is not None:
            wait, kind = limiter.acquire(parsed.cost)
            headers.extend(anthropic_limit_headers(limiter.headers()))
            if wait > 0:
                self.stats.rate_limited += 1
                headers.append(("retry-after", str(max(1, round(wait + 0.5)))))
                message = f"Number of {kind} has exceeded your rate limit (mock server)."
                return _Reply(_SEND, headers, 429, anthropic_error(429, message))
        known = cfg.known_models
        if known is not None and cfg.unknown_model_status != 200 and parsed.model not in known:
            self.stats.faults["unknown_model"] += 1
            return _Reply(_SEND, headers, 404, anthropic_error(404, f"model: {parsed.model}"))
        fault = self._draw_fault() if self._faulty else None
        if fault is not None:
            self.stats.faults[fault] += 1
            if fault == "hang":
                return _Reply(_HANG, headers)
            if fault == "drop":
                return _Reply(_DROP, headers)
            if fault == "quota_429":
                return _Reply(_SEND, headers, 400, anthropic_error(400, _CREDIT))
            if fault in ("fail_429", "fail_500"):
                return self._anthropic_fault(429 if fault == "fail_429" else 500, headers)
        return self._anthropic_answer(parsed, headers, malformed=fault == "malformed")

    def _anthropic_fault(self, status: int, headers: list[Header]) -> _Reply:
        if status == 429 and self.config.retry_after is not None:
            headers.append(("retry-after", self.config.retry_after))
        messages = {429: "Rate limited (injected).", 529: "Overloaded", 401: "invalid x-api-key"}
        message = messages.get(status, f"Injected error {status}.")
        if self.config.should_retry is not None:
            headers.append(("x-should-retry", self.config.should_retry))
        return _Reply(_SEND, headers, status, anthropic_error(status, message))

    def _anthropic_answer(
        self, parsed: ChatAnswer, headers: list[Header], malformed: bool
    ) -> _Reply:
        message_id = self._new_id("msg_")
        tokens = (parsed.prompt_tokens, parsed.completion_tokens)
        if not parsed.stream:
            body = message_body(parsed, message_id)
            if malformed:
                return _Reply(_SEND, headers, body=body[: len(body) // 2])
            return _Reply(_SEND, headers, body=body, tokens=tokens)
        cfg = self.config
        truncate = malformed or (
            bool(cfg.stream_truncate) and self._rng.random() < cfg.stream_truncate
        )
        if truncate and not malformed:
            self.stats.faults["stream_truncate"] += 1
        events = message_events(parsed, message_id, truncate)
        return _Reply(
            _STREAM, headers, content_type=SSE, events=events, tokens=(0, 0) if truncate else tokens
        )

    # -- Azure OpenAI ------------------------------------------------------------------

    def _azure(self, request: Request, conn: HttpConnection) -> _Answer:
        """An Azure deployment URL: check it, then answer as the OpenAI route would."""
        deployment, _, operation = request.path[len(_AZURE_PREFIX) :].partition("/")
        if request.method != "POST" or not deployment or operation not in _AZURE_OPERATIONS:
            self._azure_error(request, conn, 404, "Resource not found")
            return None
        if "api-version=" not in request.query:
            self._azure_error(request, conn, 404, "Resource not found")
            return None
        key = self.config.api_key
        headers = request.headers
        sent_key = headers.get("api-key") or headers.get("authorization", "")[len("Bearer ") :]
        if key is not None and sent_key != key:
            message = (
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure "
                "to provide a valid key for an active subscription and use a correct regional "
                "API endpoint for your resource."
            )
            self._azure_error(request, conn, 401, message)
            return None
        try:
            payload = parse_object(request.body)
        except InvalidRequest:
            payload = None
        if payload is not None and "model" not in payload:
            request.body = orjson.dumps({**payload, "model": deployment})
        if operation == "embeddings":
            return self._embeddings(request, conn)
        return self._chat(request, conn)

    def _azure_error(self, request: Request, conn: HttpConnection, status: int, text: str) -> None:
        self._count(request.path)
        body, _ = error_body("openai", text, "invalid_request_error", str(status))
        reply = _Reply(_SEND, [("apim-request-id", self._new_id("req_"))], status, body, JSON)
        conn.send(reply.status, reply.body, reply.content_type, reply.headers)
        self._sent(reply, conn)
