"""The package version: the one place it is written (the build reads it from here).

A constant, not ``importlib.metadata``: reading the installed metadata costs about
0.1 s, which would land on the first request of every run (the User-Agent header).
"""

from __future__ import annotations

__all__ = ["DISTRIBUTION", "__version__"]

DISTRIBUTION = "fastllm-kit"
__version__ = "0.2.0"
