"""The end-of-run summary: one screen, the numbers that matter."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastllm.observe.stats import TokenStats

__all__ = ["format_summary"]


def format_summary(stats: TokenStats) -> str:
    """``stats`` as a few aligned lines of text."""
    total = stats.requests_total if stats.requests_total is not None else stats.requests_completed
    lines = [
        f"requests   {stats.requests_completed:,}/{total:,} done in {stats.elapsed_time:.2f} s "
        f"({stats.requests_per_second:,.1f} req/s)",
        f"results    {stats.succeeded:,} ok, {stats.failed:,} failed, "
        f"{stats.cache_hits:,} from cache, {stats.deduplicated:,} deduplicated",
        f"network    {stats.sent:,} sent, {stats.retries:,} retries",
        f"tokens     {stats.prompt_tokens:,} prompt + {stats.completion_tokens:,} completion "
        f"= {stats.total_tokens:,} billed, {stats.saved_tokens:,} saved",
    ]
    if stats.latency_p50 is not None:
        p95 = stats.latency_p95 or 0.0
        p99 = stats.latency_p99 or 0.0
        line = f"latency    p50 {stats.latency_p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
        line += f"p99 {p99 * 1000:.0f} ms"
        if stats.ttft_p50 is not None:
            line += f", first token p50 {stats.ttft_p50 * 1000:.0f} ms"
        lines.append(line)
    if stats.cost_usd is not None:
        lines.append(f"cost       ${stats.cost_usd:,.4f}")
    if stats.errors_by_type:
        kinds = ", ".join(f"{n:,} {name}" for name, n in sorted(stats.errors_by_type.items()))
        lines.append(f"errors     {kinds}")
    if stats.streams_without_usage:
        lines.append(
            f"note       {stats.streams_without_usage:,} streamed answers had no usage "
            "(ask for stream_options.include_usage); their tokens are not counted"
        )
    return "\n".join(lines)
