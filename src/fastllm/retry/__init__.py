"""Retry policy and classification of failures."""

from fastllm.retry.classify import is_retryable, parse_retry_after, parse_should_retry
from fastllm.retry.policy import RetryPolicy

__all__ = ["RetryPolicy", "is_retryable", "parse_retry_after", "parse_should_retry"]
