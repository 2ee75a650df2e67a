"""``fastllm run``: an OpenAI Batch input file in, a Batch output file out, in order.

Input lines are streamed; results are written in input order as soon as each is
ready (``RequestManager.iter_ordered``), through a buffer flushed every second, so
memory stays flat for any input size. When the output file exists the run resumes:
its complete lines are kept (a trailing partial line is cut off) and the same
number of input lines is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import click

from fastllm.cache import DiskCache
from fastllm.cli.options import check_base_url, parse_prices, redacted_traceback
from fastllm.cli.output import LineFormatter, OutputState, custom_id_of, scan_output
from fastllm.cli.reader import InputReader, SizedInput, count_lines
from fastllm.engine.manager import RequestManager
from fastllm.errors import CacheError, ConfigurationError
from fastllm.limits import RateLimit
from fastllm.providers.http_errors import redact
from fastllm.providers.openai import DEFAULT_API_BASE, OpenAIProvider

__all__ = ["run"]

_BUFFER = 1 << 20
_FLUSH_SECONDS = 1.0


@dataclass
class _Progress:
    """Lines written by this run so far."""

    written: int = 0
    failed: int = 0


@click.command("run")
@click.argument(
    "input_path",
    metavar="INPUT.jsonl",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Batch output file; resumed when it exists.",
)
@click.option(
    "--base-url",
    envvar="OPENAI_BASE_URL",
    show_envvar=True,
    default=DEFAULT_API_BASE,
    show_default=True,
    callback=check_base_url,
    help="API base URL (ending in /v1).",
)
@click.option("--api-key", envvar="OPENAI_API_KEY", show_envvar=True, help="API key.")
@click.option("--concurrency", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--rpm", type=click.IntRange(min=1), help="Client-side limit: requests per minute.")
@click.option("--tpm", type=click.IntRange(min=1), help="Client-side limit: tokens per minute.")
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Retries after the first try.",
)
@click.option(
    "--retry-delay",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Base seconds of the exponential backoff between tries.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds per attempt.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Disk cache directory: answers are reused across runs.",
)
@click.option(
    "--price",
    "prices",
    multiple=True,
    callback=parse_prices,
    metavar="MODEL=IN,OUT",
    help="USD per million prompt,completion tokens of MODEL (repeatable); shows the cost.",
)
@click.option(
    "--no-progress",
    is_flag=True,
    help="No progress display (else a live bar on a terminal, a status line every 10 s "
    "on stderr otherwise).",
)
@click.option("--overwrite", is_flag=True, help="Start OUTPUT afresh instead of resuming it.")
def run(
    input_path: Path,
    output: Path,
    base_url: str,
    api_key: str | None,
    concurrency: int,
    rpm: int | None,
    tpm: int | None,
    retries: int,
    retry_delay: float,
    timeout: float,
    cache_dir: Path | None,
    prices: dict[str, tuple[float, ...]] | None,
    no_progress: bool,
    overwrite: bool,
) -> None:
    """Run every request of INPUT.jsonl (OpenAI Batch format) and write OUTPUT in input order.

    Exit status: 0 when every line succeeded, 1 when some failed (the output is
    still complete), 2 for usage errors.
    """
    show_progress = not no_progress
    if output.resolve() == input_path.resolve():
        raise click.UsageError("--output must not be the input file")
    if not api_key and base_url == DEFAULT_API_BASE:
        click.echo("warning: no API key (use --api-key or set OPENAI_API_KEY)", err=True)
    state = _open_output(output, overwrite)
    reader = _skip_done(input_path, output, state)
    items: InputReader | SizedInput = reader
    if show_progress:
        items = SizedInput(reader, count_lines(input_path) - state.lines)
    cache = _open_cache(cache_dir)
    try:
        manager = RequestManager(
            OpenAIProvider(api_key=api_key or None, api_base=base_url),
            concurrency=concurrency,
            timeout=timeout,
            retry_attempts=retries + 1,
            retry_delay=retry_delay,
            show_progress=show_progress,
            caching_provider=cache,
            rate_limits=RateLimit(requests=rpm, tokens=tpm, per="1m") if rpm or tpm else None,
            prices=prices,
        )
    except ConfigurationError as exc:
        reader.close()
        _close_cache(cache)
        raise click.UsageError(str(exc)) from exc
    formatter = LineFormatter(state.lines, api_key)
    progress = _Progress()
    try:
        with open(output, "ab", buffering=_BUFFER) as handle:
            asyncio.run(_stream(manager, items, handle, formatter, cache, progress))
    except KeyboardInterrupt:
        click.echo(
            f"\ninterrupted after writing {progress.written:,} lines to {output}; "
            "run the same command again to resume",
            err=True,
        )
        sys.exit(130)
    except Exception as exc:
        click.echo(redacted_traceback(exc, api_key), err=True, nl=False)
        click.echo(f"fastllm run failed: {redact(str(exc), api_key)}", err=True)
        sys.exit(1)
    _report(manager, output, state, progress, api_key, summary=not show_progress)
    sys.exit(1 if progress.failed or state.failed else 0)


def _open_output(output: Path, overwrite: bool) -> OutputState:
    """Prepare OUTPUT: emptied with ``overwrite``, else scanned (and a partial line cut)."""
    try:
        if overwrite or not output.exists():
            with open(output, "wb"):
                pass
            return OutputState(0, 0, None, 0)
        return scan_output(output)
    except OSError as exc:
        raise click.UsageError(f"cannot open the output file {str(output)!r}: {exc}") from exc


def _skip_done(input_path: Path, output: Path, state: OutputState) -> InputReader:
    """The input reader past the lines OUTPUT already holds (checked to match)."""
    reader = InputReader(input_path)
    try:
        last = reader.skip(state.lines)
    except EOFError:
        reader.close()
        raise click.UsageError(
            f"{output} already has {state.lines:,} lines but {input_path} only "
            f"{reader.skipped:,}: it is not the output of this input "
            "(use --overwrite or another --output)"
        ) from None
    expected = custom_id_of(state.last_line)
    found = last.custom_id if last is not None else None
    if expected is not None and found is not None and expected != found:
        reader.close()
        raise click.UsageError(
            f"{output} is not the output of {input_path}: its line {state.lines:,} is for "
            f"custom_id {expected!r}, the input's is {found!r} "
            "(use --overwrite or another --output)"
        )
    return reader


def _open_cache(cache_dir: Path | None) -> DiskCache | None:
    if cache_dir is None:
        return None
    try:
        return DiskCache(cache_dir)
    except CacheError as exc:
        raise click.UsageError(str(exc)) from exc


def _close_cache(cache: DiskCache | None) -> None:
    if cache is not None:
        cache.close_sync()


async def _stream(
    manager: RequestManager,
    items: InputReader | SizedInput,
    handle: IO[bytes],
    formatter: LineFormatter,
    cache: DiskCache | None,
    progress: _Progress,
) -> None:
    """Write every result in order to ``handle``, flushing at least every second."""
    flusher = asyncio.ensure_future(_flush_every(handle, _FLUSH_SECONDS))
    try:
        async for result in manager.iter_ordered(items):
            handle.write(formatter.format(result))
            progress.written += 1
            if not result.ok:
                progress.failed += 1
    finally:
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        if cache is not None:
            await cache.close()


async def _flush_every(handle: IO[bytes], seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        handle.flush()


def _report(
    manager: RequestManager,
    output: Path,
    state: OutputState,
    progress: _Progress,
    api_key: str | None,
    *,
    summary: bool,
) -> None:
    """The end-of-run report on stderr; with ``summary`` the run's statistics too
    (the progress display prints them itself)."""
    lines = [
        f"wrote {progress.written:,} lines to {output} ({progress.failed:,} failed)",
    ]
    if state.lines:
        lines.append(
            f"resumed: skipped {state.lines:,} input lines already in the output "
            f"({state.failed:,} of them failed)"
        )
    if state.truncated_bytes:
        lines.append(f"resumed: cut off a partial last line ({state.truncated_bytes:,} bytes)")
    if summary:
        lines.append(manager.stats().summary())
    click.echo(redact("\n".join(lines), api_key), err=True)
