"""The command line of ``python -m fastllm.testing.mock_server`` (one flag per config field)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import MISSING, fields
from typing import Any

from fastllm.testing._serve import _pin, serve
from fastllm.testing.config import _HELP, MockServerConfig

__all__ = ["build_parser", "main"]


def _optional(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        return None if text.lower() in ("", "none") else convert(text)

    return parse


def _models(text: str) -> list[str] | None:
    if text.lower() in ("", "none"):
        return None
    return [name.strip() for name in text.split(",") if name.strip()]


_CLI_TYPES: dict[str, Callable[[str], Any]] = {
    "float": float,
    "int": int,
    "int | None": _optional(int),
    "str | None": _optional(str),
    "list[str] | None": _models,
}


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``python -m fastllm.testing.mock_server`` (one flag per field)."""
    parser = argparse.ArgumentParser(
        prog="python -m fastllm.testing.mock_server",
        description="Run the FastLLM mock OpenAI-compatible server.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port (0: pick a free one)")
    parser.add_argument("--cpu", type=int, default=None, help="pin the server to this CPU")
    for item in fields(MockServerConfig):
        flag = "--" + item.name.replace("_", "-")
        default = None if item.default is MISSING else item.default
        help_text = f"{_HELP[item.name]} (default: {default})"
        if item.type == "bool":
            action = argparse.BooleanOptionalAction
            parser.add_argument(flag, action=action, default=default, help=help_text)
        elif item.name == "error_style":
            choices = ["openai", "detail", "text"]
            parser.add_argument(flag, choices=choices, default=default, help=help_text)
        else:
            kind = _CLI_TYPES[str(item.type)]
            parser.add_argument(flag, type=kind, default=default, help=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m fastllm.testing.mock_server``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = MockServerConfig(
            **{f.name: getattr(args, f.name) for f in fields(MockServerConfig)}
        )
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    if args.cpu is not None:
        _pin(args.cpu)

    def ready(port: int) -> None:
        print(f"fastllm mock server listening on http://{args.host}:{port}/v1", flush=True)

    serve(config, args.host, args.port, ready)
