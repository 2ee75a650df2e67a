"""Requests: the model, stable ids, the ``RequestBatch`` builder and Batch files."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastllm.requests.batch import BATCH_API_MAX_BYTES, BATCH_API_MAX_LINES, RequestBatch
from fastllm.requests.hashing import compute_request_hash
from fastllm.requests.jsonl import BadLine, iter_jsonl, read_batch_lines, write_jsonl
from fastllm.requests.model import Endpoint, Request
from fastllm.requests.normalize import request_from_item

if TYPE_CHECKING:
    from fastllm.requests.seed_models import LLMRequest, LLMResponse, Message

_SEED_MODELS = frozenset({"LLMRequest", "LLMResponse", "Message"})


def __getattr__(name: str) -> Any:
    """The pydantic seed models, imported on first access (pydantic is heavy)."""
    if name in _SEED_MODELS:
        from fastllm.requests import seed_models

        return getattr(seed_models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BATCH_API_MAX_BYTES",
    "BATCH_API_MAX_LINES",
    "BadLine",
    "Endpoint",
    "LLMRequest",
    "LLMResponse",
    "Message",
    "Request",
    "RequestBatch",
    "compute_request_hash",
    "iter_jsonl",
    "read_batch_lines",
    "request_from_item",
    "write_jsonl",
]
