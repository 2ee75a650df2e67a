"""What a RequestBatch keeps per request, and that the engine's Requests are made lazily."""

from __future__ import annotations

import gc
import tracemalloc
from itertools import islice

from fastllm import RequestBatch
from fastllm.requests import Request

N = 20_000


def _live_requests() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if type(obj) is Request)


def _messages(n: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"prompt {i}"}] for i in range(n)]


def test_a_batch_keeps_little_more_than_its_lines() -> None:
    messages = _messages(N)  # the caller's: not the batch's cost
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        batch = RequestBatch()
        create = batch.chat.completions.create
        for message in messages:
            create(model="m", messages=message)
        gc.collect()
        per_request = (tracemalloc.get_traced_memory()[0] - before) / N
    finally:
        tracemalloc.stop()
    # The floor is the lines themselves: line dict + body dict + custom_id + list slot,
    # about 465 bytes on CPython 3.11; the checked ids add about 25 (was about 790 in all).
    assert per_request < 560, per_request
    assert len(batch) == N


def test_a_batch_holds_no_request_objects() -> None:
    baseline = _live_requests()
    batch = RequestBatch()
    for message in _messages(2_000):
        batch.chat.completions.create(model="m", messages=message)
    assert _live_requests() == baseline


def test_requests_are_made_as_the_planner_takes_them() -> None:
    batch = RequestBatch()
    for message in _messages(5_000):
        batch.chat.completions.create(model="m", messages=message)
    baseline = _live_requests()
    items = iter(RequestBatch.prepared(batch))
    chunk = list(islice(items, 1024))
    assert all(isinstance(item, Request) for item in chunk)
    assert _live_requests() - baseline == 1024
    del chunk
    rest = sum(1 for _ in items)
    assert rest == 5_000 - 1024
    assert _live_requests() == baseline


def test_planning_a_batch_in_chunks_keeps_nothing() -> None:
    batch = RequestBatch()
    for message in _messages(N):
        batch.chat.completions.create(model="m", messages=message)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        items = iter(RequestBatch.prepared(batch))
        while chunk := list(islice(items, 1024)):
            del chunk
        del items
        gc.collect()
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 4096
    assert (peak - before) / 1024 < 400  # one chunk's Requests at a time (~220 B each)
