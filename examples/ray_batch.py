"""Run a batch of OpenAI requests on Ray Data with FastLLM.

Demo (a local Ray, the mock server in its own process, 1,000 requests of which 250
distinct)::

    python examples/ray_batch.py

Against a real API, a JSONL file of Batch lines or bare bodies, a shared Redis cache
(each distinct request sent once across all actors, and never again on a re-run)
and a budget shared by every actor::

    OPENAI_API_KEY=sk-... python examples/ray_batch.py \\
        --api-base https://api.openai.com/v1 --input requests.jsonl \\
        --redis-url redis://cache-host:6379/0 --rpm 5000 --actors 8 --output answers/

Needs ``pip install 'fastllm-kit[ray,redis]'``. On a cluster, call ``ray.init()``
with the cluster's address instead (``RAY_ADDRESS``), and give the workers the key
through ``runtime_env={"env_vars": {"OPENAI_API_KEY": ...}}``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time

import orjson

from fastllm import RateLimit
from fastllm.integrations.ray import run_dataset
from fastllm.testing import MockServer, MockServerConfig


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api-base", help="OpenAI-compatible base URL (default: a mock server)")
    parser.add_argument("--input", help="JSONL file, one request per line (default: demo data)")
    parser.add_argument("--output", help="directory for the results as JSON files")
    parser.add_argument("--redis-url", help="shared cache and rate limits (redis://...)")
    parser.add_argument("--rpm", type=int, help="requests per minute shared by all actors")
    parser.add_argument("--actors", type=int, default=2, help="RequestManagers running at once")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight per actor")
    parser.add_argument("--count", type=int, default=1000, help="demo requests")
    return parser.parse_args()


def demo_rows(count: int) -> list[dict[str, str]]:
    """``count`` chat requests as JSON text, each of ``count // 4`` prompts four times."""
    rows = []
    for n in range(count):
        body = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": f"Say hello to number {n % (count // 4)}"}],
        }
        line = {"custom_id": f"row-{n}", "method": "POST", "url": "/v1/chat/completions"}
        rows.append({"request": orjson.dumps({**line, "body": body}).decode()})
    return rows


def main() -> None:
    args = parse_args()
    import ray
    import ray.data

    local = {} if os.environ.get("RAY_ADDRESS") else {"_node_ip_address": "127.0.0.1"}
    ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False, **local)
    with contextlib.ExitStack() as stack:
        mock, api_base = None, args.api_base
        if api_base is None:
            mock = stack.enter_context(MockServer(MockServerConfig(latency=0.05), process=True))
            api_base = mock.base_url
        if args.input:
            ds, column = ray.data.read_text(args.input), "text"  # each line is one request
        else:
            ds, column = ray.data.from_items(demo_rows(args.count)), "request"
        limits = None
        if args.rpm:
            if not args.redis_url:
                raise SystemExit("--rpm needs --redis-url: the budget is shared through Redis")
            limits = [RateLimit(requests=args.rpm, per="1m", name="demo", redis_url=args.redis_url)]
        out = run_dataset(
            ds,
            column=column,
            api_base=api_base,
            api_key=os.environ.get("OPENAI_API_KEY", "sk-demo"),
            actors=args.actors,
            concurrency=args.concurrency,
            cache_url=args.redis_url,
            rate_limits=limits,
        )
        started = time.monotonic()
        if args.output:
            out.write_json(args.output)
            print(f"results written to {args.output} in {time.monotonic() - started:.1f} s")
        else:
            rows = out.take_all()
            failed = [r for r in rows if not r["ok"]]
            print(f"{len(rows)} rows in {time.monotonic() - started:.1f} s, {len(failed)} failed")
            for row in rows[:3]:
                answer = orjson.loads(row["response"]) if row["ok"] else row["error"]
                print(row["custom_id"], "->", answer if not row["ok"] else answer["choices"][0])
        if mock is not None:
            print(f"the mock server received {mock.stats()['requests']} requests")
    ray.shutdown()


if __name__ == "__main__":
    main()
