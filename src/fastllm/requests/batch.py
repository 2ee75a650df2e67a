"""``RequestBatch``: an OpenAI-style builder that records requests as Batch input lines.

``batch.chat.completions.create(...)`` and ``batch.embeddings.create(...)`` take the
OpenAI parameter names, check the request, and append one line
``{"custom_id": "<request_id>#<order>", "method": "POST", "url": ..., "body": ...}``.
The body holds exactly what the caller wrote (``None`` values left out): no
defaults are injected and nothing is renamed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Literal

from fastllm.errors import RequestFormatError
from fastllm.requests.builders import ChatBuilder, EmbeddingsBuilder
from fastllm.requests.hashing import clean_body, digest_clean_body
from fastllm.requests.jsonl import BadLine, iter_checked_lines, write_jsonl
from fastllm.requests.model import Endpoint, Request
from fastllm.requests.validation import validate_body

__all__ = ["BATCH_API_MAX_BYTES", "BATCH_API_MAX_LINES", "RequestBatch"]

#: Limits of one OpenAI Batch API input file.
BATCH_API_MAX_LINES = 50_000
BATCH_API_MAX_BYTES = 200 * 1024 * 1024

_DIGEST = 16  # bytes of a request id
#: a checked line's endpoint by its one-byte code (0: not checked)
_CODES: tuple[Endpoint | None, ...] = (None, *Endpoint)


class RequestBatch:
    """An ordered list of requests in OpenAI Batch format.

    ``requests`` is the list of Batch lines. ``bad_lines`` lists the lines skipped
    by ``from_jsonl(..., on_error="skip")``.

    Lines are checked and hashed once, when they are added, and the engine reuses
    that work; so add lines (``create``, ``add``, ``merge``, or append new dicts to
    ``requests``) rather than editing a line's body in place. A line whose body was
    replaced, or that was added by hand, is checked when the batch runs.
    """

    def __init__(self, requests: Iterable[dict[str, Any]] = ()) -> None:
        self.requests: list[dict[str, Any]] = list(requests)
        self.bad_lines: list[BadLine] = []
        # What adding a line found, by its position in ``requests``: its body (the
        # object), its endpoint's code (0: not checked) and its request id's 16 bytes.
        # The engine rebuilds a line's Request from these, a chunk at a time, while
        # the same body is at that position; about 25 bytes a line.
        self._bodies: list[dict[str, Any] | None] = []
        self._codes = bytearray()
        self._digests = bytearray()
        # from_jsonl lines whose Request is not their own content (a body with values
        # to clean, no custom_id): position -> (line, its Request); rare
        self._special: dict[int, tuple[dict[str, Any], Request]] = {}
        self.chat = ChatBuilder(self._add_clean)
        self.embeddings = EmbeddingsBuilder(self._add_clean)

    # -- building -----------------------------------------------------------------
    def add(self, url: Endpoint | str, body: dict[str, Any]) -> str:
        """Append a request for ``url`` with ``body``; return its request id (the cache key)."""
        return self._add_clean(Endpoint.from_url(url), clean_body(body))

    def _add_clean(self, endpoint: Endpoint, body: dict[str, Any]) -> str:
        """Check, hash and append a cleaned body the batch owns; return its request id."""
        validate_body(endpoint, body)
        digest = digest_clean_body(endpoint, body)
        request_id = digest.hex()
        requests = self.requests
        position = len(requests)
        self._note(position, body, endpoint, digest)
        requests.append(
            {
                "custom_id": f"{request_id}#{position}",
                "method": "POST",
                "url": endpoint._value_,
                "body": body,
            }
        )
        return request_id

    def _note(self, position: int, body: dict[str, Any], endpoint: Endpoint, digest: bytes) -> None:
        """Remember what checking the line at ``position`` found."""
        bodies = self._bodies
        if len(bodies) != position:
            self._align(position)
        bodies.append(body)
        self._codes.append(_CODES.index(endpoint))
        self._digests += digest

    def _align(self, position: int) -> None:
        """Make the records cover positions below ``position`` (lines added or removed by hand)."""
        have = len(self._bodies)
        if have > position:
            del self._bodies[position:]
            del self._codes[position:]
            del self._digests[position * _DIGEST :]
            for stale in [at for at in self._special if at >= position]:
                del self._special[stale]
        else:
            missing = position - have
            self._bodies.extend([None] * missing)
            self._codes.extend(bytes(missing))
            self._digests.extend(bytes(missing * _DIGEST))

    @staticmethod
    def prepared(items: Iterable[Any]) -> Iterable[Any]:
        """What the engine should run for ``items``: a batch's already checked requests."""
        if isinstance(items, RequestBatch):
            return items._iter_checked()
        return items

    def _iter_checked(self) -> Iterator[Request | dict[str, Any]]:
        """Each line as a :class:`Request` built from what adding it found, made as it is
        taken; a line added by hand or changed since (another body, url or method) as is."""
        bodies, codes, digests, special = self._bodies, self._codes, self._digests, self._special
        for position, line in enumerate(self.requests):
            if position < len(bodies) and codes[position] and type(line) is dict:
                body = bodies[position]
                endpoint = _CODES[codes[position]]
                custom_id = line.get("custom_id")
                url = line.get("url")
                if (
                    line.get("body") is body
                    and body is not None
                    and endpoint is not None
                    and type(custom_id) is str
                    and (url is endpoint._value_ or _endpoint_of(url) is endpoint)
                    and line.get("method", "POST") == "POST"
                ):
                    at = position * _DIGEST
                    request_id = digests[at : at + _DIGEST].hex()
                    yield Request(custom_id, endpoint, body, request_id, position)
                    continue
            if special:
                entry = special.get(position)
                if entry is not None and entry[0] is line:
                    yield entry[1]
                    continue
            yield line

    # -- container protocol -------------------------------------------------------
    def __len__(self) -> int:
        return len(self.requests)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.requests)

    def __enter__(self) -> RequestBatch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def __repr__(self) -> str:
        return f"RequestBatch({len(self.requests)} requests)"

    # -- combining and files --------------------------------------------------------
    @classmethod
    def merge(cls, batches: Sequence[RequestBatch]) -> RequestBatch:
        """One batch holding every request of ``batches``, batch after batch.

        Orders are renumbered, so results come back in that order; ids of the form
        ``<request_id>#<order>`` get their new order, other custom ids are kept.
        """
        merged = cls()
        requests = merged.requests
        for batch in batches:
            for item in batch._iter_checked():
                order = len(requests)
                if isinstance(item, Request):
                    endpoint = item.endpoint
                    merged._note(order, item.body, endpoint, bytes.fromhex(item.request_id))
                    requests.append(
                        {
                            "custom_id": _renumbered_id(item.custom_id, order),
                            "method": "POST",
                            "url": endpoint._value_,
                            "body": item.body,
                        }
                    )
                elif "custom_id" in item:
                    requests.append({**item, "custom_id": _renumbered_id(item["custom_id"], order)})
                else:
                    requests.append(dict(item))
        return merged

    def to_jsonl(self, path: str | os.PathLike[str]) -> None:
        """Write the batch as an OpenAI Batch input file."""
        write_jsonl(path, self.requests)

    @classmethod
    def from_jsonl(
        cls,
        path: str | os.PathLike[str],
        *,
        on_error: Literal["raise", "skip"] = "raise",
    ) -> RequestBatch:
        """Read an OpenAI Batch input file.

        A malformed line raises :class:`~fastllm.errors.RequestFormatError` naming its
        line number; with ``on_error="skip"`` it is left out and listed in ``bad_lines``.
        """
        batch = cls()
        requests = batch.requests
        for item in iter_checked_lines(path, on_error=on_error):
            if isinstance(item, BadLine):
                batch.bad_lines.append(item)
                continue
            line, request = item
            position = len(requests)
            if request.body is line["body"] and request.custom_id is line.get("custom_id"):
                digest = bytes.fromhex(request.request_id)
                batch._note(position, request.body, request.endpoint, digest)
            else:
                request.order = position
                batch._special[position] = (line, request)
            requests.append(line)
        return batch

    def split_for_batch_api(
        self,
        *,
        max_lines: int = BATCH_API_MAX_LINES,
        max_bytes: int = BATCH_API_MAX_BYTES,
    ) -> list[RequestBatch]:
        """Batches the OpenAI Batch API accepts: one endpoint and model each, within its limits."""
        from fastllm.requests.splitting import split_lines

        return [RequestBatch(part) for part in split_lines(self.requests, max_lines, max_bytes)]


def _endpoint_of(url: object) -> Endpoint | None:
    try:
        return Endpoint.from_url(url)
    except RequestFormatError:
        return None


def _renumbered_id(custom_id: Any, order: int) -> Any:
    """``<request_id>#<order>`` ids get the new order; other ids are the caller's, kept."""
    if isinstance(custom_id, str):
        head, sep, tail = custom_id.rpartition("#")
        if sep and tail.isdigit() and len(head) == 32:
            return f"{head}#{order}"
    return custom_id
