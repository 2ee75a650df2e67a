"""Every exception FastLLM raises or returns, in one tree.

::

    FastLLMError
    ├── ConfigurationError              a bad argument to a constructor or call (names it)
    ├── RequestFormatError              a malformed request, batch line or JSONL line (names it)
    ├── CacheError                      a cache backend could not be created or used
    ├── BatchError                      raise_on_error=True and some requests failed; has .results
    └── RequestError                    one request failed; returned in ResponseWrapper.error
        ├── NotRunError                 never sent (budget reached, run cancelled)
        └── APIError                    the provider did not give a usable answer
            ├── APIConnectionError      could not connect, or the connection broke
            │   └── APITimeoutError     no (complete) answer in time
            ├── ResponseDecodingError   the body was not valid JSON / a truncated stream
            └── APIStatusError          the server answered with an error status
                ├── BadRequestError             400
                ├── AuthenticationError         401
                ├── PermissionDeniedError       403
                ├── NotFoundError               404
                ├── ConflictError               409
                ├── UnprocessableEntityError    422
                ├── RateLimitError              429 (retry_after, code)
                └── InternalServerError         5xx

Rules kept everywhere: an exception raised while handling another keeps it as
``__cause__`` (``raise ... from``); no message, repr or attribute holds an API key
(the provider redacts it from server bodies before they reach an exception).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastllm.engine.results import ResponseWrapper

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BatchError",
    "CacheError",
    "ConfigurationError",
    "ConflictError",
    "FastLLMError",
    "InternalServerError",
    "NotFoundError",
    "NotRunError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestError",
    "RequestFormatError",
    "ResponseDecodingError",
    "UnprocessableEntityError",
    "status_error_class",
]


class FastLLMError(Exception):
    """Base class of every FastLLM exception."""


class ConfigurationError(FastLLMError, ValueError):
    """An argument has a value FastLLM cannot work with; ``argument`` names it."""

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"{argument}: {message}")
        self.argument = argument


class RequestFormatError(FastLLMError, ValueError):
    """A request, batch line or JSONL line is malformed.

    ``line`` is the 1-based line number in a file, ``field`` the offending key,
    ``custom_id`` the request it belongs to, each when known.
    """

    def __init__(
        self,
        message: str,
        *,
        line: int | None = None,
        field: str | None = None,
        custom_id: str | None = None,
    ) -> None:
        where = []
        if line is not None:
            where.append(f"line {line}")
        if custom_id is not None:
            where.append(f"request {custom_id!r}")
        if field is not None:
            where.append(f"field {field!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.line = line
        self.field = field
        self.custom_id = custom_id


class CacheError(FastLLMError):
    """A cache backend could not be created, read or written."""


class RequestError(FastLLMError):
    """One request failed. Returned (not raised) in ``ResponseWrapper.error``.

    ``attempts`` counts the HTTP attempts made for it (0 when never sent).
    """

    attempts: int = 0


class NotRunError(RequestError):
    """The request was never sent: the cost budget was reached or the run was cancelled."""


class APIError(RequestError):
    """The provider gave no usable answer."""


class APIConnectionError(APIError):
    """The connection could not be made, or broke before the answer was complete."""


class APITimeoutError(APIConnectionError):
    """No complete answer within the timeout (or between two stream chunks)."""


class ResponseDecodingError(APIError):
    """The answer was not what the API promises: not JSON, wrong shape, truncated stream.

    ``retryable`` is True for answers cut short (a truncated stream), which a
    retry may fix, and False for a well-formed answer of the wrong shape.
    """

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class APIStatusError(APIError):
    """The server answered with an error status.

    ``body`` is the parsed JSON body (or ``{"message": text}`` when not JSON), with
    any API key redacted; ``code`` the error code (e.g. ``insufficient_quota``);
    ``retry_after`` the seconds the server asked to wait, when it said;
    ``should_retry`` the server's ``x-should-retry`` verdict, when given.
    """

    status_code: int = 0

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: Mapping[str, Any] | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        should_retry: bool | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code = status_code
        self.body = dict(body) if body else {}
        self.code = code
        self.retry_after = retry_after
        self.should_retry = should_retry
        self.headers = dict(headers) if headers else {}


class BadRequestError(APIStatusError):
    """400: the request is invalid; retrying will not help."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing or wrong."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not use this resource."""


class NotFoundError(APIStatusError):
    """404: unknown model or path."""


class ConflictError(APIStatusError):
    """409: a conflicting request; retryable."""


class UnprocessableEntityError(APIStatusError):
    """422: well-formed but semantically invalid request."""


class RateLimitError(APIStatusError):
    """429: rate limited (retryable) or out of quota (``code == "insufficient_quota"``)."""


class InternalServerError(APIStatusError):
    """5xx: the server failed; retryable."""


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status_code: int) -> type[APIStatusError]:
    """The exception class for an HTTP error status."""
    if status_code >= 500:
        return InternalServerError
    return _STATUS_CLASSES.get(status_code, APIStatusError)


class BatchError(FastLLMError):
    """Raised after a run with ``raise_on_error=True`` when some requests failed.

    ``results`` holds every result in request order, successes included;
    ``failures`` only the failed ones.
    """

    def __init__(self, results: Sequence[ResponseWrapper]) -> None:
        self.results = list(results)
        self.failures = [r for r in self.results if not r.ok]
        kinds: dict[str, int] = {}
        for r in self.failures:
            name = type(r.error).__name__
            kinds[name] = kinds.get(name, 0) + 1
        detail = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        super().__init__(f"{len(self.failures)} of {len(self.results)} requests failed ({detail})")
