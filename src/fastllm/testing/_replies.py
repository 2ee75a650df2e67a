"""The replies of :class:`~fastllm.testing._app.MockApp`: errors, injected faults, 429s, answers."""

from __future__ import annotations

import math
import random
import time
from http import HTTPStatus

from fastllm.testing._http_heads import Header
from fastllm.testing._rate_limit import format_duration
from fastllm.testing._records import _SEND, _STREAM, _Reply, _Stats
from fastllm.testing._requests import ChatAnswer, EmbeddingAnswer
from fastllm.testing._responses import SSE, chat_body, chat_events, embedding_body, error_body
from fastllm.testing.config import MockServerConfig

__all__ = ["ReplyBuilders"]

_SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"
_STATUS_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request (injected by the mock server).", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to sample from this model.", "invalid_request_error", None),
    404: ("The model does not exist.", "invalid_request_error", "model_not_found"),
    429: ("Rate limit reached for requests.", "requests", "rate_limit_exceeded"),
}


class ReplyBuilders:
    """The reply builders, a base class of ``MockApp`` (they use its config, stats and RNG)."""

    config: MockServerConfig
    stats: _Stats
    _rng: random.Random

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
