"""RateLimiter on fake clocks: pacing, fairness, oversize, settle/cancel, cooldown, headers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastllm.errors import ConfigurationError
from fastllm.limits import LimiterSnapshot, RateLimit, RateLimiter, Reservation


class FakeClock:
    """Time that jumps: ``sleep`` advances the clock at once, then yields."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += max(delay, 0.0)
        await asyncio.sleep(0)


class ManualClock:
    """Time that only moves in :meth:`advance`; sleepers wake at their deadlines."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + delay, future))
        await future

    @property
    def sleeping(self) -> int:
        return sum(1 for _, future in self._sleepers if not future.done())

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper at its deadline in order."""
        target = self.now + seconds
        await drain()
        while True:
            pending = [(d, f) for d, f in self._sleepers if not f.done()]
            self._sleepers = pending
            due = [d for d, _ in pending if d <= target + 1e-12]
            if not due:
                break
            self.now = max(self.now, min(due))
            for deadline, future in pending:
                if deadline <= self.now + 1e-12:
                    future.set_result(None)
            await drain()
        self.now = target
        await drain()


async def drain() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def fake_limiter(*limits: RateLimit, auto: bool = False) -> tuple[RateLimiter, FakeClock]:
    clock = FakeClock()
    return RateLimiter(limits, auto=auto, clock=clock, sleep=clock.sleep), clock


def manual_limiter(*limits: RateLimit, auto: bool = False) -> tuple[RateLimiter, ManualClock]:
    clock = ManualClock()
    return RateLimiter(limits, auto=auto, clock=clock, sleep=clock.sleep), clock


async def timed(clock: FakeClock | ManualClock, pending: Awaitable[Reservation]) -> float:
    await pending
    return clock.now


def available(limiter: RateLimiter) -> list[float]:
    return [limit.available for limit in limiter.snapshot().limits]


# -- basics -----------------------------------------------------------------------------


async def test_no_limits_returns_at_once() -> None:
    limiter, clock = fake_limiter()
    assert not limiter.enabled
    for _ in range(1000):
        reservation = await limiter.acquire(500)
        limiter.settle(reservation, 10)
    assert clock.now == 0.0
    assert clock.sleeps == []
    assert limiter.snapshot() == LimiterSnapshot((), 0.0, 0, None)


async def test_negative_tokens_and_bad_limits_rejected() -> None:
    limiter, _ = fake_limiter(RateLimit(requests=1))
    with pytest.raises(ConfigurationError, match="tokens"):
        await limiter.acquire(-1)
    reservation = await limiter.acquire(1)
    with pytest.raises(ConfigurationError, match="actual_tokens"):
        limiter.settle(reservation, -5)
    with pytest.raises(ConfigurationError, match="limits"):
        RateLimiter([{"requests": 1}])  # type: ignore[list-item]


async def test_single_limit_paces_after_burst() -> None:
    limiter, clock = fake_limiter(RateLimit(requests=10, per="1s"))
    assert limiter.enabled
    times = await asyncio.gather(*(timed(clock, limiter.acquire(0)) for _ in range(30)))
    assert times[:10] == [0.0] * 10
    assert times[10:] == pytest.approx([0.1 * k for k in range(1, 21)])
    assert clock.now == pytest.approx(2.0)
    snapshot = limiter.snapshot()
    assert snapshot.waiting == 0
    assert snapshot.waited_seconds_total == pytest.approx(sum(0.1 * k for k in range(1, 21)))


async def test_tokens_and_requests_together() -> None:
    limiter, clock = fake_limiter(RateLimit(requests=100, tokens=1000, per="10s"))
    assert await timed(clock, limiter.acquire(500)) == 0.0
    assert await timed(clock, limiter.acquire(500)) == 0.0
    assert await timed(clock, limiter.acquire(500)) == pytest.approx(5.0)
    assert available(limiter) == pytest.approx([99.0, 0.0])  # refilled to 100 by t=5, minus 1

    limiter, clock = fake_limiter(RateLimit(requests=2, tokens=10**6, per="1s"))
    times = await asyncio.gather(*(timed(clock, limiter.acquire(1)) for _ in range(3)))
    assert times == pytest.approx([0.0, 0.0, 0.5])


async def test_tightest_of_several_limits_wins() -> None:
    limiter, clock = fake_limiter(
        RateLimit(requests=500, per="1m"), RateLimit(requests=10, per="1s")
    )
    times = await asyncio.gather(*(timed(clock, limiter.acquire(0)) for _ in range(20)))
    assert times[-1] == pytest.approx(1.0)

    limiter, clock = fake_limiter(
        RateLimit(requests=10, per="1s"), RateLimit(requests=15, per="1m")
    )
    times = await asyncio.gather(*(timed(clock, limiter.acquire(0)) for _ in range(16)))
    assert times[10:15] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])  # the per-second limit
    assert times[15] == pytest.approx(4.0)  # then the per-minute one: 0.875 left at 0.25/s


async def test_requests_and_tokens_from_separate_limits_taken_atomically() -> None:
    limiter, clock = fake_limiter(RateLimit(requests=1, per="1s"), RateLimit(tokens=100, per="1s"))
    first = await limiter.acquire(10)
    second = asyncio.ensure_future(limiter.acquire(10))
    await asyncio.sleep(0)
    assert available(limiter) == pytest.approx([0.0, 90.0])  # nothing taken while waiting
    await second
    assert clock.now == pytest.approx(1.0)
    assert first.tokens == 10


# -- fairness and oversize --------------------------------------------------------------


async def test_fifo_big_request_goes_before_later_small_ones() -> None:
    limiter, clock = fake_limiter(RateLimit(tokens=100, per="10s"))
    await limiter.acquire(100)
    order: list[tuple[str, float]] = []

    async def one(label: str, tokens: int) -> None:
        await limiter.acquire(tokens)
        order.append((label, clock.now))

    await asyncio.gather(one("big", 80), *(one(f"small{k}", 1) for k in range(5)))
    assert [label for label, _ in order] == ["big", *(f"small{k}" for k in range(5))]
    assert [t for _, t in order] == pytest.approx([8.0, 8.1, 8.2, 8.3, 8.4, 8.5])


async def test_oversize_request_runs_when_bucket_full_and_leaves_a_deficit() -> None:
    limiter, clock = fake_limiter(RateLimit(tokens=100, per="10s"))
    assert await timed(clock, limiter.acquire(30)) == 0.0
    assert await timed(clock, limiter.acquire(250)) == pytest.approx(3.0)  # waits for full
    assert available(limiter) == pytest.approx([-150.0])
    assert limiter.snapshot().limits[0].saturation == 1.0
    assert await timed(clock, limiter.acquire(10)) == pytest.approx(19.0)  # pays the deficit


async def test_oversize_on_a_full_bucket_is_immediate() -> None:
    limiter, clock = fake_limiter(RateLimit(requests=5, tokens=100, per="1m"))
    await limiter.acquire(10_000)
    assert clock.now == 0.0


# -- settle and cancel ------------------------------------------------------------------


async def test_settle_refund_wakes_the_waiter_early() -> None:
    limiter, clock = manual_limiter(RateLimit(tokens=100, per="60s"))
    first = await limiter.acquire(100)
    waiter = asyncio.ensure_future(limiter.acquire(50))  # would wait 30 s
    await clock.advance(5)
    assert not waiter.done()
    assert limiter.snapshot().waiting == 1
    limiter.settle(first, 40)  # 60 tokens come back
    await drain()
    assert waiter.done()
    assert clock.now == 5.0
    assert waiter.result().waited == pytest.approx(5.0)
    assert first.tokens == 40
    assert clock.sleeping == 0  # the head's timer was cancelled


async def test_settle_refund_shortens_but_does_not_end_the_wait() -> None:
    limiter, clock = manual_limiter(RateLimit(tokens=100, per="100s"))  # 1 token/s
    first = await limiter.acquire(100)
    waiter = asyncio.ensure_future(limiter.acquire(50))
    await clock.advance(1)
    limiter.settle(first, 80)  # level 1 + 20 = 21: 29 s more instead of 49
    await clock.advance(28.5)
    assert not waiter.done()
    await clock.advance(0.5)
    assert waiter.done()
    assert clock.now == pytest.approx(30.0)


async def test_settle_charge_delays_later_waiters() -> None:
    limiter, clock = fake_limiter(RateLimit(tokens=100, per="10s"))
    first = await limiter.acquire(50)
    limiter.settle(first, 100)  # 50 more than reserved
    assert available(limiter) == pytest.approx([0.0])
    assert await timed(clock, limiter.acquire(50)) == pytest.approx(5.0)


async def test_settle_charge_can_go_negative_and_refund_is_capped() -> None:
    limiter, _ = fake_limiter(RateLimit(tokens=100, per="10s"))
    reservation = await limiter.acquire(10)
    limiter.settle(reservation, 300)
    assert available(limiter) == pytest.approx([-200.0])
    limiter.settle(reservation, 0)  # corrects from the last figure
    assert available(limiter) == pytest.approx([100.0])  # never above capacity
    assert reservation.tokens == 0


async def test_settle_touches_only_token_buckets() -> None:
    limiter, _ = fake_limiter(RateLimit(requests=10, tokens=100, per="10s"))
    reservation = await limiter.acquire(50)
    limiter.settle(reservation, 20)
    assert available(limiter) == pytest.approx([9.0, 80.0])


async def test_cancel_returns_request_and_tokens() -> None:
    limiter, clock = fake_limiter(RateLimit(requests=1, tokens=100, per="1m"))
    reservation = await limiter.acquire(60)
    assert available(limiter) == pytest.approx([0.0, 40.0])
    limiter.cancel(reservation)
    assert reservation.cancelled
    assert available(limiter) == pytest.approx([1.0, 100.0])
    limiter.cancel(reservation)  # twice is harmless
    limiter.settle(reservation, 500)  # and settling a cancelled one is ignored
    assert available(limiter) == pytest.approx([1.0, 100.0])
    assert await timed(clock, limiter.acquire(100)) == 0.0


async def test_cancel_wakes_the_waiter() -> None:
    limiter, clock = manual_limiter(RateLimit(requests=1, per="1m"))
    first = await limiter.acquire(0)
    waiter = asyncio.ensure_future(limiter.acquire(0))
    await clock.advance(1)
    assert not waiter.done()
    limiter.cancel(first)
    await drain()
    assert waiter.done()
    assert clock.now == 1.0


async def test_cancelled_head_waiter_lets_the_next_proceed() -> None:
    limiter, clock = manual_limiter(RateLimit(requests=1, per="10s"))
    await limiter.acquire(0)
    head = asyncio.ensure_future(limiter.acquire(0))
    second = asyncio.ensure_future(limiter.acquire(0))
    await drain()
    assert limiter.snapshot().waiting == 2
    head.cancel()
    await drain()
    assert limiter.snapshot().waiting == 1
    await clock.advance(10)
    assert second.done()
    assert clock.now == 10.0
    assert clock.sleeping == 0
    assert limiter.snapshot().waiting == 0


async def test_cancelled_queued_waiter_is_skipped() -> None:
    limiter, clock = manual_limiter(RateLimit(requests=1, per="10s"))
    await limiter.acquire(0)
    first = asyncio.ensure_future(limiter.acquire(0))
    middle = asyncio.ensure_future(limiter.acquire(0))
    last = asyncio.ensure_future(limiter.acquire(0))
    await drain()
    middle.cancel()
    await clock.advance(10)
    assert first.done()
    assert not last.done()
    await clock.advance(10)
    assert last.done()
    assert middle.cancelled()
    assert limiter.snapshot().waiting == 0
    # the queue is empty again: the fast path works
    await clock.advance(10)
    assert await timed(clock, limiter.acquire(0)) == 30.0


async def test_waiter_cancelled_right_after_being_handed_the_turn() -> None:
    limiter, clock = manual_limiter(RateLimit(tokens=100, per="100s"))
    first = await limiter.acquire(100)
    tasks: list[asyncio.Future[object]] = []

    async def acquire_then_cancel_next() -> None:
        await limiter.acquire(10)
        tasks[1].cancel()  # the next waiter was just handed the turn but has not run yet

    tasks.append(asyncio.ensure_future(acquire_then_cancel_next()))
    tasks.extend(asyncio.ensure_future(limiter.acquire(10)) for _ in range(2))
    await drain()
    limiter.settle(first, 0)  # everything fits now
    await drain()
    assert tasks[0].done()
    assert tasks[1].cancelled()
    assert tasks[2].done()
    assert clock.now == 0.0
    assert available(limiter) == pytest.approx([80.0])
    assert limiter.snapshot().waiting == 0


async def test_all_waiters_cancelled_leaves_limiter_usable() -> None:
    limiter, clock = manual_limiter(RateLimit(requests=1, per="1s"))
    await limiter.acquire(0)
    tasks = [asyncio.ensure_future(limiter.acquire(0)) for _ in range(50)]
    await drain()
    for task in tasks:
        task.cancel()
    await drain()
    assert limiter.snapshot().waiting == 0
    assert clock.sleeping == 0
    await clock.advance(1)
    assert await timed(clock, limiter.acquire(0)) == 1.0


# -- cooldown ---------------------------------------------------------------------------


async def test_cooldown_without_limits() -> None:
    limiter, clock = fake_limiter()
    limiter.cooldown(3)
    assert limiter.snapshot().cooldown_until == 3.0
    assert await timed(clock, limiter.acquire(0)) == pytest.approx(3.0)
    assert limiter.snapshot().cooldown_until is None


async def test_cooldown_extends_but_never_shortens() -> None:
    limiter, clock = fake_limiter(RateLimit(requests=100, per="1s"))
    limiter.cooldown(5)
    limiter.cooldown(2)
    assert limiter.snapshot().cooldown_until == 5.0
    limiter.cooldown(10)
    limiter.cooldown(0)
    limiter.cooldown(-1)
    limiter.cooldown(float("nan"))
    assert limiter.snapshot().cooldown_until == 10.0
    times = await asyncio.gather(*(timed(clock, limiter.acquire(0)) for _ in range(3)))
    assert times == pytest.approx([10.0, 10.0, 10.0])


async def test_cooldown_holds_current_waiters() -> None:
    limiter, clock = manual_limiter(RateLimit(requests=1, per="1s"))
    await limiter.acquire(0)
    head = asyncio.ensure_future(limiter.acquire(0))
    other = asyncio.ensure_future(limiter.acquire(0))
    await clock.advance(0.5)
    limiter.cooldown(4.5)  # until t=5
    await clock.advance(4.4)
    assert not head.done()
    assert not other.done()
    await clock.advance(0.1)
    assert head.done()
    assert not other.done()  # the request budget still applies after the pause
    await clock.advance(1)
    assert other.done()
    assert clock.now == pytest.approx(6.0)


# -- headers ----------------------------------------------------------------------------


async def test_observe_headers_lowers_but_never_raises() -> None:
    limiter, _ = fake_limiter(RateLimit(requests=100, tokens=10_000, per="1m"))
    limiter.observe_headers(
        {"X-RateLimit-Remaining-Requests": "20", "x-ratelimit-remaining-tokens": "50000"}
    )
    snapshot = limiter.snapshot()
    assert [limit.available for limit in snapshot.limits] == [20.0, 10_000.0]
    assert [limit.learned_remaining for limit in snapshot.limits] == [20, 50_000]
    assert len(snapshot.limits) == 2  # not auto: no bucket learned from limits


async def test_observe_headers_zero_remaining_makes_next_acquire_wait() -> None:
    limiter, clock = fake_limiter(RateLimit(requests=60, per="1m"))
    limiter.observe_headers({"x-ratelimit-remaining-requests": "0"})
    assert await timed(clock, limiter.acquire(0)) == pytest.approx(1.0)


async def test_observe_headers_ignores_absent_and_garbage() -> None:
    limiter, _ = fake_limiter(RateLimit(requests=10, per="1m"))
    limiter.observe_headers({})
    limiter.observe_headers({"content-type": "application/json"})
    limiter.observe_headers({"x-ratelimit-remaining-requests": "lots"})
    assert available(limiter) == [10.0]
    disabled, _ = fake_limiter()
    disabled.observe_headers({"x-ratelimit-limit-requests": "5"})
    assert disabled.snapshot().limits == ()


async def test_auto_mode_learns_buckets_from_headers() -> None:
    limiter, clock = fake_limiter(auto=True)
    assert limiter.enabled
    assert limiter.auto
    assert await timed(clock, limiter.acquire(10**6)) == 0.0  # nothing known yet
    limiter.observe_headers(
        {
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "1m0s",
            "x-ratelimit-limit-tokens": "6000",
            "x-ratelimit-remaining-tokens": "5000",
            "x-ratelimit-reset-tokens": "10s",
        }
    )
    snapshot = limiter.snapshot()
    assert [(s.kind, s.capacity, s.period, s.available, s.auto) for s in snapshot.limits] == [
        ("requests", 60, 60.0, 0.0, True),
        ("tokens", 6000, 60.0, 5000.0, True),
    ]
    assert await timed(clock, limiter.acquire(100)) == pytest.approx(1.0)  # 1 request/s


async def test_auto_mode_resizes_learned_buckets() -> None:
    limiter, _ = fake_limiter(auto=True)
    limiter.observe_headers({"x-ratelimit-limit-requests": "100"})
    limiter.observe_headers({"x-ratelimit-limit-requests": "50"})
    (limit,) = limiter.snapshot().limits
    assert (limit.capacity, limit.available) == (50, 50.0)
    limiter.observe_headers(
        {"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "400"}
    )
    (limit,) = limiter.snapshot().limits
    assert (limit.capacity, limit.available, limit.learned_remaining) == (500, 50.0, 400)


async def test_auto_mode_keeps_configured_limits() -> None:
    limiter, _ = fake_limiter(RateLimit(requests=10, per="1s", name="mine"), auto=True)
    limiter.observe_headers(
        {"x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "900"}
    )
    names = [(s.name, s.kind, s.auto) for s in limiter.snapshot().limits]
    assert names == [("mine", "requests", False), ("server tokens per minute", "tokens", True)]


async def test_auto_resize_wakes_head_which_re_evaluates() -> None:
    limiter, clock = manual_limiter(auto=True)
    limiter.observe_headers({"x-ratelimit-limit-tokens": "60", "x-ratelimit-remaining-tokens": "0"})
    waiter = asyncio.ensure_future(limiter.acquire(60))  # 60 s at 1 token/s
    await clock.advance(10)
    assert not waiter.done()
    limiter.observe_headers({"x-ratelimit-limit-tokens": "600"})  # now 10 tokens/s
    await clock.advance(5)
    assert waiter.done()
    assert clock.now == pytest.approx(15.0)


# -- snapshot ---------------------------------------------------------------------------


async def test_snapshot_saturation() -> None:
    limiter, clock = fake_limiter(RateLimit(requests=10, tokens=1000, per="1m", name="main"))
    await limiter.acquire(250)
    snapshot = limiter.snapshot()
    requests, tokens = snapshot.limits
    assert (requests.name, requests.kind, requests.capacity, requests.period) == (
        "main",
        "requests",
        10,
        60.0,
    )
    assert requests.available == pytest.approx(9.0)
    assert requests.saturation == pytest.approx(0.1)
    assert tokens.available == pytest.approx(750.0)
    assert tokens.saturation == pytest.approx(0.25)
    assert snapshot.waiting == 0
    assert snapshot.cooldown_until is None
    clock.now += 60
    assert [s.saturation for s in limiter.snapshot().limits] == [0.0, 0.0]


# -- properties -------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=250), st.floats(min_value=0, max_value=3)),
        min_size=1,
        max_size=30,
    )
)
def test_grants_fit_the_budget_in_every_window(arrivals: list[tuple[int, float]]) -> None:
    capacity, requests, period = 100, 5, 10.0

    async def run() -> list[tuple[float, int, int]]:
        limiter, clock = fake_limiter(RateLimit(requests=requests, tokens=capacity, per=period))
        grants: list[tuple[float, int, int]] = []

        async def one(index: int, tokens: int) -> None:
            await limiter.acquire(tokens)
            grants.append((clock.now, index, tokens))

        tasks = []
        for index, (tokens, gap) in enumerate(arrivals):
            tasks.append(asyncio.ensure_future(one(index, tokens)))
            await clock.sleep(gap)
        await asyncio.gather(*tasks)
        return grants

    grants = asyncio.run(run())
    assert [index for _, index, _ in grants] == list(range(len(arrivals)))  # FIFO
    for i in range(len(grants)):
        total = 0
        for j in range(i, len(grants)):
            total += grants[j][2]
            span = grants[j][0] - grants[i][0]
            oversize = max(0, grants[j][2] - capacity)
            assert total <= capacity + capacity / period * span + oversize + 1e-6
            assert j - i + 1 <= requests + requests / period * span + 1e-6


def test_auto_mode_learns_the_window_from_the_reset_header() -> None:
    limiter = RateLimiter(auto=True)
    # 60 a window, 30 used, full again in 3 s: a refilling window of 6 s
    limiter.observe_headers(
        {
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "30",
            "x-ratelimit-reset-requests": "3s",
        }
    )
    (learned,) = limiter.snapshot().limits
    assert learned.period == pytest.approx(6.0)
    assert learned.capacity == 60
    assert learned.available == pytest.approx(30, abs=1)


async def test_auto_mode_counts_requests_sent_before_the_limit_was_known() -> None:
    limiter = RateLimiter(auto=True)
    blind = [await limiter.acquire(10) for _ in range(5)]  # no limit known yet: all granted
    # the first answer says 59 of 60 remain; the other 4 in flight are counted too
    limiter.observe_headers(
        {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59"}
    )
    limiter.settle(blind[0], 10)
    (learned,) = limiter.snapshot().limits
    assert learned.available == pytest.approx(55, abs=0.01)


async def test_try_acquire_takes_at_once_or_leaves_it_to_acquire() -> None:
    limiter, clock = fake_limiter(RateLimit(requests=2, per="1s"))
    first = limiter.try_acquire(0)
    assert first is not None
    assert first.waited == 0.0
    assert limiter.try_acquire(0) is not None
    assert limiter.try_acquire(0) is None  # empty: nothing taken, acquire must wait
    assert limiter.snapshot().limits[0].available == pytest.approx(0.0)
    waiting = asyncio.ensure_future(limiter.acquire(0))
    await asyncio.sleep(0)
    clock.now += 0.1  # a little refilled, yet a waiter is queued: no jumping the queue
    assert limiter.try_acquire(0) is None
    await waiting
    with pytest.raises(ConfigurationError):
        limiter.try_acquire(-1)


def test_try_acquire_respects_a_cooldown_without_limits() -> None:
    limiter, clock = fake_limiter()
    limiter.cooldown(1.0)
    assert limiter.try_acquire(0) is None
    clock.now = 1.0
    assert limiter.try_acquire(0) is not None


def test_settle_answer_charges_the_real_usage_only_to_token_budgets() -> None:
    body = {"model": "m", "max_tokens": 50}
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    limiter, _ = fake_limiter(RateLimit(tokens=1000, per="1m"))
    reservation = limiter.try_acquire(100)
    assert reservation is not None
    limiter.settle_answer(reservation, body, usage, 100)
    assert reservation.tokens == 60  # prompt + the declared completion budget
    assert limiter.snapshot().limits[0].available == pytest.approx(940)
    # requests only: the usage changes nothing, the estimate stands
    limiter, _ = fake_limiter(RateLimit(requests=10, per="1m"))
    reservation = limiter.try_acquire(100)
    assert reservation is not None
    limiter.settle_answer(reservation, body, usage, 100)
    assert reservation.tokens == 100
    assert limiter.snapshot().limits[0].available == pytest.approx(9)


def test_settle_answer_sees_blind_answers_in_auto_mode() -> None:
    limiter = RateLimiter(auto=True)
    blind = [limiter.try_acquire(10) for _ in range(3)]
    limiter.settle_answer(blind[0], {}, None, 10)  # answered: no longer counted as in flight
    limiter.settle_answer(blind[0], {}, None, 10)  # twice is harmless
    limiter.observe_headers(
        {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "50"}
    )
    (learned,) = limiter.snapshot().limits
    assert learned.available == pytest.approx(49, abs=0.01)  # one other still in flight


@settings(max_examples=50, deadline=None)
@given(st.lists(st.booleans(), max_size=300), st.integers(min_value=1, max_value=4))
def test_adaptive_concurrency_storm_window_is_the_last_50_answers(
    answers: list[bool], min_signals: int
) -> None:
    """The 429-storm test counts exactly the rate-limited answers among the last 50."""
    from fastllm.limits import AdaptiveConcurrency

    concurrency = AdaptiveConcurrency(10, min_signals=min_signals)
    for index, limited in enumerate(answers):
        if limited:
            concurrency.on_rate_limited()
        else:
            concurrency.on_success()
        recent = answers[max(0, index - 49) : index + 1]
        count = sum(recent)
        expected = count >= max(2, min_signals) and count * 5 >= len(recent)
        assert concurrency.storming == expected


def test_counts_tokens_only_with_a_token_budget() -> None:
    assert not RateLimiter().counts_tokens
    assert not RateLimiter([RateLimit(requests=10, per="1m")]).counts_tokens
    assert RateLimiter([RateLimit(tokens=1000, per="1m")]).counts_tokens
    limiter = RateLimiter(auto=True)
    assert not limiter.counts_tokens
    limiter.observe_headers({"x-ratelimit-limit-requests": "60"})
    assert not limiter.counts_tokens
    limiter.observe_headers({"x-ratelimit-limit-tokens": "6000"})
    assert limiter.counts_tokens
