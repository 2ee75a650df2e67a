"""Plain records of the mock app: the reply decided for a request and the ``/stats`` counters."""

from __future__ import annotations

from typing import Any

from fastllm.testing._http_heads import Header
from fastllm.testing._responses import JSON

__all__ = ["FAULT_KINDS"]

FAULT_KINDS = (
    "fail_first",
    "unknown_model",
    "hang",
    "drop",
    "quota_429",
    "fail_429",
    "fail_500",
    "malformed",
    "stream_truncate",
)
_SEND, _STREAM, _HANG, _DROP = range(4)


class _Reply:
    """An answer decided for one API request, delivered now or after the latency."""

    __slots__ = (
        "action",
        "body",
        "completion",
        "content_type",
        "events",
        "headers",
        "prompt",
        "status",
    )

    def __init__(
        self,
        action: int,
        headers: list[Header],
        status: int = 200,
        body: bytes = b"",
        content_type: str = JSON,
        events: list[bytes] | None = None,
        tokens: tuple[int, int] = (0, 0),
    ) -> None:
        self.action = action
        self.headers = headers
        self.status = status
        self.body = body
        self.content_type = content_type
        self.events = events or []
        self.prompt, self.completion = tokens


class _Stats:
    """The counters served by ``GET /stats``."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.clear()

    def clear(self) -> None:
        self.requests = 0
        self.by_endpoint: dict[str, int] = {}
        self.by_status: dict[int, int] = {}
        self.faults = dict.fromkeys(FAULT_KINDS, 0)
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.rate_limited = 0
        self.max_in_flight = self.in_flight
        self.bodies: dict[int, int] = {}
        self.max_body_repeats = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_endpoint": dict(self.by_endpoint),
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "distinct_bodies": len(self.bodies),
            "max_body_repeats": self.max_body_repeats,
            "faults": dict(self.faults),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "rate_limited": self.rate_limited,
        }
