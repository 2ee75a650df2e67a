"""One measuring process of ``benchmarks.cache_backends``: one store, one phase.

Run by the runner with the interpreter of the store's venv, pinned to a CPU::

    python benchmarks/systems/cache_store.py --store fastllm|diskcache --dir D PHASE

Phases (each prints one JSON line on stdout):

* ``single``: write ``--n`` entries in groups of ``--group`` (one transaction per
  group), read them all back, then close the store and measure the directory;
* ``write``: open the store, print ``ready``, wait for a line on stdin, then write
  ``--n`` entries of part ``--part`` in groups (the concurrent-writers phase);
* ``verify``: read every entry of parts ``0 .. --parts - 1`` and count those that
  are missing or differ from what was written.

The stores:

* ``fastllm``: ``fastllm.DiskCache(dir)`` (project venv). Writes are
  ``put_many({key: body_bytes})``, reads ``get_many_raw`` (the engine's path: JSON
  bytes, not decoded) in chunks of ``--chunk`` keys, and also ``get_many`` (decoded
  dicts, what diskcache returns). Async calls run under ``asyncio.run``; only the
  calls are timed.
* ``diskcache``: ``diskcache.Cache(dir, disk=diskcache.JSONDisk)`` (its own venv;
  JSON values with zlib level 1, its default, no pickle). Writes are ``set`` per
  key inside ``with cache.transact():`` per group, given the parsed dict (JSONDisk
  serialises Python objects, not bytes); reads are ``get`` per key (no bulk read).

Standard library only at import time: the store's package is imported by its phase.
Keys and values are built here, deterministically, identically in both venvs.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

NAMESPACE = "openai"
_WORDS = (  # noqa: SIM905 - a word list reads better as one string
    "the of and to in is that for it as with was on be by this are from at or an "
    "cache request model token batch answer value latency store write read disk "
    "process result prompt system user assistant message choice index usage time"
).split()


def make_key(part: str, index: int) -> str:
    """``"<namespace>:<32 hex chars>"``, distinct for every (part, index)."""
    return f"{NAMESPACE}:{hashlib.sha256(f'{part}:{index}'.encode()).hexdigest()[:32]}"


def make_body(part: str, index: int) -> bytes:
    """A compact OpenAI chat-completion JSON body of about 300-400 bytes."""
    digest = hashlib.sha256(f"body:{part}:{index}".encode()).hexdigest()
    rng = random.Random(digest)
    words = rng.randint(1, 9)
    content = " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize() + "."
    prompt_tokens = rng.randint(8, 60)
    completion_tokens = words + 1
    body = {
        "id": f"chatcmpl-{digest[:29]}",
        "object": "chat.completion",
        "created": 1_700_000_000 + index,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "system_fingerprint": f"fp_{digest[40:50]}",
    }
    return json.dumps(body, separators=(",", ":")).encode()


def make_items(part: str, n: int) -> dict[str, bytes]:
    """The ``n`` entries of ``part``: key -> JSON body."""
    return {make_key(part, i): make_body(part, i) for i in range(n)}


def groups(items: dict[str, Any], size: int) -> list[dict[str, Any]]:
    """``items`` cut into consecutive dicts of at most ``size`` entries."""
    pairs = list(items.items())
    return [dict(pairs[start : start + size]) for start in range(0, len(pairs), size)]


def chunks(keys: list[str], size: int) -> Iterator[list[str]]:
    """``keys`` cut into consecutive lists of at most ``size``."""
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


def directory_bytes(directory: Path) -> int:
    """The bytes of every file under ``directory``."""
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def wait_for_go() -> None:
    """Tell the runner this process is ready, then block until it says go."""
    print("ready", flush=True)
    sys.stdin.readline()


# -- fastllm.DiskCache ---------------------------------------------------------------


async def _fastllm_single(args: argparse.Namespace) -> dict[str, Any]:
    from fastllm import DiskCache

    items = make_items("single", args.n)
    batches = groups(items, args.group)
    keys = list(items)
    cache = DiskCache(args.dir)
    try:
        start = time.perf_counter()
        for batch in batches:
            await cache.put_many(batch)
        write_s = time.perf_counter() - start

        start = time.perf_counter()
        raw: dict[str, bytes] = {}
        for chunk in chunks(keys, args.chunk):
            raw.update(await cache.get_many_raw(chunk))
        read_s = time.perf_counter() - start

        start = time.perf_counter()
        decoded: dict[str, Any] = {}
        for chunk in chunks(keys, args.chunk):
            decoded.update(await cache.get_many(chunk))
        read_decoded_s = time.perf_counter() - start
    finally:
        await cache.close()
    return {
        "write_s": write_s,
        "read_s": read_s,
        "read_decoded_s": read_decoded_s,
        "read_found": sum(raw.get(k) == v for k, v in items.items()),
        "read_decoded_found": len(decoded),
        "disk_bytes": directory_bytes(args.dir),
        "value_bytes": sum(map(len, items.values())),
        "value_range": [min(map(len, items.values())), max(map(len, items.values()))],
    }


async def _fastllm_write(args: argparse.Namespace) -> dict[str, Any]:
    from fastllm import DiskCache

    batches = groups(make_items(f"part{args.part}", args.n), args.group)
    cache = DiskCache(args.dir)
    errors: list[str] = []
    try:
        wait_for_go()
        start = time.monotonic()
        for batch in batches:
            try:
                await cache.put_many(batch)
            except Exception as exc:
                errors.append(repr(exc))
        end = time.monotonic()
    finally:
        await cache.close()
    return {"start": start, "end": end, "errors": len(errors), "first_error": errors[:1]}


async def _fastllm_verify(args: argparse.Namespace) -> dict[str, Any]:
    from fastllm import DiskCache

    expected: dict[str, bytes] = {}
    for part in range(args.parts):
        expected.update(make_items(f"part{part}", args.n))
    cache = DiskCache(args.dir)
    try:
        found: dict[str, bytes] = {}
        for chunk in chunks(list(expected), args.chunk):
            found.update(await cache.get_many_raw(chunk))
    finally:
        await cache.close()
    matched = sum(found.get(k) == v for k, v in expected.items())
    return {"expected": len(expected), "found": len(found), "matched": matched}


# -- diskcache.Cache(disk=JSONDisk) ----------------------------------------------------


def _diskcache_open(directory: Path) -> Any:
    import diskcache

    return diskcache.Cache(str(directory), disk=diskcache.JSONDisk)


def _diskcache_single(args: argparse.Namespace) -> dict[str, Any]:
    items = make_items("single", args.n)
    values = {key: json.loads(body) for key, body in items.items()}
    batches = groups(values, args.group)
    keys = list(items)
    cache = _diskcache_open(args.dir)
    try:
        start = time.perf_counter()
        for batch in batches:
            with cache.transact():
                for key, value in batch.items():
                    cache.set(key, value)
        write_s = time.perf_counter() - start

        start = time.perf_counter()
        got = {key: cache.get(key) for key in keys}
        read_s = time.perf_counter() - start
    finally:
        cache.close()
    return {
        "write_s": write_s,
        "read_s": read_s,
        "read_found": sum(got[k] == v for k, v in values.items()),
        "disk_bytes": directory_bytes(args.dir),
        "value_bytes": sum(map(len, items.values())),
        "value_range": [min(map(len, items.values())), max(map(len, items.values()))],
    }


def _diskcache_write(args: argparse.Namespace) -> dict[str, Any]:
    items = make_items(f"part{args.part}", args.n)
    batches = groups({key: json.loads(body) for key, body in items.items()}, args.group)
    cache = _diskcache_open(args.dir)
    errors: list[str] = []
    try:
        wait_for_go()
        start = time.monotonic()
        for batch in batches:
            try:
                with cache.transact():
                    for key, value in batch.items():
                        cache.set(key, value)
            except Exception as exc:
                errors.append(repr(exc))
        end = time.monotonic()
    finally:
        cache.close()
    return {"start": start, "end": end, "errors": len(errors), "first_error": errors[:1]}


def _diskcache_verify(args: argparse.Namespace) -> dict[str, Any]:
    expected: dict[str, bytes] = {}
    for part in range(args.parts):
        expected.update(make_items(f"part{part}", args.n))
    cache = _diskcache_open(args.dir)
    try:
        found = {key: cache.get(key) for key in expected}
    finally:
        cache.close()
    matched = sum(found[k] == json.loads(v) for k, v in expected.items())
    return {
        "expected": len(expected),
        "found": sum(v is not None for v in found.values()),
        "matched": matched,
    }


def versions(store: str) -> dict[str, str]:
    """The versions that matter for ``store``'s figures."""
    import sqlite3

    info = {"python": sys.version.split()[0], "sqlite": sqlite3.sqlite_version}
    if store == "fastllm":
        import fastllm

        info["fastllm"] = fastllm.__version__
    else:
        import diskcache

        info["diskcache"] = diskcache.__version__
    return info


def main() -> None:
    """Parse the command line, run the phase, print its JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("phase", choices=("single", "write", "verify", "versions"))
    parser.add_argument("--store", choices=("fastllm", "diskcache"), required=True)
    parser.add_argument("--dir", type=Path, default=Path("."))
    parser.add_argument("--n", type=int, default=5_000, help="entries (per part)")
    parser.add_argument("--group", type=int, default=64, help="entries per transaction")
    parser.add_argument("--chunk", type=int, default=1_024, help="keys per bulk read")
    parser.add_argument("--part", type=int, default=0, help="this writer's part")
    parser.add_argument("--parts", type=int, default=4, help="parts to verify")
    parser.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    args = parser.parse_args()
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    result: dict[str, Any]
    if args.phase == "versions":
        result = versions(args.store)
    elif args.store == "fastllm":
        phases = {"single": _fastllm_single, "write": _fastllm_write, "verify": _fastllm_verify}
        result = asyncio.run(phases[args.phase](args))
    else:
        sync_phases = {
            "single": _diskcache_single,
            "write": _diskcache_write,
            "verify": _diskcache_verify,
        }
        result = sync_phases[args.phase](args)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
