"""OpenAI Batch output lines, and reading back an output file to resume it.

A line is ``{"id", "custom_id", "response", "error"}`` like the Batch API writes:

* success: ``response = {"status_code": 200, "request_id", "body": <answer>}``,
  ``error = null``;
* the server answered with an error status: ``response`` holds that status and the
  server's error body, ``error = {"code", "message"}``;
* no answer at all (connection, timeout, malformed input line ...):
  ``response = null``, ``error = {"code", "message"}``.

``request_id`` is FastLLM's request id (the hash of what was sent, also the cache
key). ``code`` is the server's error code when it gave one, else the exception's
class name. Keys are written in that order, so a successful line always ends with
``"error":null}``; resuming relies on it to count earlier failures without
parsing every line.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from typing import Any

import orjson

from fastllm.engine.results import ResponseWrapper
from fastllm.errors import APIStatusError, RequestFormatError

__all__ = ["LineFormatter", "OutputState", "custom_id_of", "scan_output"]

_SUCCESS_END = b'"error":null}'
_CHUNK = 1 << 20


class LineFormatter:
    """Turns results into output lines; ids are ``batch_req_<run token><line index>``."""

    def __init__(self, first_index: int, secret: str | None = None) -> None:
        self._token = secrets.token_hex(6)
        self._next = first_index
        self._secret = secret.encode() if secret else None

    def format(self, result: ResponseWrapper) -> bytes:
        """One output line (with its newline) for the next result in order."""
        line_id = f"batch_req_{self._token}{self._next:012x}"
        self._next += 1
        if result.ok:
            return orjson.dumps(
                {
                    "id": line_id,
                    "custom_id": result.custom_id,
                    "response": {
                        "status_code": 200,
                        "request_id": result.request_id,
                        "body": result.body,
                    },
                    "error": None,
                },
                option=orjson.OPT_APPEND_NEWLINE,
            )
        line = orjson.dumps(_failure(line_id, result), option=orjson.OPT_APPEND_NEWLINE)
        if self._secret is not None and self._secret in line:  # belt and braces
            line = line.replace(self._secret, b"[secure]")
        return line


def _failure(line_id: str, result: ResponseWrapper) -> dict[str, Any]:
    error = result.error
    custom_id: str | None = result.custom_id
    if isinstance(error, RequestFormatError):
        custom_id = error.custom_id  # the line's own id when it had a usable one
    response: dict[str, Any] | None = None
    code = type(error).__name__
    if isinstance(error, APIStatusError):
        response = {
            "status_code": error.status_code,
            "request_id": result.request_id or None,
            "body": error.body,
        }
        code = error.code or code
    return {
        "id": line_id,
        "custom_id": custom_id,
        "response": response,
        "error": {"code": code, "message": str(error)},
    }


@dataclass(frozen=True)
class OutputState:
    """What an existing output file holds: complete lines, failed ones, the last line."""

    lines: int
    failed: int
    last_line: bytes | None
    truncated_bytes: int


def scan_output(path: str | os.PathLike[str]) -> OutputState:
    """Count the complete lines of ``path`` and cut off a trailing partial line.

    Reads in chunks (memory stays flat for any size); a line that does not end
    with ``"error":null}`` counts as failed.
    """
    lines = failed = 0
    last_newline = -1
    tail = b""
    last_line: bytes | None = None
    offset = 0
    with open(path, "r+b") as handle:
        while chunk := handle.read(_CHUNK):
            data = tail + chunk
            pieces = data.split(b"\n")
            tail = pieces.pop()
            for piece in pieces:
                lines += 1
                if not piece.rstrip().endswith(_SUCCESS_END):
                    failed += 1
            if pieces:
                last_line = pieces[-1]
                last_newline = offset + len(chunk) - len(tail) - 1
            offset += len(chunk)
        end = last_newline + 1
        if end < offset:
            handle.truncate(end)
    return OutputState(lines, failed, last_line, offset - end)


def custom_id_of(line: bytes | None) -> str | None:
    """The ``custom_id`` of an output line, when it can be read."""
    if line is None:
        return None
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    custom_id = value.get("custom_id") if isinstance(value, dict) else None
    return custom_id if isinstance(custom_id, str) else None
