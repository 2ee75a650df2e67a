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

from fastllm.requests.hashing import clean_body, hash_clean_body
from fastllm.requests.jsonl import BadLine, iter_checked_lines, write_jsonl
from fastllm.requests.model import Endpoint, Request
from fastllm.requests.validation import validate_body

__all__ = ["BATCH_API_MAX_BYTES", "BATCH_API_MAX_LINES", "RequestBatch"]

#: Limits of one OpenAI Batch API input file.
BATCH_API_MAX_LINES = 50_000
BATCH_API_MAX_BYTES = 200 * 1024 * 1024


class RequestBatch:
    """An ordered list of requests in OpenAI Batch format.

    ``requests`` is the list of Batch lines. ``bad_lines`` lists the lines skipped
    by ``from_jsonl(..., on_error="skip")``.

    Lines are checked and hashed once, when they are added, and the engine reuses
    that work; so add lines (``create``, ``add``, ``merge``, or append new dicts to
    ``requests``) rather than editing a line's body in place.
    """

    def __init__(self, requests: Iterable[dict[str, Any]] = ()) -> None:
        self.requests: list[dict[str, Any]] = list(requests)
        self.bad_lines: list[BadLine] = []
        # id(line) -> (line, its checked Request): work done once, at add time
        self._checked: dict[int, tuple[dict[str, Any], Request]] = {}
        self.chat = _Chat(self)
        self.embeddings = _Embeddings(self)

    # -- building -----------------------------------------------------------------
    def add(self, url: Endpoint | str, body: dict[str, Any]) -> str:
        """Append a request for ``url`` with ``body``; return its request id (the cache key)."""
        endpoint = Endpoint.from_url(url)
        cleaned = clean_body(body)
        validate_body(endpoint, cleaned)
        request_id = hash_clean_body(endpoint, cleaned)
        order = len(self.requests)
        self._append(Request(f"{request_id}#{order}", endpoint, cleaned, request_id, order))
        return request_id

    def _append(self, request: Request) -> None:
        line = request.to_batch_line()
        self.requests.append(line)
        self._checked[id(line)] = (line, request)

    @staticmethod
    def prepared(items: Iterable[Any]) -> Iterable[Any]:
        """What the engine should run for ``items``: a batch's already checked requests."""
        if isinstance(items, RequestBatch):
            return items._iter_checked()
        return items

    def _iter_checked(self) -> Iterator[Request | dict[str, Any]]:
        checked = self._checked
        for line in self.requests:
            entry = checked.get(id(line))
            yield entry[1] if entry is not None and entry[0] is line else line

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
        for batch in batches:
            for item in batch._iter_checked():
                order = len(merged.requests)
                if isinstance(item, Request):
                    custom_id = _renumbered_id(item.custom_id, order)
                    merged._append(
                        Request(custom_id, item.endpoint, item.body, item.request_id, order)
                    )
                elif "custom_id" in item:
                    line = {**item, "custom_id": _renumbered_id(item["custom_id"], order)}
                    merged.requests.append(line)
                else:
                    merged.requests.append(dict(item))
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
        for item in iter_checked_lines(path, on_error=on_error):
            if isinstance(item, BadLine):
                batch.bad_lines.append(item)
                continue
            line, request = item
            request.order = len(batch.requests)
            batch.requests.append(line)
            batch._checked[id(line)] = (line, request)
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


def _renumbered_id(custom_id: Any, order: int) -> Any:
    """``<request_id>#<order>`` ids get the new order; other ids are the caller's, kept."""
    if isinstance(custom_id, str):
        head, sep, tail = custom_id.rpartition("#")
        if sep and tail.isdigit() and len(head) == 32:
            return f"{head}#{order}"
    return custom_id


class _Completions:
    """``batch.chat.completions``: mirrors ``openai.chat.completions``."""

    def __init__(self, batch: RequestBatch) -> None:
        self._batch = batch

    def create(
        self,
        *,
        model: str | None = None,
        messages: list[dict[str, Any]] | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        n: int | None = None,
        stop: str | list[str] | None = None,
        max_completion_tokens: int | None = None,
        max_tokens: int | None = None,
        presence_penalty: float | None = None,
        frequency_penalty: float | None = None,
        logit_bias: dict[str, float] | None = None,
        user: str | None = None,
        response_format: dict[str, Any] | None = None,
        seed: int | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        stream: bool | None = None,
        stream_options: dict[str, Any] | None = None,
        **extra: Any,
    ) -> str:
        """Add a chat completion request; return its request id.

        Parameters are OpenAI's; ``**extra`` passes any other body field through.
        ``model`` and ``messages`` are required: leaving one out raises
        :class:`~fastllm.errors.RequestFormatError` naming it, as any invalid value does.
        """
        body = {
            "model": model,
            "messages": messages,
            "temperature": temperature,
            "top_p": top_p,
            "n": n,
            "stop": stop,
            "max_completion_tokens": max_completion_tokens,
            "max_tokens": max_tokens,
            "presence_penalty": presence_penalty,
            "frequency_penalty": frequency_penalty,
            "logit_bias": logit_bias,
            "user": user,
            "response_format": response_format,
            "seed": seed,
            "tools": tools,
            "tool_choice": tool_choice,
            "stream": stream,
            "stream_options": stream_options,
            **extra,
        }
        return self._batch.add(Endpoint.CHAT_COMPLETIONS, body)


class _Chat:
    """``batch.chat``."""

    def __init__(self, batch: RequestBatch) -> None:
        self.completions = _Completions(batch)


class _Embeddings:
    """``batch.embeddings``: mirrors ``openai.embeddings``."""

    def __init__(self, batch: RequestBatch) -> None:
        self._batch = batch

    def create(
        self,
        *,
        model: str | None = None,
        input: str | list[str] | list[int] | list[list[int]] | None = None,
        dimensions: int | None = None,
        encoding_format: Literal["float", "base64"] | None = None,
        user: str | None = None,
        **extra: Any,
    ) -> str:
        """Add an embeddings request; return its request id.

        ``model`` and ``input`` are required (a :class:`~fastllm.errors.RequestFormatError`
        names the one missing).
        """
        body = {
            "model": model,
            "input": input,
            "dimensions": dimensions,
            "encoding_format": encoding_format,
            "user": user,
            **extra,
        }
        return self._batch.add(Endpoint.EMBEDDINGS, body)
