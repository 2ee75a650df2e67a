"""aiohttp-raw: the best-case client, a bare request loop with no features.

One ``aiohttp.ClientSession`` (``TCPConnector(limit=c)``), ``asyncio.Semaphore(c)``
around each request, ``asyncio.gather`` over all of them, orjson, uvloop. No
retries, no dedup, no cache: what FastLLM's overhead is measured against.
"""

from __future__ import annotations

import asyncio
from typing import Any

import _common
import aiohttp
import orjson

HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer bench"}


async def fetch_all(args: _common.Args, texts: list[str], errors: list[str]) -> list[Any]:
    """Send one chat request per prompt, at most ``c`` at a time; the parsed bodies in order."""
    url = f"{args.base_url}/chat/completions"
    gate = asyncio.Semaphore(args.concurrency)
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(text: str) -> Any:
            body = orjson.dumps(
                {"model": _common.MODEL, "messages": [{"role": "user", "content": text}]}
            )
            async with gate:
                try:
                    async with session.post(url, data=body, headers=HEADERS) as response:
                        raw = await response.read()
                        if response.status != 200:
                            errors.append(f"HTTP {response.status}")
                            return None
                    return orjson.loads(raw)
                except (aiohttp.ClientError, asyncio.TimeoutError, orjson.JSONDecodeError) as exc:
                    errors.append(_common.describe(exc))
                    return None

        return await asyncio.gather(*(one(text) for text in texts))


def content(body: Any) -> str | None:
    """The answer text of a parsed chat completion (None for a failure)."""
    if body is None:
        return None
    text: str | None = body["choices"][0]["message"]["content"]
    return text


def main() -> None:
    args = _common.parse_args(__doc__ or "")
    texts = _common.prompts(args)
    errors: list[str] = []
    with _common.measure(args) as timed:
        bodies = _common.run_async(lambda: fetch_all(args, texts, errors))
    verdict = _common.check(args, [content(body) for body in bodies], errors)
    _common.emit(args, timed, verdict, f"aiohttp {aiohttp.__version__}")


if __name__ == "__main__":
    main()
