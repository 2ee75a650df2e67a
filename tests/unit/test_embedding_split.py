"""The embedding stage's arithmetic on its own: part plans, usage shares, order restored.

The stage is driven by a stand-in scheduler that answers every part locally (with
the mock's vectors), in reverse order, so nothing here touches the network.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import xxhash

from fastllm import OpenAIProvider, RequestBatch, RequestFormatError
from fastllm.engine.embedding_cache import decode_entry, encode_entry, item_key, key_prefix
from fastllm.engine.embedding_input import apportion, empty_input_error, input_items, plan_parts
from fastllm.engine.embeddings import EmbeddingStage
from fastllm.engine.results import ResponseWrapper
from fastllm.engine.scheduler import CacheMode, RunSettings
from fastllm.limits import RateLimiter, TokenEstimator
from fastllm.observe.stats import StatsCollector
from fastllm.requests.model import Endpoint, Request
from fastllm.requests.normalize import request_from_item
from fastllm.retry import RetryPolicy
from fastllm.testing import count_tokens, mock_embedding

# -- plan_parts --------------------------------------------------------------------------


def covers(parts: list[tuple[int, int]], count: int) -> bool:
    """Consecutive, non-empty, from 0 to count."""
    ends = [0] + [end for _, end in parts]
    return all(s == e for (s, _), e in zip(parts, ends, strict=False)) and ends[-1] == count


@pytest.mark.parametrize(
    ("count", "cap", "sizes"),
    [
        (10_000, 2048, [2048, 2048, 2048, 2048, 1808]),
        (2048, 2048, [2048]),
        (2049, 2048, [2048, 1]),
        (1, 2048, [1]),
        (7, 3, [3, 3, 1]),
    ],
)
def test_parts_by_count(count: int, cap: int, sizes: list[int]) -> None:
    parts = plan_parts(count, cap, 10**9)
    assert [end - start for start, end in parts] == sizes
    assert covers(parts, count)


def test_parts_by_tokens_stay_under_the_token_cap() -> None:
    tokens = [3, 4, 5, 1, 1, 1, 9, 2, 2]
    parts = plan_parts(len(tokens), 100, 10, tokens)
    assert covers(parts, len(tokens))
    assert all(sum(tokens[s:e]) <= 10 for s, e in parts)
    assert parts == [(0, 2), (2, 6), (6, 7), (7, 9)]


def test_parts_respect_both_caps_at_once() -> None:
    tokens = [1] * 10 + [50] * 3
    parts = plan_parts(len(tokens), 4, 60, tokens)
    assert covers(parts, len(tokens))
    assert all(e - s <= 4 and sum(tokens[s:e]) <= 60 for s, e in parts)


def test_an_item_over_the_token_cap_goes_alone() -> None:
    parts = plan_parts(3, 10, 5, [1, 50, 1])
    assert parts == [(0, 1), (1, 2), (2, 3)]


def test_no_items_no_parts() -> None:
    assert plan_parts(0, 10, 10) == []
    assert plan_parts(0, 10, 10, []) == []


# -- apportion, inputs, errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "weights"),
    [(100, [1, 1, 1]), (7, [3, 1, 9, 2]), (0, [5, 5]), (12345, list(range(1, 300)))],
)
def test_apportion_sums_exactly_and_follows_the_weights(total: int, weights: list[int]) -> None:
    shares = apportion(total, weights)
    assert sum(shares) == total
    assert all(share >= 0 for share in shares)
    whole = sum(weights)
    assert all(abs(s - total * w / whole) < 1 for s, w in zip(shares, weights, strict=True))


def test_input_items_by_shape() -> None:
    assert input_items("a") == (["a"], False)
    assert input_items(["a", "b"]) == (["a", "b"], False)
    assert input_items([1, 2, 3]) == ([[1, 2, 3]], True)
    assert input_items([[1], [2, 3]]) == ([[1], [2, 3]], True)


def test_empty_inputs_are_named_by_index() -> None:
    error = empty_input_error(["a", "b", "", "c"], "req-1")
    assert isinstance(error, RequestFormatError)
    assert error.field == "input[2]"
    assert "req-1" in str(error)
    assert "empty string" in str(error)
    assert empty_input_error("", None).field == "input"  # type: ignore[union-attr]
    assert empty_input_error([[1], []], None).field == "input[1]"  # type: ignore[union-attr]
    assert empty_input_error(["a"], None) is None
    assert empty_input_error([1, 2], None) is None


def test_the_item_key_is_the_documented_hash() -> None:
    body = {"model": "m", "input": ["x"], "dimensions": 8, "user": "u", "input_type": "query"}
    params = orjson.dumps(["m", 8, "float", {"input_type": "query"}], option=orjson.OPT_SORT_KEYS)
    expected = "ns:emb:" + xxhash.xxh3_128_hexdigest(params + b"\n" + orjson.dumps("x"))
    assert item_key("ns", key_prefix(body), "x") == expected
    # user does not change a vector; encoding_format absent means float
    same = {"model": "m", "input": "x", "dimensions": 8, "encoding_format": "float"}
    same["input_type"] = "query"
    assert key_prefix(same) == key_prefix(body)
    assert key_prefix({**body, "encoding_format": "base64"}) != key_prefix(body)
    assert key_prefix({**body, "dimensions": 16}) != key_prefix(body)
    assert item_key("ns", key_prefix(body), [1, 2]) != item_key("ns", key_prefix(body), "[1,2]")


def test_cache_entries_round_trip_and_reject_junk() -> None:
    assert decode_entry(encode_entry([0.5, -1.0], 3)) == ([0.5, -1.0], 3)
    assert decode_entry(encode_entry("AAAA", 1)) == ("AAAA", 1)
    assert decode_entry(b'{"embedding": [1.0]}') == ([1.0], 0)
    assert decode_entry(b"not json") is None
    assert decode_entry(b"[1, 2]") is None
    assert decode_entry(b'{"embedding": 3}') is None


# -- the stage with a stand-in scheduler ------------------------------------------------------

DIM = 8


def answer(request: Request) -> ResponseWrapper:
    """What the mock would answer, computed locally."""
    body = request.body
    if request.endpoint is Endpoint.CHAT_COMPLETIONS:
        reply: dict[str, Any] = {"choices": [], "usage": {"total_tokens": 1}}
    else:
        items, _ = input_items(body["input"])
        dim = body.get("dimensions", DIM)
        tokens = sum(count_tokens(i) if isinstance(i, str) else len(i) for i in items)
        reply = {
            "object": "list",
            "model": body["model"],
            "data": [
                {"object": "embedding", "index": i, "embedding": mock_embedding(item, dim)}
                for i, item in enumerate(items)
            ],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    return ResponseWrapper(
        request_id=request.request_id,
        order=request.order,
        custom_id=request.custom_id,
        endpoint=request.endpoint,
        body=reply,
        attempts=1,
    )


class StandIn:
    """Takes the stage's stream like the scheduler does; answers it last to first."""

    def __init__(self) -> None:
        self.sent: list[Request] = []
        self.emit: Any = None

    async def run(self, *, chunks: AsyncIterator[list[object]]) -> None:
        order = 0
        async for chunk in chunks:
            for item in chunk:
                request = request_from_item(item, order)
                assert request.order == order
                self.sent.append(request)
                order += 1
        for request in reversed(self.sent):
            self.emit(answer(request))


def run_stage(
    items: list[Any], cache_mode: CacheMode = "off", **options: Any
) -> tuple[list[ResponseWrapper], StandIn, StatsCollector]:
    settings = RunSettings(
        provider=OpenAIProvider(api_key="sk-unit", api_base="http://127.0.0.1:9/v1"),
        concurrency=4,
        timeout=1.0,
        policy=RetryPolicy(),
        limiter=RateLimiter([]),
        estimator=TokenEstimator(use_tiktoken=False),
        cache=None,
        cache_mode=cache_mode,
        dedupe=True,
        max_cost=None,
        sleep=asyncio.sleep,
    )
    results: list[ResponseWrapper] = []
    stats = StatsCollector()
    stage = EmbeddingStage(settings, stats, results.append, **options)
    scheduler = StandIn()
    scheduler.emit = stage.emit
    asyncio.run(stage.run(scheduler, items))  # type: ignore[arg-type]
    return sorted(results, key=lambda r: r.order), scheduler, stats


def vectors(result: ResponseWrapper) -> list[list[float]]:
    return result.embeddings


def test_a_big_input_is_split_by_count_and_reassembled_in_order() -> None:
    texts = [f"t{i}" for i in range(1000)]
    batch = RequestBatch()
    batch.embeddings.create(model="m", input=texts)
    (result,), scheduler, stats = run_stage(list(RequestBatch.prepared(batch)), max_inputs=300)
    assert [len(r.body["input"]) for r in scheduler.sent] == [300, 300, 300, 100]
    assert all(r.part for r in scheduler.sent)
    assert result.ok
    assert result.order == 0
    assert result.custom_id == batch.requests[0]["custom_id"]
    assert [d["index"] for d in result.body["data"]] == list(range(1000))
    assert vectors(result) == [mock_embedding(t, DIM) for t in texts]
    expected_tokens = sum(count_tokens(t) for t in texts)
    assert result.usage.prompt_tokens == expected_tokens  # type: ignore[union-attr]
    assert stats.completed_count == 1


def test_a_big_input_is_split_by_tokens() -> None:
    texts = ["x" * 40] * 3 + [f"{i:040d}" for i in range(20)]  # 10 tokens each (heuristic)
    (result,), scheduler, _ = run_stage([{"model": "m", "input": texts}], max_tokens=35)
    assert all(len(r.body["input"]) <= 3 for r in scheduler.sent)
    # the three equal texts are sent once
    assert sum(len(r.body["input"]) for r in scheduler.sent) == 21
    assert vectors(result) == [mock_embedding(t, DIM) for t in texts]


def test_small_requests_pass_through_untouched() -> None:
    batch = RequestBatch()
    batch.chat.completions.create(model="c", messages=[{"role": "user", "content": "hi"}])
    batch.embeddings.create(model="m", input=["a", "b"])
    items = list(RequestBatch.prepared(batch))
    results, scheduler, stats = run_stage(items)
    assert scheduler.sent == items  # the very same objects, nothing split
    assert [r.order for r in results] == [0, 1]
    assert stats.completed_count == 0  # the scheduler counts those


def test_orders_after_a_split_map_back_to_the_callers() -> None:
    items: list[Any] = []
    for i in range(5):
        items.append({"model": "c", "messages": [{"role": "user", "content": f"q{i}"}]})
        items.append({"model": "m", "input": [f"a{i}", f"b{i}", f"c{i}"]})
    results, scheduler, _ = run_stage(items, max_inputs=2)
    assert len(scheduler.sent) == 5 + 10
    assert [r.order for r in results] == list(range(10))
    for i in range(5):
        assert results[2 * i].endpoint is Endpoint.CHAT_COMPLETIONS
        assert vectors(results[2 * i + 1]) == [mock_embedding(f"{x}{i}", DIM) for x in "abc"]


def test_packing_shares_requests_but_never_mixes_parameters() -> None:
    items: list[Any] = []
    for i in range(30):
        model = "m1" if i % 3 else "m2"
        items.append({"model": model, "input": [f"p{i}"] * (1 + i % 2) + [f"q{i}"]})
    items.append({"model": "m1", "input": ["p1"], "dimensions": 4})
    results, scheduler, stats = run_stage(items, pack=True, max_inputs=8)
    for request in scheduler.sent:
        assert request.part
        assert len(request.body["input"]) <= 8
    by_params = {(r.body["model"], r.body.get("dimensions")) for r in scheduler.sent}
    assert by_params == {("m1", None), ("m2", None), ("m1", 4)}
    for i, result in enumerate(results[:30]):
        texts = [f"p{i}"] * (1 + i % 2) + [f"q{i}"]
        assert vectors(result) == [mock_embedding(t, DIM) for t in texts]
        assert result.body["model"] == ("m1" if i % 3 else "m2")
    assert vectors(results[30]) == [mock_embedding("p1", 4)]
    # usage shares add up to what was billed
    billed = sum(answer(r).body["usage"]["prompt_tokens"] for r in scheduler.sent)  # type: ignore[index]
    assert sum(r.usage.prompt_tokens for r in results) == billed  # type: ignore[union-attr]
    assert stats.completed_count == 31


def test_identical_requests_wait_for_the_first() -> None:
    big = {"model": "m", "input": [f"t{i}" for i in range(10)]}
    results, scheduler, stats = run_stage([big, dict(big), dict(big)], max_inputs=4)
    assert len(scheduler.sent) == 3
    assert [r.deduplicated for r in results] == [False, True, True]
    assert all(vectors(r) == vectors(results[0]) for r in results)
    snapshot = stats.snapshot()
    assert snapshot.succeeded == 3
    assert snapshot.deduplicated == 2


def test_bad_items_fail_alone_with_the_callers_order() -> None:
    items: list[Any] = [
        {"model": "m", "input": ["a", ""]},
        "not a request",
        {"model": "m", "input": ["b"]},
    ]
    results, scheduler, _ = run_stage(items, pack=True)
    assert [r.order for r in results] == [0, 1, 2]
    assert isinstance(results[0].error, RequestFormatError)
    assert results[0].error.field == "input[1]"
    assert isinstance(results[1].error, RequestFormatError)
    assert results[1].custom_id == "#1"
    assert results[2].ok
    assert [r.body["input"] for r in scheduler.sent] == [["b"]]
