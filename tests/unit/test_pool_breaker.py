"""CircuitBreaker on a fake clock: open at the threshold, one probe, doubling cooldowns."""

from __future__ import annotations

from fastllm.providers.pool_breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_and_probes_once() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, cooldown=2.0, max_cooldown=5.0, clock=clock)
    for _ in range(2):
        breaker.failed("APIConnectionError", probe=breaker.sending())
    assert breaker.state == "closed"
    breaker.failed("APIConnectionError", probe=breaker.sending())
    assert breaker.state == "open"
    assert not breaker.allows()
    assert breaker.reopens_in() == 2.0
    clock.now += 2.0
    assert breaker.state == "half-open"
    assert breaker.allows()
    assert breaker.sending() is True  # the probe
    assert not breaker.allows()  # only one at a time
    breaker.failed("APIConnectionError", probe=True)
    assert breaker.reopens_in() == 4.0  # doubled
    clock.now += 4.0
    breaker.failed("APIConnectionError", probe=breaker.sending())
    assert breaker.reopens_in() == 5.0  # capped
    clock.now += 5.0
    assert breaker.sending() is True
    breaker.succeeded()
    assert breaker.state == "closed"
    assert breaker.reason is None
    assert breaker.trips == 3


def test_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker(threshold=2, clock=Clock())
    breaker.failed("x", probe=False)
    breaker.succeeded()
    breaker.failed("x", probe=False)
    assert breaker.state == "closed"


def test_a_fatal_trip_and_a_probe_without_verdict() -> None:
    clock = Clock()
    breaker = CircuitBreaker(clock=clock)
    breaker.trip("HTTP 401", 300.0)
    assert breaker.state == "open"
    assert breaker.reason == "HTTP 401"
    clock.now += 300.0
    assert breaker.sending() is True
    breaker.released(probe=True)  # e.g. a 400: says nothing about the member
    assert breaker.allows()
    assert breaker.state == "half-open"
