"""The bundled mock OpenAI server, through real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import http.client
import math
import os
import socket
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Iterator
from dataclasses import asdict, fields
from typing import Any

import aiohttp
import orjson
import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from fastllm.testing import MockServer, MockServerConfig, count_tokens, mock_embedding
from fastllm.testing._rate_limit import format_duration
from fastllm.testing.mock_server import build_parser

pytestmark = pytest.mark.timeout(60)

CHAT = "/v1/chat/completions"
EMBED = "/v1/embeddings"


class Answer:
    """One HTTP answer: status, lower-cased headers, raw body."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return orjson.loads(self.body)


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    with MockServer(MockServerConfig()) as server:
        yield server


@pytest.fixture
def server(mock: MockServer) -> MockServer:
    """The module's server with default behaviour, a fixed seed and zeroed stats."""
    mock.configure(**asdict(MockServerConfig(seed=1234)))
    mock.reset()
    return mock


def call(
    server: MockServer,
    path: str,
    payload: Any = None,
    *,
    method: str = "POST",
    raw: bytes | None = None,
    timeout: float = 10.0,
) -> Answer:
    """One request on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        body = raw if raw is not None else (None if payload is None else orjson.dumps(payload))
        conn.request(method, path, body=body, headers={"content-type": "application/json"})
        response = conn.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return Answer(response.status, headers, response.read())
    finally:
        conn.close()


def chat(text: str = "hello world", model: str = "gpt-test", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def events(body: bytes) -> list[Any]:
    """The JSON payloads of an SSE body; the final ``[DONE]`` as the string."""
    assert body.endswith(b"\n\n")
    out: list[Any] = []
    for block in body.decode().split("\n\n")[:-1]:
        assert block.startswith("data: ")
        data = block[len("data: ") :]
        out.append(data if data == "[DONE]" else orjson.loads(data))
    return out


def raw_exchange(server: MockServer, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes and read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def raw_request(body: bytes, *, close: bool = False) -> bytes:
    connection = b"Connection: close\r\n" if close else b""
    return b"POST /v1/chat/completions HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n%b\r\n%b" % (
        len(body),
        connection,
        body,
    )


# -- chat --------------------------------------------------------------------------------


def test_chat_echoes_the_last_user_message_with_usage(server: MockServer) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": "the second question"},
    ]
    answer = call(server, CHAT, {"model": "gpt-x", "messages": messages})
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-request-id"].startswith("req_")
    completion = ChatCompletion.model_validate(answer.json())
    assert completion.model == "gpt-x"
    assert completion.object == "chat.completion"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "the second question"
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    expected_prompt = sum(count_tokens(m["content"]) for m in messages)
    assert completion.usage.prompt_tokens == expected_prompt
    assert completion.usage.completion_tokens == count_tokens("the second question")
    assert completion.usage.total_tokens == expected_prompt + count_tokens("the second question")


def test_chat_joins_text_parts(server: MockServer) -> None:
    content = [
        {"type": "text", "text": "one "},
        {"type": "image_url", "image_url": {"url": "http://example.invalid/x.png"}},
        {"type": "text", "text": "two"},
    ]
    answer = call(server, CHAT, {"model": "m", "messages": [{"role": "user", "content": content}]})
    assert answer.json()["choices"][0]["message"]["content"] == "one two"


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_chat_truncates_to_max_tokens(server: MockServer, field: str) -> None:
    text = "abcdefghijklmnopqrstuvwxyz"  # 7 tokens
    body = call(server, CHAT, chat(text, **{field: 3})).json()
    assert body["choices"][0]["message"]["content"] == text[:12]
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 3
    body = call(server, CHAT, chat(text, **{field: 7})).json()
    assert body["choices"][0]["finish_reason"] == "stop"


def test_max_completion_tokens_wins_over_max_tokens(server: MockServer) -> None:
    body = call(server, CHAT, chat("x" * 40, max_tokens=2, max_completion_tokens=5)).json()
    assert body["choices"][0]["message"]["content"] == "x" * 20


def test_chat_n_gives_identical_choices(server: MockServer) -> None:
    body = call(server, CHAT, chat("same answer", n=3)).json()
    completion = ChatCompletion.model_validate(body)
    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert {c.message.content for c in completion.choices} == {"same answer"}
    assert body["usage"]["completion_tokens"] == 3 * count_tokens("same answer")


def _tools() -> list[dict[str, Any]]:
    return [
        {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}},
    ]


def test_chat_with_tools_answers_one_tool_call(server: MockServer) -> None:
    body = call(server, CHAT, chat("find me", tools=_tools())).json()
    completion = ChatCompletion.model_validate(body)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    (tool_call,) = choice.message.tool_calls
    assert tool_call.function.name == "lookup"
    assert orjson.loads(tool_call.function.arguments) == {"text": "find me"}
    choice_by_name = {"type": "function", "function": {"name": "search"}}
    body = call(server, CHAT, chat("x", tools=_tools(), tool_choice=choice_by_name)).json()
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "search"
    body = call(server, CHAT, chat("plain", tools=_tools(), tool_choice="none")).json()
    assert body["choices"][0]["message"]["content"] == "plain"


@pytest.mark.parametrize(
    "payload",
    [
        {"messages": [{"role": "user", "content": "x"}]},
        {"model": "m"},
        {"model": "m", "messages": []},
        {"model": "m", "messages": ["not a message"]},
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 0},
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": "5"},
    ],
)
def test_invalid_chat_requests_get_400(server: MockServer, payload: dict[str, Any]) -> None:
    answer = call(server, CHAT, payload)
    assert answer.status == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert "x-request-id" in answer.headers


def test_unparsable_json_gets_400(server: MockServer) -> None:
    answer = call(server, CHAT, raw=b'{"model": "m", "messages": [')
    assert answer.status == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert call(server, CHAT, raw=b"[1, 2]").status == 400


def test_unknown_path_and_wrong_method(server: MockServer) -> None:
    answer = call(server, "/v1/nothing", {"model": "m"})
    assert answer.status == 404
    assert answer.json()["error"]["message"] == "Invalid URL (POST /v1/nothing)"
    answer = call(server, CHAT, method="GET")
    assert answer.status == 405
    assert answer.headers["allow"] == "POST"
    assert call(server, "/health", method="GET").status == 200
    models = call(server, "/v1/models", method="GET").json()
    assert models["object"] == "list"


# -- streaming ---------------------------------------------------------------------------


def _stream(server: MockServer, payload: dict[str, Any]) -> tuple[Answer, list[Any]]:
    answer = call(server, CHAT, payload)
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.headers["transfer-encoding"] == "chunked"
    return answer, events(answer.body)


def test_stream_sends_chunks_then_usage_then_done(server: MockServer) -> None:
    text = "streaming is split into several words"
    payload = chat(text, stream=True, stream_options={"include_usage": True})
    _, items = _stream(server, payload)
    assert items[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate(item) for item in items[:-1]]
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [c.choices[0].delta.content for c in chunks if c.choices]
    assert len([piece for piece in content if piece]) >= 2
    assert "".join(piece or "" for piece in content) == text
    finals = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finals[-1] == "stop"
    assert finals.count("stop") == 1
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.completion_tokens == count_tokens(text)
    assert len({c.id for c in chunks}) == 1


def test_stream_usage_chunk_absent_unless_asked_and_enabled(server: MockServer) -> None:
    _, items = _stream(server, chat("no usage please", stream=True))
    assert all(item == "[DONE]" or item["choices"] for item in items)
    server.configure(stream_usage=False)
    payload = chat("no usage please", stream=True, stream_options={"include_usage": True})
    _, items = _stream(server, payload)
    assert all(item == "[DONE]" or item["choices"] for item in items)


def test_stream_of_a_single_word_has_two_content_chunks(server: MockServer) -> None:
    _, items = _stream(server, chat("supercalifragilistic", stream=True))
    pieces = [i["choices"][0]["delta"].get("content") for i in items[:-1]]
    assert len([p for p in pieces if p]) == 2
    assert "".join(p or "" for p in pieces) == "supercalifragilistic"


def test_stream_tool_call_deltas_assemble_to_the_arguments(server: MockServer) -> None:
    payload = chat("call a tool", stream=True, tools=_tools())
    _, items = _stream(server, payload)
    chunks = [ChatCompletionChunk.model_validate(item) for item in items[:-1]]
    first = chunks[0].choices[0].delta.tool_calls
    assert first is not None
    assert first[0].id
    assert first[0].function is not None
    assert first[0].function.name == "lookup"
    arguments = ""
    argument_chunks = 0
    for chunk in chunks:
        for delta in chunk.choices[0].delta.tool_calls or []:
            if delta.function is not None and delta.function.arguments:
                arguments += delta.function.arguments
                argument_chunks += 1
    assert argument_chunks >= 2
    assert arguments == orjson.dumps({"text": "call a tool"}).decode()
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_stream_truncate_ends_without_finish_reason(server: MockServer) -> None:
    server.configure(stream_truncate=1.0)
    payload = chat("one two three four", stream=True, stream_options={"include_usage": True})
    _, items = _stream(server, payload)
    assert items[-1] == "[DONE]"
    assert len(items) == 3  # role chunk, one content chunk, [DONE]
    assert all(item["choices"][0]["finish_reason"] is None for item in items[:-1])
    assert server.stats()["faults"]["stream_truncate"] == 1


def test_stream_chunk_delay_spaces_events(server: MockServer) -> None:
    server.configure(stream_chunk_delay=0.02)
    started = time.perf_counter()
    _, items = _stream(server, chat("a b c", stream=True))
    assert time.perf_counter() - started >= 0.02 * (len(items) - 1)


def test_stream_over_http_1_0_is_closed_not_chunked(server: MockServer) -> None:
    body = orjson.dumps(chat("old client", stream=True))
    request = b"POST %b HTTP/1.0\r\nContent-Length: %d\r\n\r\n%b" % (CHAT.encode(), len(body), body)
    received = raw_exchange(server, request)
    head, _, payload = received.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert events(payload)[-1] == "[DONE]"


# -- embeddings --------------------------------------------------------------------------


def test_embeddings_float_vectors_match_mock_embedding(server: MockServer) -> None:
    answer = call(server, EMBED, {"model": "emb", "input": ["alpha", "beta"]})
    assert answer.status == 200
    response = CreateEmbeddingResponse.model_validate(answer.json())
    assert response.model == "emb"
    assert [d.index for d in response.data] == [0, 1]
    assert response.data[0].embedding == mock_embedding("alpha", 64)
    assert response.data[1].embedding == mock_embedding("beta", 64)
    assert response.usage.prompt_tokens == count_tokens("alpha") + count_tokens("beta")
    assert response.usage.total_tokens == response.usage.prompt_tokens


def test_embeddings_base64_is_little_endian_float32(server: MockServer) -> None:
    payload = {"model": "emb", "input": "gamma", "encoding_format": "base64", "dimensions": 8}
    data = call(server, EMBED, payload).json()["data"]
    decoded = array("f", base64.b64decode(data[0]["embedding"]))
    if sys.byteorder == "big":
        decoded.byteswap()
    assert decoded.tolist() == mock_embedding("gamma", 8)


def test_embeddings_accept_token_arrays(server: MockServer) -> None:
    one = call(server, EMBED, {"model": "e", "input": [1, 2, 3], "dimensions": 4}).json()
    assert len(one["data"]) == 1
    assert one["data"][0]["embedding"] == mock_embedding([1, 2, 3], 4)
    assert one["usage"]["prompt_tokens"] == 3
    many = call(server, EMBED, {"model": "e", "input": [[1, 2], [3]], "dimensions": 4}).json()
    assert [d["embedding"] for d in many["data"]] == [
        mock_embedding([1, 2], 4),
        mock_embedding([3], 4),
    ]


@pytest.mark.parametrize(
    "payload",
    [
        {"model": "e", "input": ""},
        {"model": "e", "input": ["ok", ""]},
        {"model": "e", "input": []},
        {"model": "e", "input": "x", "dimensions": 3073},
        {"model": "e", "input": "x", "dimensions": 0},
        {"model": "e", "input": "x", "encoding_format": "hex"},
        {"model": "e"},
        {"input": "x"},
    ],
)
def test_invalid_embedding_requests_get_400(server: MockServer, payload: dict[str, Any]) -> None:
    answer = call(server, EMBED, payload)
    assert answer.status == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"


def test_embedding_dimensions_and_default_size(server: MockServer) -> None:
    body = call(server, EMBED, {"model": "e", "input": "x", "dimensions": 3072}).json()
    assert len(body["data"][0]["embedding"]) == 3072
    server.configure(embedding_dim=5)
    body = call(server, EMBED, {"model": "e", "input": "x"}).json()
    assert len(body["data"][0]["embedding"]) == 5


def test_mock_embedding_is_deterministic_unit_float32() -> None:
    vector = mock_embedding("some text", 32)
    assert vector == mock_embedding("some text", 32)
    assert vector != mock_embedding("other text", 32)
    assert mock_embedding([1, 2], 32) != mock_embedding("1,2", 32)
    assert math.isclose(math.fsum(x * x for x in vector), 1.0, rel_tol=1e-5)
    assert array("f", vector).tolist() == vector
    with pytest.raises(ValueError):
        mock_embedding("x", 0)


def test_count_tokens_rule() -> None:
    assert [count_tokens(t) for t in ("", "a", "abcd", "abcde", "x" * 400)] == [1, 1, 1, 2, 100]


# -- faults ------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "header"), [("1", "1"), ("29.07", "29.07"), (None, None)])
def test_fail_429_sends_the_exact_retry_after(
    server: MockServer, value: str | None, header: str | None
) -> None:
    server.configure(fail_429=1.0, retry_after=value)
    answer = call(server, CHAT, chat())
    assert answer.status == 429
    assert answer.headers.get("retry-after") == header
    assert "retry-after-ms" not in answer.headers
    assert answer.json()["error"]["code"] == "rate_limit_exceeded"
    assert server.stats()["faults"]["fail_429"] == 1


def test_fail_429_sends_retry_after_ms(server: MockServer) -> None:
    server.configure(fail_429=1.0, retry_after_ms="250")
    answer = call(server, CHAT, chat())
    assert answer.headers["retry-after-ms"] == "250"
    assert answer.headers["retry-after"] == "1"


def test_quota_429_has_no_retry_after(server: MockServer) -> None:
    server.configure(quota_429=1.0)
    answer = call(server, CHAT, chat())
    assert answer.status == 429
    assert "retry-after" not in answer.headers
    assert answer.json()["error"]["code"] == "insufficient_quota"
    assert answer.json()["error"]["type"] == "insufficient_quota"


def test_fail_500(server: MockServer) -> None:
    server.configure(fail_500=1.0)
    answer = call(server, EMBED, {"model": "e", "input": "x"})
    assert answer.status == 500
    assert answer.json()["error"]["code"] == "server_error"
    assert "x-request-id" in answer.headers


def test_fault_fractions_are_seeded_and_roughly_right(server: MockServer) -> None:
    server.configure(fail_500=0.3, seed=7)
    first = [call(server, CHAT, chat(f"q{i}")).status for i in range(60)]
    server.reset()
    again = [call(server, CHAT, chat(f"q{i}")).status for i in range(60)]
    assert first == again
    assert 5 <= first.count(500) <= 35
    assert server.stats()["faults"]["fail_500"] == first.count(500)


def test_fail_first_counts_per_distinct_body(server: MockServer) -> None:
    server.configure(fail_first=2, fail_first_status=503)
    statuses = [call(server, CHAT, chat("a")).status for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert call(server, CHAT, chat("b")).status == 503
    stats = server.stats()
    assert stats["faults"]["fail_first"] == 3
    assert stats["distinct_bodies"] == 2
    assert stats["max_body_repeats"] == 3
    server.reset()
    assert call(server, CHAT, chat("a")).status == 503


def test_fail_first_429_carries_retry_after(server: MockServer) -> None:
    server.configure(fail_first=1, fail_first_status=429, retry_after="0.5")
    answer = call(server, CHAT, chat())
    assert answer.status == 429
    assert answer.headers["retry-after"] == "0.5"


def test_hang_never_answers_until_the_client_gives_up(server: MockServer) -> None:
    server.configure(hang=1.0)
    with pytest.raises(TimeoutError):
        call(server, CHAT, chat(), timeout=0.3)
    server.configure(hang=0.0)
    assert call(server, CHAT, chat("still alive")).status == 200
    stats = server.stats()
    assert stats["faults"]["hang"] == 1
    assert stats["by_status"] == {"200": 1}
    deadline = time.monotonic() + 5
    while stats["in_flight"] and time.monotonic() < deadline:  # the client left: hang ended
        time.sleep(0.01)
        stats = server.stats()
    assert stats["in_flight"] == 0


def test_malformed_answers_200_with_invalid_json(server: MockServer) -> None:
    server.configure(malformed=1.0)
    answer = call(server, CHAT, chat())
    assert answer.status == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(answer.body)
    streamed = call(server, CHAT, chat(stream=True))
    assert streamed.status == 200
    assert b"[DONE]" not in streamed.body
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(streamed.body.decode().removeprefix("data: "))
    stats = server.stats()
    assert stats["faults"]["malformed"] == 2
    assert stats["completion_tokens"] == 0


def test_drop_closes_without_an_answer(server: MockServer) -> None:
    server.configure(drop=1.0)
    with pytest.raises(http.client.RemoteDisconnected):
        call(server, CHAT, chat())
    assert server.stats()["faults"]["drop"] == 1


def test_should_retry_header_on_errors_only(server: MockServer) -> None:
    server.configure(should_retry="false")
    assert "x-should-retry" not in call(server, CHAT, chat()).headers
    server.configure(fail_500=1.0)
    assert call(server, CHAT, chat()).headers["x-should-retry"] == "false"


def test_error_styles(server: MockServer) -> None:
    server.configure(fail_500=1.0, error_style="detail")
    answer = call(server, CHAT, chat())
    assert set(answer.json()) == {"detail"}
    server.configure(error_style="text")
    answer = call(server, CHAT, chat())
    assert answer.headers["content-type"].startswith("text/plain")
    assert b"server had an error" in answer.body
    server.configure(error_style="openai")
    error = call(server, CHAT, chat()).json()["error"]
    assert set(error) == {"message", "type", "param", "code"}


@pytest.mark.parametrize("status", [200, 400, 404])
def test_unknown_models(server: MockServer, status: int) -> None:
    server.configure(known_models=["known"], unknown_model_status=status)
    assert call(server, CHAT, chat(model="known")).status == 200
    answer = call(server, CHAT, chat(model="other"))
    assert answer.status == status
    if status != 200:
        assert answer.json()["error"]["code"] == "model_not_found"
        assert server.stats()["faults"]["unknown_model"] == 1


def test_latency_and_jitter(server: MockServer) -> None:
    server.configure(latency=0.1)
    started = time.perf_counter()
    assert call(server, CHAT, chat()).status == 200
    assert time.perf_counter() - started >= 0.1
    server.configure(latency=0.0, jitter=0.05)
    assert all(call(server, CHAT, chat()).status == 200 for _ in range(5))


async def test_concurrent_requests_are_in_flight_together(server: MockServer) -> None:
    server.configure(latency=0.5)
    async with aiohttp.ClientSession() as session:

        async def one(i: int) -> str:
            async with session.post(server.base_url + "/chat/completions", json=chat(f"c{i}")) as r:
                body = await r.json()
                return str(body["choices"][0]["message"]["content"])

        answers = await asyncio.gather(*(one(i) for i in range(20)))
    assert answers == [f"c{i}" for i in range(20)]
    stats = server.stats()
    assert stats["max_in_flight"] == 20
    assert stats["in_flight"] == 0


def test_a_client_leaving_during_a_delayed_answer_is_not_answered(server: MockServer) -> None:
    server.configure(latency=0.3)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(raw_request(orjson.dumps(chat("gone"))))
        deadline = time.monotonic() + 5
        while server.stats()["in_flight"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.stats()["in_flight"] == 1
    deadline = time.monotonic() + 5
    while server.stats()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.4)  # past the answer's time: nothing was sent, nothing counted
    stats = server.stats()
    assert stats["in_flight"] == 0
    assert stats["by_status"] == {}
    assert call(server, CHAT, chat("next")).json()["choices"][0]["message"]["content"] == "next"


def test_delayed_answers_on_one_connection_come_in_order(server: MockServer) -> None:
    server.configure(latency=0.05)
    started = time.perf_counter()
    bodies = [orjson.dumps(chat(f"late {i}")) for i in range(3)]
    data = b"".join(raw_request(body) for body in bodies[:-1]) + raw_request(bodies[-1], close=True)
    received = raw_exchange(server, data)
    assert time.perf_counter() - started >= 0.15  # one after the other, each delayed
    positions = [received.index(b'"content":"late %d"' % i) for i in range(3)]
    assert positions == sorted(positions)
    assert server.stats()["in_flight"] == 0


# -- server-side rate limit ---------------------------------------------------------------


def test_request_rate_limit(server: MockServer) -> None:
    server.configure(rate_limit_requests=3, rate_limit_window=60.0)
    answers = [call(server, CHAT, chat(f"r{i}")) for i in range(4)]
    assert [a.status for a in answers] == [200, 200, 200, 429]
    remaining = [a.headers["x-ratelimit-remaining-requests"] for a in answers]
    assert remaining == ["2", "1", "0", "0"]
    assert answers[0].headers["x-ratelimit-limit-requests"] == "3"
    assert answers[0].headers["x-ratelimit-reset-requests"].endswith("s")
    limited = answers[3]
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(limited.headers["retry-after"]) >= 1
    assert int(limited.headers["retry-after-ms"]) > 0
    assert "x-ratelimit-limit-tokens" not in limited.headers
    stats = server.stats()
    assert stats["rate_limited"] == 1
    assert stats["by_status"] == {"200": 3, "429": 1}
    server.reset()
    assert call(server, CHAT, chat()).status == 200


def test_token_rate_limit_counts_prompt_and_max_tokens(server: MockServer) -> None:
    server.configure(rate_limit_tokens=100, rate_limit_requests=1000)
    text = "x" * 40  # 10 prompt tokens
    first = call(server, CHAT, chat(text, max_tokens=50))
    assert first.status == 200
    assert first.headers["x-ratelimit-remaining-tokens"] == "40"
    assert first.headers["x-ratelimit-limit-tokens"] == "100"
    assert first.headers["x-ratelimit-remaining-requests"] == "999"
    assert call(server, CHAT, chat(text, max_tokens=50)).status == 429
    assert call(server, CHAT, chat(text)).status == 200
    invalid = call(server, CHAT, {"model": "m"})
    assert invalid.status == 400
    assert "x-ratelimit-remaining-tokens" in invalid.headers


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.02, "20ms"), (1, "1s"), (360, "6m0s"), (90.5, "1m30.5s"), (3725, "1h2m5s")],
)
def test_reset_duration_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


# -- stats, reset, config -------------------------------------------------------------------


def test_stats_count_requests_statuses_bodies_and_tokens(server: MockServer) -> None:
    call(server, CHAT, chat("abcdefgh"))
    call(server, CHAT, chat("abcdefgh"))
    call(server, EMBED, {"model": "e", "input": "abcd"})
    call(server, CHAT, {"model": "m"})
    call(server, "/v1/unknown", {})
    stats = server.stats()
    assert stats["requests"] == 5
    assert stats["by_endpoint"] == {CHAT: 3, EMBED: 1, "/v1/unknown": 1}
    assert stats["by_status"] == {"200": 3, "400": 1, "404": 1}
    assert stats["distinct_bodies"] == 3
    assert stats["max_body_repeats"] == 2
    assert stats["prompt_tokens"] == 2 * 2 + 1
    assert stats["completion_tokens"] == 2 * 2
    assert stats["rate_limited"] == 0
    assert set(stats["faults"]) >= {"hang", "drop", "quota_429", "fail_429", "fail_500"}
    server.reset()
    stats = server.stats()
    assert stats["requests"] == stats["distinct_bodies"] == stats["prompt_tokens"] == 0
    assert stats["by_status"] == {}


def test_config_endpoint(server: MockServer) -> None:
    answer = call(server, "/config", {"latency": 0.0, "nope": 1})
    assert answer.status == 400
    assert "nope" in answer.json()["error"]["message"]
    assert call(server, "/config", {"fail_500": 2.0}).status == 400
    assert call(server, "/config", {"error_style": "xml"}).status == 400
    assert call(server, "/config", {"fail_500": 1.0}).json()["fail_500"] == 1.0
    assert call(server, "/config", method="GET").json()["fail_500"] == 1.0
    assert call(server, CHAT, chat()).status == 500
    with pytest.raises(TypeError):
        server.configure(nope=1)
    with pytest.raises(ValueError):
        server.configure(unknown_model_status=418)
    assert server.configure(fail_500=0.0).fail_500 == 0.0


def test_config_rejects_impossible_values() -> None:
    with pytest.raises(ValueError):
        MockServerConfig(latency=-1)
    with pytest.raises(ValueError):
        MockServerConfig(embedding_dim=4000)
    with pytest.raises(ValueError):
        MockServerConfig(rate_limit_requests=0)


# -- HTTP/1.1 behaviour ----------------------------------------------------------------------


def test_keep_alive_reuses_one_connection(server: MockServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        for i in range(5):
            conn.request("POST", CHAT, body=orjson.dumps(chat(f"k{i}")))
            response = conn.getresponse()
            assert orjson.loads(response.read())["choices"][0]["message"]["content"] == f"k{i}"
            assert response.getheader("connection") is None
            sock = conn.sock
            assert sock is not None
        assert conn.sock is sock
    finally:
        conn.close()


def test_pipelined_requests_are_answered_in_order(server: MockServer) -> None:
    server.configure(jitter=0.01)
    bodies = [orjson.dumps(chat(f"pipe {i}")) for i in range(5)]
    data = b"".join(raw_request(body) for body in bodies)
    data += b"GET /health HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    received = raw_exchange(server, data)
    assert received.count(b"HTTP/1.1 200 OK\r\n") == 6
    for i in range(5):
        assert received.index(b'"content":"pipe %d"' % i) < received.index(
            b'"content":"pipe %d"' % (i + 1) if i < 4 else b'{"status":"ok"}'
        )
    assert received.rstrip().endswith(b'{"status":"ok"}')


def test_connection_close_is_honoured(server: MockServer) -> None:
    received = raw_exchange(server, raw_request(orjson.dumps(chat("bye")), close=True))
    assert b"connection: close" in received.lower()
    assert received.count(b"HTTP/1.1") == 1


def test_expect_100_continue(server: MockServer) -> None:
    body = orjson.dumps(chat("continue"))
    head = b"POST %b HTTP/1.1\r\nContent-Length: %d\r\nExpect: 100-continue\r\n" % (
        CHAT.encode(),
        len(body),
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head + b"Connection: close\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert b'"content":"continue"' in received


def test_http_1_0_keep_alive_is_announced(server: MockServer) -> None:
    body = orjson.dumps(chat("old"))
    head = b"POST %b HTTP/1.0\r\nContent-Length: %d\r\n" % (CHAT.encode(), len(body))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head + b"Connection: keep-alive\r\n\r\n" + body)
        received = b""
        while b'"system_fingerprint"' not in received:
            received += sock.recv(65536)
        assert b"connection: keep-alive" in received.lower()
        sock.sendall(head + b"\r\n" + body)  # no keep-alive this time: answered, then closed
        while chunk := sock.recv(65536):
            received += chunk
    assert received.count(b"HTTP/1.1 200 OK") == 2


def test_bad_request_line_gets_400_and_close(server: MockServer) -> None:
    received = raw_exchange(server, b"NONSENSE\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 400 ")
    assert b"x-request-id: " in received
    chunked = b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    assert raw_exchange(server, chunked).startswith(b"HTTP/1.1 501 ")


def test_close_after_response_closes_idle_connections_silently(server: MockServer) -> None:
    server.configure(close_after_response=True)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(raw_request(orjson.dumps(chat("soon closed"))))
        received = b""
        while b'"system_fingerprint"' not in received:
            received += sock.recv(65536)
        assert b"connection: close" not in received.lower()
        sock.settimeout(2.0)
        assert sock.recv(65536) == b""  # closed by the server shortly after


# -- life cycle ------------------------------------------------------------------------------


def _server_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "fastllm-mock-server"}


def test_stop_is_quick_with_a_hanging_request_open() -> None:
    before = _server_threads()
    server = MockServer(hang=1.0).start()
    (thread,) = _server_threads() - before
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        sock.sendall(raw_request(orjson.dumps(chat())))
        deadline = time.monotonic() + 5
        while server.stats()["in_flight"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.stats()["in_flight"] == 1
        server.stop()
        assert sock.recv(100) == b""
    finally:
        sock.close()
    assert not thread.is_alive()
    with pytest.raises(RuntimeError):
        _ = server.port


def test_process_mode() -> None:
    cpu = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    with MockServer(MockServerConfig(latency=0.01), process=True, cpu=cpu) as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        answer = call(server, CHAT, chat("from a process"))
        assert answer.json()["choices"][0]["message"]["content"] == "from a process"
        server.configure(fail_500=1.0)
        assert call(server, CHAT, chat()).status == 500
        assert server.stats()["requests"] == 2
    with pytest.raises(ValueError):
        MockServer(cpu=0)


def test_module_entry_point_starts_a_server() -> None:
    command = [sys.executable, "-m", "fastllm.testing.mock_server", "--port", "0"]
    command += ["--fail-500", "1", "--retry-after", "none", "--no-stream-usage"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if "listening on http://127.0.0.1:" not in line:
            process.kill()
            pytest.fail(f"the server did not start: {line!r} {process.communicate()[1]}")
        port = int(line.rsplit(":", 1)[1].split("/")[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", CHAT, body=orjson.dumps(chat()))
        assert conn.getresponse().status == 500
        conn.close()
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "Traceback" not in stderr


def test_every_config_field_has_a_command_line_flag() -> None:
    parser = build_parser()
    args = parser.parse_args(["--known-models", "a,b", "--seed", "3", "--error-style", "text"])
    assert args.known_models == ["a", "b"]
    assert args.seed == 3
    defaults = parser.parse_args([])
    for item in fields(MockServerConfig):
        assert getattr(defaults, item.name) == getattr(MockServerConfig(), item.name)


def test_openai_client_talks_to_the_mock(server: MockServer) -> None:
    import openai

    with openai.OpenAI(api_key="sk-test", base_url=server.base_url, max_retries=0) as client:
        completion = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "via the SDK"}]
        )
        assert completion.choices[0].message.content == "via the SDK"
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "streamed via the SDK"}],
            stream=True,
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        assert text == "streamed via the SDK"
        vectors = client.embeddings.create(model="e", input=["v"], dimensions=6)
        assert vectors.data[0].embedding == pytest.approx(mock_embedding("v", 6))
