"""Golden keys: the canonical bytes of one value of every type a key accepts, fixed as they were written before
the shared type registry (`agentcache.codec.types`). A change here changes every stored key: it needs a new
`SCHEMA_VERSION`, not a new golden value."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import uuid
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, NamedTuple

import numpy as np
import pydantic
import pytest

import agentcache
from agentcache.keys.encoding import canonical_bytes, fields_bytes


class Color(enum.Enum):
    RED = 1


class Level(enum.IntEnum):
    ONE = 1


@dataclasses.dataclass
class Params:
    temperature: float
    stop: tuple[str, ...] = ()


class Msg(pydantic.BaseModel):
    role: str
    content: str


class Prompt(str):
    pass


class Count(int):
    pass


class Ratio(float):
    pass


class Messages(list):  # type: ignore[type-arg]
    pass


class Headers(dict):  # type: ignore[type-arg]
    pass


class Pair(tuple):  # type: ignore[type-arg]
    pass


class Point(NamedTuple):
    x: int
    y: int


class Blob(bytes):
    pass


class Tags(frozenset):  # type: ignore[type-arg]
    pass


class Stamp(dt.datetime):
    pass


class Money(decimal.Decimal):
    pass


class Id(uuid.UUID):
    pass


class Doc(PurePosixPath):
    pass


class Keyed:
    def __cache_key__(self) -> str:
        return "keyed"


PATHLIB = PurePosixPath.__module__.encode()
UTC = dt.timezone.utc
NOW = dt.datetime(2026, 12, 2, 9, 30, 15, 123456, tzinfo=UTC)

VALUES: dict[str, Any] = {
    "str": "héllo",
    "int": 42,
    "big_int": 2**70,
    "float": 1.5,
    "negative_zero": -0.0,
    "bool": True,
    "none": None,
    "list": [1, "a", None],
    "dict": {"b": 1, "a": [2.5]},
    "tag_key_dict": {"$t": "tuple", "v": [1]},
    "tuple": (1, (2, "x")),
    "int_keys": {1: "a", (1, 2): "b"},
    "bytes": b"\x00hi",
    "bytearray": bytearray(b"hi"),
    "memoryview": memoryview(b"hi"),
    "bytes_subclass": Blob(b"hi"),
    "set": {3, "a", (2, 3)},
    "frozenset": frozenset({1, 2}),
    "frozenset_subclass": Tags({1}),
    "enum": Color.RED,
    "int_enum": Level.ONE,
    "datetime": NOW,
    "naive_datetime": dt.datetime(2026, 1, 1, 12, 0),
    "datetime_subclass": Stamp(2026, 1, 1, tzinfo=UTC),
    "date": dt.date(2026, 12, 2),
    "time": dt.time(9, 30, 15, 500),
    "aware_time": dt.time(9, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    "timedelta": dt.timedelta(days=1, seconds=5, microseconds=7),
    "decimal": decimal.Decimal("1.50"),
    "decimal_subclass": Money("2"),
    "uuid": uuid.UUID(int=1),
    "uuid_subclass": Id(int=2),
    "pure_posix_path": PurePosixPath("/a/b.txt"),
    "pure_windows_path": PureWindowsPath("C:\\a\\b.txt"),
    "path_subclass": Doc("docs/x.md"),
    "str_subclass": Prompt("hi"),
    "int_subclass": Count(3),
    "float_subclass": Ratio(0.25),
    "list_subclass": Messages([1, (2,)]),
    "dict_subclass": Headers({"a": 1}),
    "tuple_subclass": Pair((1, 2)),
    "namedtuple": Point(1, 2),
    "dataclass": Params(0.5, ("\n",)),
    "model": Msg(role="user", content="hi"),
    "cache_key_hook": Keyed(),
    "numpy_float64": np.float64(1.5),
    "numpy_int32": np.int32(7),
    "numpy_bool": np.bool_(True),
    "numpy_array": np.arange(6, dtype=np.float32).reshape(2, 3),
    "numpy_structured": np.zeros(1, dtype=[("a", "<i4"), ("b", "<f8")]),
    "numpy_int64": np.int64(-3),
    "numpy_datetime64": np.datetime64("2026-01-01T00:00:00"),
    "numpy_float16": np.float16(0.5),
    "nested": {"when": NOW, "args": (1, decimal.Decimal("0.1")), "tags": {"x"}, "path": PurePosixPath("p")},
}

GOLDEN: dict[str, bytes] = {  # pathlib's classes live in pathlib._local from Python 3.13
    "aware_time": b'{"$t":"time","v":"09:30:00+02:00"}',
    "big_int": b"\x011180591620717411303424",
    "bool": b"true",
    "bytearray": b'{"$t":"bytes","c":"builtins.bytearray","v":"aGk="}',
    "bytes": b'{"$t":"bytes","v":"AGhp"}',
    "bytes_subclass": b'{"$t":"bytes","c":"test_key_golden.Blob","v":"aGk="}',
    "cache_key_hook": b'{"$t":"custom","c":"test_key_golden.Keyed","v":"keyed"}',
    "dataclass": (
        b'{"$t":"dataclass","c":"test_key_golden.Params","v":{"stop":{"$t":"tuple","v":["\\n"]},"temperature":0.5}}'
    ),
    "date": b'{"$t":"date","v":"2026-12-02"}',
    "datetime": b'{"$t":"datetime","v":"2026-12-02T09:30:15.123456+00:00"}',
    "datetime_subclass": b'{"$t":"datetime","c":"test_key_golden.Stamp","v":"2026-01-01T00:00:00+00:00"}',
    "decimal": b'{"$t":"decimal","v":"1.50"}',
    "decimal_subclass": b'{"$t":"decimal","c":"test_key_golden.Money","v":"2"}',
    "dict": b'{"a":[2.5],"b":1}',
    "dict_subclass": b'{"$t":"sub","c":"test_key_golden.Headers","v":{"a":1}}',
    "enum": b'{"$t":"enum","c":"test_key_golden.Color","v":1}',
    "float": b"1.5",
    "float_subclass": b'{"$t":"sub","c":"test_key_golden.Ratio","v":0.25}',
    "frozenset": b'{"$t":"frozenset","v":[1,2]}',
    "frozenset_subclass": b'{"$t":"frozenset","c":"test_key_golden.Tags","v":[1]}',
    "int": b"42",
    "int_enum": b'{"$t":"enum","c":"test_key_golden.Level","v":1}',
    "int_keys": b'{"$t":"dict","v":[[1,"a"],[{"$t":"tuple","v":[1,2]},"b"]]}',
    "int_subclass": b'{"$t":"sub","c":"test_key_golden.Count","v":3}',
    "list": b'[1,"a",null]',
    "list_subclass": b'{"$t":"sub","c":"test_key_golden.Messages","v":[1,{"$t":"tuple","v":[2]}]}',
    "memoryview": b'{"$t":"bytes","c":"builtins.memoryview","v":"aGk="}',
    "model": b'{"$t":"model","c":"test_key_golden.Msg","v":{"content":"hi","role":"user"}}',
    "naive_datetime": b'{"$t":"datetime","v":"2026-01-01T12:00:00"}',
    "namedtuple": b'{"$t":"sub","c":"test_key_golden.Point","v":{"$t":"tuple","v":[1,2]}}',
    "negative_zero": b"-0.0",
    "nested": (
        b'{"args":{"$t":"tuple","v":[1,{"$t":"decimal","v":"0.1"}]},'
        b'"path":{"$t":"path","c":"{pathlib}.PurePosixPath","v":"p"},"tags":{"$t":"set","v":["x"]},'
        b'"when":{"$t":"datetime","v":"2026-12-02T09:30:15.123456+00:00"}}'
    ),
    "none": b"null",
    "numpy_array": b'{"$t":"ndarray","v":["<f4",[2,3],"AAAAAAAAgD8AAABAAABAQAAAgEAAAKBA"]}',
    "numpy_bool": b'{"$t":"np","v":["|b1",true]}',
    "numpy_datetime64": b'{"$t":"np","v":["<M8[s]",{"$t":"datetime","v":"2026-01-01T00:00:00"}]}',
    "numpy_float16": b'{"$t":"np","v":["<f2",0.5]}',
    "numpy_float64": b'{"$t":"sub","c":"numpy.float64","v":1.5}',
    "numpy_int32": b'{"$t":"np","v":["<i4",7]}',
    "numpy_int64": b'{"$t":"np","v":["<i8",-3]}',
    "numpy_structured": b'{"$t":"ndarray","v":["[(\'a\', \'<i4\'), (\'b\', \'<f8\')]",[1],"AAAAAAAAAAAAAAAA"]}',
    "path_subclass": b'{"$t":"path","c":"test_key_golden.Doc","v":"docs/x.md"}',
    "pure_posix_path": b'{"$t":"path","c":"{pathlib}.PurePosixPath","v":"/a/b.txt"}',
    "pure_windows_path": b'{"$t":"path","c":"{pathlib}.PureWindowsPath","v":"C:/a/b.txt"}',
    "set": b'{"$t":"set","v":["a",3,{"$t":"tuple","v":[2,3]}]}',
    "str": b'"h\xc3\xa9llo"',
    "str_subclass": b'{"$t":"sub","c":"test_key_golden.Prompt","v":"hi"}',
    "tag_key_dict": b'{"$t":"dict","v":[["$t","tuple"],["v",[1]]]}',
    "time": b'{"$t":"time","v":"09:30:15.000500"}',
    "timedelta": b'{"$t":"timedelta","v":[1,5,7]}',
    "tuple": b'{"$t":"tuple","v":[1,{"$t":"tuple","v":[2,"x"]}]}',
    "tuple_subclass": b'{"$t":"sub","c":"test_key_golden.Pair","v":{"$t":"tuple","v":[1,2]}}',
    "uuid": b'{"$t":"uuid","v":"00000000-0000-0000-0000-000000000001"}',
    "uuid_subclass": b'{"$t":"uuid","c":"test_key_golden.Id","v":"00000000-0000-0000-0000-000000000002"}',
}


@pytest.mark.parametrize("name", sorted(VALUES))
def test_canonical_bytes_are_unchanged(name: str) -> None:
    """Every value encodes to the very bytes it did before the type registry."""
    assert canonical_bytes(VALUES[name]) == GOLDEN[name].replace(b"{pathlib}", PATHLIB)


def test_call_fields_and_layer_keys_are_unchanged() -> None:
    """A call's named fields and a `CacheLayer` key (scope and digest) are unchanged too."""
    fields = {"query": "q", "when": NOW, "opts": (1, 2), "path": PurePosixPath("/x")}
    assert fields_bytes(fields) == FIELDS_GOLDEN.replace(b"{pathlib}", PATHLIB)
    layer = agentcache.CacheLayer("golden", backend="memory://")
    assert [layer.key(request) for request in LAYER_REQUESTS] == LAYER_KEYS_GOLDEN


LAYER_REQUESTS: list[Any] = ["q", ("q", 1), {"q": "x", "n": [1, 2]}, {"when": NOW.date(), "k": b"k"}]
FIELDS_GOLDEN = (
    b'{"opts":{"$t":"tuple","v":[1,2]},"path":{"$t":"path","c":"{pathlib}.PurePosixPath","v":"/x"},"query":"q",'
    b'"when":{"$t":"datetime","v":"2026-12-02T09:30:15.123456+00:00"}}'
)
LAYER_KEYS_GOLDEN = [
    "ac:v1:default:custom:golden:b95496e7e94b4d96cc3c042593b5bdaa",
    "ac:v1:default:custom:golden:e17892170737ae5fcdd01091b05e661c",
    "ac:v1:default:custom:golden:2c09e77734ea17d48683d17b6c8917e0",
    "ac:v1:default:custom:golden:86412c110119deda637cb2f5294314dd",
]
