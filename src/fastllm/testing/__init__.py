"""Testing helpers: an OpenAI-compatible mock server with fault injection.

``MockServer``, ``MockServerConfig`` and ``serve`` are imported lazily so that
``python -m fastllm.testing.mock_server`` runs without a double import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastllm.testing._requests import count_tokens
from fastllm.testing._responses import mock_embedding

if TYPE_CHECKING:
    from fastllm.testing.endpoints import MockEndpoints
    from fastllm.testing.mock_server import MockServer, MockServerConfig, serve

__all__ = [
    "MockEndpoints",
    "MockServer",
    "MockServerConfig",
    "count_tokens",
    "mock_embedding",
    "serve",
]

_LAZY = frozenset({"MockServer", "MockServerConfig", "serve"})


def __getattr__(name: str) -> Any:
    if name == "MockEndpoints":
        from fastllm.testing.endpoints import MockEndpoints

        return MockEndpoints
    if name in _LAZY:
        from fastllm.testing import mock_server

        return getattr(mock_server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
