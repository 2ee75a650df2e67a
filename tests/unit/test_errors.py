"""The error tree: typed, chained, and never carrying an API key."""

from __future__ import annotations

import pytest

from fastllm import errors
from fastllm.providers.http_errors import error_from_response

SECRET = "sk-test-SECRET-0123456789"


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.BadRequestError),
        (401, errors.AuthenticationError),
        (403, errors.PermissionDeniedError),
        (404, errors.NotFoundError),
        (409, errors.ConflictError),
        (422, errors.UnprocessableEntityError),
        (429, errors.RateLimitError),
        (500, errors.InternalServerError),
        (503, errors.InternalServerError),
        (418, errors.APIStatusError),
    ],
)
def test_one_class_per_status(status: int, cls: type) -> None:
    error = error_from_response(status, b'{"error": {"message": "nope", "code": "c"}}', {}, None)
    assert type(error) is cls
    assert isinstance(error, errors.APIError)
    assert isinstance(error, errors.RequestError)
    assert isinstance(error, errors.FastLLMError)
    assert error.status_code == status
    assert error.code == "c"
    assert "nope" in str(error)


def test_rate_limit_error_carries_retry_after() -> None:
    error = error_from_response(429, b"{}", {"retry-after": "29.07"}, None)
    assert isinstance(error, errors.RateLimitError)
    assert error.retry_after == pytest.approx(29.07)
    ms = error_from_response(429, b"{}", {"retry-after-ms": "250", "retry-after": "9"}, None)
    assert ms.retry_after == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"error": {"message": "bad model"}}', "bad model"),
        (b'{"detail": "Not Found"}', "Not Found"),
        (b'{"detail": [{"loc": ["body"], "msg": "field required"}]}', "field required"),
        (b"upstream connect error", "upstream connect error"),
        (b"", "empty body"),
    ],
)
def test_every_error_body_style_gives_a_readable_message(raw: bytes, message: str) -> None:
    assert message in str(error_from_response(400, raw, {}, None))


def test_the_api_key_is_redacted_from_messages_bodies_and_headers() -> None:
    raw = f'{{"error": {{"message": "Incorrect API key provided: {SECRET}"}}}}'.encode()
    error = error_from_response(401, raw, {"x-echo": SECRET}, SECRET)
    for text in (str(error), repr(error), repr(error.body), repr(error.headers)):
        assert SECRET not in text
    assert "[secure]" in str(error)


def test_configuration_and_format_errors_name_what_is_wrong() -> None:
    error = errors.ConfigurationError("concurrency", "must be at least 1, got 0")
    assert error.argument == "concurrency"
    assert str(error).startswith("concurrency:")
    assert isinstance(error, ValueError)
    fmt = errors.RequestFormatError("bad", line=4, field="model", custom_id="r1")
    assert (fmt.line, fmt.field, fmt.custom_id) == (4, "model", "r1")
    for part in ("line 4", "'model'", "'r1'"):
        assert part in str(fmt)


def test_tree_is_drawn_in_the_module_docstring() -> None:
    doc = errors.__doc__ or ""
    for name in errors.__all__:
        if name[0].isupper():
            assert name in doc, name
