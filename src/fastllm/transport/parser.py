"""An incremental parser of HTTP/1.1 responses, buffered whole (no streaming).

Feed it the bytes as they come (:meth:`ResponseParser.feed`, then
:meth:`~ResponseParser.feed_eof` when the server closes); it returns the
:class:`HttpResponse` once complete. Handled, in RFC 9112's order of precedence:

* interim ``1xx`` answers (``100 Continue``, ``103 Early Hints``) are skipped;
  ``101 Switching Protocols`` is an error (nothing here upgrades);
* ``204``/``304`` have no body, whatever their headers say;
* ``Transfer-Encoding: chunked`` (chunk extensions ignored, trailers read and dropped;
  any other transfer coding is an error; a ``Content-Length`` beside it is ignored and
  the connection not reused);
* ``Content-Length`` (a repeated identical value is accepted);
* otherwise the body ends when the connection closes;
* ``Content-Encoding: gzip``/``x-gzip``/``deflate`` (zlib or raw) decoded with
  :mod:`zlib`, several codings undone in reverse order; any other coding is an error.

Lines end with CRLF. The head (status line and headers) and every chunk-size line
or trailer block are bounded (:data:`MAX_HEAD`); bodies are not. The fast path —
the whole answer in one read, with a ``Content-Length`` — costs one search for the
end of the head, one split of it and two slices.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from fastllm.transport.errors import ProtocolError
from fastllm.transport.headers import Headers

__all__ = ["MAX_HEAD", "HttpResponse", "ResponseParser", "decode_body", "parse_head"]

#: The largest status line + header block (and trailer block) accepted, in bytes.
MAX_HEAD = 64 * 1024
_MAX_CHUNK_LINE = 4096
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")

# Parser states.
_HEAD, _LENGTH, _CHUNK_LINE, _CHUNK_DATA, _TRAILERS, _UNTIL_CLOSE, _DONE = range(7)


@dataclass(slots=True)
class HttpResponse:
    """A complete answer: status, headers (case-insensitive) and the decoded body."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    reason: str = ""


def parse_head(head: str) -> tuple[str, int, str, dict[str, str]]:
    """``(version, status, reason, fields)`` of a head decoded as latin-1, without its CRLFCRLF.

    Field names are lowercased; repeated fields are joined with ``", "``; obsolete
    line folding is unfolded into one space.
    """
    lines = head.split("\r\n")
    status_line = lines.pop(0)
    version, status, reason = _STATUS_LINES.get(status_line) or _status_line(status_line)
    fields: dict[str, str] = {}
    for line in lines:  # the common case: one "name: value" per line, each name once
        name, colon, value = line.partition(":")
        if not colon:
            break
        fields[name.lower()] = value.strip(" \t")
    if len(fields) != len(lines) or not _NAMES.fullmatch("\n".join(fields)):
        fields = _parse_fields(lines)
    return version, status, reason, fields


# Status lines seen, parsed: a server sends a handful of distinct ones.
_STATUS_LINES: dict[str, tuple[str, int, str]] = {}


def _status_line(line: str) -> tuple[str, int, str]:
    """``(version, status, reason)`` of ``HTTP/1.x NNN reason``, remembered for next time."""
    parts = line.split(" ", 2)
    code = parts[1] if len(parts) > 1 else ""
    if parts[0] not in ("HTTP/1.1", "HTTP/1.0") or not (
        len(code) == 3 and code.isdigit() and code.isascii() and code[0] != "0"
    ):
        raise ProtocolError(f"malformed status line {line[:100]!r}")
    parsed = (parts[0][5:], int(code), parts[2] if len(parts) > 2 else "")
    if len(_STATUS_LINES) < 256:
        _STATUS_LINES[line] = parsed
    return parsed


# A lowercased header name (an RFC 9110 token); several, one per line, for the fast loop.
_NAME = r"[!#$%&'*+\-.^_`|~0-9a-z]+"
_ONE_NAME = re.compile(_NAME)
_NAMES = re.compile(rf"{_NAME}(?:\n{_NAME})*")


def _parse_fields(lines: list[str]) -> dict[str, str]:
    """The careful loop: checks every name, joins repeated fields, unfolds folded lines."""
    fields: dict[str, str] = {}
    last = ""
    for line in lines:
        if line[:1] in (" ", "\t"):  # obs-fold: continues the previous field
            if not last:
                raise ProtocolError(f"malformed header line {line[:100]!r}")
            folded = line.strip(" \t")
            fields[last] = f"{fields[last]} {folded}" if folded else fields[last]
            continue
        name, colon, value = line.partition(":")
        key = name.lower()
        if not colon or not _ONE_NAME.fullmatch(key):
            raise ProtocolError(f"malformed header line {line[:100]!r}")
        value = value.strip(" \t")
        old = fields.get(key)
        fields[key] = value if old is None else f"{old}, {value}"
        last = key
    return fields


def decode_body(body: bytes, encoding: str | None) -> bytes:
    """``body`` with its ``Content-Encoding`` undone (:class:`ProtocolError` if unknown)."""
    if encoding is None or not body:
        return body
    for coding in reversed(encoding.lower().split(",")):
        coding = coding.strip(" \t")
        try:
            if coding in ("gzip", "x-gzip"):
                body = zlib.decompress(body, 16 + zlib.MAX_WBITS)
            elif coding == "deflate":  # zlib-wrapped, as specified; raw from some servers
                try:
                    body = zlib.decompress(body)
                except zlib.error:
                    body = zlib.decompress(body, -zlib.MAX_WBITS)
            elif coding not in ("identity", ""):
                raise ProtocolError(f"unsupported content-encoding {coding!r}")
        except zlib.error as exc:
            raise ProtocolError(f"cannot decode the {coding} body: {exc}") from None
    return body


class ResponseParser:
    """Parses one response at a time; :meth:`reset` before the next one on the connection.

    After a response is returned, ``keep_alive`` says whether the connection may
    carry another request (HTTP/1.1 without ``Connection: close``, HTTP/1.0 with
    ``Connection: keep-alive``, a delimited body, and no stray bytes after it).
    """

    __slots__ = (
        "_buf",
        "_fields",
        "_parts",
        "_reason",
        "_remaining",
        "_state",
        "_status",
        "keep_alive",
    )

    def __init__(self) -> None:
        self._buf = bytearray()
        self._state = _HEAD
        self._status = 0
        self._reason = ""
        self._fields: dict[str, str] = {}
        self._remaining = 0
        self._parts: list[bytes] = []
        self.keep_alive = False

    def reset(self) -> None:
        """Forget the previous response (and any stray bytes) before the next request."""
        if self._buf:
            self._buf.clear()
        self._state = _HEAD

    def feed(self, data: bytes) -> HttpResponse | None:
        """Take the next bytes; the response once it is complete, else ``None``."""
        if self._state == _HEAD and not self._buf:
            # The common case, without the buffer: a whole answer with a length in one read.
            end = data.find(b"\r\n\r\n")
            if 0 <= end <= MAX_HEAD:
                self._start(data[:end].decode("latin-1"))
                data = data[end + 4 :]
                if self._state == _LENGTH and len(data) == self._remaining:
                    return self._finish(data)
        self._buf += data
        while True:
            state = self._state
            if state == _HEAD:
                if not self._read_head():
                    return None
            elif state == _LENGTH:
                return self._read_length()
            elif state in (_CHUNK_LINE, _CHUNK_DATA, _TRAILERS):
                return self._read_chunked()
            else:  # _UNTIL_CLOSE: the end is the close; _DONE: stray bytes, reset ignores them
                return None

    def feed_eof(self) -> HttpResponse | None:
        """The server closed: the response if its body ends here, else ``None`` (incomplete)."""
        if self._state != _UNTIL_CLOSE:
            return None
        body = bytes(self._buf)
        self._buf.clear()
        return self._finish(body)

    def _read_head(self) -> bool:
        buf = self._buf
        end = buf.find(b"\r\n\r\n")
        if end < 0 or end > MAX_HEAD:
            if len(buf) > MAX_HEAD:
                raise ProtocolError(f"response head larger than {MAX_HEAD} bytes")
            return False
        head = buf[:end].decode("latin-1")
        del buf[: end + 4]
        self._start(head)
        return True

    def _start(self, head: str) -> None:
        """Take a head: status, fields, keep-alive and the body's framing (the next state)."""
        version, status, reason, fields = parse_head(head)
        if status < 200:
            if status == 101:
                raise ProtocolError("unexpected 101 Switching Protocols")
            return  # interim answer: the real one follows (the state stays _HEAD)
        self._status, self._reason, self._fields = status, reason, fields
        connection = fields.get("connection")
        if connection is None:
            self.keep_alive = version == "1.1"
        else:
            tokens = [token.strip(" \t") for token in connection.lower().split(",")]
            self.keep_alive = "close" not in tokens and (version == "1.1" or "keep-alive" in tokens)
        coding = fields.get("transfer-encoding")
        length = fields.get("content-length")
        if status == 204 or status == 304:
            self._state, self._remaining = _LENGTH, 0
        elif coding is not None:
            if coding.strip(" \t").lower() != "chunked":
                raise ProtocolError(f"unsupported transfer-encoding {coding[:50]!r}")
            if length is not None:  # both framings: legal to read, unwise to trust after
                self.keep_alive = False
            self._state, self._parts = _CHUNK_LINE, []
        elif length is not None:
            self._state, self._remaining = _LENGTH, _content_length(length)
        else:
            self._state, self.keep_alive = _UNTIL_CLOSE, False

    def _read_length(self) -> HttpResponse | None:
        buf, size = self._buf, self._remaining
        if len(buf) < size:
            return None
        if len(buf) == size:
            body = bytes(buf)
            buf.clear()
        else:  # more than the body: nothing may follow an answer we did not ask for
            body = bytes(buf[:size])
            del buf[:size]
            self.keep_alive = False
        return self._finish(body)

    def _read_chunked(self) -> HttpResponse | None:
        buf = self._buf
        while True:
            if self._state == _CHUNK_LINE:
                end = buf.find(b"\r\n")
                if end < 0 or end > _MAX_CHUNK_LINE:
                    if len(buf) > _MAX_CHUNK_LINE:
                        raise ProtocolError("chunk-size line too long")
                    return None
                size_text = bytes(buf[:end]).split(b";", 1)[0].strip(b" \t")
                if not _HEX.fullmatch(size_text):
                    raise ProtocolError(f"malformed chunk size {size_text[:20]!r}")
                del buf[: end + 2]
                self._remaining = int(size_text, 16)
                self._state = _CHUNK_DATA if self._remaining else _TRAILERS
            elif self._state == _CHUNK_DATA:
                size = self._remaining
                if len(buf) < size + 2:
                    return None
                if buf[size : size + 2] != b"\r\n":
                    raise ProtocolError("chunk data not followed by CRLF")
                self._parts.append(bytes(buf[:size]))
                del buf[: size + 2]
                self._state = _CHUNK_LINE
            else:  # _TRAILERS: an empty line, or trailer fields (dropped) and an empty line
                if buf.startswith(b"\r\n"):
                    end = -2
                else:
                    end = buf.find(b"\r\n\r\n")
                    if end < 0 or end > MAX_HEAD:
                        if len(buf) > MAX_HEAD:
                            raise ProtocolError(f"trailers larger than {MAX_HEAD} bytes")
                        return None
                del buf[: end + 4]
                if buf:
                    self.keep_alive = False
                return self._finish(b"".join(self._parts))

    def _finish(self, body: bytes) -> HttpResponse:
        self._state = _DONE
        fields = self._fields
        if "content-encoding" in fields:
            body = decode_body(body, fields["content-encoding"])
        return HttpResponse(self._status, Headers._wrap(fields), body, self._reason)


def _content_length(value: str) -> int:
    if not (value.isdigit() and value.isascii()):
        values = {v.strip(" \t") for v in value.split(",")}
        if len(values) != 1:
            raise ProtocolError(f"conflicting content-length values {value[:50]!r}")
        value = values.pop()
        if not (value.isdigit() and value.isascii()):
            raise ProtocolError(f"malformed content-length {value[:50]!r}")
    return int(value)
