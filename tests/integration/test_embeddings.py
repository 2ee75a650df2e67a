"""Embeddings at corpus scale against the real mock server: split, pack, per-item cache."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fastllm import (
    ConfigurationError,
    DiskCache,
    InMemoryCache,
    OpenAIProvider,
    RequestBatch,
    RequestFormatError,
)
from fastllm.cache import CacheProvider
from fastllm.errors import BadRequestError, NotFoundError
from fastllm.limits import TokenEstimator
from fastllm.testing import MockServer, count_tokens, mock_embedding

DIM = 64  # the mock's default size


def texts(count: int, prefix: str = "text") -> list[str]:
    return [f"{prefix} number {i}" for i in range(count)]


def one_create(values: list[Any], **params: Any) -> RequestBatch:
    batch = RequestBatch()
    batch.embeddings.create(model=params.pop("model", "emb"), input=values, **params)
    return batch


def expected(values: list[Any], dim: int = DIM) -> np.ndarray:
    return np.asarray([mock_embedding(v, dim) for v in values], dtype=np.float32)


def assert_vectors(result: Any, values: list[Any], dim: int = DIM) -> None:
    assert result.ok, result.error
    array = result.embeddings_array()
    assert array.shape == (len(values), dim)
    np.testing.assert_allclose(array, expected(values, dim), rtol=1e-6, atol=1e-7)


def requests(server: MockServer) -> int:
    return int(server.stats()["requests"])


# -- splitting -----------------------------------------------------------------------------


def test_ten_thousand_texts_come_back_in_order_from_five_requests(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    corpus = texts(10_000)
    batch = one_create(corpus)
    manager = make_manager(provider)
    (result,) = manager.process_batch(batch)
    assert requests(server) == 5  # ceil(10_000 / 2048)
    assert_vectors(result, corpus)
    body = result.body
    assert body["object"] == "list"
    assert body["model"] == "emb"
    assert [d["index"] for d in body["data"]] == list(range(10_000))
    assert result.custom_id == batch.requests[0]["custom_id"]
    assert result.request_id == batch.requests[0]["custom_id"].split("#")[0]
    assert result.usage.prompt_tokens == server.stats()["prompt_tokens"]
    assert result.usage.total_tokens == sum(count_tokens(t) for t in corpus)
    assert result.response.data[9_999].index == 9_999  # a valid CreateEmbeddingResponse
    stats = manager.stats()
    assert stats.requests_completed == stats.succeeded == 1
    assert stats.sent == 5
    assert stats.prompt_tokens == result.usage.prompt_tokens


def test_the_token_cap_splits_too(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    corpus = [f"{i:040d}" for i in range(100)]  # 10 estimated tokens each
    manager = make_manager(
        provider, embedding_max_tokens=95, token_estimator=TokenEstimator(use_tiktoken=False)
    )
    (result,) = manager.process_batch(one_create(corpus))
    assert requests(server) == 12  # 9 texts per request
    assert_vectors(result, corpus)


def test_float_and_base64_give_the_same_vectors(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    corpus = texts(50)
    manager = make_manager(provider, embedding_max_inputs=16)
    floats, packed = manager.process_batch(
        RequestBatch.merge([one_create(corpus), one_create(corpus, encoding_format="base64")])
    )
    assert requests(server) == 8
    assert all(isinstance(d["embedding"], list) for d in floats.body["data"])
    assert all(isinstance(d["embedding"], str) for d in packed.body["data"])
    raw = base64.b64decode(packed.body["data"][7]["embedding"])
    assert np.frombuffer(raw, dtype="<f4").tolist() == floats.embeddings[7]
    assert_vectors(packed, corpus)
    np.testing.assert_array_equal(floats.embeddings_array(), packed.embeddings_array())


def test_dimensions_and_token_arrays(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    corpus = texts(25)
    arrays = [[i, i + 1, i + 2][: 1 + i % 3] for i in range(25)]
    batch = one_create(corpus, dimensions=16)
    batch.embeddings.create(model="emb", input=arrays, dimensions=8)
    batch.embeddings.create(model="emb", input=[5, 6, 7])  # a single token array
    sized, tokens, single = make_manager(provider, embedding_max_inputs=10).process_batch(batch)
    assert requests(server) == 3 + 3 + 1
    assert_vectors(sized, corpus, 16)
    assert_vectors(tokens, arrays, 8)
    assert_vectors(single, [[5, 6, 7]])
    assert tokens.usage.prompt_tokens == sum(len(a) for a in arrays)


def test_identical_texts_within_a_request_are_sent_once(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    corpus = [f"t{i % 7}" for i in range(30)]
    (result,) = make_manager(provider, embedding_max_inputs=4).process_batch(one_create(corpus))
    assert requests(server) == 2  # 7 distinct texts, 4 per request
    assert_vectors(result, corpus)


# -- the per-item cache ------------------------------------------------------------------------


@pytest.fixture(params=["memory", "disk"])
def item_cache(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CacheProvider]:
    if request.param == "memory":
        yield InMemoryCache()
        return
    cache = DiskCache(tmp_path / "cache")
    yield cache
    cache.close_sync()


def test_a_rerun_sends_only_the_new_texts(
    provider: OpenAIProvider, server: MockServer, make_manager, item_cache: CacheProvider
) -> None:
    corpus = texts(10_000)
    manager = make_manager(provider, caching_provider=item_cache)
    (first,) = manager.process_batch(one_create(corpus))
    assert requests(server) == 5
    assert not first.cached
    server.reset()
    grown = [*corpus, *texts(100, "new")]
    (second,) = manager.process_batch(one_create(grown))
    assert requests(server) == 1
    assert server.stats()["prompt_tokens"] == sum(count_tokens(t) for t in texts(100, "new"))
    assert_vectors(second, grown)
    np.testing.assert_array_equal(second.embeddings_array()[:10_000], first.embeddings_array())
    assert not second.cached  # partly answered from the network
    assert second.usage.prompt_tokens == sum(count_tokens(t) for t in grown)
    stats = manager.stats()
    assert (stats.requests_completed, stats.cache_hits, stats.sent) == (1, 0, 1)
    server.reset()
    (third,) = manager.process_batch(one_create(corpus))
    assert requests(server) == 0
    assert third.cached
    np.testing.assert_array_equal(third.embeddings_array(), first.embeddings_array())
    stats = manager.stats()
    assert (stats.requests_completed, stats.cache_hits, stats.sent) == (1, 1, 0)
    assert stats.saved_tokens == third.usage.total_tokens > 0


def test_cached_items_merge_in_order_across_creates(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    corpus = texts(40)
    cache = InMemoryCache()
    manager = make_manager(provider, caching_provider=cache)
    manager.process_batch(one_create(corpus[::2]))  # the even ones
    server.reset()
    batch = RequestBatch()
    batch.embeddings.create(model="emb", input=corpus)  # half cached
    batch.embeddings.create(model="emb", input=corpus[::4])  # all cached
    batch.embeddings.create(model="emb", input=corpus[1::2], dimensions=8)  # other key
    mixed, full, other = manager.process_batch(batch)
    assert requests(server) == 2
    assert_vectors(mixed, corpus)
    assert_vectors(full, corpus[::4])
    assert_vectors(other, corpus[1::2], 8)
    assert (mixed.cached, full.cached, other.cached) == (False, True, False)
    stats = manager.stats()
    assert stats.requests_completed == 3
    assert stats.cache_hits == 1


def test_refresh_writes_but_does_not_read_and_off_ignores_the_cache(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    corpus = texts(10)
    cache = InMemoryCache()
    manager = make_manager(provider, caching_provider=cache)
    manager.process_batch(one_create(corpus), cache="refresh")
    assert cache.stats().entries == 10
    manager.process_batch(one_create(corpus), cache="refresh")
    assert requests(server) == 2
    (result,) = manager.process_batch(one_create(corpus))
    assert requests(server) == 2
    assert result.cached
    (result,) = manager.process_batch(one_create(corpus), cache="off")
    assert requests(server) == 3
    assert not result.cached


# -- packing -------------------------------------------------------------------------------------


def test_many_small_creates_share_requests(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    corpus = texts(300)
    batch = RequestBatch()
    for text in corpus:
        batch.embeddings.create(model="emb", input=text)
    manager = make_manager(provider, pack_embeddings=True)
    results = manager.process_batch(batch)
    assert requests(server) <= 1 + -(-300 // 2048)
    assert len(results) == 300
    for text, result in zip(corpus, results, strict=True):
        assert_vectors(result, [text])
    assert sum(r.usage.prompt_tokens for r in results) == server.stats()["prompt_tokens"]
    stats = manager.stats()
    assert stats.requests_completed == stats.succeeded == 300


def test_packs_never_mix_models_or_parameters(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    batch = RequestBatch()
    for i in range(60):
        model = ("emb-a", "emb-b")[i % 2]
        batch.embeddings.create(model=model, input=[f"x{i}", f"y{i}"], dimensions=8 + i % 3)
    results = make_manager(provider, pack_embeddings=True).process_batch(batch)
    assert requests(server) == 6  # two models times three sizes
    for i, result in enumerate(results):
        assert result.body["model"] == ("emb-a", "emb-b")[i % 2]
        assert_vectors(result, [f"x{i}", f"y{i}"], 8 + i % 3)


def test_a_failing_pack_group_fails_only_its_creates(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    server.configure(known_models=["good"], unknown_model_status=404)
    batch = RequestBatch()
    for i in range(20):
        batch.embeddings.create(model="good" if i % 2 else "missing", input=f"w{i}")
    results = make_manager(provider, pack_embeddings=True).process_batch(batch)
    assert requests(server) == 2
    for i, result in enumerate(results):
        if i % 2:
            assert_vectors(result, [f"w{i}"])
        else:
            assert isinstance(result.error, NotFoundError)


# -- bad input ----------------------------------------------------------------------------------


def test_an_empty_string_fails_its_create_alone(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    batch = RequestBatch()
    batch.embeddings.create(model="emb", input=["a", "b"])
    batch.embeddings.create(model="emb", input=["c", "", "d"])
    batch.embeddings.create(model="emb", input="e")
    for packing in (False, True):
        server.reset()
        manager = make_manager(provider, pack_embeddings=packing)
        first, bad, last = manager.process_batch(batch)
        assert_vectors(first, ["a", "b"])
        assert_vectors(last, ["e"])
        assert isinstance(bad.error, RequestFormatError)
        assert bad.error.field == "input[1]"
        assert bad.custom_id == batch.requests[1]["custom_id"]
        assert requests(server) == (1 if packing else 2)
        stats = manager.stats()
        assert (stats.succeeded, stats.failed) == (2, 1)
        assert stats.errors_by_type == {"RequestFormatError": 1}


def test_too_many_dimensions_fail_only_that_request(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    batch = one_create(texts(30), dimensions=5000)
    batch.embeddings.create(model="emb", input=texts(30, "fine"))
    manager = make_manager(provider, embedding_max_inputs=10)
    too_big, fine = manager.process_batch(batch)
    assert isinstance(too_big.error, BadRequestError)
    assert too_big.error.status_code == 400
    assert_vectors(fine, texts(30, "fine"))
    stats = manager.stats()
    assert (stats.requests_completed, stats.succeeded, stats.failed) == (2, 1, 1)


def test_a_failed_part_fails_its_request_with_the_parts_error(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    server.configure(fail_first=1, fail_first_status=400)
    manager = make_manager(provider, embedding_max_inputs=10)
    manager.process_batch(one_create(texts(10)))  # the first part's body is now past fail_first
    (result,) = manager.process_batch(one_create(texts(25)))
    assert isinstance(result.error, BadRequestError)
    assert not result.body
    assert manager.stats().failed == 1


# -- streaming APIs and stats ---------------------------------------------------------------


def mixed_batch() -> tuple[RequestBatch, list[Any]]:
    batch = RequestBatch()
    inputs: list[Any] = []
    for i in range(12):
        if i % 3 == 0:
            batch.chat.completions.create(model="c", messages=[{"role": "user", "content": f"{i}"}])
            inputs.append(f"{i}")
        elif i % 3 == 1:
            corpus = texts(25, f"big{i}")
            batch.embeddings.create(model="emb", input=corpus)
            inputs.append(corpus)
        else:
            batch.embeddings.create(model="emb", input=f"small{i}")
            inputs.append([f"small{i}"])
    return batch, inputs


def check_mixed(results: list[Any], inputs: list[Any]) -> None:
    assert [r.order for r in results] == list(range(len(inputs)))
    for result, value in zip(results, inputs, strict=True):
        if isinstance(value, str):
            assert result.response.choices[0].message.content == value
        else:
            assert_vectors(result, value)


async def test_as_completed_with_split_requests(provider: OpenAIProvider, make_manager) -> None:
    batch, inputs = mixed_batch()
    manager = make_manager(provider, embedding_max_inputs=10, pack_embeddings=True)
    seen = [r async for r in manager.as_completed(batch)]
    check_mixed(sorted(seen, key=lambda r: r.order), inputs)
    assert manager.stats().requests_completed == 12


@pytest.mark.parametrize("max_ahead", [1, 2, 5, 1000])
async def test_iter_ordered_with_split_and_packed_requests(
    provider: OpenAIProvider, server: MockServer, make_manager, max_ahead: int
) -> None:
    server.configure(latency=0.002, jitter=0.002)
    batch, inputs = mixed_batch()
    manager = make_manager(provider, embedding_max_inputs=10, pack_embeddings=True)

    async def collect() -> list[Any]:
        return [r async for r in manager.iter_ordered(batch, max_ahead=max_ahead)]

    results = await asyncio.wait_for(collect(), timeout=60)  # a deadlock guard only
    check_mixed(results, inputs)


async def test_iter_ordered_over_many_chunks_of_split_requests(
    provider: OpenAIProvider, make_manager
) -> None:
    batch = RequestBatch()
    for i in range(1100):  # more than one planner chunk, each create split in three
        batch.embeddings.create(model="emb", input=[f"a{i}", f"b{i}", f"c{i}"])
    manager = make_manager(provider, embedding_max_inputs=1, concurrency=50)

    async def collect() -> list[Any]:
        return [r async for r in manager.iter_ordered(iter(batch.requests), max_ahead=50)]

    results = await asyncio.wait_for(collect(), timeout=120)  # a deadlock guard only
    assert [r.order for r in results] == list(range(1100))
    assert_vectors(results[1099], ["a1099", "b1099", "c1099"])


async def test_iter_ordered_over_cached_creates(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    batch = RequestBatch()
    for i in range(1500):
        batch.embeddings.create(model="emb", input=[f"c{i}"])
    manager = make_manager(provider, caching_provider=InMemoryCache(), pack_embeddings=True)
    await manager.aprocess_batch(batch)
    assert requests(server) == 2  # one pack per planner chunk of 1024 creates
    extra = one_create(["fresh", "c3"])
    mixed = RequestBatch.merge([batch, extra, batch])

    async def collect() -> list[Any]:
        return [r async for r in manager.iter_ordered(mixed, max_ahead=10)]

    results = await asyncio.wait_for(collect(), timeout=60)  # a deadlock guard only
    assert requests(server) == 3
    assert [r.order for r in results] == list(range(3001))
    assert sum(r.cached for r in results) == 3000
    assert_vectors(results[1500], ["fresh", "c3"])
    assert_vectors(results[3000], ["c1499"])


def test_dedupe_off_sends_every_copy_and_reads_no_cache(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    cache = InMemoryCache()
    manager = make_manager(provider, caching_provider=cache, dedupe=False)
    batch = RequestBatch.merge([one_create(["a", "a", "b"]), one_create(["a", "a", "b"])])
    results = manager.process_batch(batch)
    assert requests(server) == 2
    assert server.stats()["prompt_tokens"] == 2 * 3
    assert cache.stats().entries == 2  # written all the same
    results = manager.process_batch(batch)
    assert requests(server) == 4
    for result in results:
        assert_vectors(result, ["a", "a", "b"])
        assert not result.cached


def test_identical_split_requests_are_sent_once(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    batch = RequestBatch.merge([one_create(texts(30)) for _ in range(3)])
    manager = make_manager(provider, embedding_max_inputs=10)
    results = manager.process_batch(batch)
    assert requests(server) == 3
    assert [r.deduplicated for r in results] == [False, True, True]
    for result in results:
        assert_vectors(result, texts(30))
    stats = manager.stats()
    assert (stats.requests_completed, stats.deduplicated) == (3, 2)


def test_chat_runs_are_untouched(
    provider: OpenAIProvider, server: MockServer, make_manager
) -> None:
    batch = RequestBatch()
    for i in range(50):
        batch.chat.completions.create(model="c", messages=[{"role": "user", "content": f"q{i}"}])
    cache = InMemoryCache()
    results = make_manager(provider, caching_provider=cache).process_batch(batch)
    assert [r.response.choices[0].message.content for r in results] == [f"q{i}" for i in range(50)]
    assert requests(server) == 50
    assert cache.stats().entries == 50  # whole-request entries, as before


@pytest.mark.parametrize(
    ("options", "argument"),
    [
        ({"embedding_max_inputs": 0}, "embedding_max_inputs"),
        ({"embedding_max_inputs": 2.0}, "embedding_max_inputs"),
        ({"embedding_max_tokens": 0}, "embedding_max_tokens"),
        ({"embedding_max_tokens": True}, "embedding_max_tokens"),
        ({"pack_embeddings": "yes"}, "pack_embeddings"),
    ],
)
def test_options_are_checked(
    provider: OpenAIProvider, make_manager, options: dict[str, Any], argument: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        make_manager(provider, **options)
    assert info.value.argument == argument
