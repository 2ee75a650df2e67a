"""Shared fixtures: one real mock OpenAI server on 127.0.0.1 for the whole session."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

import pytest

from fastllm import OpenAIProvider, RequestManager
from fastllm.testing import MockServer, MockServerConfig

TEST_KEY = "sk-test-NEVER-LEAK-4f9a2c"


@pytest.fixture(scope="session")
def _session_server() -> Iterator[MockServer]:
    with MockServer(MockServerConfig()) as server:
        yield server


@pytest.fixture
def server(_session_server: MockServer) -> MockServer:
    """The session's mock server, with default behaviour and zeroed stats."""
    _session_server.configure(**asdict(MockServerConfig()))
    _session_server.reset()
    return _session_server


@pytest.fixture
def provider(server: MockServer) -> OpenAIProvider:
    return OpenAIProvider(api_key=TEST_KEY, api_base=server.base_url)


@pytest.fixture
def api_key() -> str:
    """A recognisable fake key that must never appear anywhere."""
    return TEST_KEY


@pytest.fixture
def make_manager() -> Callable[..., RequestManager]:
    """A factory of quiet managers with fast retries, overridable per test."""

    def build(provider: OpenAIProvider, **options: Any) -> RequestManager:
        settings: dict[str, Any] = {
            "concurrency": 20,
            "timeout": 10.0,
            "retry_attempts": 3,
            "retry_delay": 0.01,
            "show_progress": False,
        }
        settings.update(options)
        return RequestManager(provider, **settings)

    return build
