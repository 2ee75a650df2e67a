"""Checks a request body before it is queued, so mistakes surface where they are made.

Only what the API would certainly reject is refused here (missing ``model``,
``messages`` or ``input``, values of the wrong JSON type); everything else passes
through untouched, so provider-specific fields keep working.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastllm.errors import RequestFormatError
from fastllm.requests.model import Endpoint

__all__ = ["validate_body"]

_NUMBER = (int, float)
_CHAT_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "temperature": (_NUMBER, "a number"),
    "top_p": (_NUMBER, "a number"),
    "presence_penalty": (_NUMBER, "a number"),
    "frequency_penalty": (_NUMBER, "a number"),
    "n": ((int,), "an integer"),
    "max_tokens": ((int,), "an integer"),
    "max_completion_tokens": ((int,), "an integer"),
    "seed": ((int,), "an integer"),
    "stop": ((str, list), "a string or a list of strings"),
    "logit_bias": ((dict,), "an object"),
    "user": ((str,), "a string"),
    "response_format": ((dict,), "an object"),
    "tools": ((list,), "a list"),
    "tool_choice": ((str, dict), "a string or an object"),
    "stream": ((bool,), "a boolean"),
    "stream_options": ((dict,), "an object"),
}
_EMBEDDING_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "dimensions": ((int,), "an integer"),
    "encoding_format": ((str,), "a string"),
    "user": ((str,), "a string"),
}


def validate_body(endpoint: Endpoint, body: Mapping[str, Any], *, line: int | None = None) -> None:
    """Raise :class:`RequestFormatError` naming the field when ``body`` cannot be valid."""
    if type(body) is not dict and not isinstance(body, Mapping):
        raise RequestFormatError(f"body must be an object, got {type(body).__name__}", line=line)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestFormatError("model is required (a non-empty string)", line=line, field="model")
    if endpoint is Endpoint.CHAT_COMPLETIONS:
        _check_messages(body.get("messages"), line)
        _check_types(body, _CHAT_TYPES, line)
    else:
        _check_input(body.get("input"), line)
        _check_types(body, _EMBEDDING_TYPES, line)
        dims = body.get("dimensions")
        if dims is not None and dims < 1:
            raise RequestFormatError("dimensions must be at least 1", line=line, field="dimensions")


def _check_types(
    body: Mapping[str, Any], types: dict[str, tuple[tuple[type, ...], str]], line: int | None
) -> None:
    # Walk the body's few keys, not every typed field; on a wrong value the fields are
    # walked in their listed order, so the one named is the same whatever the key order.
    for field, value in body.items():
        spec = types.get(field)
        if spec is None or value is None:
            continue
        allowed = spec[0]
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            _raise_first_wrong(body, types, line)


def _raise_first_wrong(
    body: Mapping[str, Any], types: dict[str, tuple[tuple[type, ...], str]], line: int | None
) -> None:
    for field, (allowed, label) in types.items():
        value = body.get(field)
        if value is None:
            continue
        wrong_bool = isinstance(value, bool) and bool not in allowed
        if wrong_bool or not isinstance(value, allowed):
            raise RequestFormatError(
                f"must be {label}, got {type(value).__name__}", line=line, field=field
            )


def _check_messages(messages: object, line: int | None) -> None:
    if not isinstance(messages, list) or not messages:
        raise RequestFormatError(
            "messages is required (a non-empty list of messages)", line=line, field="messages"
        )
    for i, message in enumerate(messages):
        if (type(message) is dict or isinstance(message, Mapping)) and isinstance(
            message.get("role"), str
        ):
            continue
        raise RequestFormatError(
            "each message must be an object with a string 'role'",
            line=line,
            field=f"messages[{i}]",
        )


def _check_input(value: object, line: int | None) -> None:
    if isinstance(value, str):
        return
    if isinstance(value, list) and value:
        first = value[0]
        if all(isinstance(v, str) for v in value):
            return
        if isinstance(first, int) and all(type(v) is int for v in value):
            return
        if all(isinstance(v, list) and all(type(t) is int for t in v) for v in value):
            return
    raise RequestFormatError(
        "input is required: a string, a non-empty list of strings, or token arrays",
        line=line,
        field="input",
    )
