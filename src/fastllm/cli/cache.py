"""``fastllm cache stats|clear DIR``: look at or empty a disk cache made by ``--cache-dir``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from fastllm.cache import DiskCache
from fastllm.cache._sqlite import FILENAME
from fastllm.errors import CacheError

__all__ = ["cache"]


def _open(directory: Path) -> DiskCache:
    """The cache in ``directory``; a usage error (exit 2) when there is none.

    Checked before opening, since opening a missing cache would create it.
    """
    if not directory.is_dir():
        raise click.UsageError(f"{str(directory)!r} is not a directory")
    if not (directory / FILENAME).is_file():
        raise click.UsageError(
            f"{str(directory)!r} is not a FastLLM disk cache (it has no {FILENAME})"
        )
    try:
        return DiskCache(directory)
    except CacheError as exc:
        raise click.UsageError(str(exc)) from exc


def _size(size: int) -> str:
    """``size`` bytes in a human unit."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


_DIR = click.Path(file_okay=False, path_type=Path)


@click.group("cache")
def cache() -> None:
    """Inspect or clear a disk cache (the --cache-dir of ``fastllm run``)."""


@cache.command("stats")
@click.argument("directory", metavar="DIR", type=_DIR)
def stats(directory: Path) -> None:
    """Show the number of entries and the stored size of the cache in DIR."""
    disk = _open(directory)
    try:
        found = disk.stats()
    finally:
        disk.close_sync()
    click.echo(f"cache    {disk.path}")
    click.echo(f"entries  {found.entries:,}")
    click.echo(f"size     {_size(found.size_bytes)} ({found.size_bytes:,} bytes of answers)")


@cache.command("clear")
@click.argument("directory", metavar="DIR", type=_DIR)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def clear(directory: Path, yes: bool) -> None:
    """Delete every entry of the cache in DIR (asks first unless --yes)."""
    disk = _open(directory)
    try:
        entries = disk.stats().entries
        if not yes:
            click.confirm(f"Delete the {entries:,} entries of {disk.path}?", abort=True)
        asyncio.run(_clear(disk))
    finally:
        disk.close_sync()
    click.echo(f"cleared {entries:,} entries from {disk.path}")


async def _clear(disk: DiskCache) -> None:
    await disk.clear()
    await disk.close()
