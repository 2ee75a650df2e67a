"""Token estimates for chat and embedding requests."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from fastllm.errors import ConfigurationError
from fastllm.limits import TokenEstimator
from fastllm.limits import token_estimate as te
from fastllm.limits.token_estimate import charged_tokens
from fastllm.requests.model import Endpoint

CHAT = Endpoint.CHAT_COMPLETIONS
EMBEDDINGS = Endpoint.EMBEDDINGS


def h(text: str) -> int:
    """The documented heuristic."""
    return -(-len(text) // 4)


@pytest.fixture
def fresh_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget any process-wide encoding so the loader runs again (restored afterwards)."""
    monkeypatch.setattr(te, "_encoding", te._UNSET)


class FakeEncoding:
    """Splits on spaces: one token per word."""

    def __init__(self) -> None:
        self.calls = 0

    def encode_ordinary(self, text: str) -> list[int]:
        self.calls += 1
        return [0] * len(text.split())


@pytest.fixture
def estimator() -> TokenEstimator:
    return TokenEstimator(use_tiktoken=False)


def test_heuristic_is_ceil_of_quarter_length() -> None:
    for text in ["", "a", "abcd", "abcde", "x" * 1001]:
        assert te.heuristic_tokens(text) == h(text)


def test_chat_plain_messages(estimator: TokenEstimator) -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
    }
    prompt = 3 + 2 * 4 + h("You are terse.") + h("What is the capital of France?")
    assert estimator.estimate(CHAT, body) == prompt + 256


def test_chat_completion_budget(estimator: TokenEstimator) -> None:
    base: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}
    prompt = 3 + 4 + 1
    assert estimator.estimate(CHAT, {**base, "max_tokens": 100}) == prompt + 100
    assert estimator.estimate(CHAT, {**base, "max_completion_tokens": 50}) == prompt + 50
    both = {**base, "max_completion_tokens": 50, "max_tokens": 100}
    assert estimator.estimate(CHAT, both) == prompt + 50
    assert estimator.estimate(CHAT, {**base, "max_tokens": 100, "n": 3}) == prompt + 300
    assert estimator.estimate(CHAT, {**base, "n": 2}) == prompt + 512
    assert estimator.estimate(CHAT, {**base, "max_tokens": None, "n": None}) == prompt + 256
    assert estimator.estimate(CHAT, {**base, "max_tokens": "lots"}) == prompt + 256
    assert TokenEstimator(10, use_tiktoken=False).estimate(CHAT, base) == prompt + 10


def test_chat_content_parts(estimator: TokenEstimator) -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe this picture please"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}},
                    {"type": "text", "text": "briefly"},
                ],
            }
        ],
        "max_tokens": 0,
    }
    expected = 3 + 4 + h("Describe this picture please") + te.IMAGE_TOKENS + h("briefly")
    assert estimator.estimate(CHAT, body) == expected


def test_chat_tools_and_tool_calls(estimator: TokenEstimator) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    arguments = '{"city": "Paris"}'
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "sunny"},
    ]
    without_tools = estimator.estimate(CHAT, {"messages": messages, "max_tokens": 0})
    expected = (
        3
        + 3 * 4
        + h("Weather in Paris?")
        + (4 + h("get_weather") + h(arguments))
        + h("get_weather")
        + h("sunny")
    )
    assert without_tools == expected
    with_tools = estimator.estimate(CHAT, {"messages": messages, "tools": tools, "max_tokens": 0})
    assert with_tools - without_tools == h(json.dumps(tools, separators=(",", ":")))
    assert with_tools - without_tools > 20


def test_chat_tolerates_odd_shapes(estimator: TokenEstimator) -> None:
    assert estimator.estimate(CHAT, {}) == 3 + 256
    odd = {"messages": ["not a dict", {"role": "user"}, {"content": 5}], "max_tokens": 0}
    assert estimator.estimate(CHAT, odd) == 3 + 3 * 4
    legacy = {
        "messages": [{"role": "assistant", "function_call": {"name": "f", "arguments": {"a": 1}}}],
        "max_tokens": 0,
    }
    assert estimator.estimate(CHAT, legacy) == 3 + 4 + 4 + h("f") + h('{"a":1}')


def test_embeddings_all_input_forms(estimator: TokenEstimator) -> None:
    assert estimator.estimate(EMBEDDINGS, {"input": "hello world"}) == h("hello world")
    assert estimator.estimate(EMBEDDINGS, {"input": ["abcd", "abcdefgh", ""]}) == 1 + 2 + 0
    assert estimator.estimate(EMBEDDINGS, {"input": [1, 2, 3, 4, 5]}) == 5
    assert estimator.estimate(EMBEDDINGS, {"input": [[1, 2, 3], [4, 5]]}) == 5
    assert estimator.estimate(EMBEDDINGS, {"input": []}) == 0
    assert estimator.estimate(EMBEDDINGS, {}) == 0
    assert estimator.estimate(EMBEDDINGS, {"input": "x", "max_tokens": 100}) == 1  # no completion


def test_bad_arguments() -> None:
    with pytest.raises(ConfigurationError) as info:
        TokenEstimator(-1)
    assert info.value.argument == "default_completion_tokens"
    with pytest.raises(ConfigurationError) as info:
        TokenEstimator(True)
    assert info.value.argument == "default_completion_tokens"
    with pytest.raises(ConfigurationError) as info:
        TokenEstimator(use_tiktoken="yes")  # type: ignore[arg-type]
    assert info.value.argument == "use_tiktoken"


def test_use_tiktoken_true_requires_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(te, "_tiktoken_installed", lambda: False)
    with pytest.raises(ConfigurationError, match="tiktoken is not installed"):
        TokenEstimator(use_tiktoken=True)
    assert not TokenEstimator().uses_tiktoken  # None: quietly the heuristic


@pytest.mark.usefixtures("fresh_encoding")
def test_loader_failure_falls_back_and_warns_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[bool] = []

    def broken_loader(download: bool = False) -> Any:
        calls.append(download)
        raise OSError("no network")

    monkeypatch.setattr(te, "_load_encoding", broken_loader)
    monkeypatch.setattr(te, "_tiktoken_installed", lambda: True)
    body = {"messages": [{"role": "user", "content": "hello there"}], "max_tokens": 1}
    with caplog.at_level(logging.INFO, logger="fastllm.limits.token_estimate"):
        first = TokenEstimator()
        assert first.estimate(CHAT, body) == 3 + 4 + h("hello there") + 1
        assert first.estimate(CHAT, body) == 3 + 4 + h("hello there") + 1
        second = TokenEstimator(use_tiktoken=True)
        assert second.count("abcdefgh") == 2
        assert not second.uses_tiktoken
    # tried once offline (quietly), once more when tiktoken was asked for (loudly)
    assert calls == [False, True]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "no network" in warnings[0].getMessage()


@pytest.mark.usefixtures("fresh_encoding")
def test_tiktoken_encoding_used_when_it_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    encoding = FakeEncoding()
    monkeypatch.setattr(te, "_load_encoding", lambda download=False: encoding)
    monkeypatch.setattr(te, "_tiktoken_installed", lambda: True)
    estimator = TokenEstimator()
    body = {"messages": [{"role": "user", "content": "one two three four five"}], "max_tokens": 0}
    assert estimator.estimate(CHAT, body) == 3 + 4 + 5
    assert estimator.uses_tiktoken
    assert estimator.estimate(EMBEDDINGS, {"input": ["a b", "c"]}) == 3
    assert TokenEstimator(use_tiktoken=False).estimate(EMBEDDINGS, {"input": "a b c d e"}) == 3


@pytest.mark.usefixtures("fresh_encoding")
def test_encoding_loaded_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def loader(download: bool = False) -> FakeEncoding:
        calls.append(1)
        return FakeEncoding()

    monkeypatch.setattr(te, "_load_encoding", loader)
    monkeypatch.setattr(te, "_tiktoken_installed", lambda: True)
    estimator = TokenEstimator()
    assert calls == []
    estimator.count("a b")
    TokenEstimator().count("c d")
    assert calls == [1]


@pytest.mark.usefixtures("fresh_encoding")
def test_no_download_is_ever_attempted_by_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    tiktoken = pytest.importorskip("tiktoken")

    def no_network(name: str) -> Any:
        raise AssertionError(f"tried to load {name} with an empty local cache")

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tiktoken, "get_encoding", no_network)
    estimator = TokenEstimator()
    assert not estimator.uses_tiktoken
    assert estimator.count("abcdefgh") == 2


def test_charged_tokens_follow_the_providers_accounting() -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    assert charged_tokens({}, usage, 99) == 15
    assert charged_tokens({"max_completion_tokens": 40}, usage, 99) == 50
    assert charged_tokens({"max_tokens": 3, "n": 2}, usage, 99) == 16
    assert charged_tokens({"max_tokens": 2}, usage, 99) == 15  # used more than declared
    assert charged_tokens({}, None, 99) == 99
