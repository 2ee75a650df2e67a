"""Providers: where requests are sent."""

from fastllm.providers.anthropic import AnthropicProvider
from fastllm.providers.base import Provider, ProviderResponse
from fastllm.providers.openai import OpenAIProvider

__all__ = ["AnthropicProvider", "OpenAIProvider", "Provider", "ProviderResponse"]
