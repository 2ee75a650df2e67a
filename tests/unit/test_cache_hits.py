"""The pieces of the cached fast path: hit results, token counts, shape checks, collecting."""

from __future__ import annotations

import orjson
import pytest

from fastllm.cache import InMemoryCache
from fastllm.cache.codec import looks_like_object
from fastllm.engine.ordering import ResultList
from fastllm.engine.results import ResponseWrapper, total_tokens_in, total_tokens_of
from fastllm.errors import ResponseDecodingError
from fastllm.observe.stats import StatsCollector
from fastllm.requests.model import Endpoint, Request

ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hi"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}
RAW = orjson.dumps(ANSWER)


def request(order: int = 7, endpoint: Endpoint = Endpoint.CHAT_COMPLETIONS) -> Request:
    return Request(f"rid#{order}", endpoint, {"model": "m"}, "rid", order)


def test_a_hit_result_has_the_fields_of_a_cached_answer() -> None:
    result = ResponseWrapper.from_cache(request(), RAW)
    assert (result.request_id, result.order, result.custom_id) == ("rid", 7, "rid#7")
    assert result.endpoint is Endpoint.CHAT_COMPLETIONS
    assert result.ok
    assert result.cached
    assert not result.deduplicated
    assert (result.attempts, result.latency, result.ttft, result.error) == (0, None, None, None)
    assert result.body == ANSWER
    assert result.response.choices[0].message.content == "hi"
    assert result.usage is not None
    assert result.usage.total_tokens == 5


def test_a_shared_copy_keeps_the_answer_and_marks_the_duplicate() -> None:
    leader = ResponseWrapper.from_cache(request(), RAW)
    copy = leader.shared_with(9, "other")
    assert (copy.order, copy.custom_id, copy.request_id) == (9, "other", "rid")
    assert copy.cached
    assert copy.deduplicated
    assert not leader.deduplicated
    assert copy.body == leader.body


def test_bytes_are_decoded_once_and_the_same_dict_is_returned() -> None:
    result = ResponseWrapper.from_cache(request(), RAW)
    body = result.body
    assert body is result.body
    assert (
        ResponseWrapper(
            request_id="r", order=0, custom_id="c", endpoint=Endpoint.CHAT_COMPLETIONS, body=ANSWER
        ).body
        == ANSWER
    )


@pytest.mark.parametrize("raw", [b'{"choices": [tru}', b"[1, 2]"])
def test_a_corrupt_hit_fails_when_read(raw: bytes) -> None:
    result = ResponseWrapper.from_cache(request(), raw)
    assert result.ok  # nothing was decoded yet
    with pytest.raises(ResponseDecodingError):
        _ = result.body


def test_an_embeddings_hit_reads_its_vectors() -> None:
    body = {
        "object": "list",
        "model": "e",
        "data": [
            {"object": "embedding", "index": 1, "embedding": [0.5]},
            {"object": "embedding", "index": 0, "embedding": [0.25]},
        ],
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }
    result = ResponseWrapper.from_cache(request(0, Endpoint.EMBEDDINGS), orjson.dumps(body))
    assert result.is_embedding_response
    assert result.embeddings == [[0.25], [0.5]]


ANSWERS = [
    RAW,
    b'{"usage":{"prompt_tokens":3,"total_tokens": 15 }}',
    b'{"usage":{"total_tokens":7,"prompt_tokens_details":{"cached_tokens":1}}}',
    b'{"choices":[]}',
    b'{"usage":{"total_tokens":"many"}}',
    b'{"choices":[{"message":{"content":"\\"total_tokens\\": 99"}}],"usage":{"total_tokens":4}}',
    b'{"x":{"total_tokens":100},"usage":{"total_tokens":6}}',  # the last one is the usage's
    b'{\n  "usage": {\n    "total_tokens" : 8\n  }\n}',
]


@pytest.mark.parametrize("raw", ANSWERS)
def test_the_bulk_token_count_reads_each_answer_like_the_single_one(raw: bytes) -> None:
    expected = total_tokens_of(orjson.loads(raw)) if b"many" not in raw else 0
    assert total_tokens_of(None, raw) == expected
    assert total_tokens_in([raw]) == expected


def test_the_bulk_token_count_sums_a_chunk() -> None:
    assert total_tokens_in(ANSWERS) == 5 + 15 + 7 + 0 + 0 + 4 + 6 + 8
    assert total_tokens_in([]) == 0
    assert total_tokens_in([b'{"usage":{"total_tokens":3}}', b"{}"] * 1000) == 3000


def test_the_token_count_reads_odd_answers_in_linear_time() -> None:
    absurd = b'{"usage":{"total_tokens":' + b"9" * 5000 + b"}}"
    assert total_tokens_in([absurd]) == total_tokens_of(None, absurd) == 0
    many = b'{"x":[' + b'{"total_tokens":1},' * 200_000 + b'{"total_tokens":2}]}'
    assert total_tokens_in([many, many]) == 4
    assert total_tokens_in([b'"total_tokens"', b'{"total_tokens":']) == 0


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"{}", True),
        (RAW, True),
        (b' \n{"a": 1}\t ', True),
        (b"[1]", False),
        (b"{", False),
        (b" }", False),
        (b"", False),
        (bytearray(b"{}"), False),
        ("{}", False),
        (None, False),
    ],
)
def test_looks_like_object(data: object, expected: bool) -> None:
    assert looks_like_object(data) is expected


def test_result_list_places_results_by_order() -> None:
    collected = ResultList()
    for order in (2, 0, 5, 1, 3, 4):
        collected.add(ResponseWrapper.from_cache(request(order), RAW))
    assert [r.order for r in collected.results()] == [0, 1, 2, 3, 4, 5]


def test_result_list_reports_missing_orders() -> None:
    collected = ResultList()
    collected.add(ResponseWrapper.from_cache(request(3), RAW))
    with pytest.raises(RuntimeError, match=r"\[0, 1, 2\]"):
        collected.results()


def test_cache_answered_counts_hits_and_saved_tokens() -> None:
    stats = StatsCollector()
    stats.reset(10)
    stats.cache_answered(4, tokens=20)
    stats.completed(1, cached=False, shared=1, tokens=5)  # a duplicate of a hit
    snapshot = stats.snapshot()
    assert (snapshot.cache_hits, snapshot.succeeded, snapshot.deduplicated) == (4, 5, 1)
    assert snapshot.saved_tokens == 25
    assert snapshot.cache_hit_ratio == 1.0
    assert snapshot.total_tokens == 0  # nothing was billed


async def test_raw_reads_refresh_recency_only_when_bounded() -> None:
    bounded = InMemoryCache(max_entries=2)
    await bounded.put_many({"a": RAW, "b": RAW})
    assert set(await bounded.get_many_raw(["a", "zz"])) == {"a"}  # a is now the newest
    await bounded.put("c", RAW)
    assert set(await bounded.get_many_raw(["a", "b", "c"])) == {"a", "c"}
    assert (bounded.stats().hits, bounded.stats().misses) == (3, 2)

    unbounded = InMemoryCache()
    await unbounded.put_many({f"k{i}": RAW for i in range(100)})
    found = await unbounded.get_many_raw([f"k{i}" for i in range(150)])
    assert found == {f"k{i}": RAW for i in range(100)}
    assert (unbounded.stats().hits, unbounded.stats().misses) == (100, 50)


async def test_raw_reads_drop_expired_entries() -> None:
    now = [0.0]
    cache = InMemoryCache(ttl=10.0, clock=lambda: now[0])
    await cache.put("old", RAW)
    now[0] = 6.0
    await cache.put("new", RAW)
    now[0] = 10.0
    assert set(await cache.get_many_raw(["old", "new"])) == {"new"}
    assert cache.stats().entries == 1
    assert cache.stats().size_bytes == len(RAW)
