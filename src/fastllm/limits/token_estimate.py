"""Token estimates for requests, so the limiter can reserve tokens before sending.

The estimate only has to be close: the engine settles every reservation with the
real usage afterwards. By default text is counted with the heuristic
``ceil(len(text) / 4)``; when :mod:`tiktoken` is installed its ``o200k_base``
(else ``cl100k_base``) encoding is used instead, but only when its file is already
in tiktoken's local cache (``TIKTOKEN_CACHE_DIR``): FastLLM never downloads it on
its own, so a run makes no request to anything but its API. ``use_tiktoken=True``
lets tiktoken download the file. The encoding is loaded lazily, once per process;
if that fails one warning is logged and the heuristic is used for good.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Mapping
from typing import Any

from fastllm.errors import ConfigurationError
from fastllm.requests.model import Endpoint

__all__ = ["TokenEstimator", "charged_tokens", "heuristic_tokens"]

logger = logging.getLogger(__name__)

#: Tokens the chat format adds around each message (role, separators).
MESSAGE_OVERHEAD = 4
#: Tokens that prime the assistant's reply.
REPLY_OVERHEAD = 3
#: A rough flat cost for an image part (the low-detail price).
IMAGE_TOKENS = 85
_IMAGE_PARTS = frozenset({"image_url", "image", "input_image"})
_ENCODINGS = ("o200k_base", "cl100k_base")


def heuristic_tokens(text: str) -> int:
    """The character heuristic: ``ceil(len(text) / 4)``."""
    return (len(text) + 3) // 4


def _tiktoken_installed() -> bool:
    return importlib.util.find_spec("tiktoken") is not None


_BLOB_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"


def _cached_offline(name: str) -> bool:
    """Whether tiktoken has the encoding file locally (where tiktoken itself caches it)."""
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    if cache_dir is None:
        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    key = hashlib.sha1(_BLOB_URL.format(name).encode()).hexdigest()
    return os.path.exists(os.path.join(cache_dir, key))


def _load_encoding(download: bool = False) -> Any:
    """Load a tiktoken encoding; raises when none can be loaded (without downloading)."""
    import tiktoken

    error: Exception | None = None
    for name in _ENCODINGS:
        if not download and not _cached_offline(name):
            error = FileNotFoundError(f"{name} is not in tiktoken's local cache")
            continue
        try:
            return tiktoken.get_encoding(name)
        except Exception as exc:
            error = exc
    assert error is not None
    raise error


_UNSET: Any = object()
_encoding: Any = _UNSET
_encoding_lock = threading.Lock()


def _shared_encoding(download: bool = False) -> Any:
    """The process-wide encoding, loaded on first call; ``None`` once loading failed."""
    global _encoding
    if _encoding is _UNSET or (_encoding is None and download):
        with _encoding_lock:
            if _encoding is _UNSET or (_encoding is None and download):
                try:
                    _encoding = _load_encoding(download)
                except Exception as exc:
                    log = logger.warning if download else logger.info
                    log(
                        "tiktoken could not load an encoding (%s: %s); estimating tokens "
                        "as ceil(characters / 4) instead",
                        type(exc).__name__,
                        exc,
                    )
                    _encoding = None
    return _encoding


def _non_negative_int(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _compact_json(value: object) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return ""


class TokenEstimator:
    """Estimates the tokens a request will use (prompt plus completion budget).

    ``default_completion_tokens`` is the completion budget assumed when a chat
    request sets neither ``max_completion_tokens`` nor ``max_tokens``.
    ``use_tiktoken``: ``None`` uses tiktoken when installed and its encoding is cached
    locally, ``True`` requires it (downloading the encoding if needed), ``False``
    always uses the character heuristic.
    """

    __slots__ = ("_count", "_download", "default_completion_tokens")

    def __init__(self, default_completion_tokens: int = 256, use_tiktoken: bool | None = None):
        if _non_negative_int(default_completion_tokens) is None:
            raise ConfigurationError(
                "default_completion_tokens",
                f"must be a non-negative integer, got {default_completion_tokens!r}",
            )
        if use_tiktoken is not None and not isinstance(use_tiktoken, bool):
            raise ConfigurationError(
                "use_tiktoken", f"must be True, False or None, got {use_tiktoken!r}"
            )
        installed = use_tiktoken is not False and _tiktoken_installed()
        if use_tiktoken and not installed:
            raise ConfigurationError(
                "use_tiktoken", "tiktoken is not installed (pip install 'fastllm-kit[tiktoken]')"
            )
        self.default_completion_tokens = default_completion_tokens
        self._download = use_tiktoken is True
        # None until the first count decides between tiktoken and the heuristic.
        self._count: Callable[[str], int] | None = None if installed else heuristic_tokens

    def _counter(self) -> Callable[[str], int]:
        count = self._count
        if count is None:
            encoding = _shared_encoding(self._download)
            if encoding is None:
                count = heuristic_tokens
            else:
                encode = encoding.encode_ordinary

                def count(text: str) -> int:
                    return len(encode(text))

            self._count = count
        return count

    @property
    def uses_tiktoken(self) -> bool:
        """Whether texts are counted with tiktoken (loads the encoding if not done yet)."""
        return self._counter() is not heuristic_tokens

    def count(self, text: str) -> int:
        """Tokens in one text."""
        return self._counter()(text)

    def estimate(self, endpoint: Endpoint, body: Mapping[str, Any]) -> int:
        """Tokens to reserve for a request: its prompt plus, for chat, its completion budget."""
        count = self._count or self._counter()
        if endpoint is Endpoint.EMBEDDINGS:
            return _embedding_tokens(body.get("input"), count)
        return self._chat_tokens(body, count)

    def _chat_tokens(self, body: Mapping[str, Any], count: Callable[[str], int]) -> int:
        total = REPLY_OVERHEAD
        messages = body.get("messages")
        if isinstance(messages, (list, tuple)):
            for message in messages:
                total += MESSAGE_OVERHEAD
                if isinstance(message, (dict, Mapping)):
                    total += _message_tokens(message, count)
        for key in ("tools", "functions"):
            definitions = body.get(key)
            if definitions:
                total += count(_compact_json(definitions))
        completion = _non_negative_int(body.get("max_completion_tokens"))
        if completion is None:
            completion = _non_negative_int(body.get("max_tokens"))
        if completion is None:
            completion = self.default_completion_tokens
        n = _non_negative_int(body.get("n"))
        return total + completion * (n if n else 1)


def _message_tokens(message: Mapping[str, Any], count: Callable[[str], int]) -> int:
    total = 0
    content = message.get("content")
    if isinstance(content, str):
        total += count(content)
    elif isinstance(content, (list, tuple)):
        for part in content:
            if isinstance(part, str):
                total += count(part)
            elif isinstance(part, (dict, Mapping)):
                text = part.get("text", part.get("refusal"))
                if isinstance(text, str):
                    total += count(text)
                elif part.get("type") in _IMAGE_PARTS:
                    total += IMAGE_TOKENS
    name = message.get("name")
    if name is not None and isinstance(name, str):
        total += count(name)
    calls = message.get("tool_calls")
    if calls and isinstance(calls, (list, tuple)):
        for call in calls:
            if isinstance(call, (dict, Mapping)):
                total += _function_tokens(call.get("function"), count)
    function_call = message.get("function_call")
    if function_call is not None:
        total += _function_tokens(function_call, count)
    return total


def _function_tokens(function: object, count: Callable[[str], int]) -> int:
    """A tool call: its name, its arguments and a little framing."""
    if not isinstance(function, (dict, Mapping)):
        return 0
    total = MESSAGE_OVERHEAD
    name = function.get("name")
    if isinstance(name, str):
        total += count(name)
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        total += count(arguments)
    elif arguments is not None:
        total += count(_compact_json(arguments))
    return total


def _embedding_tokens(value: object, count: Callable[[str], int]) -> int:
    """Tokens of an embeddings ``input``: a string, strings, a token array or token arrays."""
    if isinstance(value, str):
        return count(value)
    if not isinstance(value, (list, tuple)):
        return 0
    total = 0
    for item in value:
        if isinstance(item, str):
            total += count(item)
        elif isinstance(item, (list, tuple)):
            total += len(item)
        elif isinstance(item, int):
            total += 1  # one token of a single token array
    return total


def charged_tokens(body: Mapping[str, Any], usage: object, estimate: int) -> int:
    """The tokens a provider's rate limit counted for a finished request.

    OpenAI-style limits count the prompt plus the completion budget the request
    declared (``max_completion_tokens``/``max_tokens`` times ``n``), not what was
    generated, so that budget is kept when it is larger than the completion.
    Without a declared budget the usage total is used; without usage, the estimate.
    """
    if not isinstance(usage, Mapping):
        return estimate
    prompt = _non_negative_int(usage.get("prompt_tokens")) or 0
    completion = _non_negative_int(usage.get("completion_tokens")) or 0
    declared = _non_negative_int(body.get("max_completion_tokens"))
    if declared is None:
        declared = _non_negative_int(body.get("max_tokens"))
    if declared is not None:
        n = _non_negative_int(body.get("n")) or 1
        completion = max(completion, declared * n)
    total = _non_negative_int(usage.get("total_tokens"))
    if declared is None and total is not None:
        return total
    return prompt + completion
