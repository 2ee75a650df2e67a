"""Response headers as a read-only, case-insensitive mapping, and request-header checks.

:class:`Headers` answers ``get("Retry-After")``, ``["x-ratelimit-remaining-requests"]``,
``in``, ``items()`` like aiohttp's ``CIMultiDictProxy`` does for the code that reads
answers (rate-limit learning, Retry-After, error mapping). Names are stored
lowercase; a name sent more than once keeps its values joined by ``", "``, which is
how HTTP defines combining repeated fields (``Set-Cookie`` excepted, and not used
here). Its class name is one :mod:`fastllm.limits.headers` knows as case-insensitive,
so that module skips its slow case-folding scan.
"""

from __future__ import annotations

import re
from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from typing import TypeVar, overload

__all__ = ["Headers", "check_header"]

_T = TypeVar("_T")

# RFC 9110 token characters: what a header name may contain.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class Headers(Mapping[str, str]):
    """Read-only header mapping; every lookup ignores the case of the name."""

    __slots__ = ("_fields",)

    def __init__(self, fields: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        pairs = fields.items() if isinstance(fields, Mapping) else fields
        collected: dict[str, str] = {}
        for name, value in pairs:
            key = name.lower()
            old = collected.get(key)
            collected[key] = value if old is None else f"{old}, {value}"
        self._fields = collected

    @classmethod
    def _wrap(cls, fields: dict[str, str]) -> Headers:
        """Adopt ``fields`` (already lowercase and combined) without copying: the parser's path."""
        headers = cls.__new__(cls)
        headers._fields = fields
        return headers

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()]

    @overload
    def get(self, name: str, /) -> str | None: ...
    @overload
    def get(self, name: str, default: str, /) -> str: ...
    @overload
    def get(self, name: str, default: _T, /) -> str | _T: ...
    def get(self, name: str, default: object = None, /) -> object:
        return self._fields.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def keys(self) -> KeysView[str]:
        return self._fields.keys()

    def values(self) -> ValuesView[str]:
        return self._fields.values()

    def items(self) -> ItemsView[str, str]:
        return self._fields.items()

    def __repr__(self) -> str:
        return f"Headers({self._fields!r})"


def check_header(name: str, value: str) -> None:
    """Raise :class:`ValueError` naming the header if it could break the request's framing.

    The name must be an HTTP token; the value must not contain CR, LF or NUL (header
    injection). The value itself is never quoted in the message: it may be a secret.
    """
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise ValueError(f"invalid HTTP header name {name!r}")
    if not isinstance(value, str):
        raise ValueError(f"header {name!r} must have a str value, got {type(value).__name__}")
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"header {name!r} contains CR, LF or NUL (header injection refused)")
