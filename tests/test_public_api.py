"""The public surface: every name of the design's API importable from ``fastllm``."""

from __future__ import annotations

import ast
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


HEAVY_MODULES = (
    "aiohttp",
    "importlib.metadata",
    "numpy",
    "openai",
    "pydantic",
    "ray",
    "redis",
    "rich",
)


def _loaded_after(code: str) -> list[str]:
    """The heavy modules a fresh interpreter has loaded after running ``code``."""
    probe = f"{code}\nimport sys\nprint(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return list(ast.literal_eval(out.stdout.strip().splitlines()[-1]))


def test_importing_is_light() -> None:
    # the openai types (about a second to import), pydantic, rich, aiohttp, the
    # installed metadata and the optional extras all load on first use
    assert _loaded_after("import fastllm") == []


def test_a_quiet_run_loads_no_display_and_no_models() -> None:
    code = (
        "from fastllm import OpenAIProvider, RequestBatch, RequestManager\n"
        "from fastllm.testing import MockServer\n"
        "with MockServer() as server:\n"
        "    batch = RequestBatch()\n"
        "    question = [{'role': 'user', 'content': 'x'}]\n"
        "    batch.chat.completions.create(model='m', messages=question)\n"
        "    provider = OpenAIProvider(api_key='k', api_base=server.base_url)\n"
        "    manager = RequestManager(provider, show_progress=False)\n"
        "    [result] = manager.process_batch(batch)\n"
        "    assert result.ok and result.body['choices'][0]['message']['content'] == 'x'\n"
    )
    assert _loaded_after(code) == []


def test_version_is_the_installed_one() -> None:
    from importlib.metadata import version

    assert fastllm.__version__ == version("fastllm-kit")


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
