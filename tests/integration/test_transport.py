"""The fast HTTP transport, end to end, against real servers on 127.0.0.1.

Two halves: ``RequestManager`` + ``OpenAIProvider`` against the bundled mock server
with both transports (``"fast"`` and ``"aiohttp"``); and ``HttpSession`` (alone,
through the provider, or through a whole run) against small scripted servers that
misbehave the ways real servers, load balancers and proxies do. Every scripted test
runs on the default asyncio loop and on uvloop, each bounded by a few seconds.
"""

from __future__ import annotations

import asyncio
import gzip
import re
import shutil
import ssl
import subprocess
import time
import traceback
import zlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from fastllm import (
    APIConnectionError,
    APITimeoutError,
    ConfigurationError,
    OpenAIProvider,
    RequestBatch,
    RequestManager,
)
from fastllm.limits import parse_ratelimit_headers
from fastllm.requests.normalize import request_from_item
from fastllm.testing import MockServer
from fastllm.transport import (
    ConnectError,
    ConnectionLost,
    HttpSession,
    ProtocolError,
    StaleConnection,
    TransportTimeout,
)

KEY = "sk-test-transport-NEVER-LEAK"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


# -- scripted servers --------------------------------------------------------------------------


@dataclass
class Exchange:
    """One request a scripted server received, and the means to answer it."""

    number: int  # 1-based, over the server's life
    on_connection: int  # 1-based, on its connection
    head: bytes
    body: bytes
    writer: asyncio.StreamWriter

    @property
    def prompt(self) -> str:
        return str(orjson.loads(self.body)["messages"][-1]["content"])

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()


# A reply writes whatever it wants; returning False closes the connection afterwards.
Reply = Callable[[Exchange], Awaitable[bool | None]]


@dataclass
class Scripted:
    """An HTTP/1.1 server on 127.0.0.1 answering every request with ``reply``."""

    reply: Reply
    ssl_context: ssl.SSLContext | None = None
    exchanges: list[Exchange] = field(default_factory=list)
    connections: int = 0  # accepted so far
    open: int = 0
    max_open: int = 0
    port: int = 0
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def url(self, path: str = "/v1/chat/completions", host: str = "127.0.0.1") -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    async def __aenter__(self) -> Scripted:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        on_connection = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                match = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                body = await reader.readexactly(int(match.group(1)) if match else 0)
                on_connection += 1
                exchange = Exchange(len(self.exchanges) + 1, on_connection, head, body, writer)
                self.exchanges.append(exchange)
                if await self.reply(exchange) is False:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:  # the test is over: end quietly (streams log a cancel)
            pass
        finally:
            self.open -= 1
            writer.close()
            self._tasks.discard(task)


def answer(body: bytes = b'{"ok":true}', *headers: str, status: str = "200 OK") -> bytes:
    """A response with a Content-Length (unless a header says otherwise) and ``headers``."""
    lines = [f"HTTP/1.1 {status}", *headers]
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chat_json(text: str) -> bytes:
    """An OpenAI chat completion whose answer is ``text``."""
    return orjson.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    )


async def echo(exchange: Exchange) -> None:
    """The well-behaved server: a chat answer echoing the prompt, kept alive."""
    await exchange.send(answer(chat_json(exchange.prompt), "Content-Type: application/json"))


def chunked(body: bytes, size: int) -> bytes:
    """``body`` in chunks of ``size`` bytes (with a chunk extension), then a trailer."""
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    out = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in pieces)
    return out + b"0\r\nX-Trailer: done\r\n\r\n"


def chat_batch(n: int) -> RequestBatch:
    batch = RequestBatch()
    for i in range(n):
        batch.chat.completions.create(model="m", messages=[{"role": "user", "content": f"p{i}"}])
    return batch


def contents(results: list[Any]) -> list[str]:
    return [r.response.choices[0].message.content for r in results]


def manager_for(url: str, **options: Any) -> RequestManager:
    settings: dict[str, Any] = {
        "concurrency": 4,
        "timeout": 2.0,
        "retry_attempts": 2,
        "retry_delay": 0.01,
        "show_progress": False,
        "rate_limits": "off",
    }
    settings.update(options)
    return RequestManager(OpenAIProvider(api_key=KEY, api_base=url), **settings)


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Runs a coroutine to completion on a fresh loop of the parametrized kind, within 5 s."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop

    def runner(coro: Coroutine[Any, Any, Any]) -> Any:
        loop = factory()
        try:
            return loop.run_until_complete(asyncio.wait_for(coro, 5.0))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    return runner


@pytest.fixture(autouse=True)
def _no_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, made with the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key


# -- the bundled mock server, both transports ------------------------------------------------


@pytest.mark.parametrize("transport", ["fast", "aiohttp"])
def test_both_transports_run_a_batch_through_faults(
    server: MockServer, make_manager: Callable[..., RequestManager], transport: str
) -> None:
    server.configure(fail_500=0.05, fail_429=0.05, retry_after="0", drop=0.05, seed=7)
    provider = OpenAIProvider(api_key=KEY, api_base=server.base_url, transport=transport)
    manager = make_manager(provider, concurrency=50, retry_attempts=8)
    results = manager.process_batch(chat_batch(400))
    assert contents(results) == [f"p{i}" for i in range(400)]
    # a drop on a reused connection is re-sent at once, inside one attempt
    assert manager.stats().sent <= server.stats()["requests"]


@pytest.mark.parametrize("transport", ["fast", "aiohttp"])
def test_provider_response_contract_is_the_same_on_both_transports(
    server: MockServer, run: Callable[..., Any], transport: str
) -> None:
    server.configure(rate_limit_requests=1000)
    provider = OpenAIProvider(api_key=KEY, api_base=server.base_url, transport=transport)

    async def scenario() -> None:
        async with HttpSession(limit=2) as session:
            plain = await provider.make_request(session, request_from_item(CHAT, 0), 5.0)
            streamed = await provider.make_request(
                session, request_from_item({**CHAT, "stream": True}, 1), 5.0
            )
        assert plain.raw is not None
        assert orjson.loads(plain.raw) == plain.body
        assert plain.body["choices"][0]["message"]["content"] == "hello"
        assert plain.headers.get("X-Request-Id") == plain.headers["x-request-id"]
        assert "Content-Type" in plain.headers
        limits = parse_ratelimit_headers(plain.headers)
        assert limits is not None
        assert limits.limit_requests == 1000
        assert streamed.raw is None  # streams go through aiohttp
        assert streamed.ttft is not None
        assert streamed.body["choices"][0]["message"]["content"] == "hello"

    run(scenario())


def test_transport_option_is_validated() -> None:
    with pytest.raises(ConfigurationError, match=r"transport.*'httpx'"):
        OpenAIProvider(api_key=KEY, transport="httpx")  # type: ignore[arg-type]


def test_transport_choice_decides_the_client(run: Callable[..., Any]) -> None:
    async def scenario() -> dict[str, str]:
        agents: dict[str, str] = {}
        async with Scripted(echo) as srv:
            for transport in ("fast", "aiohttp"):
                provider = OpenAIProvider(api_key=KEY, api_base=srv.url("/v1"), transport=transport)
                manager = RequestManager(provider, show_progress=False, rate_limits="off")
                results = await manager.aprocess_batch(chat_batch(2))
                assert contents(results) == ["p0", "p1"]
                head = srv.exchanges[-1].head.decode().lower()
                agent = re.search(r"\r\nuser-agent: ([^\r]+)", head)
                assert agent is not None
                agents[transport] = agent.group(1)
                assert f"authorization: bearer {KEY.lower()}" in head
        return agents

    agents = run(scenario())
    assert agents["fast"].startswith("fastllm")
    assert "aiohttp" in agents["aiohttp"]


# -- response framing and encodings ------------------------------------------------------------


BODY = chat_json("framed " * 20)


@pytest.mark.parametrize("framing", ["chunked", "length"])
@pytest.mark.parametrize("piece", [0, 7, 1], ids=["one-write", "small-writes", "byte-by-byte"])
def test_bodies_arriving_in_any_number_of_pieces(
    run: Callable[..., Any], piece: int, framing: str
) -> None:
    async def reply(exchange: Exchange) -> None:
        if framing == "chunked":
            data = answer(chunked(BODY, 50), "Transfer-Encoding: chunked")
        else:
            data = answer(BODY)
        for start in range(0, len(data), piece or len(data)):
            await exchange.send(data[start : start + (piece or len(data))])
            if piece:
                await asyncio.sleep(0.0005 if piece == 1 else 0)

    async def scenario() -> None:
        async with Scripted(reply) as srv, HttpSession() as session:
            for _ in range(2):
                response = await session.post(srv.url(), b"{}", {}, 5.0)
                assert (response.status, response.body) == (200, BODY)
            assert srv.connections == 1  # the framing ended exactly: the connection was reused

    run(scenario())


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate", "x-gzip"])
def test_compressed_bodies_are_decoded(run: Callable[..., Any], encoding: str) -> None:
    if encoding in ("gzip", "x-gzip"):
        packed = gzip.compress(BODY)
    elif encoding == "deflate":
        packed = zlib.compress(BODY)
    else:
        squeezer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        packed = squeezer.compress(BODY) + squeezer.flush()
    name = encoding.replace("raw-", "")

    async def reply(exchange: Exchange) -> None:
        assert b"\r\nAccept-Encoding: gzip, deflate\r\n" in exchange.head
        await exchange.send(answer(packed, f"Content-Encoding: {name}"))

    async def scenario() -> None:
        async with Scripted(reply) as srv, HttpSession() as session:
            response = await session.post(srv.url(), b"{}", {}, 5.0)
            assert response.body == BODY
            assert response.headers["content-encoding"] == name

    run(scenario())


def test_connection_close_answers_are_not_reused(run: Callable[..., Any]) -> None:
    async def reply(exchange: Exchange) -> bool:
        await exchange.send(answer(BODY, "Connection: close"))
        return False

    async def scenario() -> None:
        async with Scripted(reply) as srv, HttpSession() as session:
            for _ in range(3):
                assert (await session.post(srv.url(), b"{}", {}, 5.0)).body == BODY
            assert srv.connections == 3

    run(scenario())


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
def test_body_delimited_by_the_close(run: Callable[..., Any], version: str) -> None:
    async def reply(exchange: Exchange) -> bool:
        await exchange.send(f"{version} 200 OK\r\nContent-Type: application/json\r\n\r\n".encode())
        await asyncio.sleep(0.01)
        await exchange.send(BODY)
        return False

    async def scenario() -> None:
        async with Scripted(reply) as srv, HttpSession() as session:
            for _ in range(2):
                assert (await session.post(srv.url(), b"{}", {}, 5.0)).body == BODY
            assert srv.connections == 2

    run(scenario())


def test_interim_100_continue_is_skipped_and_204_has_no_body(run: Callable[..., Any]) -> None:
    async def reply(exchange: Exchange) -> None:
        if exchange.number == 1:
            await exchange.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            await asyncio.sleep(0.01)
            await exchange.send(answer(BODY))
        elif exchange.number == 2:  # interim and final answers in one write
            await exchange.send(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + answer(BODY))
        else:
            await exchange.send(b"HTTP/1.1 204 No Content\r\n\r\n")

    async def scenario() -> None:
        async with Scripted(reply) as srv, HttpSession() as session:
            first = await session.post(srv.url(), b"{}", {}, 5.0)
            second = await session.post(srv.url(), b"{}", {}, 5.0)
            third = await session.post(srv.url(), b"{}", {}, 5.0)
            assert (first.status, first.body) == (200, BODY)
            assert (second.status, second.body) == (200, BODY)
            assert "link" not in second.headers
            assert (third.status, third.body) == (204, b"")
            assert srv.connections == 1

    run(scenario())


def test_headers_read_like_aiohttps(run: Callable[..., Any]) -> None:
    async def reply(exchange: Exchange) -> None:
        await exchange.send(
            answer(
                BODY,
                "X-RateLimit-Remaining-Requests: 5",
                "Retry-After: 2",
                "Vary: Accept",
                "Vary: Origin",
                "X-Folded: first\r\n   second",
                status="429 Too Many Requests",
            )
        )

    async def scenario() -> None:
        async with Scripted(reply) as srv, HttpSession() as session:
            response = await session.post(srv.url(), b"{}", {}, 5.0)
            headers = response.headers
            assert response.status == 429
            assert headers.get("x-ratelimit-remaining-requests") == "5"
            assert headers["RETRY-AFTER"] == "2"
            assert headers["vary"] == "Accept, Origin"
            assert headers["x-folded"] == "first second"
            assert "Retry-After" in headers
            assert "missing" not in headers
            assert headers.get("missing", "default") == "default"
            assert dict(headers.items())["retry-after"] == "2"

    run(scenario())


# -- broken connections and servers --------------------------------------------------------------


async def one_answer_per_connection(exchange: Exchange) -> bool:
    """Answers a connection's first request; closes it, unanswered, on the second.

    The race a client meets when a server closes an idle keep-alive connection just
    as the next request is written.
    """
    if exchange.on_connection > 1:
        return False
    await exchange.send(answer(chat_json(exchange.prompt)))
    return True


def test_stale_connection_is_reported_distinctly(run: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with Scripted(one_answer_per_connection) as srv, HttpSession() as session:
            body = orjson.dumps(CHAT)
            assert (await session.post(srv.url(), body, {}, 5.0)).status == 200
            with pytest.raises(StaleConnection):
                await session.post(srv.url(), body, {}, 5.0)
            assert (await session.post(srv.url(), body, {}, 5.0)).status == 200

    run(scenario())


def test_a_new_connection_closed_unanswered_is_not_stale(run: Callable[..., Any]) -> None:
    async def reply(exchange: Exchange) -> bool:
        return False

    async def scenario() -> None:
        async with Scripted(reply) as srv, HttpSession() as session:
            with pytest.raises(ConnectionLost, match="without answering") as caught:
                await session.post(srv.url(), b"{}", {}, 5.0)
            assert not isinstance(caught.value, StaleConnection)

    run(scenario())


def test_connections_idle_past_the_keepalive_timeout_are_closed(run: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with Scripted(echo) as srv, HttpSession(keepalive_timeout=0.05) as session:
            data = orjson.dumps(CHAT)
            await asyncio.gather(*(session.post(srv.url(), data, {}, 5.0) for _ in range(3)))
            await session.post(srv.url(), data, {}, 5.0)
            assert srv.connections == 3
            await asyncio.sleep(0.1)
            await session.post(srv.url(), data, {}, 5.0)
            assert srv.connections == 4
            for _ in range(50):
                if srv.open == 1:
                    break
                await asyncio.sleep(0.01)
            assert srv.open == 1  # the three expired ones were closed by the client

    run(scenario())


def test_server_closing_kept_alive_connections_is_not_an_error(run: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with Scripted(one_answer_per_connection) as srv:
            manager = manager_for(srv.url("/v1"), concurrency=1, retry_attempts=1)
            results = await manager.aprocess_batch(chat_batch(5))
            assert contents(results) == [f"p{i}" for i in range(5)]
            assert manager.stats().retries == 0
            assert srv.connections == 5  # every stale connection was replaced at once

    run(scenario())


def test_idle_connections_closed_by_the_server_are_replaced(run: Callable[..., Any]) -> None:
    async def reply(exchange: Exchange) -> bool:
        await exchange.send(answer(BODY))
        await asyncio.sleep(0.02)
        return False  # closes ~20 ms after answering, while the connection is idle

    async def scenario() -> None:
        async with Scripted(reply) as srv, HttpSession() as session:
            for _ in range(3):
                assert (await session.post(srv.url(), b"{}", {}, 5.0)).body == BODY
                await asyncio.sleep(0.05)
            assert srv.connections == 3

    run(scenario())


def test_server_dying_mid_body_fails_only_that_attempt(run: Callable[..., Any]) -> None:
    async def reply(exchange: Exchange) -> bool:
        if exchange.prompt == "p1" and exchange.number <= 4 and not hasattr(reply, "done"):
            reply.done = True  # type: ignore[attr-defined]
            await exchange.send(answer(chat_json("p1"))[:-20])  # the head and most of the body
            return False
        await exchange.send(answer(chat_json(exchange.prompt)))
        return True

    async def scenario() -> None:
        async with Scripted(reply) as srv:
            manager = manager_for(srv.url("/v1"), concurrency=1, retry_attempts=2)
            results = await manager.aprocess_batch(chat_batch(4))
            assert contents(results) == ["p0", "p1", "p2", "p3"]
            assert [r.attempts for r in results] == [1, 2, 1, 1]

    run(scenario())


def test_server_dying_mid_body_is_a_connection_error(run: Callable[..., Any]) -> None:
    async def reply(exchange: Exchange) -> bool:
        if exchange.prompt == "p1":
            await exchange.send(answer(chat_json("p1"))[:-20])
            return False
        await exchange.send(answer(chat_json(exchange.prompt)))
        return True

    async def scenario() -> None:
        async with Scripted(reply) as srv:
            async with HttpSession() as session:
                with pytest.raises(ConnectionLost) as caught:
                    await session.post(srv.url(), orjson.dumps(chat_body("p1")), {}, 5.0)
                assert not isinstance(caught.value, StaleConnection)
            manager = manager_for(srv.url("/v1"), concurrency=2, retry_attempts=1)
            results = await manager.aprocess_batch(chat_batch(4))
            assert isinstance(results[1].error, APIConnectionError)
            assert KEY not in str(results[1].error)
            assert [r.ok for r in results] == [True, False, True, True]
            assert contents([results[0], results[2], results[3]]) == ["p0", "p2", "p3"]

    run(scenario())


def chat_body(text: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}]}


def test_a_server_that_never_answers_times_out(run: Callable[..., Any]) -> None:
    async def reply(exchange: Exchange) -> None:
        await asyncio.sleep(30)

    async def scenario() -> None:
        async with Scripted(reply) as srv, HttpSession() as session:
            started = time.perf_counter()
            with pytest.raises(TransportTimeout):
                await session.post(srv.url(), b"{}", {}, 0.2)
            assert 0.15 < time.perf_counter() - started < 1.0
            provider = OpenAIProvider(api_key=KEY, api_base=srv.url("/v1"))
            with pytest.raises(APITimeoutError, match=r"0\.2 s"):
                await provider.make_request(session, request_from_item(CHAT, 0), 0.2)

    run(scenario())


def test_each_request_keeps_its_own_timeout(run: Callable[..., Any]) -> None:
    async def reply(exchange: Exchange) -> None:
        await asyncio.sleep(30)

    async def scenario() -> None:
        async with Scripted(reply) as srv, HttpSession() as session:

            async def elapsed(timeout: float) -> float:
                started = time.perf_counter()
                with pytest.raises(TransportTimeout):
                    await session.post(srv.url(), b"{}", {}, timeout)
                return time.perf_counter() - started

            # a later deadline first, then an earlier one, then one in between
            slow = asyncio.ensure_future(elapsed(0.6))
            await asyncio.sleep(0.01)
            fast, middle = await asyncio.gather(elapsed(0.15), elapsed(0.3))
            assert 0.12 < fast < 0.3
            assert 0.27 < middle < 0.45
            assert 0.55 < await slow < 0.9

    run(scenario())


def test_waiting_for_a_connection_is_fifo_and_bounded_by_the_timeout(
    run: Callable[..., Any],
) -> None:
    async def reply(exchange: Exchange) -> None:
        await asyncio.sleep(0.3 if exchange.prompt == "slow" else 0.01)
        await exchange.send(answer(chat_json(exchange.prompt)))

    async def scenario() -> None:
        async with Scripted(reply) as srv, HttpSession(limit=1) as session:

            def post(text: str, timeout: float = 5.0) -> Awaitable[Any]:
                return session.post(srv.url(), orjson.dumps(chat_body(text)), {}, timeout)

            slow = asyncio.ensure_future(post("slow"))
            await asyncio.sleep(0.02)
            with pytest.raises(TransportTimeout):
                await post("impatient", timeout=0.1)
            queued = [asyncio.ensure_future(post(f"q{i}")) for i in range(5)]
            await asyncio.gather(slow, *queued)
            assert [e.prompt for e in srv.exchanges] == ["slow", "q0", "q1", "q2", "q3", "q4"]
            assert srv.connections == 1

    run(scenario())


def test_pool_never_opens_more_than_its_limit(run: Callable[..., Any]) -> None:
    async def reply(exchange: Exchange) -> None:
        await asyncio.sleep(0.03)
        await exchange.send(answer(chat_json(exchange.prompt)))

    async def scenario() -> None:
        async with Scripted(reply) as srv, HttpSession(limit=3) as session:
            bodies = [orjson.dumps(chat_body(f"c{i}")) for i in range(24)]
            answers = await asyncio.gather(*(session.post(srv.url(), b, {}, 5.0) for b in bodies))
            assert [orjson.loads(a.body)["choices"][0]["message"]["content"] for a in answers] == [
                f"c{i}" for i in range(24)
            ]
            assert srv.max_open == 3
            assert srv.connections == 3

    run(scenario())


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (b"HTTP/1.1 OK\r\n\r\n", "malformed status line"),
        (b"ICY 200 OK\r\nContent-Length: 0\r\n\r\n", "malformed status line"),
        (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", "larger than"),
        (answer(b"xx", "Content-Encoding: br"), "unsupported content-encoding 'br'"),
        (answer(b"not gzip", "Content-Encoding: gzip"), "cannot decode"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello", "conflicting"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
    ],
    ids=["status", "protocol", "oversized-head", "unknown-encoding", "bad-gzip", "length", "chunk"],
)
def test_bad_http_is_a_protocol_error(
    run: Callable[..., Any], response: bytes, message: str
) -> None:
    async def reply(exchange: Exchange) -> None:
        await exchange.send(response)

    async def scenario() -> None:
        async with Scripted(reply) as srv, HttpSession() as session:
            with pytest.raises(ProtocolError, match=message):
                await session.post(srv.url(), b"{}", {}, 5.0)
            provider = OpenAIProvider(api_key=KEY, api_base=srv.url("/v1"))
            with pytest.raises(APIConnectionError, match="ProtocolError"):
                await provider.make_request(session, request_from_item(CHAT, 0), 5.0)

    run(scenario())


def test_bad_http_echoing_the_key_never_shows_it(run: Callable[..., Any]) -> None:
    async def reply(exchange: Exchange) -> None:
        echoed = re.search(rb"\r\n(Authorization: [^\r]+)", exchange.head)
        assert echoed is not None
        await exchange.send(b"HTTP/1.1 200 OK\r\ngarbage " + echoed.group(1) + b"\r\n\r\n")

    async def scenario() -> None:
        async with Scripted(reply) as srv, HttpSession() as session:
            provider = OpenAIProvider(api_key=KEY, api_base=srv.url("/v1"))
            with pytest.raises(APIConnectionError, match="malformed header line") as caught:
                await provider.make_request(session, request_from_item(CHAT, 0), 5.0)
            assert "[secure]" in str(caught.value)
            text = "".join(traceback.format_exception(caught.value))
            assert KEY not in text

    run(scenario())


def test_nothing_listening_is_a_connect_error(run: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with Scripted(echo) as srv:
            url = srv.url()
        async with HttpSession() as session:
            with pytest.raises(ConnectError):
                await session.post(url, b"{}", {}, 2.0)

    run(scenario())


# -- what is sent ------------------------------------------------------------------------------


def test_request_head_is_complete_and_injection_is_refused(run: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with Scripted(echo) as srv, HttpSession() as session:
            for name, value in [("X-Evil", "a\r\nX-Injected: 1"), ("X-Evil", "a\nb")]:
                with pytest.raises(ValueError, match="X-Evil") as caught:
                    await session.post(srv.url(), b"{}", {name: value}, 5.0)
                assert "Injected" not in str(caught.value)
            with pytest.raises(ValueError, match="header name"):
                await session.post(srv.url(), b"{}", {"Bad Name": "x"}, 5.0)
            assert srv.connections == 0  # nothing was sent
            data = orjson.dumps(chat_body("hi"))
            headers = {"Content-Type": "application/json", "Content-Length": "999"}
            await session.post(srv.url("/v1/a path?q=1 2"), data, headers, 5.0)
            head = srv.exchanges[0].head.decode()
            assert head.startswith("POST /v1/a%20path?q=1%202 HTTP/1.1\r\n")
            assert f"\r\nHost: 127.0.0.1:{srv.port}\r\n" in head
            assert f"\r\nContent-Length: {len(data)}\r\n" in head
            assert "999" not in head
            assert srv.exchanges[0].body == data

    run(scenario())


def test_provider_refuses_injected_headers_without_quoting_them() -> None:
    with pytest.raises(ConfigurationError, match="Authorization") as caught:
        OpenAIProvider(api_key="sk-secret\r\nX-Evil: 1")
    assert "sk-secret" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="X-Custom"):
        OpenAIProvider(api_key=KEY, headers={"X-Custom": "a\nb"})


# -- TLS and proxies ---------------------------------------------------------------------------


def test_tls_with_a_self_signed_certificate(
    run: Callable[..., Any], certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))

    async def scenario() -> None:
        async with Scripted(echo, ssl_context=server_side) as srv:
            for host in ("127.0.0.1", "localhost"):  # by IP, and by a name to resolve
                async with HttpSession(ssl_context=trusting) as session:
                    response = await session.post(srv.url(host=host), orjson.dumps(CHAT), {}, 5.0)
                    assert orjson.loads(response.body)["choices"][0]["message"]["content"] == (
                        "hello"
                    )
            async with HttpSession() as session:  # the default context does not trust it
                with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await session.post(srv.url(), orjson.dumps(CHAT), {}, 5.0)

    run(scenario())


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "ALL_PROXY", "http_proxy"])
def test_proxy_from_the_environment_is_used(
    run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    async def proxy_reply(exchange: Exchange) -> None:
        await exchange.send(answer(b'{"via":"proxy"}', "Content-Type: application/json"))

    async def scenario() -> None:
        async with Scripted(proxy_reply) as proxy, Scripted(echo) as origin:
            monkeypatch.setenv(variable, f"http://127.0.0.1:{proxy.port}")
            async with HttpSession() as session:
                response = await session.post(origin.url(), orjson.dumps(CHAT), {"X-A": "b"}, 5.0)
            assert orjson.loads(response.body) == {"via": "proxy"}
            assert response.headers.get("content-type") == "application/json"
            request_line = proxy.exchanges[0].head.split(b"\r\n")[0].decode()
            assert request_line == f"POST {origin.url()} HTTP/1.1"
            assert b"\r\nX-A: b\r\n" in proxy.exchanges[0].head
            assert origin.exchanges == []

            monkeypatch.setenv("NO_PROXY", "127.0.0.1")
            async with HttpSession() as session:
                response = await session.post(origin.url(), orjson.dumps(CHAT), {}, 5.0)
            assert orjson.loads(response.body)["choices"][0]["message"]["content"] == "hello"
            assert len(proxy.exchanges) == 1
            assert len(origin.exchanges) == 1

    run(scenario())


def test_a_socks_proxy_is_refused_clearly(
    run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALL_PROXY", "socks5://user:hunter2@127.0.0.1:1080")

    async def scenario() -> None:
        async with Scripted(echo) as srv, HttpSession() as session:
            with pytest.raises(ConnectError, match="only http and https proxies") as caught:
                await session.post(srv.url(), b"{}", {}, 2.0)
            assert "hunter2" not in str(caught.value)
            provider = OpenAIProvider(api_key=KEY, api_base=srv.url("/v1"))
            for body in (CHAT, {**CHAT, "stream": True}):
                with pytest.raises(APIConnectionError, match="socks5"):
                    await provider.make_request(session, request_from_item(body, 0), 2.0)
            assert srv.exchanges == []

    run(scenario())


def test_an_unreachable_proxy_is_a_connect_error(
    run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with Scripted(echo) as gone:
            dead = gone.port
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead}")
        async with HttpSession() as session:
            with pytest.raises(ConnectError):
                await session.post("http://127.0.0.1:9/v1/chat/completions", b"{}", {}, 2.0)

    run(scenario())


def test_a_closed_session_refuses_requests(run: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with Scripted(echo) as srv:
            session = HttpSession()
            await session.post(srv.url(), orjson.dumps(CHAT), {}, 5.0)
            await session.close()
            with pytest.raises(RuntimeError, match="closed"):
                await session.post(srv.url(), orjson.dumps(CHAT), {}, 5.0)
            with pytest.raises(RuntimeError, match="closed"):
                session.aiohttp  # noqa: B018
            for _ in range(50):
                if srv.open == 0:
                    break
                await asyncio.sleep(0.01)
            assert srv.open == 0  # its connection was closed

    run(scenario())
