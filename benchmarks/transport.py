"""aiohttp vs httpx as FastLLM's transport: a bare request loop with each, same server.

Run: ``python -m benchmarks.transport`` (starts the bundled mock server pinned to CPU 0,
pins itself to CPU 1, interleaves the two clients, prints medians). Used once to choose
the transport; the figures are in the README.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

import aiohttp
import httpx
import orjson

from fastllm.engine.sync_bridge import new_event_loop
from fastllm.testing import MockServer, MockServerConfig

BODY = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hello"}]})
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer x"}


async def run_aiohttp(url: str, n: int, concurrency: int) -> float:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        gate = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with gate, session.post(url, data=BODY, headers=HEADERS) as response:
                orjson.loads(await response.read())

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return n / (time.perf_counter() - start)


async def run_httpx(url: str, n: int, concurrency: int) -> float:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with gate:
                response = await client.post(url, content=BODY, headers=HEADERS)
                orjson.loads(response.content)

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("-c", "--concurrency", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with MockServer(MockServerConfig(), process=True, cpu=0) as server:
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {1})
        url = f"{server.base_url}/chat/completions"
        figures: dict[str, list[float]] = {"aiohttp": [], "httpx": []}
        for _ in range(args.repeats):
            for name, runner in (("aiohttp", run_aiohttp), ("httpx", run_httpx)):
                loop = new_event_loop()
                try:
                    rate = loop.run_until_complete(runner(url, args.n, args.concurrency))
                finally:
                    loop.close()
                figures[name].append(rate)
    for name, rates in figures.items():
        print(
            f"{name:8s} median {statistics.median(rates):8.0f} req/s "
            f"(min {min(rates):.0f}, max {max(rates):.0f}, n={args.n}, c={args.concurrency})"
        )


if __name__ == "__main__":
    main()
