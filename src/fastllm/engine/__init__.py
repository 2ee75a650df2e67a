"""The engine: scheduling, deduplication, retries and result collection."""

from typing import Any

from fastllm.engine.manager import RequestManager
from fastllm.engine.results import ResponseWrapper, dummy_response

__all__ = ["DUMMY_RESPONSE", "RequestManager", "ResponseWrapper", "dummy_response"]


def __getattr__(name: str) -> Any:
    if name == "DUMMY_RESPONSE":  # built on first use: the openai types are slow to import
        return dummy_response()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
