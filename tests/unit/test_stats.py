"""StatsCollector and TokenStats: counting, rates, percentiles, cost, immutability."""

from __future__ import annotations

import dataclasses
import logging
import pickle
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastllm.errors import ConfigurationError, InternalServerError, NotRunError
from fastllm.limits import LimiterSnapshot
from fastllm.limits.rate_limiter import LimitSnapshot
from fastllm.observe import PriceTable, StatsCollector, TokenStats
from fastllm.observe.sampling import Reservoir, percentile


class Clock:
    """A hand-driven monotonic clock."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def usage(prompt: int, completion: int, cached: int | None = None) -> dict[str, object]:
    found: dict[str, object] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached is not None:
        found["prompt_tokens_details"] = {"cached_tokens": cached}
    return found


def collector(clock: Clock, **prices: tuple[float, ...]) -> StatsCollector:
    return StatsCollector(prices or None, clock=clock, wall_clock=lambda: 1_700_000_000.0)


# -- time and rates ---------------------------------------------------------------------


def test_before_any_run_everything_is_zero_and_time_does_not_run() -> None:
    clock = Clock()
    stats = collector(clock)
    clock.now += 50
    snap = stats.snapshot()
    assert snap.elapsed_time == 0.0
    assert snap.start_time == 0.0
    assert snap.requests_per_second == 0.0
    assert snap.cache_hit_ratio == 0.0
    assert snap.latency_p50 is None
    assert snap.cost_usd is None
    assert not stats.running


def test_elapsed_time_runs_during_the_run_and_freezes_at_the_end() -> None:
    clock = Clock()
    stats = collector(clock)
    stats.reset(10)
    assert stats.running
    clock.now += 4
    assert stats.snapshot().elapsed_time == 4
    assert stats.snapshot().start_time == 1_700_000_000.0
    clock.now += 6
    stats.finish()
    clock.now += 100
    assert stats.snapshot().elapsed_time == 10
    assert not stats.running
    stats.finish()  # a second finish keeps the first end
    assert stats.snapshot().elapsed_time == 10


def test_rates_are_per_second_of_the_run() -> None:
    clock = Clock()
    stats = collector(clock)
    stats.reset(8)
    for _ in range(4):
        stats.sending()
        stats.sent_done()
        stats.answered("m", usage(30, 12), 0.5, None, streamed=False)
        stats.completed(2, cached=False, shared=1, tokens=42)
    clock.now += 2.0
    snap = stats.snapshot()
    assert snap.requests_completed == 8
    assert snap.requests_per_second == 4.0
    assert snap.prompt_tokens_per_second == 60.0
    assert snap.completion_tokens_per_second == 24.0
    assert (snap.prompt_tokens, snap.completion_tokens, snap.total_tokens) == (120, 48, 168)
    assert snap.saved_tokens == 4 * 42
    assert snap.requests_remaining == 0


def test_reset_starts_a_new_run_from_zero() -> None:
    clock = Clock()
    stats = collector(clock, m=(1.0, 1.0))
    stats.reset(3)
    stats.sending()
    stats.answered("m", usage(1_000_000, 0), 0.1, None, streamed=False)
    stats.failed_orders(InternalServerError("x", status_code=500), 2, 1)
    clock.now += 1
    stats.finish()
    stats.reset(None)
    snap = stats.snapshot()
    assert snap == TokenStats(start_time=snap.start_time, cost_usd=0.0)
    assert stats.cost == 0.0
    assert snap.errors_by_type == {}
    assert snap.requests_remaining is None


# -- counting ---------------------------------------------------------------------------


def test_orders_are_partitioned_into_own_answers_cache_hits_and_duplicates() -> None:
    stats = collector(Clock())
    stats.reset(10)
    stats.completed(3, cached=False, shared=2, tokens=10)  # one sent, two followers
    stats.completed(1, cached=True, shared=0, tokens=7)  # own cache lookup
    stats.completed(1, cached=False, shared=1, tokens=7)  # shared a completed result
    stats.failed_orders(InternalServerError("boom", status_code=500), 3, 2)
    stats.failed_orders(NotRunError("budget"), 2, 0)
    snap = stats.snapshot()
    assert (snap.succeeded, snap.failed, snap.requests_completed) == (5, 5, 10)
    assert snap.cache_hits == 1
    assert snap.deduplicated == 5
    assert snap.errors_by_type == {"InternalServerError": 3, "NotRunError": 2}
    assert snap.saved_tokens == 2 * 10 + 7 + 7
    # distinct requests: 10 orders - 5 duplicates = 5, one of them from the cache
    assert snap.cache_hit_ratio == pytest.approx(1 / 5)


def test_a_duplicate_of_a_cache_hit_is_a_duplicate_not_a_second_hit() -> None:
    stats = collector(Clock())
    stats.reset(2)
    stats.completed(1, cached=True, shared=0, tokens=5)
    stats.completed(1, cached=True, shared=1, tokens=5)
    snap = stats.snapshot()
    assert (snap.cache_hits, snap.deduplicated, snap.saved_tokens) == (1, 1, 10)
    assert snap.cache_hit_ratio == 1.0


def test_attempts_retries_and_in_flight() -> None:
    stats = collector(Clock())
    stats.reset(1)
    stats.sending()
    stats.sending()
    assert stats.snapshot().in_flight == 2
    stats.sent_done()
    stats.retrying()
    snap = stats.snapshot()
    assert (snap.sent, snap.in_flight, snap.retries) == (2, 1, 1)


def test_streams_without_usage_are_counted_not_guessed() -> None:
    stats = collector(Clock())
    stats.reset(3)
    stats.answered("m", None, 0.2, 0.05, streamed=True)
    stats.answered("m", None, 0.2, None, streamed=False)
    snap = stats.snapshot()
    assert snap.streams_without_usage == 1
    assert snap.total_tokens == 0
    assert "stream_options.include_usage" in snap.summary()


@pytest.mark.parametrize("bad", [None, "12", -3, True, float("nan"), [1]])
def test_malformed_usage_numbers_count_as_zero(bad: object) -> None:
    stats = collector(Clock(), m=(1.0, 1.0))
    stats.reset(1)
    stats.answered("m", {"prompt_tokens": bad, "completion_tokens": 4}, 0.1, None, False)
    snap = stats.snapshot()
    assert (snap.prompt_tokens, snap.completion_tokens) == (0, 4)
    assert snap.cost_usd == pytest.approx(4 / 1e6)


# -- percentiles --------------------------------------------------------------------------


def test_latency_percentiles_interpolate_linearly() -> None:
    stats = collector(Clock())
    stats.reset(100)
    for ms in range(100, 0, -1):  # any order
        stats.answered("m", usage(1, 1), ms / 1000, ms / 4000 if ms % 2 else None, False)
    snap = stats.snapshot()
    assert snap.latency_p50 == pytest.approx(0.0505)
    assert snap.latency_p95 == pytest.approx(0.09505)
    assert snap.latency_p99 == pytest.approx(0.09901)
    odd = [ms / 4000 for ms in range(1, 100, 2)]
    assert snap.ttft_p50 == pytest.approx(statistics.median(odd))


@given(st.lists(st.floats(0, 1e4, allow_nan=False), min_size=2, max_size=300))
def test_percentile_matches_the_inclusive_method(values: list[float]) -> None:
    ordered = sorted(values)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    for q in (0.25, 0.5, 0.95, 0.99):
        got = percentile(ordered, q)
        assert got == pytest.approx(cuts[round(q * 100) - 1], rel=1e-9, abs=1e-9)


def test_percentile_edge_cases() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0], 0.99) == 3.0
    assert percentile([1.0, 2.0], 0.0) == 1.0
    assert percentile([1.0, 2.0], 1.0) == 2.0


def test_reservoir_memory_is_bounded_and_the_sample_stays_representative() -> None:
    sample = Reservoir(size=500, seed=7)
    for i in range(100_000):
        sample.add(float(i % 1000))
    assert sample.count == 100_000
    assert len(sample.values) == 500
    p50, p99 = sample.percentiles(0.5, 0.99)
    assert p50 is not None
    assert p99 is not None
    assert 400 <= p50 <= 600
    assert p99 >= 950


def test_ttft_keeps_being_sampled_after_many_unstreamed_answers() -> None:
    stats = collector(Clock())
    stats.reset(None)
    for _ in range(5000):
        stats.answered("m", usage(1, 1), 0.1, None, False)
    stats.answered("m", usage(1, 1), 0.1, 0.03, True)
    assert stats.snapshot().ttft_p50 == pytest.approx(0.03)


# -- cost ---------------------------------------------------------------------------------


def test_cost_charges_cached_prompt_tokens_at_the_cached_price() -> None:
    stats = collector(Clock(), gpt=(2.0, 8.0, 0.5))
    stats.reset(1)
    stats.answered("gpt", usage(1000, 100, cached=400), 0.1, None, False)
    # (600 * 2 + 400 * 0.5 + 100 * 8) / 1e6
    assert stats.cost == pytest.approx(0.0022)
    assert stats.snapshot().cost_usd == pytest.approx(0.0022)


def test_without_a_cached_price_cached_tokens_cost_the_prompt_price() -> None:
    table = PriceTable({"m": (3.0, 15.0)})
    assert table.cost("m", usage(1000, 10, cached=1000)) == pytest.approx(0.003 + 0.00015)
    # more cached tokens than prompt tokens cannot make the prompt cheaper than free
    cheap = PriceTable({"m": [1.0, 0.0, 0.0]})
    assert cheap.cost("m", usage(10, 0, cached=50)) == 0.0
    assert cheap.cost("m", {"prompt_tokens": 10, "prompt_tokens_details": "?"}) == pytest.approx(
        1e-5
    )


def test_dated_snapshot_names_use_the_base_models_price() -> None:
    table = PriceTable({"gpt-4o-mini": (0.15, 0.6), "gpt-4o": (2.5, 10.0)})
    assert table.price_of("gpt-4o-mini-2024-07-18") == (0.15, 0.6, 0.15)
    assert table.price_of("gpt-4o-2024-08-06") == (2.5, 10.0, 2.5)
    assert table.price_of("gpt-4o-mini-tts") is None
    assert "gpt-4o-2024-08-06" in table
    assert "other" not in table


def test_unpriced_models_are_reported_not_silently_free(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="fastllm")
    stats = collector(Clock(), known=(1.0, 1.0))
    stats.reset(3)
    stats.answered("known", usage(10, 10), 0.1, None, False)
    stats.answered("mystery", usage(100, 50), 0.1, None, False)
    stats.answered("mystery", usage(100, 50), 0.1, None, False)
    stats.answered(None, usage(1, 1), 0.1, None, False)
    snap = stats.snapshot()
    assert snap.cost_usd == pytest.approx(20 / 1e6)
    assert snap.unpriced_tokens == 302
    warnings = [r.getMessage() for r in caplog.records if "no price" in r.getMessage()]
    assert len(warnings) == 2  # once per model
    assert "'mystery'" in warnings[0]
    assert "302 tokens of models without a price" in snap.summary()


def test_no_prices_means_no_cost() -> None:
    stats = collector(Clock())
    stats.reset(1)
    stats.answered("m", usage(10, 10), 0.1, None, False)
    assert stats.snapshot().cost_usd is None
    assert stats.cost == 0.0
    assert "cost" not in stats.snapshot().summary()


@pytest.mark.parametrize(
    "prices",
    [
        ["m", 1.0, 2.0],
        {"m": (1.0,)},
        {"m": (1.0, 2.0, 3.0, 4.0)},
        {"m": (-1.0, 2.0)},
        {"m": (1.0, float("nan"))},
        {"m": (1.0, float("inf"))},
        {"m": (True, 2.0)},
        {"m": ("1", "2")},
        {"m": 1.0},
        {3: (1.0, 2.0)},
        {"": (1.0, 2.0)},
    ],
)
def test_bad_prices_are_a_configuration_error_naming_prices(prices: object) -> None:
    with pytest.raises(ConfigurationError) as caught:
        StatsCollector(prices)  # type: ignore[arg-type]
    assert caught.value.argument == "prices"
    assert str(caught.value).startswith("prices: ")


def test_the_manager_rejects_bad_prices_too() -> None:
    from fastllm import OpenAIProvider, RequestManager

    quiet = OpenAIProvider(api_key="k", api_base="http://127.0.0.1:9/v1")
    with pytest.raises(ConfigurationError, match=r"^prices: "):
        RequestManager(quiet, show_progress=False, prices={"m": (1.0, -2.0)})


# -- immutability -------------------------------------------------------------------------


def test_snapshots_are_frozen_and_independent_of_later_events() -> None:
    stats = collector(Clock(), m=(1.0, 1.0))
    stats.reset(4)
    stats.failed_orders(InternalServerError("x", status_code=500), 1, 0)
    snap = stats.snapshot()
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.failed = 0  # type: ignore[misc]
    with pytest.raises(TypeError):
        snap.errors_by_type["InternalServerError"] = 0  # type: ignore[index]
    with pytest.raises(TypeError):
        snap.errors_by_type.clear()  # type: ignore[attr-defined]
    stats.failed_orders(InternalServerError("y", status_code=500), 2, 0)
    assert snap.failed == 1
    assert snap.errors_by_type == {"InternalServerError": 1}
    assert stats.snapshot().errors_by_type == {"InternalServerError": 3}


def test_snapshots_pickle_hash_and_convert_to_dicts() -> None:
    stats = collector(Clock())
    stats.reset(2)
    stats.failed_orders(NotRunError("budget"), 2, 1)
    snap = stats.snapshot()
    again = pickle.loads(pickle.dumps(snap))
    assert again == snap
    assert hash(again) == hash(snap)
    as_dict = dataclasses.asdict(snap)
    assert as_dict["errors_by_type"] == {"NotRunError": 2}
    assert dataclasses.replace(snap, failed=0).errors_by_type == {"NotRunError": 2}
    built = TokenStats(errors_by_type={"X": 1})
    with pytest.raises(TypeError):
        built.errors_by_type["X"] = 2  # type: ignore[index]


# -- rate limits --------------------------------------------------------------------------


def limiter_snapshot() -> LimiterSnapshot:
    def limit(kind: str, capacity: int, available: float) -> LimitSnapshot:
        return LimitSnapshot(
            name=f"{kind}/min",
            kind=kind,
            capacity=capacity,
            period=60.0,
            available=available,
            saturation=1 - available / capacity,
            learned_remaining=None,
            auto=False,
        )

    return LimiterSnapshot(
        limits=(limit("tokens", 10_000, 2_500), limit("requests", 100, 90)),
        waited_seconds_total=3.5,
        waiting=0,
        cooldown_until=None,
    )


def test_rate_limit_fields_come_from_the_limiter() -> None:
    stats = collector(Clock())
    stats.reset(1)
    stats.limiter_snapshot = limiter_snapshot
    snap = stats.snapshot()
    assert (snap.token_limit, snap.window_tokens, snap.token_saturation) == (10_000, 7_500, 0.75)
    assert snap.request_limit == 100
    assert snap.window_requests == 10
    assert snap.request_saturation == pytest.approx(0.1)
    assert snap.limiter_wait_seconds == 3.5
    assert "tokens 75% of 10,000 in use" in snap.summary()
    assert "waited 3.50 s for rate limits" in snap.summary()


# -- summary ------------------------------------------------------------------------------


def test_summary_has_the_numbers() -> None:
    clock = Clock()
    stats = collector(clock, m=(1000.0, 2000.0))
    stats.reset(1200)
    for i in range(10):
        stats.sending()
        stats.sent_done()
        stats.answered("m", usage(100, 20), 0.010 * (i + 1), 0.002, True)
    stats.completed(1000, cached=False, shared=990, tokens=120)
    stats.completed(150, cached=True, shared=0, tokens=120)
    stats.retrying()
    stats.failed_orders(InternalServerError("x", status_code=500), 40, 0)
    clock.now += 12.5
    stats.finish()
    text = stats.snapshot().summary()
    assert "1,190/1,200 done in 12.5 s (95.2 req/s)" in text
    assert "1,150 ok, 40 failed; 150 from cache, 990 deduplicated" in text
    assert "10 sent, 1 retries" in text
    assert "1,000 prompt + 200 completion = 1,200 billed" in text
    assert "p50 55 ms" in text
    assert "first token p50 2 ms" in text
    assert "cost       $1.40" in text
    assert "40 InternalServerError" in text
    assert len(text.splitlines()) <= 12


def test_total_tokens_are_read_from_raw_answers_without_decoding() -> None:
    from fastllm.engine.results import total_tokens_of

    assert total_tokens_of(None, b'{"usage":{"prompt_tokens":3,"total_tokens": 15 }}') == 15
    nested = b'{"usage":{"total_tokens":7,"prompt_tokens_details":{"cached_tokens":1}}}'
    assert total_tokens_of(None, nested) == 7
    assert total_tokens_of(None, b'{"choices":[]}') == 0
    assert total_tokens_of(None, b'{"usage":{"total_tokens":"many"}}') == 0
    assert total_tokens_of({"usage": {"total_tokens": 4}}) == 4
