"""RequestBatch: OpenAI Batch format, what is sent, merge order, JSONL files, splitting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastllm import RequestBatch, RequestFormatError, compute_request_hash
from fastllm.errors import ConfigurationError
from fastllm.requests import request_from_item

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


# -- what the engine runs for a batch's lines (built from the lines when it plans) --------


def _planned(batch: RequestBatch) -> list:
    return list(RequestBatch.prepared(batch))


def test_every_created_line_is_planned_as_its_checked_request() -> None:
    from fastllm.requests import Request

    batch = _batch("a", "b")
    rid = batch.embeddings.create(model="e", input=["x"])
    items = _planned(batch)
    assert all(isinstance(item, Request) for item in items)
    for order, (item, line) in enumerate(zip(items, batch.requests, strict=True)):
        assert item.order == order
        assert item.custom_id == line["custom_id"]
        assert item.body is line["body"]  # the line's own body: nothing copied
        assert item.url == line["url"]
        assert item.request_id == compute_request_hash(line["body"], line["url"])
    assert items[2].request_id == rid


def test_create_builds_the_body_in_parameter_order_without_none_or_tracking_keys() -> None:
    batch = RequestBatch()
    batch.chat.completions.create(
        messages=MESSAGES,
        model="m",
        seed=3,
        temperature=0.5,
        top_k=None,
        zeta=1,
        alpha=2,
        _order_id=4,
        _request_id="x",
    )
    body = batch.requests[0]["body"]
    assert list(body) == ["model", "messages", "temperature", "seed", "zeta", "alpha"]
    batch.embeddings.create(user="u", input="x", model="e", dimensions=None, extra_field=[1])
    assert list(batch.requests[1]["body"]) == ["model", "input", "user", "extra_field"]


def test_the_first_wrong_field_in_openai_order_is_named_whatever_the_key_order() -> None:
    body = {"n": 1.5, "model": "m", "messages": MESSAGES, "temperature": "hot"}
    with pytest.raises(RequestFormatError) as info:
        RequestBatch().add("/v1/chat/completions", body)
    assert info.value.field == "temperature"


def test_add_copies_the_callers_body() -> None:
    batch = RequestBatch()
    body = {"model": "m", "messages": MESSAGES, "temperature": None}
    rid = batch.add("/v1/chat/completions", body)
    body["messages"] = [{"role": "user", "content": "changed"}]  # the caller reuses its dict
    (item,) = _planned(batch)
    assert item.body == {"model": "m", "messages": MESSAGES}
    assert item.request_id == rid
    assert "temperature" in body  # the caller's dict is not cleaned in place


def test_a_line_whose_body_was_replaced_is_checked_again() -> None:
    batch = _batch("a", "b")
    new_body = {"model": "m", "messages": [{"role": "user", "content": "new"}]}
    batch.requests[0]["body"] = new_body
    first, second = _planned(batch)
    assert first is batch.requests[0]  # parsed by the engine: new body, new id
    assert request_from_item(first, 0).request_id == compute_request_hash(new_body)
    assert second.body["messages"][0]["content"] == "b"


def test_a_line_whose_url_or_method_was_changed_is_checked_again() -> None:
    batch = _batch("a", "b")
    batch.requests[0]["url"] = "/v1/embeddings"
    batch.requests[1]["method"] = "GET"
    first, second = _planned(batch)
    assert first is batch.requests[0]
    assert second is batch.requests[1]
    with pytest.raises(RequestFormatError, match="method"):
        request_from_item(second, 1)


def test_an_edited_custom_id_is_the_one_planned() -> None:
    batch = _batch("a")
    rid = batch.requests[0]["custom_id"].split("#")[0]
    batch.requests[0]["custom_id"] = "mine"
    (item,) = _planned(batch)
    assert item.custom_id == "mine"
    assert item.request_id == rid  # the id is the content's, not the custom id's


def test_lines_removed_inserted_or_replaced_by_hand_keep_their_own_ids() -> None:
    from fastllm.requests import Request

    batch = _batch("a", "b", "c")
    del batch.requests[0]
    batch.requests.insert(1, {**batch.requests[1], "custom_id": "copy"})
    batch.chat.completions.create(model="m", messages=[{"role": "user", "content": "d"}])
    batch.requests.append(
        {
            "custom_id": "hand",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": "e", "input": "x"},
        }
    )
    batch.chat.completions.create(model="m", messages=[{"role": "user", "content": "e"}])
    planned = [request_from_item(item, order) for order, item in enumerate(_planned(batch))]
    assert [r.body.get("messages", [{"content": "x"}])[0]["content"] for r in planned] == [
        "b",
        "c",
        "c",
        "d",
        "x",
        "e",
    ]
    for order, (request, line) in enumerate(zip(planned, batch.requests, strict=True)):
        assert request.order == order
        assert request.custom_id == line["custom_id"]
        assert request.request_id == compute_request_hash(line["body"], line["url"])
    assert isinstance(_planned(batch)[-1], Request)  # lines added after still reuse their check


def test_a_batch_planned_while_it_grows_plans_the_new_lines_too() -> None:
    batch = _batch("a")
    seen = []
    for item in RequestBatch.prepared(batch):
        seen.append(item.body["messages"][0]["content"])
        if len(batch) < 3:
            batch.chat.completions.create(model="m", messages=[{"role": "user", "content": "more"}])
    assert seen == ["a", "more", "more"]


def test_from_jsonl_keeps_the_line_and_plans_the_cleaned_request(tmp_path: Path) -> None:
    from fastllm.requests import Request

    body = {"model": "m", "messages": MESSAGES}
    rows = [
        {"custom_id": "clean", "method": "POST", "url": "/v1/chat/completions", "body": body},
        {"custom_id": "nones", "url": "chat/completions", "body": {**body, "seed": None}},
        {"method": "POST", "url": "/v1/chat/completions", "body": body},
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n\n".join(json.dumps(row) for row in rows) + "\n")
    batch = RequestBatch.from_jsonl(path)
    assert batch.requests == rows  # the lines as written
    items = _planned(batch)
    assert all(isinstance(item, Request) for item in items)
    assert [item.order for item in items] == [0, 1, 2]
    assert items[0].body is batch.requests[0]["body"]
    assert items[1].body == body  # cleaned for sending; the line keeps its None
    assert batch.requests[1]["body"]["seed"] is None
    rid = compute_request_hash(body)
    assert {item.request_id for item in items} == {rid}
    assert [item.custom_id for item in items[:2]] == ["clean", "nones"]
    assert items[2].custom_id == f"{rid}#4"  # generated from its line index, as before
    merged = RequestBatch.merge([batch])
    assert [line["custom_id"] for line in merged] == ["clean", "nones", f"{rid}#2"]
    assert merged.requests[1]["body"] == body


def test_merging_a_batch_with_itself() -> None:
    batch = _batch("a", "b")
    merged = RequestBatch.merge([batch, batch])
    items = _planned(merged)
    assert [item.body["messages"][0]["content"] for item in items] == ["a", "b", "a", "b"]
    assert [item.order for item in items] == [0, 1, 2, 3]
    assert items[0].request_id == items[2].request_id
    assert [line["custom_id"].rsplit("#", 1)[1] for line in merged] == ["0", "1", "2", "3"]


def test_a_pickled_batch_plans_the_same() -> None:
    import pickle

    batch = _batch("a", "b")
    again = pickle.loads(pickle.dumps(batch))
    assert again.requests == batch.requests
    assert _planned(again) == _planned(batch)
