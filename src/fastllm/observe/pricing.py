"""Prices per model and the cost of one answer.

``prices`` maps a model name to USD per million tokens: ``(prompt, completion)`` or
``(prompt, completion, cached_prompt)``. Prompt tokens the provider served from its
prompt cache (``usage.prompt_tokens_details.cached_tokens``) are charged at the
cached price (the prompt price when none is given). An answer's model is looked up
as given, then without a dated snapshot suffix (``gpt-4o-mini-2024-07-18`` ->
``gpt-4o-mini``), since OpenAI answers with the snapshot name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastllm.errors import ConfigurationError

__all__ = ["PriceTable", "Prices", "cached_prompt_tokens"]

#: USD per million tokens: (prompt, completion) or (prompt, completion, cached prompt).
Prices = Mapping[str, Sequence[float]]

_SNAPSHOT = re.compile(r"^(?P<base>.+)-\d{4}-\d{2}-\d{2}$")


class PriceTable:
    """Validated prices; :meth:`cost` prices one answer's usage."""

    def __init__(self, prices: Prices) -> None:
        if not isinstance(prices, Mapping):
            raise ConfigurationError(
                "prices",
                "must be a dict of model name -> (usd_per_million_prompt, "
                f"usd_per_million_completion[, usd_per_million_cached_prompt]), got {prices!r}",
            )
        self._prices: dict[str, tuple[float, float, float]] = {}
        for model, price in prices.items():
            if not isinstance(model, str) or not model:
                raise ConfigurationError("prices", f"model names must be strings, got {model!r}")
            self._prices[model] = _check_price(model, price)

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.price_of(model) is not None

    def __repr__(self) -> str:
        return f"PriceTable({self._prices!r})"

    def price_of(self, model: str) -> tuple[float, float, float] | None:
        """(prompt, completion, cached prompt) USD per million tokens, or None if unpriced."""
        price = self._prices.get(model)
        if price is None:
            snapshot = _SNAPSHOT.match(model)
            if snapshot is not None:
                price = self._prices.get(snapshot["base"])
        return price

    def cost(self, model: str | None, usage: Mapping[str, Any]) -> float | None:
        """USD for one answer's ``usage``; None when ``model`` has no price."""
        price = self.price_of(model) if model else None
        if price is None:
            return None
        prompt = token_count(usage.get("prompt_tokens"))
        completion = token_count(usage.get("completion_tokens"))
        cached = min(prompt, cached_prompt_tokens(usage))
        fresh = prompt - cached
        return (fresh * price[0] + cached * price[2] + completion * price[1]) / 1e6


def cached_prompt_tokens(usage: Mapping[str, Any]) -> int:
    """``usage.prompt_tokens_details.cached_tokens`` (0 when absent or malformed)."""
    details = usage.get("prompt_tokens_details")
    if not isinstance(details, Mapping):
        return 0
    return token_count(details.get("cached_tokens"))


def token_count(value: object) -> int:
    """A usage number as a non-negative int (0 for anything else, booleans included)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if not math.isfinite(value) or value < 0:
        return 0
    return int(value)


def _check_price(model: str, price: object) -> tuple[float, float, float]:
    numbers = price if isinstance(price, tuple | list) else None
    if (
        numbers is None
        or len(numbers) not in (2, 3)
        or any(
            isinstance(p, bool) or not isinstance(p, int | float) or not math.isfinite(p) or p < 0
            for p in numbers
        )
    ):
        raise ConfigurationError(
            "prices",
            f"the price of {model!r} must be (usd_per_million_prompt, "
            "usd_per_million_completion[, usd_per_million_cached_prompt]) with finite "
            f"non-negative numbers, got {price!r}",
        )
    prompt, completion = float(numbers[0]), float(numbers[1])
    cached = float(numbers[2]) if len(numbers) == 3 else prompt
    return prompt, completion, cached
