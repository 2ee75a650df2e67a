"""The JSON codec: round trips, openai models, corrupt input, no pickle."""

from __future__ import annotations

import pathlib
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion
from pydantic import BaseModel

from fastllm.cache import CorruptEntryError, InMemoryCache, decode_value, encode_value
from fastllm.errors import CacheError

CHAT_BODY: dict[str, Any] = {
    "id": "chatcmpl-AbC123",
    "object": "chat.completion",
    "created": 1727000000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Paris is the capital of France. ✓",
                "refusal": None,
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 24,
        "completion_tokens": 9,
        "total_tokens": 33,
        "prompt_tokens_details": {"cached_tokens": 0},
    },
    "system_fingerprint": "fp_1234",
    "provider_extra": {"region": "eu"},
}

EMBEDDING_BODY: dict[str, Any] = {
    "object": "list",
    "data": [
        {"object": "embedding", "index": 0, "embedding": [0.0123, -0.98, 1e-7, 3.5]},
        {"object": "embedding", "index": 1, "embedding": [0.5, 0.25, -0.125, 0.0]},
    ],
    "model": "text-embedding-3-small",
    "usage": {"prompt_tokens": 8, "total_tokens": 8},
}


def test_dict_round_trip() -> None:
    encoded = encode_value(CHAT_BODY)
    assert isinstance(encoded, bytes)
    assert decode_value(encoded) == CHAT_BODY


def test_non_dict_mapping_round_trip() -> None:
    value = OrderedDict([("b", 1), ("a", [1, 2, {"c": None}])])
    assert decode_value(encode_value(value)) == dict(value)


def test_bytes_pass_through_unchanged() -> None:
    raw = orjson.dumps(CHAT_BODY, option=orjson.OPT_INDENT_2)
    assert encode_value(raw) is raw
    padded = b" \r\n\t" + raw + b"\n "
    assert encode_value(padded) is padded
    assert decode_value(padded) == CHAT_BODY
    assert encode_value(bytearray(b'{"a": 1}')) == b'{"a": 1}'  # type: ignore[arg-type]


def test_chat_completion_round_trips_to_an_equal_model() -> None:
    model = ChatCompletion.model_validate(CHAT_BODY)
    restored = ChatCompletion.model_validate(decode_value(encode_value(model)))
    assert restored == model
    assert restored.choices[0].message.content == "Paris is the capital of France. ✓"
    assert restored.model_extra == {"provider_extra": {"region": "eu"}}
    # the raw body and the parsed model give the same model back
    from_bytes = decode_value(encode_value(orjson.dumps(CHAT_BODY)))
    assert ChatCompletion.model_validate(from_bytes) == model


def test_embedding_response_round_trips_to_an_equal_model() -> None:
    model = CreateEmbeddingResponse.model_validate(EMBEDDING_BODY)
    restored = CreateEmbeddingResponse.model_validate(decode_value(encode_value(model)))
    assert restored == model
    assert restored.data[0].embedding == [0.0123, -0.98, 1e-7, 3.5]


def test_model_encoding_skips_unset_fields() -> None:
    class Answer(BaseModel):
        text: str
        score: float = 0.5
        tags: list[str] = []

    encoded = encode_value(Answer(text="x", tags=["a"]))
    assert decode_value(encoded) == {"text": "x", "tags": ["a"]}
    assert Answer.model_validate(decode_value(encoded)) == Answer(text="x", tags=["a"])


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   ",
        b"not json",
        b"{",
        b'{"a": 1',
        b'{"a": 1} trailing',
        b"{'single': 'quotes'}",
        b"[1, 2, 3]",
        b'"a string"',
        b"42",
        b"null",
        b'{"a": "\xff\xfe"}',
        b"\x00\x01\x02",
    ],
)
def test_decode_rejects_what_is_not_a_json_object(raw: bytes) -> None:
    with pytest.raises(CorruptEntryError):
        decode_value(raw)


def test_corrupt_entry_error_is_a_cache_error() -> None:
    assert issubclass(CorruptEntryError, CacheError)


@pytest.mark.parametrize("raw", [b"", b"  \n", b"[1]", b'"x"', b"null", b'{"a": 1', b"abc}"])
def test_encode_rejects_bytes_that_are_not_an_object(raw: bytes) -> None:
    with pytest.raises(CacheError, match="not a JSON object"):
        encode_value(raw)


def test_encode_rejects_unserialisable_values() -> None:
    with pytest.raises(CacheError, match="JSON-serialisable"):
        encode_value({"when": object()})
    with pytest.raises(CacheError):
        encode_value({1: "non-string key"})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        encode_value([1, 2])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        encode_value("{}")  # type: ignore[arg-type]


class _Payload:
    """Unpickling this would create ``target``: proof that nothing unpickles."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (pathlib.Path.touch, (self.target,))


def test_pickle_payload_is_corrupt_and_never_unpickled(tmp_path: Path) -> None:
    target = tmp_path / "unpickled"
    payload = pickle.dumps(_Payload(target))
    with pytest.raises(CorruptEntryError):
        decode_value(payload)
    with pytest.raises(CorruptEntryError):
        decode_value(pickle.dumps({"a": 1}))
    with pytest.raises(CacheError):
        encode_value(payload)
    assert not target.exists()


async def test_pickle_payload_cannot_enter_the_memory_cache(tmp_path: Path) -> None:
    target = tmp_path / "unpickled"
    cache = InMemoryCache()
    with pytest.raises(CacheError):
        await cache.put("k", pickle.dumps(_Payload(target)))
    assert await cache.get_many(["k"]) == {}
    assert not target.exists()


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8"))
)
_keys = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_keys, inner, max_size=5),
    max_leaves=30,
)
_objects = st.dictionaries(_keys, _json, max_size=8)


@settings(deadline=None)
@given(_objects)
def test_any_json_object_round_trips(obj: dict[str, Any]) -> None:
    assert decode_value(encode_value(obj)) == obj
    raw = orjson.dumps(obj)
    assert encode_value(raw) is raw
    assert decode_value(raw) == obj
