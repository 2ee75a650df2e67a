"""``fastllm split``: cut a Batch input file into files the OpenAI Batch API accepts.

The Batch API takes one endpoint and one model per file, at most 50,000 lines and
200 MB, and unique custom ids. Lines are streamed to one open part per
(endpoint, model) and keep their order; a part is closed when the next line would
break a limit. Files are ``<stem>.<model>.<endpoint>.<n>.jsonl``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import click
import orjson

from fastllm.errors import RequestFormatError
from fastllm.requests.batch import BATCH_API_MAX_BYTES, BATCH_API_MAX_LINES
from fastllm.requests.jsonl import BadLine, iter_jsonl
from fastllm.requests.model import Endpoint
from fastllm.requests.normalize import request_from_line

__all__ = ["split"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class _Part:
    """The open file of one (endpoint, model) group."""

    path: Path
    handle: IO[bytes]
    lines: int = 0
    size: int = 0
    ids: set[str] = field(default_factory=set)


class _Splitter:
    """Writes lines to parts, opening a new one when a limit would be passed."""

    def __init__(self, stem: str, out_dir: Path, max_lines: int, max_bytes: int) -> None:
        self._stem = stem
        self._dir = out_dir
        self._max_lines = max_lines
        self._max_bytes = max_bytes
        self._open: dict[tuple[Endpoint, str], _Part] = {}
        self._counts: dict[tuple[Endpoint, str], int] = {}
        self._names: dict[str, str] = {}  # file-name form -> model, to keep names distinct
        self.created: list[Path] = []
        self._lines: dict[Path, int] = {}

    def add(self, endpoint: Endpoint, model: str, custom_id: str, data: bytes, number: int) -> None:
        """Append one serialised line (``number`` names it in errors)."""
        size = len(data)
        if size > self._max_bytes:
            raise RequestFormatError(
                f"line is {size:,} bytes, more than the {self._max_bytes:,}-byte file limit",
                line=number,
            )
        key = (endpoint, model)
        part = self._open.get(key)
        if part is not None and (
            part.lines >= self._max_lines or part.size + size > self._max_bytes
        ):
            self._close(key)
            part = None
        if part is None:
            part = self._new_part(key)
        if custom_id in part.ids:
            raise RequestFormatError(
                f"duplicate custom_id {custom_id!r} (the Batch API needs unique ids per file)",
                line=number,
            )
        part.ids.add(custom_id)
        part.handle.write(data)
        part.lines += 1
        part.size += size

    def finish(self) -> list[tuple[Path, int]]:
        """Close every open part; return each file with its line count, in creation order."""
        for key in list(self._open):
            self._close(key)
        return [(path, self._lines[path]) for path in self.created]

    def abandon(self) -> None:
        """Close and delete every file written."""
        for part in self._open.values():
            part.handle.close()
        self._open.clear()
        for path in self.created:
            path.unlink(missing_ok=True)

    def _new_part(self, key: tuple[Endpoint, str]) -> _Part:
        number = self._counts.get(key, 0) + 1
        self._counts[key] = number
        endpoint, model = key
        kind = endpoint.path.replace("/", "-")
        path = self._dir / f"{self._stem}.{self._file_model(model)}.{kind}.{number}.jsonl"
        part = _Part(path, open(path, "wb"))  # noqa: SIM115 - closed in _close/abandon
        self.created.append(path)
        self._open[key] = part
        return part

    def _file_model(self, model: str) -> str:
        name = _UNSAFE.sub("_", model).strip("._") or "model"
        owner = self._names.setdefault(name, model)
        if owner != model:  # two models with the same file-name form
            name = f"{name}-{hashlib.sha1(model.encode()).hexdigest()[:8]}"
            self._names.setdefault(name, model)
        return name

    def _close(self, key: tuple[Endpoint, str]) -> None:
        part = self._open.pop(key)
        part.handle.close()
        self._lines[part.path] = part.lines


def _batch_line(item: Any, number: int) -> tuple[Endpoint, str, str, bytes]:
    """Check one input line; return (endpoint, model, custom_id, the line to write)."""
    request = request_from_line(item, number - 1, line_number=number)
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str):
        raise RequestFormatError("custom_id is required by the Batch API", line=number)
    line = {"custom_id": custom_id, "method": "POST", "url": request.url, "body": item["body"]}
    data = orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE)
    return request.endpoint, str(request.body.get("model")), custom_id, data


@click.command("split")
@click.argument(
    "input_path",
    metavar="INPUT.jsonl",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option(
    "--out-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the files (created if missing).",
)
@click.option(
    "--max-lines", type=click.IntRange(min=1), default=BATCH_API_MAX_LINES, show_default=True
)
@click.option(
    "--max-bytes", type=click.IntRange(min=1), default=BATCH_API_MAX_BYTES, show_default=True
)
@click.option("--skip-bad", is_flag=True, help="Skip and report bad lines instead of failing.")
def split(input_path: Path, out_dir: Path, max_lines: int, max_bytes: int, skip_bad: bool) -> None:
    """Split INPUT.jsonl into OpenAI Batch API files: one endpoint and model each, within limits.

    Exit status 1 (and no files left behind) on a bad line, unless --skip-bad.
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.UsageError(f"cannot create {str(out_dir)!r}: {exc}") from exc
    splitter = _Splitter(input_path.stem, out_dir, max_lines, max_bytes)
    skipped: list[RequestFormatError] = []
    try:
        for number, item in iter_jsonl(input_path):
            try:
                if isinstance(item, BadLine):
                    raise item.error
                splitter.add(*_batch_line(item, number), number=number)
            except RequestFormatError as exc:
                if not skip_bad:
                    raise
                skipped.append(exc)
        written = splitter.finish()
    except RequestFormatError as exc:
        splitter.abandon()
        click.echo(f"error: {exc}; no files written (use --skip-bad to skip bad lines)", err=True)
        raise SystemExit(1) from None
    except BaseException:
        splitter.abandon()
        raise
    for path, count in written:
        click.echo(f"{path}\t{count:,} lines")
    total = sum(count for _, count in written)
    click.echo(f"{total:,} lines in {len(written)} files", err=True)
    for bad in skipped[:20]:
        click.echo(f"skipped: {bad}", err=True)
    if skipped:
        click.echo(f"skipped {len(skipped):,} bad lines", err=True)
