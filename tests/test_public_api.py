"""The public surface: every name of the design's API importable from ``fastllm``."""

from __future__ import annotations

import subprocess
import sys

import fastllm

DESIGN_NAMES = {
    "RequestBatch",
    "RequestManager",
    "ResponseWrapper",
    "TokenStats",
    "ProgressTracker",
    "Provider",
    "OpenAIProvider",
    "CacheProvider",
    "InMemoryCache",
    "DiskCache",
    "RedisCache",
    "compute_request_hash",
    "Message",
    "LLMRequest",
    "LLMResponse",
    "RateLimit",
    "RetryPolicy",
    "BatchError",
    "FastLLMError",
}


def test_all_is_sorted_and_complete() -> None:
    assert fastllm.__all__ == sorted(fastllm.__all__)
    assert set(fastllm.__all__) >= DESIGN_NAMES
    for name in fastllm.__all__:
        assert getattr(fastllm, name) is not None


def test_importing_is_light() -> None:
    # the openai types (about a second to import) and optional extras load on first use
    code = (
        "import sys, fastllm; "
        "print(sorted(m for m in ('openai', 'redis', 'ray', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_llm_models() -> None:
    request = fastllm.LLMRequest(model="m", messages=[{"role": "user", "content": "hi"}])
    assert request.to_body() == {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    response = fastllm.LLMResponse(
        request_id="r",
        response={
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "a"},
                }
            ],
        },
    )
    assert response.response.choices[0].message.content == "a"
