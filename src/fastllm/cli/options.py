"""Option parsing shared by the commands: prices, URLs, and keeping the API key out of text."""

from __future__ import annotations

import traceback

import click

from fastllm.providers.http_errors import redact

__all__ = ["check_base_url", "parse_prices", "redacted_traceback"]


def parse_prices(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, tuple[float, ...]] | None:
    """``MODEL=PROMPT,COMPLETION[,CACHED_PROMPT]`` (USD per million tokens), repeatable."""
    if not values:
        return None
    prices: dict[str, tuple[float, ...]] = {}
    for value in values:
        model, sep, numbers = value.rpartition("=")
        parts = numbers.split(",")
        try:
            price = tuple(float(part) for part in parts)
        except ValueError:
            price = ()
        if not sep or not model.strip() or len(price) not in (2, 3) or min(price) < 0:
            raise click.BadParameter(
                f"{value!r}: expected MODEL=PROMPT_USD_PER_M,COMPLETION_USD_PER_M "
                "(e.g. gpt-4o-mini=0.15,0.60), with non-negative numbers",
                ctx=ctx,
                param=param,
            )
        prices[model.strip()] = price
    return prices


def check_base_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """An http(s) URL without a trailing slash."""
    if not value.startswith(("http://", "https://")):
        raise click.BadParameter(
            f"{value!r} is not an http:// or https:// URL", ctx=ctx, param=param
        )
    return value.rstrip("/")


def redacted_traceback(exc: BaseException, secret: str | None) -> str:
    """The traceback of ``exc`` as text, with ``secret`` replaced by ``[secure]``."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return redact(text, secret)
