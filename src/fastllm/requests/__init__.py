"""Requests: the model, stable ids, the ``RequestBatch`` builder and Batch files."""

from fastllm.requests.batch import BATCH_API_MAX_BYTES, BATCH_API_MAX_LINES, RequestBatch
from fastllm.requests.hashing import compute_request_hash
from fastllm.requests.jsonl import BadLine, iter_jsonl, read_batch_lines, write_jsonl
from fastllm.requests.model import Endpoint, LLMRequest, LLMResponse, Message, Request
from fastllm.requests.normalize import request_from_item

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
