"""RequestBatch: OpenAI Batch format, what is sent, merge order, JSONL files, splitting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastllm import RequestBatch, RequestFormatError, compute_request_hash
from fastllm.errors import ConfigurationError

MESSAGES = [{"role": "user", "content": "hello"}]


def test_create_returns_request_id_and_writes_a_batch_line() -> None:
    batch = RequestBatch()
    rid = batch.chat.completions.create(model="gpt-x", messages=MESSAGES)
    assert len(batch) == 1
    line = batch.requests[0]
    assert set(line) == {"custom_id", "method", "url", "body"}
    assert line["custom_id"] == f"{rid}#0"
    assert line["method"] == "POST"
    assert line["url"] == "/v1/chat/completions"
    assert line["body"] == {"model": "gpt-x", "messages": MESSAGES}


def test_only_what_the_caller_wrote_is_sent() -> None:
    batch = RequestBatch()
    batch.chat.completions.create(
        model="m", messages=MESSAGES, max_completion_tokens=20, top_k=5, temperature=None
    )
    body = batch.requests[0]["body"]
    assert body == {"model": "m", "messages": MESSAGES, "max_completion_tokens": 20, "top_k": 5}


def test_every_openai_parameter_passes_through_untouched() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    params = {
        "temperature": 0.2,
        "top_p": 0.9,
        "n": 2,
        "stop": ["\n"],
        "max_tokens": 10,
        "presence_penalty": 0.1,
        "frequency_penalty": -0.1,
        "logit_bias": {"50256": -100},
        "user": "u1",
        "response_format": {"type": "json_object"},
        "seed": 7,
        "tools": tools,
        "tool_choice": "auto",
        "stream": True,
        "stream_options": {"include_usage": True},
        "reasoning_effort": "low",
    }
    batch = RequestBatch()
    batch.chat.completions.create(model="m", messages=MESSAGES, **params)
    assert batch.requests[0]["body"] == {"model": "m", "messages": MESSAGES, **params}


def test_embeddings_line() -> None:
    batch = RequestBatch()
    rid = batch.embeddings.create(
        model="e", input=["a", "b"], dimensions=8, encoding_format="base64"
    )
    line = batch.requests[0]
    assert line["url"] == "/v1/embeddings"
    assert line["body"] == {
        "model": "e",
        "input": ["a", "b"],
        "dimensions": 8,
        "encoding_format": "base64",
    }
    assert rid == compute_request_hash(line["body"], "/v1/embeddings")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"messages": MESSAGES}, "model"),
        ({"model": "", "messages": MESSAGES}, "model"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": "hi"}, "messages"),
        ({"model": "m", "messages": [{"content": "no role"}]}, "messages[0]"),
        ({"model": "m", "messages": MESSAGES, "temperature": "hot"}, "temperature"),
        ({"model": "m", "messages": MESSAGES, "n": 1.5}, "n"),
        ({"model": "m", "messages": MESSAGES, "stream": "yes"}, "stream"),
        ({"model": "m", "messages": MESSAGES, "max_tokens": True}, "max_tokens"),
    ],
)
def test_bad_chat_requests_are_refused_at_create(kwargs: dict, field: str) -> None:
    batch = RequestBatch()
    with pytest.raises(RequestFormatError) as info:
        batch.chat.completions.create(**kwargs)
    assert info.value.field == field
    assert field in str(info.value)
    assert len(batch) == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"model": "e"}, "input"),
        ({"model": "e", "input": []}, "input"),
        ({"model": "e", "input": [1, "a"]}, "input"),
        ({"model": "e", "input": "a", "dimensions": 0}, "dimensions"),
        ({"model": "e", "input": "a", "dimensions": "8"}, "dimensions"),
    ],
)
def test_bad_embedding_requests_are_refused(kwargs: dict, field: str) -> None:
    with pytest.raises(RequestFormatError) as info:
        RequestBatch().embeddings.create(**kwargs)
    assert info.value.field == field


def test_not_json_serialisable_body_is_refused() -> None:
    with pytest.raises(RequestFormatError, match="JSON"):
        RequestBatch().chat.completions.create(model="m", messages=MESSAGES, extra=object())


def test_unknown_endpoint_is_refused() -> None:
    with pytest.raises(RequestFormatError, match="unknown endpoint"):
        RequestBatch().add("/v1/completions", {"model": "m", "prompt": "x"})


def test_container_protocol() -> None:
    with RequestBatch() as batch:
        batch.chat.completions.create(model="m", messages=MESSAGES)
        batch.embeddings.create(model="e", input="x")
    assert len(batch) == 2
    assert [line["url"] for line in batch] == ["/v1/chat/completions", "/v1/embeddings"]
    assert "2 requests" in repr(batch)


def _batch(*contents: str) -> RequestBatch:
    batch = RequestBatch()
    for text in contents:
        batch.chat.completions.create(model="m", messages=[{"role": "user", "content": text}])
    return batch


def test_merge_renumbers_so_batches_come_back_batch_after_batch() -> None:
    first, second = _batch("a", "b"), _batch("c")
    merged = RequestBatch.merge([first, second])
    contents = [line["body"]["messages"][0]["content"] for line in merged]
    assert contents == ["a", "b", "c"]
    orders = [int(line["custom_id"].rsplit("#", 1)[1]) for line in merged]
    assert orders == [0, 1, 2]
    ids = [line["custom_id"].rsplit("#", 1)[0] for line in merged]
    assert ids == [line["custom_id"].rsplit("#", 1)[0] for line in [*first, *second]]
    assert second.requests[0]["custom_id"].endswith("#0")  # inputs untouched


def test_merge_keeps_foreign_custom_ids(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(
        json.dumps(
            {
                "custom_id": "task-7",
                "method": "POST",
                "url": "/v1/embeddings",
                "body": {"model": "e", "input": "x"},
            }
        )
        + "\n"
    )
    merged = RequestBatch.merge([_batch("a"), RequestBatch.from_jsonl(path)])
    assert merged.requests[1]["custom_id"] == "task-7"


def test_jsonl_round_trip(tmp_path: Path) -> None:
    batch = _batch("a", "b")
    batch.embeddings.create(model="e", input=["x", "y"])
    path = tmp_path / "batch.jsonl"
    batch.to_jsonl(path)
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    assert all(json.loads(line)["method"] == "POST" for line in lines)
    again = RequestBatch.from_jsonl(path)
    assert again.requests == batch.requests


def test_bad_jsonl_line_names_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    good = json.dumps(
        {
            "custom_id": "a",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": "e", "input": "x"},
        }
    )
    path.write_text(f"{good}\n\n{{not json\n{good}\n")
    with pytest.raises(RequestFormatError) as info:
        RequestBatch.from_jsonl(path)
    assert info.value.line == 3
    assert "line 3" in str(info.value)


def test_bad_lines_can_be_skipped_and_listed(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    good = {
        "custom_id": "a",
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": "e", "input": "x"},
    }
    rows = [
        json.dumps(good),
        "{broken",
        json.dumps({**good, "url": "/v1/unknown"}),
        json.dumps({**good, "body": {"input": "x"}}),
        json.dumps({**good, "method": "GET"}),
        json.dumps(good),
    ]
    path.write_text("\n".join(rows) + "\n")
    batch = RequestBatch.from_jsonl(path, on_error="skip")
    assert len(batch) == 2
    assert [bad.line_number for bad in batch.bad_lines] == [2, 3, 4, 5]
    assert batch.bad_lines[2].error.field == "model"
    assert batch.bad_lines[3].error.field == "method"


def test_from_jsonl_rejects_unknown_on_error(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text("")
    with pytest.raises(ConfigurationError, match="on_error"):
        RequestBatch.from_jsonl(path, on_error="ignore")  # type: ignore[arg-type]


def test_split_for_batch_api_one_endpoint_and_model_per_file() -> None:
    batch = RequestBatch()
    for i in range(7):
        batch.chat.completions.create(model="a" if i % 2 else "b", messages=MESSAGES)
    batch.embeddings.create(model="e", input="x")
    parts = batch.split_for_batch_api(max_lines=2)
    for part in parts:
        keys = {(line["url"], line["body"]["model"]) for line in part}
        assert len(keys) == 1
        assert len(part) <= 2
    assert sum(len(p) for p in parts) == len(batch)
    flat = sorted(line["custom_id"] for p in parts for line in p)
    assert flat == sorted(line["custom_id"] for line in batch)


def test_split_respects_the_byte_limit() -> None:
    batch = _batch(*["x" * 100 for _ in range(10)])
    size = len(json.dumps(batch.requests[0], separators=(",", ":"))) + 1
    parts = batch.split_for_batch_api(max_bytes=size * 3)
    assert [len(p) for p in parts] == [3, 3, 3, 1]
    with pytest.raises(RequestFormatError, match="byte"):
        batch.split_for_batch_api(max_bytes=10)


def test_lines_added_by_hand_are_still_checked_by_the_engine() -> None:
    from fastllm.requests import Request

    batch = _batch("a")
    batch.requests.append(
        {
            "custom_id": "mine",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": "e", "input": "x"},
        }
    )
    items = list(RequestBatch.prepared(batch))
    assert isinstance(items[0], Request)
    assert items[1] is batch.requests[1]  # not checked yet: the engine parses it
    assert list(RequestBatch.prepared(batch.requests)) == batch.requests
