"""HTTP/1.1 message heads for the mock server: request-head parsing and response-head bytes."""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus

__all__ = ["MAX_BODY", "MAX_HEAD", "Header", "ProtocolError", "Request", "parse_head"]

MAX_HEAD = 64 * 1024
MAX_BODY = 256 * 1024 * 1024

Header = tuple[str, str]


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


_HEADER_LINE = "%s: %s\r\n"
_REASONS = {status.value: status.phrase for status in HTTPStatus}


class ProtocolError(Exception):
    """A request that cannot be parsed; answered with ``status`` and the connection closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Request:
    """One parsed HTTP request; ``headers`` (lower-cased names) is parsed on first use."""

    __slots__ = (
        "_fields",
        "_headers",
        "body",
        "continued",
        "keep_alive",
        "method",
        "path",
        "query",
        "version",
    )

    def __init__(
        self, method: str, path: str, query: str, version: str, fields: bytes, keep_alive: bool
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.version = version
        self.keep_alive = keep_alive
        self.body = b""
        self.continued = False
        self._fields = fields
        self._headers: dict[str, str] | None = None

    @property
    def headers(self) -> dict[str, str]:
        """The request headers, names lower-cased (the last of repeated names wins)."""
        if self._headers is None:
            headers: dict[str, str] = {}
            for line in self._fields.decode("latin-1").split("\r\n"):
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            self._headers = headers
        return self._headers


def _field(lowered: bytes, key: bytes) -> bytes:
    """The value of header ``key`` (``b"\\r\\nname:"``, present) in the lower-cased header block."""
    start = lowered.find(key) + len(key)
    end = lowered.find(b"\r\n", start)
    return lowered[start:end].strip() if end >= 0 else lowered[start:].strip()


def parse_head(head: bytes) -> tuple[Request, int]:
    """Parse a request line and headers (without the final blank line); return the body size.

    Only the headers the server acts on are looked up (Content-Length,
    Transfer-Encoding, Connection); the others are parsed lazily if asked for.
    """
    line_end = head.find(b"\r\n")
    if line_end < 0:
        line_end = len(head)
    fields = head[line_end:]
    lowered = fields.lower()
    parts = head[:line_end].decode("latin-1").split(" ")
    if len(parts) != 3:
        raise ProtocolError(400, "malformed request line")
    method, target, version = parts
    if version != "HTTP/1.1" and version != "HTTP/1.0":
        raise ProtocolError(505, "only HTTP/1.0 and HTTP/1.1 are supported")
    if b"\r\ntransfer-encoding:" in lowered:
        raise ProtocolError(501, "chunked request bodies are not supported; send Content-Length")
    length = 0
    if b"\r\ncontent-length:" in lowered:
        length_text = _field(lowered, b"\r\ncontent-length:")
        if not length_text.isdigit():
            raise ProtocolError(400, "invalid Content-Length")
        length = int(length_text)
        if length > MAX_BODY:
            raise ProtocolError(413, "request body too large")
    if b"\r\nconnection:" not in lowered:
        keep_alive = version == "HTTP/1.1"
    elif version == "HTTP/1.1":
        keep_alive = b"close" not in _field(lowered, b"\r\nconnection:")
    else:
        keep_alive = b"keep-alive" in _field(lowered, b"\r\nconnection:")
    path, _, query = target.partition("?")
    return Request(method, path, query, version, fields, keep_alive), length


def _head_bytes(
    status: int, content_type: str, framing: str, headers: Iterable[Header], request: Request
) -> bytes:
    extra = "".join(map(_HEADER_LINE.__mod__, headers))
    reason = _REASONS.get(status) or _reason(status)
    if not request.keep_alive:
        connection = "connection: close\r\n"
    elif request.version == "HTTP/1.0":
        connection = "connection: keep-alive\r\n"
    else:
        connection = ""
    text = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\n"
        f"{framing}{extra}{connection}\r\n"
    )
    return text.encode("latin-1")
