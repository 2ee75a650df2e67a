"""A RequestBatch run by the engine: Requests made a chunk at a time, edited lines re-checked."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

from fastllm import OpenAIProvider, RequestBatch, compute_request_hash
from fastllm.requests import Request
from fastllm.testing import MockServer


def _batch(prompts: list[str]) -> RequestBatch:
    batch = RequestBatch()
    for text in prompts:
        batch.chat.completions.create(model="m", messages=[{"role": "user", "content": text}])
    return batch


def _contents(results: list[Any]) -> list[str]:
    return [r.response.choices[0].message.content for r in results]


class _Sampling(OpenAIProvider):
    """Counts the live Request objects every few hundred sends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls = 0
        self.live: list[int] = []

    async def make_request(self, session: Any, request: Request, timeout: float) -> Any:
        self.calls += 1
        if self.calls % 500 == 0:
            self.live.append(sum(1 for obj in gc.get_objects() if type(obj) is Request))
        return await super().make_request(session, request, timeout)


def test_the_engine_holds_the_requests_of_about_a_chunk_at_a_time(
    server: MockServer, make_manager, api_key: str
) -> None:
    n = 8_000
    provider = _Sampling(api_key=api_key, api_base=server.base_url)
    prompts = [f"p{i}" for i in range(n)]
    results = make_manager(provider, concurrency=20).process_batch(_batch(prompts))
    assert _contents(results) == prompts
    assert provider.live
    # a planning chunk (1,024) plus what is pending (2 x concurrency + 1,024), never all n
    assert max(provider.live) <= 1024 + 2 * 20 + 1024 + 64, provider.live


def test_edited_lines_run_as_they_now_are(provider: OpenAIProvider, make_manager) -> None:
    batch = _batch(["a", "b", "c", "d"])
    new_body = {"model": "m", "messages": [{"role": "user", "content": "new"}]}
    batch.requests[0]["body"] = new_body
    batch.requests[1]["custom_id"] = "renamed"
    batch.requests[2] = {**batch.requests[2], "custom_id": "copied"}
    batch.requests.append(
        {
            "custom_id": "by-hand",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "m", "messages": [{"role": "user", "content": "e"}]},
        }
    )
    results = make_manager(provider).process_batch(batch)
    assert _contents(results) == ["new", "b", "c", "d", "e"]
    assert results[0].request_id == compute_request_hash(new_body)
    assert [r.custom_id for r in results[1:3]] == ["renamed", "copied"]
    assert results[4].custom_id == "by-hand"
    for result, line in zip(results, batch.requests, strict=True):
        assert result.request_id == compute_request_hash(line["body"], line["url"])


def test_a_batch_read_from_jsonl_runs_in_order(
    provider: OpenAIProvider, make_manager, tmp_path: Path
) -> None:
    source = _batch([f"q{i}" for i in range(50)])
    source.requests[7]["body"]["temperature"] = None  # a value to clean, kept in the file
    path = tmp_path / "in.jsonl"
    source.to_jsonl(path)
    batch = RequestBatch.from_jsonl(path)
    results = make_manager(provider).process_batch(batch)
    assert _contents(results) == [f"q{i}" for i in range(50)]
    assert [r.custom_id for r in results] == [line["custom_id"] for line in source.requests]
