"""Providers: where requests are sent.

``OpenAIProvider`` (any OpenAI-compatible API), ``AzureOpenAIProvider``,
``AnthropicProvider`` (the Messages API behind the OpenAI format), ``Pool`` (several
providers as one, with failover), and ``JsonExchange`` for writing your own.
"""

from fastllm.providers.anthropic import AnthropicProvider
from fastllm.providers.azure import AzureOpenAIProvider
from fastllm.providers.base import Provider, ProviderResponse
from fastllm.providers.exchange import JsonAnswer, JsonExchange
from fastllm.providers.openai import OpenAIProvider
from fastllm.providers.pool import Pool
from fastllm.providers.pool_member import MemberStats, PoolMember

__all__ = [
    "AnthropicProvider",
    "AzureOpenAIProvider",
    "JsonAnswer",
    "JsonExchange",
    "MemberStats",
    "OpenAIProvider",
    "Pool",
    "PoolMember",
    "Provider",
    "ProviderResponse",
]
