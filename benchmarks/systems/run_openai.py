"""openai-sdk: ``openai.AsyncOpenAI`` with ``asyncio.Semaphore(c)`` + ``gather``, uvloop.

The SDK's HTTP client is httpx (``httpx2`` from openai 3.x on); its default pool
keeps only 100 idle connections, so the client gets ``DefaultAsyncHttpxClient``
with ``max_connections`` and ``max_keepalive_connections`` both set to ``c``.
``max_retries=0`` unless ``--retries`` is given (the fault scenario).
"""

from __future__ import annotations

import asyncio
from typing import Any

import _common
import openai

try:  # openai >= 3 moved to the httpx2 fork
    import httpx2 as httpx_module
except ImportError:  # pragma: no cover - openai 1.x / 2.x
    import httpx as httpx_module  # type: ignore[no-redef]


def make_client(args: _common.Args) -> openai.AsyncOpenAI:
    """An AsyncOpenAI whose connection pool holds ``c`` connections."""
    limits = httpx_module.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    return openai.AsyncOpenAI(
        base_url=args.base_url,
        api_key="bench",
        max_retries=args.retries or 0,
        http_client=openai.DefaultAsyncHttpxClient(limits=limits),
    )


async def fetch_all(args: _common.Args, texts: list[str], errors: list[str]) -> list[Any]:
    """One ``chat.completions.create`` per prompt, at most ``c`` at a time; in order."""
    gate = asyncio.Semaphore(args.concurrency)
    async with make_client(args) as client:

        async def one(text: str) -> Any:
            async with gate:
                try:
                    return await client.chat.completions.create(
                        model=_common.MODEL, messages=[{"role": "user", "content": text}]
                    )
                except openai.OpenAIError as exc:
                    errors.append(_common.describe(exc))
                    return None

        return await asyncio.gather(*(one(text) for text in texts))


def main() -> None:
    args = _common.parse_args(__doc__ or "")
    texts = _common.prompts(args)
    errors: list[str] = []
    with _common.measure(args) as timed:
        answers = _common.run_async(lambda: fetch_all(args, texts, errors))
    contents = [None if a is None else a.choices[0].message.content for a in answers]
    verdict = _common.check(args, contents, errors)
    _common.emit(args, timed, verdict, f"openai {openai.__version__}")


if __name__ == "__main__":
    main()
