"""``Pool``: several providers (keys, deployments, endpoints) behind one, with failover.

``RequestManager(provider=Pool([...]))`` runs a batch over every member. For each
request the pool picks a member by its strategy among those whose circuit breaker
is closed, whose own concurrency cap is not reached and whose own rate limiter
(fed by that member's ``x-ratelimit-*`` headers) grants it now:

* ``"least-loaded"`` (default): fewest requests in flight per unit of ``weight``;
* ``"weighted"``: smooth weighted round-robin (shares exactly as the weights);
* ``"ordered"``: the first usable member in the list (primary, then fallbacks).

When none grants now, the request waits for the member that will be ready first.
Traffic therefore follows what each member can take: one with a 10× lower limit
gets about a tenth of the traffic, one whose breaker is open gets none but a probe.

A request that fails on a member with an outage (connection refused or lost,
timeout, 5xx), a fatal error (401, 403, ``insufficient_quota``), a 429 or a 404
goes at once to another member it has not tried; a 429 also pauses that member
for its Retry-After, a fatal error opens its breaker for ``fatal_cooldown``. Only
when every member has been tried (or none is usable within ``outage_wait``) does
the request fail, with the last member's error, for the engine's retry policy to
take over. Errors that are the request's own (400, 422) are not tried elsewhere.

The cache and dedup see one provider: the pool's ``cache_namespace`` is the
members' when they share one (keys of one API), else derived from ``name`` or
from the members' provider types — never from a key or a member, so answers are
shared across members and survive adding or removing one. The pool hands the
engine no rate-limit headers (each member's are its own) and keeps per-member
figures in :meth:`Pool.stats`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import xxhash

from fastllm.errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    ConfigurationError,
    InternalServerError,
    NotFoundError,
    NotRunError,
    PermissionDeniedError,
    RateLimitError,
    RequestError,
    ResponseDecodingError,
)
from fastllm.limits import TokenEstimator
from fastllm.providers.base import Provider, ProviderResponse
from fastllm.providers.pool_breaker import CircuitBreaker
from fastllm.providers.pool_member import MemberState, MemberStats, PoolMember
from fastllm.requests.model import Endpoint, Request

if TYPE_CHECKING:
    from fastllm.limits import Reservation
    from fastllm.transport import HttpSession

__all__ = ["Pool", "PoolMember"]

logger = logging.getLogger(__name__)

Strategy = Literal["least-loaded", "weighted", "ordered"]
_STRATEGIES = ("least-loaded", "weighted", "ordered")
_NO_HEADERS: Mapping[str, str] = {}
_MAX_PAUSE = 60.0  # the longest a 429's Retry-After pauses one member
_PROBE_POLL = 1.0  # a waiting request re-checks at least this often (a lost wake-up costs 1 s)


class Pool(Provider):
    """Providers used as one; see the module documentation for the rules.

    ``members``: providers or :class:`PoolMember` objects. ``failure_threshold``
    consecutive outage failures open a member's breaker for ``cooldown`` seconds,
    doubling up to ``max_cooldown`` while its probes fail. ``outage_wait`` bounds how
    long a request waits for a member to come back when every other is used up.
    """

    def __init__(
        self,
        members: Sequence[Provider | PoolMember],
        strategy: Strategy = "least-loaded",
        *,
        name: str | None = None,
        learn_limits: bool = True,
        failure_threshold: int = 3,
        cooldown: float = 1.0,
        max_cooldown: float = 30.0,
        fatal_cooldown: float = 300.0,
        outage_wait: float = 30.0,
        token_estimator: TokenEstimator | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(members, Provider) or not members:
            raise ConfigurationError("members", "give a non-empty list of providers")
        if strategy not in _STRATEGIES:
            raise ConfigurationError("strategy", f"must be one of {_STRATEGIES}, got {strategy!r}")
        wrapped = [m if isinstance(m, PoolMember) else PoolMember(m) for m in members]
        super().__init__(None, wrapped[0].provider.api_base)
        self.strategy = strategy
        self.fatal_cooldown = fatal_cooldown
        self.outage_wait = outage_wait
        self._members = [
            MemberState.build(
                i,
                member,
                learn_limits,
                CircuitBreaker(failure_threshold, cooldown, max_cooldown, clock=clock),
            )
            for i, member in enumerate(wrapped)
        ]
        self._estimator = token_estimator or TokenEstimator()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.cache_namespace = _namespace(wrapped, name)

    @property
    def members(self) -> tuple[Provider, ...]:
        """The member providers, in order."""
        return tuple(member.provider for member in self._members)

    def stats(self) -> tuple[MemberStats, ...]:
        """Each member's figures, in order."""
        return tuple(member.stats() for member in self._members)

    def get_request_headers(self) -> dict[str, str]:
        """None of its own: each member sends its own."""
        return {}

    def get_request_url(self, endpoint: Endpoint | str) -> str:
        """The first member's URL (each request goes to the member chosen for it)."""
        return self._members[0].provider.get_request_url(endpoint)

    def __repr__(self) -> str:
        names = ", ".join(member.name for member in self._members)
        return f"Pool([{names}], strategy={self.strategy!r})"

    # -- one request --------------------------------------------------------------------

    async def make_request(
        self, session: HttpSession, request: Request, timeout: float
    ) -> ProviderResponse:
        """Send ``request`` to a member; on a failure another may help with, to the next."""
        tried: set[int] = set()
        last: RequestError | None = None
        deadline = time.monotonic() + self.outage_wait
        while len(tried) < len(self._members):
            picked = await self._pick(request, tried, deadline)
            if picked is None:
                break
            member, reservation, estimate = picked
            tried.add(member.index)
            probe = member.breaker.sending()
            member.in_flight += 1
            member.sent += 1
            try:
                answer = await member.provider.make_request(session, request, timeout)
            except RequestError as exc:
                member.failed += 1
                member.limiter.settle(reservation, 0)
                self._release(member, probe)
                if not self._worth_another(member, exc, probe) or len(tried) == len(self._members):
                    raise _without_limit_headers(exc)  # noqa: B904 (the same exception)
                member.failed_over += 1
                last = exc
                continue
            except BaseException:  # cancelled, or a custom provider broke its contract
                member.limiter.cancel(reservation)
                member.breaker.released(probe)
                self._release(member, probe)
                raise
            member.succeeded += 1
            member.breaker.succeeded()
            member.limiter.observe_headers(answer.headers)
            usage = answer.body.get("usage")
            member.limiter.settle_answer(reservation, request.body, usage, estimate)
            self._release(member, probe)
            answer.headers = _NO_HEADERS  # the member's limits are its own, not the run's
            return answer
        if last is not None:
            raise _without_limit_headers(last)
        raise APIConnectionError(f"no pool member is usable: {self._describe_unusable()}")

    def _release(self, member: MemberState, probe: bool) -> None:
        """A request of ``member`` ended: wake one waiting request (all after a probe).

        One slot freed serves one waiter; a probe's end may have reopened a member
        (or show it is still down), which concerns every waiter.
        """
        member.in_flight -= 1
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                if not probe:
                    break

    async def _wait(self, timeout: float) -> None:
        """Until a request ends (see :meth:`_release`) or ``timeout`` seconds pass."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        waiters = self._waiters
        waiters.append(waiter)

        def expire() -> None:
            with contextlib.suppress(ValueError):
                waiters.remove(waiter)
            _wake(waiter)

        alarm = loop.call_later(timeout, expire)
        try:
            await waiter
        finally:
            alarm.cancel()
            if not waiter.done():  # cancelled while waiting
                expire()

    def _worth_another(self, member: MemberState, error: RequestError, probe: bool) -> bool:
        """Record what ``error`` says about ``member``; True when another member may succeed."""
        if isinstance(error, RateLimitError) and error.code == "insufficient_quota":
            self._fatal(member, "insufficient_quota")
            return True
        if isinstance(error, AuthenticationError | PermissionDeniedError):
            self._fatal(member, f"HTTP {error.status_code}")
            return True
        if isinstance(error, RateLimitError):
            member.rate_limited += 1
            if error.headers:
                member.limiter.observe_headers(error.headers)
            member.limiter.cooldown(min(_MAX_PAUSE, error.retry_after or 1.0))
            member.breaker.released(probe)
            return True
        if isinstance(error, APIConnectionError | InternalServerError):
            was = member.breaker.state
            member.breaker.failed(type(error).__name__, probe)
            if was == "closed" and member.breaker.state != was:  # once per outage
                logger.warning(
                    "pool member %s is unavailable (%s); its requests go to the others",
                    member.name,
                    type(error).__name__,
                )
            return True
        member.breaker.released(probe)
        if isinstance(error, ResponseDecodingError):
            return error.retryable
        return isinstance(error, NotFoundError | NotRunError)

    def _fatal(self, member: MemberState, reason: str) -> None:
        was = member.breaker.state
        member.breaker.trip(reason, self.fatal_cooldown)
        if was == "open":  # answers to requests sent before it was set aside
            return
        logger.warning(
            "pool member %s refused the request (%s); not used for %g s",
            member.name,
            reason,
            self.fatal_cooldown,
        )

    # -- choosing a member --------------------------------------------------------------

    async def _pick(
        self, request: Request, tried: set[int], deadline: float
    ) -> tuple[MemberState, Reservation, int] | None:
        """A member that grants the request now, or after the shortest wait; None if none can."""
        while True:
            candidates = [m for m in self._members if m.index not in tried and m.breaker.allows()]
            if not candidates:
                # every untried member is open, or half-open with its probe out: wait for
                # the first reopening or the end of a probe, within the outage deadline
                waits = [m.breaker.reopens_in() for m in self._members if m.index not in tried]
                left = deadline - time.monotonic()
                if not waits or min(waits) > left:
                    return None
                await self._wait(min(waits) or min(left, _PROBE_POLL))
                continue
            estimates: dict[int, int] = {}
            for member in self._ordered(candidates):
                if member.full:
                    continue
                estimate = self._estimate(member, request, estimates)
                reservation = member.limiter.try_acquire(estimate)
                if reservation is not None:
                    self._chosen(member, candidates)
                    return member, reservation, estimate
            open_slots = [m for m in candidates if not m.full]
            if not open_slots:  # every candidate at its cap: wait for a release
                await self._wait(_PROBE_POLL)
                continue
            best = min(
                open_slots, key=lambda m: m.limiter_wait(self._estimate(m, request, estimates))
            )
            estimate = self._estimate(best, request, estimates)
            reservation = await best.limiter.acquire(estimate)
            if best.breaker.allows() and not best.full:
                self._chosen(best, candidates)
                return best, reservation, estimate
            best.limiter.cancel(reservation)

    def _estimate(self, member: MemberState, request: Request, cache: dict[int, int]) -> int:
        if not member.limiter.counts_tokens:
            return 0
        if -1 not in cache:
            cache[-1] = self._estimator.estimate(request.endpoint, request.body)
        return cache[-1]

    def _ordered(self, candidates: list[MemberState]) -> list[MemberState]:
        if self.strategy == "ordered":
            return candidates
        if self.strategy == "weighted":
            return sorted(candidates, key=lambda m: m.current + m.weight, reverse=True)
        return sorted(candidates, key=lambda m: (m.in_flight / m.weight, m.sent / m.weight))

    def _chosen(self, member: MemberState, candidates: list[MemberState]) -> None:
        if self.strategy == "weighted":
            for candidate in candidates:
                candidate.current += candidate.weight
            member.current -= sum(candidate.weight for candidate in candidates)

    def _describe_unusable(self) -> str:
        return "; ".join(
            f"{m.name} {m.breaker.state} ({m.breaker.reason or 'busy'})" for m in self._members
        )


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _without_limit_headers(error: RequestError) -> RequestError:
    """``error`` without the member's ``x-ratelimit-*`` headers (not for the engine's limiter)."""
    if isinstance(error, APIStatusError) and error.headers:
        error.headers = {k: v for k, v in error.headers.items() if not k.startswith("x-ratelimit-")}
    return error


def _namespace(members: Sequence[PoolMember], name: str | None) -> str:
    spaces = {member.provider.cache_namespace for member in members}
    if name is None and len(spaces) == 1:
        return spaces.pop()
    identity = name or ",".join(sorted({type(member.provider).__name__ for member in members}))
    return xxhash.xxh3_64_hexdigest(f"pool:{identity}".encode())
