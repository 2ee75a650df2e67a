"""The ``fastllm`` command group: every sub-command is registered here.

Exit statuses shared by the commands: 0 success, 1 the work was done but some of
it failed (or was refused), 2 a usage error (bad option, missing file).
"""

from __future__ import annotations

import click

from fastllm._version import __version__
from fastllm.cli.cache import cache
from fastllm.cli.demo import demo
from fastllm.cli.mock import mock_server
from fastllm.cli.run import run
from fastllm.cli.split import split

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="fastllm")
def cli() -> None:
    """FastLLM: run very large batches of OpenAI-compatible requests, fast, in order.

    \b
    fastllm run requests.jsonl -o results.jsonl   run a Batch file against an API
    fastllm demo                                  see it work offline (mock server)
    fastllm mock-server --port 8000               a local OpenAI-compatible mock
    fastllm cache stats DIR                       inspect or clear a disk cache
    fastllm split requests.jsonl --out-dir parts  files for the OpenAI Batch API
    """


cli.add_command(run)
cli.add_command(demo)
cli.add_command(mock_server)
cli.add_command(cache)
cli.add_command(split)


def main() -> None:
    """Entry point of the ``fastllm`` console script."""
    cli(prog_name="fastllm")


if __name__ == "__main__":
    main()
