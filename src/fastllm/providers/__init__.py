"""Providers: where requests are sent."""

from fastllm.providers.anthropic import AnthropicProvider
from fastllm.providers.azure import AzureOpenAIProvider
from fastllm.providers.base import Provider, ProviderResponse
from fastllm.providers.openai import OpenAIProvider

__all__ = [
    "AnthropicProvider",
    "AzureOpenAIProvider",
    "OpenAIProvider",
    "Provider",
    "ProviderResponse",
]
