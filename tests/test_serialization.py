"""Entries: values round-trip without pickle; corrupt or foreign bytes never raise out of a lookup."""

from __future__ import annotations

import dataclasses
import enum
import struct
import zlib
from typing import Any

import numpy as np
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import agentcache
from agentcache.codec.entries import (
    MAGIC,
    decode_entry,
    encode_entry,
    key_digest,
    pack_vector,
    register_type,
    unpack_vector,
)
from agentcache.errors import SerializationError
from agentcache.usage import Usage

KEY = "ac:v1:default:tool:t:0123456789abcdef"


def _reseal(raw: bytes) -> bytes:
    """`raw` with its checksum recomputed: bytes a (foreign) writer produced on purpose, not damaged ones."""
    out = bytearray(raw)
    struct.pack_into("<I", out, 4, zlib.crc32(bytes(out[8:]), zlib.crc32(bytes(out[:4]))))
    return bytes(out)


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
        back = decode_entry(encode_entry(value, key=KEY, duration=1.25, usage=Usage(10, 5, model="gpt-4o")), KEY).value
        if isinstance(value, float):
            assert back != back  # NaN
        else:
            assert back == value
            assert type(back) is type(value)

    def test_numpy_arrays(self) -> None:
        """Arrays keep dtype and shape."""
        arr = np.arange(6, dtype=np.float32).reshape(2, 3)
        back = decode_entry(encode_entry(arr, key=KEY), KEY).value
        assert back.dtype == arr.dtype and back.shape == arr.shape and (back == arr).all()

    def test_metadata(self) -> None:
        """Duration, usage and kind survive."""
        entry = decode_entry(encode_entry(["a", "b"], key=KEY, kind="stream", duration=0.5, usage=Usage(3, 4)), KEY)
        assert (entry.kind, entry.duration, entry.usage) == ("stream", 0.5, Usage(3, 4))

    def test_unserializable_raises(self) -> None:
        """Objects without a safe encoding are refused (the cache then returns them uncached)."""
        with pytest.raises(SerializationError):
            encode_entry({"x": object()}, key=KEY)

    def test_unregistered_class_is_foreign(self) -> None:
        """A stored class name this process never registered is refused, not imported."""
        raw = _reseal(encode_entry(Hit("t", 1.0), key=KEY).replace(b"Hit", b"Evil"))
        with pytest.raises(SerializationError, match="unregistered"):
            decode_entry(raw, KEY)
        raw2 = _reseal(encode_entry(Hit("t", 1.0), key=KEY).replace(b"test_serialization:Hit", b"os:system"))
        with pytest.raises(SerializationError):
            decode_entry(raw2, KEY)

    def test_register_type_decorator(self) -> None:
        """register_type returns the class, so it works as a decorator."""

        @register_type
        @dataclasses.dataclass
        class Local:
            x: int

        assert decode_entry(encode_entry(Local(1), key=KEY), KEY).value == Local(1)


def _entry(
    kind: bytes, value: bytes, usage: bytes = b"", duration: float = 0.5, usage_length: int | None = None
) -> bytes:
    """Hand-made entry bytes for `KEY`, with a valid checksum: magic and kind byte, header, usage, value."""
    n = len(usage) if usage_length is None else usage_length
    return _reseal(MAGIC + kind + struct.pack("<I8sddI", 0, key_digest(KEY), 1.7e9, duration, n) + usage + value)


class TestHostileBytes:
    @given(st.binary(max_size=200), st.sampled_from([b"", b"v", b"V", b"s", b"S"]))
    @settings(max_examples=500, deadline=None)
    def test_random_bytes_only_raise_serialization_error(self, raw: bytes, kind: bytes) -> None:
        """Any bytes, bare or behind a valid magic and kind byte, either decode or raise SerializationError."""
        for candidate in (raw, MAGIC + kind + raw):
            try:
                decode_entry(candidate, KEY)
            except SerializationError:
                pass

    @given(st.text(max_size=200), st.binary(max_size=40), st.floats())
    @settings(max_examples=300, deadline=None)
    def test_random_json_text_is_handled(self, text: str, usage: bytes, duration: float) -> None:
        """Arbitrary value text, usage bytes and durations in a well-formed header only raise SerializationError;
        unreadable usage bytes are ignored, never a reason to fail."""
        for kind in (b"v", b"V", b"s", b"S"):
            try:
                entry = decode_entry(_entry(kind, text.encode(), usage, duration), KEY)
            except SerializationError:
                continue
            assert entry.duration == duration and 0.0 <= duration < 1e9

    @pytest.mark.parametrize(
        "payload",
        [
            _entry(b"V", b'{"$t":"ndarray","v":["|O8",[1],"AAAAAAAAAAA="]}'),
            _entry(b"V", b'{"$t":"model","c":"builtins:dict","v":{}}'),
            _entry(b"V", b'{"$t":"bytes","v":"!!!"}'),
            _entry(b"s", b"3"),
            _entry(b"x", b"[1,2]"),
            _entry(b"v", b"[1,2]", duration=float("nan")),
            _entry(b"v", b"[1,2]", duration=-1.0),
            _entry(b"v", b"[1,2]")[:20],
            _entry(b"v", b"[" * 100000),
            _entry(b"v", b"[1]", usage_length=2**31),
        ],
        ids=[
            "object-array",
            "unregistered-class",
            "bad-base64",
            "stream-not-a-list",
            "unknown-kind",
            "nan-duration",
            "negative-duration",
            "truncated-header",
            "deep-nesting",
            "usage-length-past-the-end",
        ],
    )
    def test_crafted_entries_are_refused(self, payload: bytes) -> None:
        """Object arrays, unregistered classes, bad base64, wrong kinds, bad headers and deep nesting are refused."""
        with pytest.raises(SerializationError):
            decode_entry(payload, KEY)

    @given(st.sampled_from([b"", MAGIC + b"v", MAGIC + b"V", MAGIC + b"s", b"sealed"]), st.binary(max_size=300))
    @settings(max_examples=300, deadline=None)
    def test_lookup_of_garbage_is_a_miss_and_removes_it(self, prefix: bytes, tail: bytes) -> None:
        """A cached call whose entry is garbage runs the function, returns its value and replaces the entry;
        "sealed" garbage (a valid checksum and key digest around bytes that are not JSON) included."""
        from agentcache.backends import open_backend
        from agentcache.backends.base import Item

        backend = open_backend("memory://")
        calls: list[int] = []

        @agentcache.tool_cached(backend=backend, name="victim")
        def tool(q: str) -> str:
            calls.append(1)
            return "real"

        key = tool.cache_key("q")
        raw = prefix + tail
        if prefix == b"sealed":
            raw = _reseal(MAGIC + b"v" + struct.pack("<I8sddI", 0, key_digest(key), 0.0, 0.0, 0) + tail)
        backend.set_many([Item(key, raw)])
        try:
            entry = decode_entry(raw, key)
        except SerializationError:
            assert tool("q") == "real" and calls == [1]
            assert backend.get(key) != raw
        else:  # readable after all: a value entry is a hit, a stream entry is not this function's
            assert tool("q") == (entry.value if entry.kind == "value" else "real")


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
