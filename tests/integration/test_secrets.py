"""The API key never shows: not in logs, reprs, errors, their causes, the cache or output.

Failing runs are the dangerous ones: servers and proxies echo the key back in
error bodies and headers, and exceptions carry what they were given. These tests
run such batches at DEBUG level with the progress display on, and look for the
key everywhere a user could see it.
"""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from batches import chat_batch
from rich.console import Console

from fastllm import (
    BatchError,
    DiskCache,
    OpenAIProvider,
    RequestBatch,
    RequestManager,
    ResponseWrapper,
)
from fastllm.cli.output import LineFormatter
from fastllm.engine import manager as manager_module
from fastllm.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    FastLLMError,
    InternalServerError,
    RateLimitError,
    ResponseDecodingError,
)
from fastllm.observe import ProgressTracker
from fastllm.testing import MockServer

# -- an API that echoes the key it is given ---------------------------------------------------


@dataclass
class EchoServer:
    """A local API whose errors quote the caller's Authorization header back."""

    base_url: str = ""
    authorizations: list[str] = field(default_factory=list)
    bodies_sent: list[bytes] = field(default_factory=list)


def _last_user_text(payload: dict[str, Any]) -> str:
    return str(payload["messages"][-1]["content"])


async def _chat(state: EchoServer, request: web.Request) -> web.StreamResponse:
    authorization = request.headers.get("Authorization", "")
    state.authorizations.append(authorization)
    key = authorization.removeprefix("Bearer ")
    payload = await request.json()
    mode = _last_user_text(payload)

    def reply(status: int, body: bytes, content_type: str = "application/json") -> web.Response:
        state.bodies_sent.append(body)
        return web.Response(
            status=status,
            body=body,
            content_type=content_type,
            headers={"WWW-Authenticate": f'Bearer realm="api", key="{key}"', "Retry-After": "0"},
        )

    openai_error = {"message": f"Incorrect API key provided: {key}.", "code": "invalid_api_key"}
    if mode == "echo-401":
        return reply(401, orjson.dumps({"error": openai_error}))
    if mode == "echo-401-detail":
        return reply(401, orjson.dumps({"detail": f"bad credentials {authorization}"}))
    if mode == "echo-401-text":
        return reply(401, f"Unauthorized: {authorization}".encode(), "text/plain")
    if mode == "echo-403-nested":
        nested = {"error": {"message": "denied", "metadata": {"raw": {"auth": authorization}}}}
        return reply(403, orjson.dumps(nested))
    if mode == "echo-429":
        return reply(429, orjson.dumps({"error": {"message": f"slow down {key}"}}))
    if mode == "echo-500-text":
        return reply(
            500, f"upstream failed for Authorization: {authorization}".encode(), "text/plain"
        )
    if mode == "echo-200-not-json":
        return reply(200, f"<html>proxy error for {key}</html>".encode(), "text/html")
    if mode == "echo-200-error":
        return reply(200, orjson.dumps({"error": {"message": f"quota for {key} exhausted"}}))
    if mode == "echo-stream-error":
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: " + orjson.dumps({"error": openai_error}) + b"\n\n")
        await response.write_eof()
        return response
    answer = {
        "id": "chatcmpl-echo",
        "object": "chat.completion",
        "created": 0,
        "model": payload["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": mode},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    return reply(200, orjson.dumps(answer))


async def _redirect_loop(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(request.path)


@pytest.fixture
async def echo_server() -> AsyncIterator[EchoServer]:
    state = EchoServer()
    app = web.Application()
    app.router.add_route("*", "/v1/chat/completions", partial(_chat, state))
    app.router.add_route("*", "/loop/v1/chat/completions", _redirect_loop)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.base_url = f"http://127.0.0.1:{port}/v1"
    yield state
    await runner.cleanup()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def recorded_console(monkeypatch: pytest.MonkeyPatch) -> Console:
    """The progress display of every run goes to this terminal-like recording console."""
    console = Console(record=True, width=200, force_terminal=True)
    monkeypatch.setattr(
        manager_module, "ProgressTracker", partial(ProgressTracker, console=console)
    )
    return console


# -- where to look ----------------------------------------------------------------------------


def exception_texts(error: BaseException, *, foreign_attributes: bool = False) -> Iterator[str]:
    """The traceback as printed; str, repr and args of ``error`` and of every cause and
    context; the attributes of FastLLM's own exceptions (of all with ``foreign_attributes``)."""
    yield "".join(traceback.format_exception(type(error), error, error.__traceback__))
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        yield repr(current.args)
        if foreign_attributes or isinstance(current, FastLLMError):
            yield repr(getattr(current, "__dict__", {}))
        pending += [current.__cause__, current.__context__]


def result_texts(
    results: list[ResponseWrapper], *, foreign_attributes: bool = False
) -> Iterator[str]:
    formatter = LineFormatter(0)  # no secret given: the lines must be clean by themselves
    for result in results:
        yield repr(result)
        yield formatter.format(result).decode()
        if result.body is not None:
            yield orjson.dumps(result.body).decode()
        if result.error is not None:
            yield from exception_texts(result.error, foreign_attributes=foreign_attributes)


def log_texts(caplog: pytest.LogCaptureFixture) -> Iterator[str]:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    yield caplog.text
    for record in caplog.records:
        yield formatter.format(record)  # the message, and any traceback
        yield repr(record.args)


def directory_bytes(path: Path) -> Iterator[bytes]:
    for file in sorted(path.rglob("*")):
        if file.is_file():
            yield file.read_bytes()


class Witness:
    """Collects every place searched, then says where the key was found."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.places: dict[str, int] = {}
        self.leaks: list[str] = []

    def check(self, where: str, texts: Any) -> None:
        for text in texts:
            self.places[where] = self.places.get(where, 0) + 1
            haystack = text if isinstance(text, bytes) else str(text).encode()
            if self.key.encode() in haystack:
                self.leaks.append(f"{where}: ...{_around(haystack, self.key.encode())}...")

    def assert_clean(self) -> None:
        assert not self.leaks, "the API key leaked:\n" + "\n".join(self.leaks)


def _around(haystack: bytes, needle: bytes) -> str:
    at = haystack.index(needle)
    return haystack[max(0, at - 80) : at + len(needle) + 20].decode("utf-8", "replace")


async def run_and_collect(
    manager: RequestManager, batch: RequestBatch, witness: Witness
) -> list[ResponseWrapper]:
    """Run with raise_on_error=True; check the BatchError; return its results."""
    with pytest.raises(BatchError) as caught:
        await manager.aprocess_batch(batch, raise_on_error=True)
    witness.check("BatchError", exception_texts(caught.value))
    results = caught.value.results
    witness.check("results", result_texts(results))
    witness.check("manager", [repr(manager), repr(manager.provider), manager.stats().summary()])
    witness.check("stats", [repr(manager.stats())])
    return results


ECHOES = [
    "ok",
    "echo-401",
    "echo-401-detail",
    "echo-401-text",
    "echo-403-nested",
    "echo-429",
    "echo-500-text",
    "echo-200-not-json",
    "echo-200-error",
    "another ok",
]


# -- the tests --------------------------------------------------------------------------------


async def test_the_key_appears_nowhere_after_failing_runs(
    api_key: str,
    server: MockServer,
    echo_server: EchoServer,
    closed_port: int,
    recorded_console: Console,
    make_manager: Callable[..., RequestManager],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="fastllm")
    witness = Witness(api_key)
    cache = DiskCache(tmp_path / "cache")
    options: dict[str, Any] = {
        "show_progress": True,
        "caching_provider": cache,
        "retry_attempts": 2,
        "timeout": 0.5,
    }

    # 1. a server echoing the key in 401/403/429/500 bodies and headers, and in 200s
    echoing = OpenAIProvider(api_key=api_key, api_base=echo_server.base_url)
    results = await run_and_collect(make_manager(echoing, **options), chat_batch(ECHOES), witness)
    errors = {type(r.error) for r in results if r.error is not None}
    assert {
        AuthenticationError,
        RateLimitError,
        InternalServerError,
        ResponseDecodingError,
    } <= errors
    assert [r.ok for r in results].count(True) == 2
    # the key really went out and really came back: redaction is what kept it hidden
    assert f"Bearer {api_key}" in echo_server.authorizations
    assert any(api_key.encode() in body for body in echo_server.bodies_sent)
    auth = next(r.error for r in results if isinstance(r.error, AuthenticationError))
    assert "[secure]" in str(auth)

    # 2. the mock server: injected 500s and hangs (timeouts)
    server.configure(fail_500=0.3, hang=0.2, seed=11)
    mock = OpenAIProvider(api_key=api_key, api_base=server.base_url)
    results = await run_and_collect(
        make_manager(mock, concurrency=20, **options),
        chat_batch([f"mock {i}" for i in range(40)]),
        witness,
    )
    errors = {type(r.error) for r in results if r.error is not None}
    assert APITimeoutError in errors

    # 3. nobody listening: connection refused
    refused = OpenAIProvider(api_key=api_key, api_base=f"http://127.0.0.1:{closed_port}/v1")
    results = await run_and_collect(
        make_manager(refused, **options), chat_batch(["nobody home"]), witness
    )
    assert isinstance(results[0].error, APIConnectionError)

    await cache.close()
    witness.check("cache directory", directory_bytes(tmp_path / "cache"))
    witness.check("logs", log_texts(caplog))
    display = recorded_console.export_text(styles=True)
    witness.check("progress display", [display])
    out, err = capsys.readouterr()
    witness.check("stdout/stderr", [out, err])
    # the search was not empty
    assert any(r.levelno == logging.DEBUG for r in caplog.records)
    assert display.count("done in") == 3  # one summary per run
    assert list(directory_bytes(tmp_path / "cache"))
    witness.assert_clean()


def test_reprs_of_the_configured_objects(api_key: str, server: MockServer) -> None:
    provider = OpenAIProvider(api_key=api_key, api_base=server.base_url, organization="org-1")
    manager = RequestManager(provider, show_progress=False)
    for text in (repr(provider), str(provider), repr(manager), str(manager)):
        assert api_key not in text
    assert "[secure]" in repr(provider)


async def test_plain_progress_lines_are_clean(
    api_key: str,
    echo_server: EchoServer,
    make_manager: Callable[..., RequestManager],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)
    echoing = OpenAIProvider(api_key=api_key, api_base=echo_server.base_url)
    manager = make_manager(echoing, show_progress=True, retry_attempts=1)
    results = await manager.aprocess_batch(chat_batch(ECHOES))
    assert not all(r.ok for r in results)
    out, err = capsys.readouterr()
    assert "done in" in err
    assert api_key not in out + err


# -- leaks found in the provider (see the report: each has a one-place fix) -----------------


async def test_a_streamed_error_event_echoing_the_key(
    api_key: str, echo_server: EchoServer, make_manager: Callable[..., RequestManager]
) -> None:
    echoing = OpenAIProvider(api_key=api_key, api_base=echo_server.base_url)
    manager = make_manager(echoing, retry_attempts=1)
    (result,) = await manager.aprocess_batch(chat_batch(["echo-stream-error"], stream=True))
    assert isinstance(result.error, ResponseDecodingError)
    witness = Witness(api_key)
    witness.check("result", result_texts([result]))
    witness.assert_clean()


async def test_a_redirect_loop_error_does_not_carry_the_request_headers(
    api_key: str, echo_server: EchoServer, make_manager: Callable[..., RequestManager]
) -> None:
    looping = OpenAIProvider(api_key=api_key, api_base=echo_server.base_url[:-3] + "/loop/v1")
    manager = make_manager(looping, retry_attempts=1)
    (result,) = await manager.aprocess_batch(chat_batch(["redirected"]))
    assert isinstance(result.error, APIStatusError)
    assert "redirected" in str(result.error)
    witness = Witness(api_key)
    witness.check("result", result_texts([result]))
    witness.assert_clean()


async def test_a_non_json_answer_echoing_the_key_is_not_kept_in_the_cause(
    api_key: str, echo_server: EchoServer, make_manager: Callable[..., RequestManager]
) -> None:
    echoing = OpenAIProvider(api_key=api_key, api_base=echo_server.base_url)
    manager = make_manager(echoing, retry_attempts=1)
    (result,) = await manager.aprocess_batch(chat_batch(["echo-200-not-json"]))
    assert isinstance(result.error, ResponseDecodingError)
    witness = Witness(api_key)
    witness.check("result", result_texts([result], foreign_attributes=True))
    witness.assert_clean()
