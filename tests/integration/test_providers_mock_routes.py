"""The mock server's Anthropic and Azure routes and MockEndpoints, spoken to over plain HTTP."""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import datetime
from typing import Any

import orjson
import pytest

from fastllm.testing import MockEndpoints, MockServer, MockServerConfig

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def post(url: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any, Any]:
    request = urllib.request.Request(url, data=orjson.dumps(body), headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


ANTHROPIC = {"anthropic-version": "2023-06-01", "content-type": "application/json"}
MESSAGE = {"model": "c", "max_tokens": 20, "messages": [{"role": "user", "content": "hi you"}]}


def test_messages_answers_and_errors_in_anthropic_shapes(server: MockServer) -> None:
    server.configure(rate_limit_requests=100, rate_limit_tokens=10_000)
    status, headers, raw = post(server.url + "/v1/messages", MESSAGE, ANTHROPIC)
    assert status == 200
    body = orjson.loads(raw)
    assert body["type"] == "message"
    assert body["content"] == [{"type": "text", "text": "hi you"}]
    assert body["stop_reason"] == "end_turn"
    assert body["usage"] == {"input_tokens": 2, "output_tokens": 2}
    assert headers["anthropic-ratelimit-requests-limit"] == "100"
    assert headers["anthropic-ratelimit-requests-remaining"] == "99"
    reset = headers["anthropic-ratelimit-tokens-reset"]
    assert reset.endswith("Z")
    assert datetime.fromisoformat(reset.replace("Z", "+00:00")).tzinfo is not None
    assert "x-ratelimit-limit-requests" not in headers

    status, _, raw = post(server.url + "/v1/messages", {**MESSAGE, "max_tokens": None}, ANTHROPIC)
    assert status == 400
    assert orjson.loads(raw) == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"},
    }
    status, _, raw = post(server.url + "/v1/messages", MESSAGE, {"x-api-key": "k"})
    assert status == 400
    assert "anthropic-version" in orjson.loads(raw)["error"]["message"]


def test_messages_stream_events(server: MockServer) -> None:
    tools = [{"name": "f", "input_schema": {"type": "object"}}]
    body = {**MESSAGE, "stream": True, "tools": tools}
    status, headers, raw = post(server.url + "/v1/messages", body, ANTHROPIC)
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    kinds = [line[7:] for line in raw.decode().splitlines() if line.startswith("event: ")]
    assert kinds[:3] == ["message_start", "content_block_start", "ping"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert b'"input_json_delta"' in raw
    assert b'"stop_reason":"tool_use"' in raw


@pytest.mark.parametrize(("status", "kind"), [(529, "overloaded_error"), (500, "api_error")])
def test_injected_statuses_have_anthropic_types(server: MockServer, status: int, kind: str) -> None:
    server.configure(fail_first=1, fail_first_status=status)
    code, _, raw = post(server.url + "/v1/messages", MESSAGE, ANTHROPIC)
    assert code == status
    assert orjson.loads(raw)["error"]["type"] == kind


def test_azure_urls_need_a_deployment_an_api_version_and_the_key(server: MockServer) -> None:
    server.configure(api_key="az-key")
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    base = server.url + "/openai/deployments/dep-1/chat/completions"
    status, _, raw = post(base + "?api-version=2024-10-21", chat, {"api-key": "az-key"})
    assert status == 200
    assert orjson.loads(raw)["model"] == "dep-1"  # no model in the body: the deployment's
    assert post(base, chat, {"api-key": "az-key"})[0] == 404  # no api-version
    assert post(base + "?api-version=1", chat, {"api-key": "nope"})[0] == 401
    other = server.url + "/openai/deployments/dep-1/images?api-version=1"
    assert post(other, chat, {"api-key": "az-key"})[0] == 404


def test_endpoints_go_down_and_come_back_on_their_port() -> None:
    slow = MockServerConfig(rate_limit_requests=5)
    with MockEndpoints(None, slow) as endpoints:
        assert len(endpoints) == 2
        chat = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        url = endpoints.base_urls[1] + "/chat/completions"
        assert post(url, chat, {})[0] == 200
        endpoints.take_down(1)
        assert not endpoints.is_up(1)
        with pytest.raises(urllib.error.URLError):
            post(url, chat, {})
        with pytest.raises(RuntimeError):
            endpoints[1]
        endpoints.bring_up(1)
        assert endpoints.base_urls[1] + "/chat/completions" == url
        assert post(url, chat, {})[0] == 200
        assert endpoints.served(1) == 2
        assert endpoints[1].config.rate_limit_requests == 5
        assert endpoints.served(0) == 0
