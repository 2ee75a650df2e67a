"""Pool: several mock endpoints behind one provider — spreading, failover, breakers, cache."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from fastllm import InMemoryCache, OpenAIProvider, RequestBatch, RequestManager
from fastllm.errors import BadRequestError, ConfigurationError
from fastllm.providers import AnthropicProvider
from fastllm.providers.pool import Pool, PoolMember
from fastllm.testing import MockEndpoints, MockServerConfig


def chat_batch(n: int, prefix: str = "pool request", **extra: object) -> RequestBatch:
    batch = RequestBatch()
    for i in range(n):
        batch.chat.completions.create(
            model="m", messages=[{"role": "user", "content": f"{prefix} {i}"}], **extra
        )
    return batch


def openai_pool(endpoints: MockEndpoints, **options: object) -> Pool:
    members = [
        OpenAIProvider(api_key=f"sk-member-{i}", api_base=url)
        for i, url in enumerate(endpoints.base_urls)
    ]
    return Pool(members, **options)  # type: ignore[arg-type]


def quiet_manager(provider: Pool, **options: object) -> RequestManager:
    settings: dict[str, object] = {"concurrency": 50, "show_progress": False, "retry_delay": 0.05}
    settings.update(options)
    return RequestManager(provider, **settings)  # type: ignore[arg-type]


def test_5000_requests_over_three_endpoints_one_down_one_10x_slower() -> None:
    """The issue's bar: 0 lost, and traffic in proportion to what each endpoint can take."""
    fast = MockServerConfig(rate_limit_requests=400, rate_limit_window=2.0)
    slow = MockServerConfig(rate_limit_requests=40, rate_limit_window=2.0)
    n = 5000
    with MockEndpoints(fast, fast, slow) as endpoints:
        pool = openai_pool(endpoints)
        manager = quiet_manager(pool, concurrency=100)

        async def run() -> list[bool]:
            oks = []
            async for result in manager.as_completed(chat_batch(n)):
                oks.append(result.ok)
                if len(oks) == n * 3 // 10:
                    await asyncio.to_thread(endpoints.take_down, 1)
                elif len(oks) == n * 6 // 10:
                    await asyncio.to_thread(endpoints.bring_up, 1)
            return oks

        oks = asyncio.run(run())
        assert len(oks) == n
        assert all(oks)
        a, b, c = pool.stats()
        figures = ", ".join(
            f"{m.name}: {m.succeeded} ok, {m.failed} failed over" for m in (a, b, c)
        )
        print(
            f"\n{n} requests, {oks.count(False)} lost, retries {manager.stats().retries}; {figures}"
        )
        assert a.succeeded + b.succeeded + c.succeeded == n
        for index, member in enumerate((a, b, c)):
            assert member.succeeded <= endpoints.served(index) <= member.sent
        # the slow endpoint takes about a tenth of what a fast one takes
        assert 0.04 < c.succeeded / a.succeeded < 0.2
        assert b.succeeded < a.succeeded  # it was down for a while
        assert b.failed <= 20  # its breaker opened: a few failures, each one failed over
        assert b.failed_over == b.failed
        assert b.state == "closed"  # it came back and was used again
        assert [limit.capacity for limit in c.limits.limits] == [40]


def test_a_member_with_a_wrong_key_is_set_aside(caplog: pytest.LogCaptureFixture) -> None:
    refused = MockServerConfig(fail_first=10**9, fail_first_status=401)
    caplog.set_level(logging.DEBUG)
    with MockEndpoints(refused, None) as endpoints:
        pool = openai_pool(endpoints, strategy="ordered")
        results = quiet_manager(pool, concurrency=10).process_batch(chat_batch(200))
        assert "set aside" in caplog.text or "refused" in caplog.text
        assert "sk-member" not in caplog.text + repr(pool) + str(pool.stats())
        assert all(r.ok for r in results)
        bad, good = pool.stats()
        assert bad.state == "open"
        assert bad.reason == "HTTP 401"
        assert bad.sent <= 10  # at most the requests in flight when the first 401 came
        assert good.succeeded == 200


def test_429s_send_requests_to_another_member() -> None:
    with MockEndpoints(MockServerConfig(fail_429=1.0, retry_after="5"), None) as endpoints:
        pool = openai_pool(endpoints, strategy="ordered")
        manager = quiet_manager(pool, concurrency=10)
        results = manager.process_batch(chat_batch(100))
        assert all(r.ok for r in results)
        assert all(r.attempts == 1 for r in results)  # the engine never saw a 429
        limited, other = pool.stats()
        assert limited.rate_limited == limited.sent >= 1
        assert other.succeeded == 100


def test_the_cache_and_dedup_work_across_members() -> None:
    with MockEndpoints(None, None, None) as endpoints:
        cache = InMemoryCache()
        pool = openai_pool(endpoints)
        batch = RequestBatch.merge([chat_batch(30), chat_batch(30)])  # every request twice
        results = quiet_manager(pool, caching_provider=cache).process_batch(batch)
        assert all(r.ok for r in results)
        assert sum(endpoints.served(i) for i in range(3)) == 30
        assert min(endpoints.served(i) for i in range(3)) > 0  # spread over all three
        # a pool of other keys on two of the endpoints answers from the same cache
        others = Pool(
            [OpenAIProvider(api_key="sk-other", api_base=url) for url in endpoints.base_urls[1:]]
        )
        assert others.cache_namespace == pool.cache_namespace
        again = quiet_manager(others, caching_provider=cache).process_batch(chat_batch(30))
        assert all(r.cached for r in again)
        assert sum(endpoints.served(i) for i in range(3)) == 30
        assert "sk-member" not in repr(pool) + pool.cache_namespace


def test_keys_of_one_endpoint_share_its_cache_namespace() -> None:
    single = OpenAIProvider(api_key="sk-a", api_base="http://127.0.0.1:9/v1")
    pool = Pool([single, OpenAIProvider(api_key="sk-b", api_base="http://127.0.0.1:9/v1")])
    assert pool.cache_namespace == single.cache_namespace
    named = Pool([single], name="my-fleet")
    assert named.cache_namespace != single.cache_namespace


def test_weighted_strategy_follows_the_weights_exactly() -> None:
    with MockEndpoints(None, None) as endpoints:
        first, second = (OpenAIProvider(api_key="k", api_base=u) for u in endpoints.base_urls)
        pool = Pool([PoolMember(first, weight=3), PoolMember(second, weight=1)], "weighted")
        assert all(r.ok for r in quiet_manager(pool).process_batch(chat_batch(400)))
        assert [s.sent for s in pool.stats()] == [300, 100]


def test_ordered_strategy_uses_the_first_member_while_it_works() -> None:
    with MockEndpoints(None, None) as endpoints:
        pool = openai_pool(endpoints, strategy="ordered")
        assert all(r.ok for r in quiet_manager(pool).process_batch(chat_batch(50)))
        assert [s.sent for s in pool.stats()] == [50, 0]
        endpoints.take_down(0)
        results = quiet_manager(pool).process_batch(chat_batch(50, "second run"))
        assert all(r.ok for r in results)
        assert pool.stats()[1].succeeded == 50


def test_a_member_concurrency_cap_holds() -> None:
    with MockEndpoints(MockServerConfig(latency=0.02), MockServerConfig(latency=0.02)) as eps:
        first, second = (OpenAIProvider(api_key="k", api_base=u) for u in eps.base_urls)
        pool = Pool([PoolMember(first, concurrency=2), PoolMember(second, concurrency=3)])
        assert all(r.ok for r in quiet_manager(pool, concurrency=20).process_batch(chat_batch(60)))
        assert eps[0].stats()["max_in_flight"] <= 2
        assert eps[1].stats()["max_in_flight"] <= 3


def test_the_requests_own_errors_are_not_tried_elsewhere() -> None:
    with MockEndpoints(None, None) as endpoints:
        pool = openai_pool(endpoints)
        request = {"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 1000}
        [result] = quiet_manager(pool).process_batch([request])  # the mock allows n <= 128
        assert isinstance(result.error, BadRequestError)
        assert sum(s.sent for s in pool.stats()) == 1


def test_openai_and_anthropic_members_answer_alike() -> None:
    with MockEndpoints(None, None) as endpoints:
        pool = Pool(
            [
                OpenAIProvider(api_key="k", api_base=endpoints.base_urls[0]),
                AnthropicProvider(api_key="k", api_base=endpoints.base_urls[1]),
            ],
            "weighted",
            name="mixed",
        )
        batch = RequestBatch.merge(
            [
                chat_batch(20, max_completion_tokens=50),
                chat_batch(4, "streamed", max_completion_tokens=50, stream=True),
            ]
        )
        batch.embeddings.create(model="e", input=["only OpenAI has embeddings"])
        results = quiet_manager(pool).process_batch(batch)
        contents = [r.response.choices[0].message.content for r in results[:24]]
        assert contents[:20] == [f"pool request {i}" for i in range(20)]
        assert contents[20:] == [f"streamed {i}" for i in range(4)]
        assert len(results[24].embeddings) == 1  # the Anthropic member passed it on
        openai_member, anthropic_member = pool.stats()
        assert openai_member.succeeded + anthropic_member.succeeded == 25
        assert anthropic_member.failed <= 1


@pytest.mark.parametrize(
    "members",
    [[], "not a list"],
)
def test_bad_configuration_is_refused(members: object) -> None:
    with pytest.raises(ConfigurationError):
        Pool(members)  # type: ignore[arg-type]


def test_bad_member_settings_are_refused() -> None:
    provider = OpenAIProvider(api_key="k", api_base="http://127.0.0.1:9/v1")
    bad: list[Callable[[], object]] = [
        lambda: PoolMember(provider, weight=0),
        lambda: PoolMember(provider, concurrency=0),
        lambda: Pool([provider], strategy="random"),  # type: ignore[arg-type]
    ]
    for build in bad:
        with pytest.raises(ConfigurationError):
            build()
