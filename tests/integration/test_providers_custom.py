"""The README's "Writing a provider" example, run against a small non-OpenAI JSON server.

The server speaks a text-generation API of its own (``POST /generate`` with
``{"inputs", "parameters"}``, answering ``{"generated_text", "details"}``, as
Hugging Face's TGI does); the provider below — kept under 60 lines, a test checks —
lets a batch written in the OpenAI format run against it, with retries, limits,
cache and typed errors from the engine.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator

import aiohttp.web
import orjson  # the example's imports: orjson and the three fastllm lines
import pytest

from fastllm import Provider, RequestBatch, RequestManager
from fastllm.errors import AuthenticationError, ResponseDecodingError
from fastllm.providers import JsonExchange, ProviderResponse

# --- the example (README: "Writing a provider") --------------------------------------


class GenerateProvider(Provider):
    """A server with its own JSON API: POST /generate {"inputs": ..., "parameters": ...}."""

    def __init__(self, api_base: str, api_key: str | None = None) -> None:
        super().__init__(api_key, api_base)
        self.url = f"{self.api_base}/generate"
        self.exchange = JsonExchange(self.api_base, api_key)  # typed errors, key redacted
        self.exchange.check(self.url, self.get_request_headers())

    def get_request_headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    async def make_request(self, session, request, timeout):  # type: ignore[no-untyped-def]
        body = request.body  # an OpenAI chat request, as the batch holds it
        prompt = "\n".join(str(m.get("content") or "") for m in body["messages"])
        limit = body.get("max_completion_tokens") or body.get("max_tokens") or 256
        payload = {"inputs": prompt, "parameters": {"max_new_tokens": limit}}
        answer = await self.exchange.post(
            session, self.url, orjson.dumps(payload), self.get_request_headers(), timeout
        )
        out = answer.body
        if not isinstance(out, dict) or not isinstance(out.get("generated_text"), str):
            raise ResponseDecodingError("no generated_text in the answer", retryable=False)
        details = out.get("details") or {}
        prompt_tokens = int(details.get("prompt_tokens", 0))
        completion_tokens = int(details.get("generated_tokens", 0))
        finish = {"length": "length"}.get(details.get("finish_reason"), "stop")
        message = {"role": "assistant", "content": out["generated_text"]}
        completion = {  # the shape every result reader expects
            "id": f"gen-{request.request_id[:16]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        return ProviderResponse(completion, None, answer.headers)


# --- end of the example ---------------------------------------------------------------

KEY = "gen-key-123"
_SEEN: set[str] = set()


async def _generate(request: aiohttp.web.Request) -> aiohttp.web.Response:
    """The non-OpenAI server: upper-cases the prompt; 401 without the key; 503 at first."""
    if request.headers.get("Authorization") != f"Bearer {KEY}":
        return aiohttp.web.json_response({"error": "Unauthorized"}, status=401)
    payload = await request.json()
    if payload["inputs"].endswith("flaky") and payload["inputs"] not in _SEEN:
        _SEEN.add(payload["inputs"])
        return aiohttp.web.json_response({"error": "overloaded"}, status=503)
    text = payload["inputs"].upper()
    details = {"finish_reason": "eos_token", "prompt_tokens": 4, "generated_tokens": 2}
    return aiohttp.web.json_response({"generated_text": text, "details": details})


@pytest.fixture
async def generate_server() -> AsyncIterator[str]:
    _SEEN.clear()
    app = aiohttp.web.Application()
    app.router.add_post("/generate", _generate)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def test_the_example_is_under_60_lines() -> None:
    source = inspect.getsource(GenerateProvider)
    assert len(source.strip().splitlines()) + 4 < 60  # the class and its four imports


async def test_a_batch_runs_against_the_custom_api(generate_server: str) -> None:
    provider = GenerateProvider(generate_server, api_key=KEY)
    manager = RequestManager(provider, show_progress=False, retry_delay=0.01)
    batch = RequestBatch()
    for text in ("hello", "world flaky"):
        batch.chat.completions.create(model="t", messages=[{"role": "user", "content": text}])
    results = await manager.aprocess_batch(batch)
    assert [r.response.choices[0].message.content for r in results] == ["HELLO", "WORLD FLAKY"]
    assert results[1].attempts == 2  # the 503 was retried by the engine
    assert results[0].usage is not None
    assert results[0].usage.total_tokens == 6

    wrong = GenerateProvider(generate_server, api_key="not-" + KEY)
    [denied] = await RequestManager(wrong, show_progress=False).aprocess_batch(batch_for("x"))
    assert isinstance(denied.error, AuthenticationError)
    assert KEY not in str(denied.error)


def batch_for(text: str) -> RequestBatch:
    batch = RequestBatch()
    batch.chat.completions.create(model="t", messages=[{"role": "user", "content": text}])
    return batch
