"""Rate-limit fields of ``TokenStats`` from a limiter snapshot (the reference's names)."""

from __future__ import annotations

from typing import Any

from fastllm.limits import LimiterSnapshot

__all__ = ["limiter_fields"]


def limiter_fields(snapshot: LimiterSnapshot) -> dict[str, Any]:
    """``token_limit``/``request_limit`` (the tightest budget of each kind), what of it is in
    use now (``window_*``), its saturation (0..1) and the time spent waiting for it."""
    fields: dict[str, Any] = {"limiter_wait_seconds": snapshot.waited_seconds_total}
    for kind, prefix in (("tokens", "token"), ("requests", "request")):
        limits = [limit for limit in snapshot.limits if limit.kind == kind]
        if not limits:
            continue
        tightest = max(limits, key=lambda limit: limit.saturation)
        fields[f"{prefix}_limit"] = tightest.capacity
        fields[f"window_{kind}"] = max(0, round(tightest.capacity - tightest.available))
        fields[f"{prefix}_saturation"] = tightest.saturation
    return fields
