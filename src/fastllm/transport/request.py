"""Request heads: a URL and its constant headers turned into bytes once, reused for every POST.

A :class:`Target` holds the origin to connect to and the request head up to and
including ``Content-Length: ``; a request is then ``head + b"<length>\\r\\n\\r\\n" + body``,
so per-request work is the body and its length, nothing else. The head has:

* ``POST <path?query> HTTP/1.1`` — the path percent-encoded where it has spaces,
  controls or non-ASCII characters (nothing can break the request line);
* ``Host`` (with the port when it is not the scheme's default) unless given;
* the given headers, in order, checked by :func:`~fastllm.transport.headers.check_header`
  (a CR or LF in a value is a :class:`ValueError` naming the header); values are
  encoded as UTF-8. A given ``Content-Length`` is replaced by the real one;
  ``Transfer-Encoding`` is refused (bodies are always sent whole);
* ``User-Agent: fastllm/<version>`` and ``Accept-Encoding: gzip, deflate`` unless given.

Credentials in the URL (``user:pass@host``) are refused: send an ``Authorization`` header.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from urllib.parse import quote, urlsplit

from fastllm._version import __version__
from fastllm.transport.headers import check_header

__all__ = ["DEFAULT_PORTS", "Target", "build_target", "user_agent"]

DEFAULT_PORTS = {"http": 80, "https": 443}
# Reserved and unreserved URL characters, and "%" (already-encoded escapes are kept).
_SAFE = "/?%:@!$&'()*+,;=-._~"


@dataclass(frozen=True, slots=True)
class Target:
    """Where a URL's requests go and the constant start of their head."""

    scheme: str
    host: str  # ASCII (IDNA), without IPv6 brackets: what DNS and TLS need
    port: int
    head: bytes  # ends with b"Content-Length: "
    keep_alive: bool  # False when the caller sent "Connection: close"


@cache
def user_agent() -> str:
    """``fastllm/<version>``."""
    return f"fastllm/{__version__}"


def build_target(url: str, headers: Mapping[str, str]) -> Target:
    """The :class:`Target` of POSTs to ``url`` with ``headers``; :class:`ValueError` if unusable."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"only http and https URLs are supported, got {scheme!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials in the URL are not supported: send an Authorization header")
    host = parts.hostname
    if not host:
        raise ValueError("the URL has no host")
    if not host.isascii():
        host = host.encode("idna").decode("ascii")
    port = parts.port or DEFAULT_PORTS[scheme]
    host_header = f"[{host}]" if ":" in host else host
    if port != DEFAULT_PORTS[scheme]:
        host_header = f"{host_header}:{port}"
    path = quote(parts.path or "/", safe=_SAFE)
    if parts.query:
        path = f"{path}?{quote(parts.query, safe=_SAFE)}"

    given = set()
    lines = [f"POST {path} HTTP/1.1"]
    keep_alive = True
    for name, value in headers.items():
        check_header(name, value)
        lower = name.lower()
        given.add(lower)
        if lower == "content-length":
            continue
        if lower == "transfer-encoding":
            raise ValueError("header 'Transfer-Encoding' is not supported: bodies are sent whole")
        if lower == "connection" and "close" in value.lower():
            keep_alive = False
        lines.append(f"{name}: {value}")
    if "host" not in given:
        lines.insert(1, f"Host: {host_header}")
    if "user-agent" not in given:
        lines.append(f"User-Agent: {user_agent()}")
    if "accept-encoding" not in given:
        lines.append("Accept-Encoding: gzip, deflate")
    lines.append("Content-Length: ")
    return Target(scheme, host, port, "\r\n".join(lines).encode(), keep_alive)
