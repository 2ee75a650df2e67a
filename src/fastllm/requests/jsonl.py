"""OpenAI Batch files: reading input lines (streamed) and writing JSONL.

Lines are read one at a time, so a file of any size can be streamed; a bad line is
reported with its 1-based line number.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from fastllm.errors import ConfigurationError, RequestFormatError
from fastllm.requests.model import Request
from fastllm.requests.normalize import request_from_line

__all__ = ["BadLine", "iter_checked_lines", "iter_jsonl", "read_batch_lines", "write_jsonl"]


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that could not be used: its number, its text and why."""

    line_number: int
    text: str
    error: RequestFormatError


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, Any | BadLine]]:
    """Yield ``(line_number, parsed JSON)`` per non-blank line, or a :class:`BadLine`."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                yield number, orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                text = raw.decode("utf-8", "replace").rstrip("\n")
                error = RequestFormatError(f"not valid JSON ({exc})", line=number)
                error.__cause__ = exc
                yield number, BadLine(number, text, error)


def read_batch_lines(
    path: str | os.PathLike[str], *, on_error: Literal["raise", "skip"] = "raise"
) -> Iterator[dict[str, Any] | BadLine]:
    """Yield checked Batch lines (as written); with ``on_error="skip"``, :class:`BadLine` s too."""
    for item in iter_checked_lines(path, on_error=on_error):
        yield item if isinstance(item, BadLine) else item[0]


def iter_checked_lines(
    path: str | os.PathLike[str], *, on_error: Literal["raise", "skip"] = "raise"
) -> Iterator[tuple[dict[str, Any], Request] | BadLine]:
    """Yield ``(line, Request)`` per good line; a bad line raises or, skipping, is yielded.

    The request's body is the line's own when it needs no cleaning (not a copy).
    """
    if on_error not in ("raise", "skip"):
        raise ConfigurationError("on_error", f"must be 'raise' or 'skip', got {on_error!r}")
    for number, item in iter_jsonl(path):
        if not isinstance(item, BadLine):
            try:
                request = request_from_line(item, number - 1, line_number=number, share_body=True)
            except RequestFormatError as exc:
                text = orjson.dumps(item).decode() if _dumpable(item) else repr(item)
                item = BadLine(number, text, exc)
            else:
                yield item, request
                continue
        if on_error == "raise":
            raise item.error
        yield item


def _dumpable(item: object) -> bool:
    try:
        orjson.dumps(item)
    except TypeError:
        return False
    return True


def write_jsonl(path: str | os.PathLike[str], lines: Iterable[Any]) -> int:
    """Write one JSON document per line; return the number of lines written."""
    count = 0
    with open(path, "wb") as handle:
        for line in lines:
            handle.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))
            count += 1
    return count
