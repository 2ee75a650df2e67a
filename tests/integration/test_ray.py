"""Ray Data integration: the mapper on its own, claims between actors, and a local Ray run."""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from redis_server import redis_url_for_session, unique

from fastllm.integrations.ray import OUTPUT_COLUMNS, FastLLMMapper, run_dataset
from fastllm.requests.normalize import request_from_item
from fastllm.testing import MockServer, MockServerConfig

np = pytest.importorskip("numpy")

pytestmark = [
    pytest.mark.redis,
    pytest.mark.ray,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*"),
]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    yield from redis_url_for_session()


def body(i: int) -> dict[str, Any]:
    return {"model": "mock-model", "messages": [{"role": "user", "content": f"ray prompt {i}"}]}


def line(i: int, row: int) -> dict[str, Any]:
    return {
        "custom_id": f"row-{row}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": body(i),
    }


def column(values: list[Any]) -> dict[str, np.ndarray]:
    cells = np.empty(len(values), dtype=object)
    cells[:] = values
    return {"request": cells, "row": np.arange(len(values))}


def content(response: str) -> str:
    text: str = orjson.loads(response)["choices"][0]["message"]["content"]
    return text


def test_mapper_turns_a_column_into_result_columns(server: MockServer, redis_url: str) -> None:
    mapper = FastLLMMapper(
        api_base=server.base_url,
        api_key="sk-test",
        cache_url=redis_url,
        cache_namespace=unique("m"),
    )
    batch = column(
        [
            orjson.dumps(line(1, 0)).decode(),  # a Batch line as JSON text
            body(2),  # a bare body as a dict
            orjson.dumps(body(1)).decode(),  # the same request as row 0
            "not json",
            "[1, 2]",
            {"model": "mock-model"},  # no messages
            42,
        ]
    )
    out = mapper(batch)
    assert set(out) == {"request", "row", *OUTPUT_COLUMNS}
    assert out["ok"].tolist() == [True, True, True, False, False, False, False]
    assert out["ok"].dtype == np.bool_
    assert [content(r) for r in out["response"][:3]] == [
        "ray prompt 1",
        "ray prompt 2",
        "ray prompt 1",
    ]
    assert out["custom_id"][0] == "row-0"
    assert out["request_id"][0] == out["request_id"][2]
    assert list(out["response"][3:]) == [None] * 4
    assert all(e.startswith("RequestFormatError: ") for e in out["error"][3:])
    assert list(out["error"][:3]) == [None] * 3
    assert server.stats()["requests"] == 2
    again = mapper(batch)
    assert again["cached"].tolist()[:3] == [True, True, True]
    assert server.stats()["requests"] == 2


def test_a_request_claimed_by_another_actor_is_awaited_not_sent(
    server: MockServer, redis_url: str
) -> None:
    namespace = unique("claims")
    mapper = FastLLMMapper(
        api_base=server.base_url, api_key="sk-test", cache_url=redis_url, cache_namespace=namespace
    )
    assert mapper.cache is not None
    keys = [mapper.manager.cache_key(request_from_item(body(i), 0).request_id) for i in (7, 9)]
    claims = [f"{namespace}:claim:{key}" for key in keys]
    raw = redis.Redis.from_url(redis_url)
    for claim in claims:  # "another actor" is working on requests 7 and 9
        raw.set(claim, "another-actor", px=60_000)
    outcome: dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: outcome.update(mapper(column([body(7), body(8), body(9)])))
    )
    worker.start()
    worker.join(0.5)
    assert worker.is_alive()  # waiting for 7 and 9; 8 was sent meanwhile
    assert server.stats()["requests"] == 1
    # the other actor answers 7 (cached, claim released) and fails 9 (claim released)
    answer = {"id": "from-the-other-actor", "object": "chat.completion", "choices": []}
    raw.set(mapper.cache.redis_key(keys[0]), orjson.dumps(answer))
    raw.delete(*claims)
    worker.join(10)
    raw.close()
    assert not worker.is_alive()
    assert outcome["ok"].tolist() == [True, True, True]
    assert outcome["cached"].tolist() == [True, False, False]
    assert orjson.loads(outcome["response"][0]) == answer
    assert server.stats()["requests"] == 2  # 8, and 9 retried here after the other failed


# -- a local Ray ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_local() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    paths = [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=100 * 2**20,
        ignore_reinit_error=True,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
        # the actors unpickle PidMapper (defined here) by importing this module
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, paths))}},
    )
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    # start the whole actor pool before any block is handed out: otherwise on a slow
    # machine the first actor up can take every block while the second is still starting
    context.wait_for_min_actors_s = 600
    try:
        yield ray
    finally:
        ray.shutdown()


class PidMapper(FastLLMMapper):
    """The mapper, also telling which actor process answered each row."""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = super().__call__(batch)
        out["pid"] = np.full(len(out["ok"]), os.getpid())
        return out


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_2000_requests_with_duplicates_are_sent_once_across_two_actors(
    ray_local: Any, redis_url: str
) -> None:
    distinct, copies = 500, 4
    order = [i for i in range(distinct) for _ in range(copies)]
    random.Random(7).shuffle(order)  # copies land in different batches and actors
    cells = [
        orjson.dumps(line(i, row) if row % 2 else body(i)).decode() for row, i in enumerate(order)
    ]
    rows = [{"request": cell, "prompt": i} for cell, i in zip(cells, order, strict=True)]
    namespace = unique("ray")
    with MockServer(MockServerConfig(latency=0.01), process=True) as server:
        settings = {
            "api_base": server.base_url,
            "api_key": "sk-test",
            "concurrency": 32,
            "cache_url": redis_url,
            "cache_namespace": namespace,
        }
        ds = ray_local.data.from_items(rows, override_num_blocks=10)
        out = ds.map_batches(
            PidMapper,
            fn_constructor_kwargs=settings,
            batch_format="numpy",
            batch_size=100,
            compute=ray_local.data.ActorPoolStrategy(size=2),
            num_cpus=0.5,
        ).take_all()
        assert len(out) == distinct * copies
        assert all(r["ok"] for r in out), [r["error"] for r in out if not r["ok"]][:3]
        assert all(content(r["response"]) == f"ray prompt {r['prompt']}" for r in out)
        assert len({r["pid"] for r in out}) == 2  # both actors answered rows
        stats = server.stats()
        assert stats["requests"] == distinct  # each distinct request sent exactly once
        assert stats["distinct_bodies"] == distinct
        # a second run (the helper this time) is answered from Redis alone
        again = run_dataset(ds, actors=2, batch_size=250, **settings).take_all()
        assert len(again) == distinct * copies
        assert all(r["ok"] and r["cached"] for r in again)
        assert server.stats()["requests"] == distinct
