"""Batch builders shared by the integration tests."""

from __future__ import annotations

from fastllm import RequestBatch


def chat_batch(prompts: list[str], **params: object) -> RequestBatch:
    """One chat request per prompt (the mock server answers with the prompt)."""
    batch = RequestBatch()
    for text in prompts:
        batch.chat.completions.create(
            model="mock-model", messages=[{"role": "user", "content": text}], **params
        )
    return batch
