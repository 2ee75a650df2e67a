"""Splitting Batch lines into files the OpenAI Batch API accepts.

The Batch API takes one endpoint and one model per file, at most 50,000 lines and
200 MB. Lines are grouped by (url, model) in first-seen order and cut into parts
within both limits; each part keeps the lines' original order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from fastllm.errors import ConfigurationError, RequestFormatError

__all__ = ["split_lines"]


def split_lines(
    lines: Iterable[dict[str, Any]], max_lines: int, max_bytes: int
) -> Iterator[list[dict[str, Any]]]:
    """Yield groups of lines, one (url, model) each, within ``max_lines`` and ``max_bytes``."""
    if max_lines < 1:
        raise ConfigurationError("max_lines", f"must be at least 1, got {max_lines}")
    if max_bytes < 1:
        raise ConfigurationError("max_bytes", f"must be at least 1, got {max_bytes}")
    open_parts: dict[tuple[str, str], tuple[list[dict[str, Any]], int]] = {}
    for number, line in enumerate(lines, start=1):
        size = len(orjson.dumps(line)) + 1
        if size > max_bytes:
            raise RequestFormatError(
                f"line is {size} bytes, more than the {max_bytes}-byte file limit", line=number
            )
        body = line.get("body") or {}
        key = (str(line.get("url")), str(body.get("model")))
        part, used = open_parts.get(key, ([], 0))
        if part and (len(part) >= max_lines or used + size > max_bytes):
            yield part
            part, used = [], 0
        part.append(line)
        open_parts[key] = (part, used + size)
    for part, _ in open_parts.values():
        if part:
            yield part
