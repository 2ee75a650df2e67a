"""``fastllm demo``: the README's main job, offline, against the bundled mock server.

Starts the mock server in a subprocess (with latency and a few injected 429s and
500s), runs a batch of chat requests (many duplicated) and some embeddings with
an in-memory cache, runs it again to show every answer coming from the cache, and
checks each answer against what the mock must return.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence

import click

from fastllm import InMemoryCache, OpenAIProvider, RequestBatch, RequestManager, ResponseWrapper

__all__ = ["demo"]

_CHAT_MODEL = "gpt-4o-mini"
_EMBED_MODEL = "text-embedding-3-small"
_PRICES = {_CHAT_MODEL: (0.15, 0.60), _EMBED_MODEL: (0.02, 0.0)}
_DIM = 64
_TOPICS = ("rivers", "volcanoes", "compilers", "bread", "tides", "jazz", "glaciers", "chess")


def build_batch(chats: int, duplicate_share: float = 0.4) -> tuple[RequestBatch, list[str]]:
    """``chats`` chat requests (``duplicate_share`` of them repeats) + 10% embeddings.

    Returns the batch and, per request, the text its answer must be built from.
    """
    rng = random.Random(0)
    unique = max(1, math.ceil(chats * (1 - duplicate_share)))
    picks = list(range(unique)) + [rng.randrange(unique) for _ in range(chats - unique)]
    rng.shuffle(picks)
    batch = RequestBatch()
    expected: list[str] = []
    for pick in picks:
        prompt = f"Question {pick}: tell me one fact about {_TOPICS[pick % len(_TOPICS)]}."
        batch.chat.completions.create(
            model=_CHAT_MODEL,
            messages=[
                {"role": "system", "content": "Answer in one sentence."},
                {"role": "user", "content": prompt},
            ],
            max_completion_tokens=64,
        )
        expected.append(prompt)
    for index in range(max(1, chats // 10)):
        text = f"Document {index} about {_TOPICS[index % len(_TOPICS)]}."
        batch.embeddings.create(model=_EMBED_MODEL, input=text, dimensions=_DIM)
        expected.append(text)
    return batch, expected


def check_answers(results: Sequence[ResponseWrapper], expected: Sequence[str]) -> list[str]:
    """Problems found: failures, or answers that are not what the mock returns."""
    from fastllm.testing import mock_embedding

    problems: list[str] = []
    for result, text in zip(results, expected, strict=True):
        if not result.ok:
            problems.append(f"request {result.order} failed: {result.error}")
        elif result.is_embedding_response:
            vectors = result.embeddings
            want = mock_embedding(text, _DIM)
            close = len(vectors) == 1 and len(vectors[0]) == len(want)
            if not close or any(abs(a - b) > 1e-6 for a, b in zip(vectors[0], want, strict=True)):
                problems.append(f"request {result.order}: wrong embedding")
        elif result.response.choices[0].message.content != text:
            problems.append(f"request {result.order}: the answer does not echo its prompt")
    return problems


@click.command("demo")
@click.option(
    "--requests",
    "chats",
    type=click.IntRange(min=1),
    default=3000,
    show_default=True,
    help="Chat requests (40% duplicates); 10% as many embeddings are added.",
)
@click.option("--concurrency", type=click.IntRange(min=1), default=100, show_default=True)
@click.option(
    "--latency",
    type=click.FloatRange(min=0),
    default=0.03,
    show_default=True,
    help="Mock server latency in seconds.",
)
@click.option(
    "--no-progress",
    is_flag=True,
    help="No progress display (the summaries are printed either way).",
)
def demo(chats: int, concurrency: int, latency: float, no_progress: bool) -> None:
    """Run a batch against the bundled mock server, twice, and check every answer.

    Works offline: shows concurrency, deduplication, retries of injected 429/500
    errors, the cost summary, and a second run served entirely from the cache.
    """
    from fastllm.testing import MockServer, MockServerConfig

    config = MockServerConfig(
        latency=latency,
        jitter=latency / 2,
        fail_429=0.002,
        fail_500=0.01,
        retry_after=None,
        retry_after_ms="100",
        seed=1,
    )
    batch, expected = build_batch(chats)
    click.echo(
        f"FastLLM demo: {chats:,} chat requests ({chats - math.ceil(chats * 0.6):,} "
        f"duplicates) and {len(batch) - chats:,} embeddings against the bundled mock "
        f"server ({latency * 1000:.0f} ms latency, 0.2% 429s and 1% 500s injected)"
    )
    started = time.perf_counter()
    with MockServer(config, process=True) as server:
        click.echo(f"mock server: {server.base_url}\n")
        manager = RequestManager(
            OpenAIProvider(api_key="sk-demo", api_base=server.base_url),
            concurrency=concurrency,
            retry_attempts=6,
            retry_delay=0.1,
            show_progress=not no_progress,
            caching_provider=InMemoryCache(),
            prices=_PRICES,
        )
        click.echo("first run")
        first = manager.process_batch(batch)
        if no_progress:  # the progress display prints the summary itself
            click.echo(manager.stats().summary())
        seen = server.stats()
        click.echo(
            f"server     got {seen['requests']:,} requests for {seen['distinct_bodies']:,} "
            f"distinct bodies; statuses {_statuses(seen['by_status'])}\n"
        )
        server.reset()
        click.echo("second run: the same batch, from the cache")
        second = manager.process_batch(batch)
        stats = manager.stats()
        if no_progress:
            click.echo(stats.summary())
        sent = server.stats()["requests"]
        click.echo(f"server     got {sent:,} requests\n")
    problems = check_answers(first, expected) + check_answers(second, expected)
    if sent or stats.sent:
        problems.append(f"the second run sent {sent} requests instead of none")
    for problem in problems[:10]:
        click.echo(f"problem: {problem}", err=True)
    if problems:
        click.echo(f"demo FAILED: {len(problems):,} problems", err=True)
        raise SystemExit(1)
    click.echo(
        f"checked: all {len(batch):,} answers of both runs are what the mock returns "
        f"(chat answers echo their prompt); demo took {time.perf_counter() - started:.1f} s"
    )


def _statuses(by_status: dict[str, int]) -> str:
    return ", ".join(f"{count:,}× {status}" for status, count in by_status.items()) or "none"
