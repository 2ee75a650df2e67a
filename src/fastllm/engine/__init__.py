"""The engine: scheduling, deduplication, retries and result collection."""

from fastllm.engine.manager import RequestManager
from fastllm.engine.results import DUMMY_RESPONSE, ResponseWrapper

__all__ = ["DUMMY_RESPONSE", "RequestManager", "ResponseWrapper"]
