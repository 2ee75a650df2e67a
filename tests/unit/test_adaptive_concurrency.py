"""AdaptiveConcurrency: a FIFO semaphore with an AIMD limit."""

from __future__ import annotations

import asyncio

import pytest

from fastllm.errors import ConfigurationError
from fastllm.limits import AdaptiveConcurrency


async def drain() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_acts_as_a_semaphore() -> None:
    gate = AdaptiveConcurrency(2)
    assert (gate.current, gate.maximum, gate.minimum, gate.in_flight) == (2, 2, 1, 0)
    await gate.acquire()
    await gate.acquire()
    assert gate.in_flight == 2
    third = asyncio.ensure_future(gate.acquire())
    await drain()
    assert not third.done()
    assert gate.waiting == 1
    gate.release()
    await drain()
    assert third.done()
    assert gate.in_flight == 2
    assert gate.waiting == 0
    gate.release()
    gate.release()
    assert gate.in_flight == 0
    with pytest.raises(RuntimeError):
        gate.release()


async def test_async_with() -> None:
    gate = AdaptiveConcurrency(1)
    async with gate:
        assert gate.in_flight == 1
    assert gate.in_flight == 0


async def test_waiters_served_in_order() -> None:
    gate = AdaptiveConcurrency(1)
    await gate.acquire()
    order: list[int] = []

    async def one(index: int) -> None:
        await gate.acquire()
        order.append(index)
        gate.release()

    tasks = [asyncio.ensure_future(one(i)) for i in range(5)]
    await drain()
    gate.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]
    assert gate.in_flight == 0


async def test_decrease_halves_and_respects_minimum() -> None:
    gate = AdaptiveConcurrency(8, minimum=3)
    assert gate.on_rate_limited()
    assert gate.current == 4
    assert gate.on_rate_limited()  # nothing was in flight: no window to wait for
    assert gate.current == 3
    assert gate.on_rate_limited()
    assert gate.current == 3


async def test_additive_increase_up_to_the_maximum() -> None:
    gate = AdaptiveConcurrency(8)
    gate.on_success()
    assert gate.current == 8  # never above the maximum
    gate.on_rate_limited()
    assert gate.current == 4
    for _ in range(3):
        gate.on_success()
    assert gate.current == 4
    gate.on_success()  # 4 successes at limit 4
    assert gate.current == 5
    for _ in range(5):
        gate.on_success()
    assert gate.current == 6
    for _ in range(100):
        gate.on_success()
    assert gate.current == 8


async def test_increase_every() -> None:
    gate = AdaptiveConcurrency(10, increase_every=2)
    gate.on_rate_limited()
    assert gate.current == 5
    for _ in range(6):
        gate.on_success()
    assert gate.current == 8


async def test_decrease_resets_the_success_count() -> None:
    gate = AdaptiveConcurrency(16, increase_every=3)
    gate.on_rate_limited()
    gate.on_success()
    gate.on_success()
    gate.on_rate_limited()
    assert gate.current == 4
    gate.on_success()
    assert gate.current == 4


async def test_burst_of_429s_halves_once() -> None:
    gate = AdaptiveConcurrency(8)
    for _ in range(8):
        await gate.acquire()
    decreases = [gate.on_rate_limited() for _ in range(8)]
    assert decreases == [True] + [False] * 7
    assert gate.current == 4
    for _ in range(8):
        gate.release()
    assert not gate.on_rate_limited()  # a late report from the same burst
    for _ in range(4):
        await gate.acquire()
    assert not gate.on_rate_limited()  # 4 of the 8 new acquires made
    for _ in range(4):
        gate.release()
    for _ in range(4):
        await gate.acquire()
    assert gate.on_rate_limited()  # a full round was sent under the new limit
    assert gate.current == 2


async def test_429_reported_after_release_still_halves_once() -> None:
    gate = AdaptiveConcurrency(8)
    for _ in range(8):
        await gate.acquire()
    results = []
    for _ in range(8):
        gate.release()
        results.append(gate.on_rate_limited())
    assert results == [True] + [False] * 7
    assert gate.current == 4


async def test_lowering_never_cancels_in_flight_work() -> None:
    gate = AdaptiveConcurrency(8)
    for _ in range(8):
        await gate.acquire()
    gate.on_rate_limited()
    assert gate.current == 4
    assert gate.in_flight == 8
    newcomer = asyncio.ensure_future(gate.acquire())
    for _ in range(4):
        gate.release()
    await drain()
    assert not newcomer.done()  # 4 in flight at limit 4
    gate.release()
    await drain()
    assert newcomer.done()
    assert gate.in_flight == 4


async def test_increase_admits_a_waiter() -> None:
    gate = AdaptiveConcurrency(4, increase_every=1)
    for _ in range(4):
        await gate.acquire()
    gate.on_rate_limited()
    for _ in range(4):
        gate.release()
    for _ in range(2):
        await gate.acquire()
    waiter = asyncio.ensure_future(gate.acquire())
    await drain()
    assert not waiter.done()
    gate.on_success()  # 2 -> 3
    await drain()
    assert waiter.done()
    assert gate.in_flight == 3


async def test_cancelled_waiter_is_skipped() -> None:
    gate = AdaptiveConcurrency(1)
    await gate.acquire()
    cancelled = asyncio.ensure_future(gate.acquire())
    later = asyncio.ensure_future(gate.acquire())
    await drain()
    cancelled.cancel()
    await drain()
    assert gate.waiting == 1
    gate.release()
    await drain()
    assert later.done()
    assert gate.in_flight == 1


async def test_waiter_cancelled_after_being_handed_a_slot_gives_it_back() -> None:
    gate = AdaptiveConcurrency(1)
    await gate.acquire()
    waiter = asyncio.ensure_future(gate.acquire())
    await drain()
    gate.release()  # hands the slot to the waiter...
    waiter.cancel()  # ...which is cancelled before it runs
    await drain()
    assert waiter.cancelled()
    assert gate.in_flight == 0


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": True}, "limit"),
        ({"limit": 2.5}, "limit"),
        ({"limit": 4, "minimum": 0}, "minimum"),
        ({"limit": 4, "minimum": 5}, "minimum"),
        ({"limit": 4, "increase_every": 0}, "increase_every"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], argument: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        AdaptiveConcurrency(**kwargs)  # type: ignore[arg-type]
    assert info.value.argument == argument


async def test_with_min_signals_a_stray_429_does_not_lower_the_limit() -> None:
    gate = AdaptiveConcurrency(8, min_signals=2)
    for _ in range(49):
        gate.on_success()
    assert not gate.on_rate_limited()  # one 429 among fifty answers: stray
    assert gate.current == 8
    assert not gate.on_rate_limited()  # two, but far less than a fifth of them
    storm = AdaptiveConcurrency(8, min_signals=2)
    assert not storm.on_rate_limited()
    assert storm.on_rate_limited()  # two in a row: it keeps happening
    assert storm.current == 4
