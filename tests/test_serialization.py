"""Entries: values round-trip without pickle; corrupt or foreign bytes never raise out of a lookup."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

import numpy as np
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import agentcache
from agentcache.errors import SerializationError
from agentcache.serialization import decode_entry, encode_entry, pack_vector, register_type, unpack_vector
from agentcache.usage import Usage


class Mood(enum.Enum):
    OK = "ok"


@dataclasses.dataclass
class Hit:
    title: str
    score: float


class Answer(pydantic.BaseModel):
    text: str
    sources: list[str] = []


class TestRoundTrip:
    @pytest.mark.parametrize(
        "value",
        [
            None,
            "x",
            [1, 2.5, None, True],
            {"a": {"b": [1, {"c": "d"}]}},
            (1, (2, 3)),
            {1: "int key", (1, 2): "tuple key"},
            {"$t": "looks like a tag", "v": 1},
            b"\x00\x01",
            {1, 2},
            frozenset({"a"}),
            float("nan"),
            Mood.OK,
            Hit("t", 0.5),
            Answer(text="hi", sources=["a"]),
            [Answer(text="x")],
        ],
        ids=repr,
    )
    def test_value_round_trips(self, value: Any) -> None:
        """decode(encode(v)) == v, with the same types."""
        back = decode_entry(encode_entry(value, duration=1.25, usage=Usage(10, 5, model="gpt-4o"))).value
        if isinstance(value, float):
            assert back != back  # NaN
        else:
            assert back == value
            assert type(back) is type(value)

    def test_numpy_arrays(self) -> None:
        """Arrays keep dtype and shape."""
        arr = np.arange(6, dtype=np.float32).reshape(2, 3)
        back = decode_entry(encode_entry(arr)).value
        assert back.dtype == arr.dtype and back.shape == arr.shape and (back == arr).all()

    def test_metadata(self) -> None:
        """Duration, usage and kind survive."""
        entry = decode_entry(encode_entry(["a", "b"], kind="stream", duration=0.5, usage=Usage(3, 4)))
        assert (entry.kind, entry.duration, entry.usage) == ("stream", 0.5, Usage(3, 4))

    def test_unserializable_raises(self) -> None:
        """Objects without a safe encoding are refused (the cache then returns them uncached)."""
        with pytest.raises(SerializationError):
            encode_entry({"x": object()})

    def test_unregistered_class_is_foreign(self) -> None:
        """A stored class name this process never registered is refused, not imported."""
        raw = encode_entry(Hit("t", 1.0)).replace(b"Hit", b"Evil")
        with pytest.raises(SerializationError, match="unregistered"):
            decode_entry(raw)
        raw2 = encode_entry(Hit("t", 1.0)).replace(b"test_serialization:Hit", b"os:system")
        with pytest.raises(SerializationError):
            decode_entry(raw2)

    def test_register_type_decorator(self) -> None:
        """register_type returns the class, so it works as a decorator."""

        @register_type
        @dataclasses.dataclass
        class Local:
            x: int

        assert decode_entry(encode_entry(Local(1))).value == Local(1)


class TestHostileBytes:
    @given(st.binary(max_size=200))
    @settings(max_examples=500, deadline=None)
    def test_random_bytes_only_raise_serialization_error(self, raw: bytes) -> None:
        """Any bytes either decode or raise SerializationError (never another exception)."""
        for candidate in (raw, b"ac1j" + raw, b"ac1t" + raw):
            try:
                decode_entry(candidate)
            except SerializationError:
                pass

    @given(st.text(max_size=200))
    @settings(max_examples=300, deadline=None)
    def test_random_json_text_is_handled(self, text: str) -> None:
        """Arbitrary text after the magic never escapes as anything but SerializationError."""
        for magic in (b"ac1j", b"ac1t"):
            try:
                decode_entry(magic + text.encode())
            except SerializationError:
                pass

    @pytest.mark.parametrize(
        "payload",
        [
            b'ac1t{"k":"value","v":{"$t":"ndarray","v":["|O8",[1],"AAAAAAAAAAA="]}}',
            b'ac1t{"k":"value","v":{"$t":"model","c":"builtins:dict","v":{}}}',
            b'ac1t{"k":"value","v":{"$t":"bytes","v":"!!!"}}',
            b'ac1j{"k":"stream","v":3}',
            b"ac1j[1,2]",
            b"ac1j" + b"[" * 100000,
        ],
    )
    def test_crafted_entries_are_refused(self, payload: bytes) -> None:
        """Object arrays, unregistered classes, bad base64, wrong kinds and deep nesting are refused."""
        with pytest.raises(SerializationError):
            decode_entry(payload)

    @given(st.binary(max_size=300))
    @settings(max_examples=200, deadline=None)
    def test_lookup_of_garbage_is_a_miss_and_removes_it(self, raw: bytes) -> None:
        """A cached call whose entry is garbage runs the function, returns its value and replaces the entry."""
        from agentcache.backends import open_backend
        from agentcache.backends.base import Item

        backend = open_backend("memory://")
        calls: list[int] = []

        @agentcache.tool_cached(backend=backend, name="victim")
        def tool(q: str) -> str:
            calls.append(1)
            return "real"

        key = tool.cache_key("q")
        backend.set_many([Item(key, raw)])
        try:
            value = decode_entry(raw).value
        except SerializationError:
            assert tool("q") == "real" and calls == [1]
            assert backend.get(key) != raw
        else:
            assert tool("q") == value


class TestVectors:
    def test_float32_bytes(self) -> None:
        """Vectors pack to 4 bytes per dimension and back (to float32 precision)."""
        vec = [0.1, -2.5, 3.0]
        raw = pack_vector(vec)
        assert len(raw) == 12
        assert unpack_vector(raw) == pytest.approx(vec, rel=1e-6)
        assert pack_vector(np.array(vec)) == raw
        with pytest.raises(SerializationError):
            unpack_vector(b"abc")
