"""Reading mock API requests: OpenAI-like validation and the answer each request gets.

The mock's answers are deterministic so that tests can check every one:

* a chat answer's content is the text of the last user message (list-of-parts
  content: the text parts concatenated with no separator);
* tokens are counted with :func:`count_tokens` (one token per 4 characters);
* an embedding is ``mock_embedding`` of the input (``_responses`` builds the bodies).
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = [
    "ChatAnswer",
    "EmbeddingAnswer",
    "InvalidRequest",
    "count_tokens",
    "parse_object",
    "read_chat",
    "read_embeddings",
]

_CHARS_PER_TOKEN = 4
_MAX_N = 128


def count_tokens(text: str) -> int:
    """The mock's token count: one token per 4 characters, at least 1 (``max(1, ceil(len/4))``)."""
    return max(1, (len(text) + 3) // 4)


class InvalidRequest(Exception):
    """A request the mock rejects with 400, described like OpenAI does."""

    def __init__(
        self, message: str, param: str | None = None, code: str | None = "invalid_request_error"
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


def parse_object(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or :class:`InvalidRequest`."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly.)",
            code=None,
        ) from None
    if not isinstance(payload, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return payload


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        ]
        return "".join([t for t in texts if isinstance(t, str)])
    raise InvalidRequest("Invalid type for 'messages[].content'.", param="messages")


def _positive_int(payload: dict[str, Any], name: str, upper: int | None = None) -> int | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest(f"Invalid '{name}': expected an integer >= 1.", param=name)
    if upper is not None and value > upper:
        raise InvalidRequest(f"Invalid '{name}': expected at most {upper}.", param=name)
    return value


def _model(payload: dict[str, Any]) -> str:
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest(
            "you must provide a model parameter", param="model", code="missing_required_parameter"
        )
    return model


def _tool_name(payload: dict[str, Any]) -> str | None:
    tools = payload.get("tools")
    if not tools:
        return None
    choice = payload.get("tool_choice")
    if choice == "none":
        return None
    try:
        if isinstance(choice, dict):
            return str(choice["function"]["name"])
        return str(tools[0]["function"]["name"])
    except (KeyError, IndexError, TypeError):
        raise InvalidRequest("Invalid 'tools' or 'tool_choice'.", param="tools") from None


class ChatAnswer:
    """What the mock answers to one chat request."""

    __slots__ = (
        "completion_tokens",
        "content",
        "cost",
        "finish_reason",
        "include_usage",
        "model",
        "n",
        "prompt_tokens",
        "stream",
        "tool_name",
    )

    def __init__(self, payload: dict[str, Any]) -> None:
        self.model = _model(payload)
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidRequest(
                "Missing required parameter: 'messages'.",
                param="messages",
                code="missing_required_parameter",
            )
        prompt_tokens = 0
        last_user = ""
        for message in messages:
            if type(message) is not dict:
                raise InvalidRequest("Invalid type for 'messages[]'.", param="messages")
            content = message.get("content")
            text = content if type(content) is str else _text_of(content)
            prompt_tokens += (len(text) + 3) // 4 or 1  # count_tokens, inlined
            if message.get("role") == "user":
                last_user = text
        self.prompt_tokens = prompt_tokens
        n = payload.get("n")
        self.n = 1 if n is None else _positive_int(payload, "n", _MAX_N) or 1
        limit = payload.get("max_completion_tokens")
        name = "max_completion_tokens"
        if limit is None:
            limit = payload.get("max_tokens")
            name = "max_tokens"
        if limit is not None and (type(limit) is not int or limit < 1):
            raise InvalidRequest(f"Invalid '{name}': expected an integer >= 1.", param=name)
        self.cost = prompt_tokens + (limit or 0) * self.n
        self.stream = payload.get("stream") is True
        options = payload.get("stream_options")
        self.include_usage = isinstance(options, dict) and options.get("include_usage") is True
        self.tool_name = _tool_name(payload)
        if self.tool_name is not None:
            self.content = orjson.dumps({"text": last_user}).decode()
            self.finish_reason = "tool_calls"
            tokens = count_tokens(self.content)
        else:
            self.content = last_user
            self.finish_reason = "stop"
            tokens = count_tokens(last_user)
            if limit is not None and limit < tokens:
                self.content = last_user[: limit * _CHARS_PER_TOKEN]
                self.finish_reason = "length"
                tokens = limit
        self.completion_tokens = tokens * self.n


def read_chat(body: bytes) -> ChatAnswer:
    """Read and check a chat-completions request body."""
    return ChatAnswer(parse_object(body))


def _embedding_items(value: Any) -> list[str | list[int]]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise InvalidRequest("'$.input' is invalid. Please check the API reference.", "input")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return [value]
    items: list[str | list[int]] = []
    for item in value:
        ok = isinstance(item, str) or (isinstance(item, list) and all(type(t) is int for t in item))
        if not ok or not item:
            raise InvalidRequest("'$.input' is invalid. Please check the API reference.", "input")
        items.append(item)
    return items


class EmbeddingAnswer:
    """What the mock answers to one embeddings request."""

    __slots__ = ("base64", "cost", "dim", "items", "model", "prompt_tokens")

    def __init__(self, payload: dict[str, Any], default_dim: int, max_dim: int) -> None:
        self.model = _model(payload)
        if "input" not in payload:
            raise InvalidRequest(
                "Missing required parameter: 'input'.",
                param="input",
                code="missing_required_parameter",
            )
        self.items = _embedding_items(payload["input"])
        self.dim = _positive_int(payload, "dimensions", max_dim) or default_dim
        encoding = payload.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise InvalidRequest("Invalid 'encoding_format'.", param="encoding_format")
        self.base64 = encoding == "base64"
        self.prompt_tokens = sum(
            [count_tokens(item) if isinstance(item, str) else len(item) for item in self.items]
        )
        self.cost = self.prompt_tokens


def read_embeddings(body: bytes, default_dim: int, max_dim: int) -> EmbeddingAnswer:
    """Read and check an embeddings request body."""
    return EmbeddingAnswer(parse_object(body), default_dim, max_dim)
