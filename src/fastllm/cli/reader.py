"""Streaming the input of ``fastllm run``: one checked item per non-blank line.

Each item is a :class:`~fastllm.requests.model.Request` built with its absolute
line index as order (so generated custom ids are the same on every resume), or a
:class:`~fastllm.errors.RequestFormatError` naming the line, which the engine turns
into that line's failed result. Lines already in the output are skipped without
being parsed, so resuming a 10,000,000-line run starts at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import IO, Any

import orjson

from fastllm.errors import RequestFormatError
from fastllm.requests.model import Request
from fastllm.requests.normalize import request_from_line

__all__ = ["InputReader", "SizedInput", "count_lines", "parse_line"]

Item = Request | RequestFormatError


def parse_line(raw: bytes, index: int, number: int) -> Item:
    """The item for one raw input line (``index``: 0-based among non-blank lines)."""
    try:
        line: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        error = RequestFormatError(f"not valid JSON ({exc})", line=number)
        error.__cause__ = exc
        return error
    try:
        # the parsed line is this item's alone: its body is used as it is, not copied
        return request_from_line(line, index, line_number=number, share_body=True)
    except RequestFormatError as exc:
        custom_id = line.get("custom_id") if isinstance(line, dict) else None
        if exc.custom_id is None and isinstance(custom_id, str):
            exc.custom_id = custom_id  # so the output line keeps the input's id
        return exc


def count_lines(path: str | os.PathLike[str]) -> int:
    """The number of non-blank lines of ``path`` (for the progress bar's total)."""
    with open(path, "rb") as handle:
        return sum(1 for raw in handle if raw.strip())


class InputReader:
    """The input file from line ``skip`` on; ``skip()`` first, then iterate once."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self._handle: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._lines = enumerate(self._handle, start=1)
        self._index = 0

    def skip(self, count: int) -> Item | None:
        """Pass over ``count`` non-blank lines; return the last one's item (None if 0).

        Raises ``EOFError`` when the input has fewer lines.
        """
        last: tuple[bytes, int] | None = None
        while self._index < count:
            found = next(self._lines, None)
            if found is None:
                raise EOFError(f"the input has only {self._index} lines")
            number, raw = found
            if raw.strip():
                last = (raw, number)
                self._index += 1
        if last is None:
            return None
        return parse_line(last[0], self._index - 1, last[1])

    @property
    def skipped(self) -> int:
        """Lines passed over so far."""
        return self._index

    def __iter__(self) -> Iterator[Item]:
        try:
            for number, raw in self._lines:
                if not raw.strip():
                    continue
                yield parse_line(raw, self._index, number)
                self._index += 1
        finally:
            self.close()

    def close(self) -> None:
        """Close the file."""
        self._handle.close()


class SizedInput:
    """``reader`` with a known length, so the progress bar has an end."""

    def __init__(self, reader: InputReader, total: int) -> None:
        self._reader = reader
        self._total = total

    def __len__(self) -> int:
        return self._total

    def __iter__(self) -> Iterator[Item]:
        return iter(self._reader)
