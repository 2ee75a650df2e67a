"""The baselines' virtualenvs under ``benchmarks/.venvs/`` (git-ignored), made on first use.

Each is created with ``uv venv`` for the runner's own interpreter (so every system
runs on the same Python), falling back to ``python -m venv`` + pip. A venv is reused
while its marker file lists the same packages; otherwise it is rebuilt.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

VENVS = Path(__file__).resolve().parent / ".venvs"
_MARKER = "benchmark-packages.txt"


@dataclass(frozen=True)
class Env:
    """A named virtualenv and the packages installed into it."""

    name: str
    packages: tuple[str, ...]

    @property
    def path(self) -> Path:
        return VENVS / self.name

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


#: ``None`` in a system's ``env`` means the project venv (the runner's interpreter).
AIOHTTP = Env("aiohttp-raw", ("aiohttp", "uvloop", "orjson"))
OPENAI = Env("openai-sdk", ("openai", "uvloop"))
FASTLLM_KIT = Env("fastllm-kit-0.1.9", ("fastllm-kit==0.1.9", "httpx", "diskcache", "uvloop"))
#: ``benchmarks.cache_backends``: the ``diskcache`` side of the disk cache comparison.
CACHE_DISKCACHE = Env("cache-diskcache", ("diskcache==5.6.3", "orjson"))


def _run(command: list[str]) -> None:
    print("  $ " + " ".join(command), file=sys.stderr, flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def _create(env: Env) -> None:
    if env.path.exists():
        shutil.rmtree(env.path)
    env.path.parent.mkdir(parents=True, exist_ok=True)
    uv = shutil.which("uv")
    if uv is not None:
        _run([uv, "venv", "--quiet", "--python", sys.executable, str(env.path)])
        _run([uv, "pip", "install", "--quiet", "--python", str(env.python), *env.packages])
    else:
        _run([sys.executable, "-m", "venv", str(env.path)])
        _run([str(env.python), "-m", "pip", "install", "--quiet", *env.packages])


def ensure(env: Env) -> Path:
    """The venv's python, creating or rebuilding the venv when needed."""
    marker = env.path / _MARKER
    wanted = "\n".join(env.packages) + "\n"
    if env.python.exists() and marker.exists() and marker.read_text() == wanted:
        return env.python
    print(f"creating venv {env.path} ({', '.join(env.packages)})", file=sys.stderr, flush=True)
    _create(env)
    marker.write_text(wanted)
    return env.python
