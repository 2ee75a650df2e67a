"""compute_request_hash: stable, order-independent, sensitive to every sent value."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from fastllm import RequestBatch, compute_request_hash
from fastllm.requests import request_from_item

MESSAGES = [{"role": "user", "content": "hi"}]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)
# "type" (the reference's endpoint selector) and the tracking keys are not sent, so not hashed
sent_keys = st.text(min_size=1, max_size=8).filter(
    lambda key: key not in {"type", "_order_id", "_request_id", "model", "messages"}
)
bodies = st.dictionaries(sent_keys, json_values, max_size=6).map(
    lambda extra: {"model": "m", "messages": MESSAGES, **extra}
)


@given(bodies, st.randoms())
def test_key_order_never_changes_the_id(body: dict, rnd) -> None:
    items = list(body.items())
    rnd.shuffle(items)
    assert compute_request_hash(dict(items)) == compute_request_hash(body)


@given(bodies, sent_keys, json_values)
def test_any_change_of_a_sent_value_changes_the_id(body: dict, key: str, value) -> None:
    changed = dict(body)
    if value is None or changed.get(key) == value:
        return
    changed[key] = value
    assert compute_request_hash(changed) != compute_request_hash(body)


def test_none_values_and_tracking_keys_are_absent() -> None:
    base = {"model": "m", "messages": MESSAGES}
    assert compute_request_hash({**base, "temperature": None}) == compute_request_hash(base)
    tracked = {**base, "_order_id": 5, "_request_id": "abc"}
    assert compute_request_hash(tracked) == compute_request_hash(base)


def test_sampling_parameters_are_part_of_the_key() -> None:
    base = {"model": "m", "messages": MESSAGES}
    ids = {
        compute_request_hash(body)
        for body in (
            base,
            {**base, "temperature": 0.5},
            {**base, "seed": 1},
            {**base, "n": 2},
            {**base, "tools": []},
            {**base, "response_format": {"type": "json_object"}},
            {**base, "vendor_extra": 1},
        )
    }
    assert len(ids) == 7


def test_endpoint_is_part_of_the_key() -> None:
    body = {"model": "m", "input": "x"}
    assert compute_request_hash(body, "/v1/embeddings") != compute_request_hash(
        body, "/v1/chat/completions"
    )
    assert compute_request_hash(body) == compute_request_hash(body, "/v1/embeddings")
    assert compute_request_hash({**body, "type": "embedding"}) == compute_request_hash(body)


def test_same_id_whichever_way_the_request_enters(tmp_path: Path) -> None:
    batch = RequestBatch()
    rid = batch.chat.completions.create(model="m", messages=MESSAGES, temperature=0.0)
    body = {"model": "m", "messages": MESSAGES, "temperature": 0.0}
    path = tmp_path / "b.jsonl"
    path.write_text(
        json.dumps(
            {"custom_id": "x", "method": "POST", "url": "/v1/chat/completions", "body": body}
        )
    )
    from_file = RequestBatch.from_jsonl(path).requests[0]
    assert rid == compute_request_hash(body)
    assert rid == request_from_item(body, 0).request_id
    assert rid == request_from_item({**body, "type": "chat_completion"}, 0).request_id
    assert rid == request_from_item(from_file, 3).request_id
    assert rid == request_from_item(batch.requests[0], 9).request_id


def test_tracking_keys_are_never_sent() -> None:
    request = request_from_item(
        {"model": "m", "messages": MESSAGES, "_order_id": 1, "_request_id": "z"}, 0
    )
    assert "_order_id" not in request.body
    assert "_request_id" not in request.body
