"""The end-of-run summary: one screen, the numbers that matter."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastllm.observe.stats import TokenStats

__all__ = ["format_duration", "format_summary", "format_usd"]


def format_summary(stats: TokenStats) -> str:
    """``stats`` as a few aligned lines of text."""
    total = stats.requests_total if stats.requests_total is not None else stats.requests_completed
    lines = [
        f"requests   {stats.requests_completed:,}/{total:,} done in "
        f"{format_duration(stats.elapsed_time)} ({stats.requests_per_second:,.1f} req/s)",
        f"results    {stats.succeeded:,} ok, {stats.failed:,} failed; "
        f"{stats.cache_hits:,} from cache, {stats.deduplicated:,} deduplicated",
        f"network    {stats.sent:,} sent, {stats.retries:,} retries"
        + (f"; {stats.cache_errors:,} cache errors" if stats.cache_errors else ""),
        f"tokens     {stats.prompt_tokens:,} prompt + {stats.completion_tokens:,} completion "
        f"= {stats.total_tokens:,} billed; {stats.saved_tokens:,} saved",
    ]
    if stats.latency_p50 is not None:
        line = "latency    " + ", ".join(
            f"{name} {_ms(value)}"
            for name, value in (
                ("p50", stats.latency_p50),
                ("p95", stats.latency_p95),
                ("p99", stats.latency_p99),
            )
        )
        if stats.ttft_p50 is not None:
            line += f"; first token p50 {_ms(stats.ttft_p50)}"
        lines.append(line)
    if stats.cost_usd is not None:
        line = f"cost       {format_usd(stats.cost_usd)}"
        if stats.unpriced_tokens:
            line += f" (+ {stats.unpriced_tokens:,} tokens of models without a price)"
        lines.append(line)
    limits = _limits(stats)
    if limits:
        lines.append(f"limits     {limits}")
    if stats.errors_by_type:
        kinds = ", ".join(
            f"{n:,} {name}"
            for name, n in sorted(stats.errors_by_type.items(), key=lambda kv: (-kv[1], kv[0]))
        )
        lines.append(f"errors     {kinds}")
    if stats.streams_without_usage:
        lines.append(
            f"note       {stats.streams_without_usage:,} streamed answers had no usage "
            "(ask for stream_options.include_usage); their tokens are not counted"
        )
    return "\n".join(lines)


def format_duration(seconds: float) -> str:
    """``0.42 s``, ``12.3 s``, ``4m 05s`` or ``2h 03m``."""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def format_usd(amount: float) -> str:
    """Dollars with the precision small amounts need: ``$0.000123``, ``$0.0123``, ``$12.35``."""
    if amount == 0:
        return "$0.00"
    if amount < 0.01:
        return f"${amount:.6f}"
    if amount < 1:
        return f"${amount:.4f}"
    return f"${amount:,.2f}"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:,.0f} ms"


def _limits(stats: TokenStats) -> str:
    parts = []
    if stats.token_limit:
        parts.append(f"tokens {stats.token_saturation:.0%} of {stats.token_limit:,} in use")
    if stats.request_limit:
        parts.append(f"requests {stats.request_saturation:.0%} of {stats.request_limit:,} in use")
    if stats.limiter_wait_seconds > 0 or parts:
        parts.append(f"waited {format_duration(stats.limiter_wait_seconds)} for rate limits")
    return "; ".join(parts)
