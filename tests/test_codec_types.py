"""One type registry (`agentcache.codec.types`) for keys, stored values and the CLI: for every type a key accepts,
the key, a store/read round trip and `agentcache show` agree (tag, value and type back, display)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, NamedTuple

import numpy as np
import orjson
import pydantic
import pytest

import agentcache
from agentcache.cli.main import main
from agentcache.cli.render import jsonable
from agentcache.codec.entries import MAGIC, decode_entry, encode_entry, key_digest, stored_form
from agentcache.codec.types import spec_of
from agentcache.errors import KeyEncodingError, SerializationError
from agentcache.keys.encoding import canonical_bytes

KEY = "ac:v1:default:custom:types:0123456789abcdef0123456789abcdef"


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


NOW = dt.datetime(2026, 12, 2, 9, 30, 15, 123456, tzinfo=dt.timezone.utc)


@dataclasses.dataclass(frozen=True)
class Case:
    """A value, the tag its key and its stored form carry, and how the CLI shows it."""

    value: Any
    tag: str
    display: Any
    key_tag: str | None = None  # when the key's tag differs (kept byte-identical to keys written before)


CASES: dict[str, Case] = {
    "time": Case(dt.time(9, 30, 15, 500), "time", "09:30:15.000500"),
    "aware_time": Case(dt.time(9, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))), "time", "09:30:00+02:00"),
    "datetime": Case(NOW, "datetime", "2026-12-02T09:30:15.123456+00:00"),
    "datetime_subclass": Case(Stamp(2026, 1, 1, tzinfo=dt.timezone.utc), "datetime", "2026-01-01T00:00:00+00:00"),
    "date": Case(dt.date(2026, 12, 2), "date", "2026-12-02"),
    "timedelta": Case(dt.timedelta(days=1, seconds=5, microseconds=7), "timedelta", "1 day, 0:00:05.000007"),
    "decimal": Case(decimal.Decimal("1.50"), "decimal", "1.50"),
    "decimal_subclass": Case(Money("2"), "decimal", "2"),
    "uuid": Case(uuid.UUID(int=1), "uuid", "00000000-0000-0000-0000-000000000001"),
    "uuid_subclass": Case(Id(int=2), "uuid", "00000000-0000-0000-0000-000000000002"),
    "pure_posix_path": Case(PurePosixPath("/a/b.txt"), "path", "/a/b.txt"),
    "pure_windows_path": Case(PureWindowsPath("C:\\a\\b.txt"), "path", "C:/a/b.txt"),
    "path": Case(Path("/tmp/x.json"), "path", "/tmp/x.json"),
    "path_subclass": Case(Doc("docs/x.md"), "path", "docs/x.md"),
    "bytes": Case(b"\x00hi", "bytes", "<3 bytes, base64 AGhp>"),
    "bytearray": Case(bytearray(b"hi"), "bytes", "<2 bytes, base64 aGk=>"),
    "memoryview": Case(memoryview(b"hi"), "bytes", "<2 bytes, base64 aGk=>"),
    "bytes_subclass": Case(Blob(b"hi"), "bytes", "<2 bytes, base64 aGk=>"),
    "set": Case({3, "a"}, "set", ["a", 3]),
    "frozenset": Case(frozenset({1, 2}), "frozenset", [1, 2]),
    "frozenset_subclass": Case(Tags({1}), "frozenset", [1]),
    "enum": Case(Color.RED, "enum", 1),
    "int_enum": Case(Level.ONE, "enum", 1),
    "str_subclass": Case(Prompt("hi"), "sub", "hi"),
    "int_subclass": Case(Count(3), "sub", 3),
    "float_subclass": Case(Ratio(0.25), "sub", 0.25),
    "list_subclass": Case(Messages([1, (2,)]), "sub", [1, [2]]),
    "dict_subclass": Case(Headers({"a": 1}), "sub", {"a": 1}),
    "tuple_subclass": Case(Pair((1, 2)), "sub", [1, 2]),
    "namedtuple": Case(Point(1, 2), "sub", [1, 2]),
    "dataclass": Case(Params(0.5, ("\n",)), "dataclass", {"temperature": 0.5, "stop": ["\n"]}),
    "model": Case(Msg(role="user", content="hi"), "model", {"role": "user", "content": "hi"}),
    "numpy_float64": Case(np.float64(1.5), "np", 1.5, key_tag="sub"),
    "numpy_str": Case(np.str_("ab"), "np", "ab", key_tag="sub"),
    "numpy_int32": Case(np.int32(7), "np", 7),
    "numpy_bool": Case(np.bool_(True), "np", True),
    "numpy_datetime64": Case(np.datetime64("2026-01-01T00:00:00"), "np", "2026-01-01T00:00:00"),
    "ndarray": Case(np.arange(6, dtype=np.float32).reshape(2, 3), "ndarray", [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]),
}


def _same(back: Any, value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return bool(back.dtype == value.dtype and back.shape == value.shape and (back == value).all())
    return bool(back == value)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    """A SQLite store holding every case under its name, through the low-level cache API."""
    url = f"sqlite://{tmp_path_factory.mktemp('types') / 'cache.db'}"
    layer = agentcache.CacheLayer("types", backend=url)
    keys = {}
    for name, case in CASES.items():
        assert layer.set(name, case.value)
        keys[name] = layer.key(name)
    return url, keys


@pytest.mark.parametrize("name", list(CASES))
def test_key_value_and_display_agree(
    name: str, store: tuple[str, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """The registry's tag is the key's and the stored form's; the value reads back equal and of its type, through
    the codec and through a store; `agentcache show --json` displays it as `jsonable` does."""
    case = CASES[name]
    spec = spec_of(case.value)
    assert spec is not None and spec.tag == case.tag
    assert orjson.loads(canonical_bytes(case.value))["$t"] == (case.key_tag or case.tag)

    raw = encode_entry(case.value, key=KEY)
    assert stored_form(raw, KEY).value["$t"] == case.tag
    back = decode_entry(raw, KEY).value
    assert type(back) is type(case.value)
    assert _same(back, case.value)

    url, keys = store
    layer = agentcache.CacheLayer("types", backend=url)
    from_store = layer.get(name)
    assert type(from_store) is type(case.value) and _same(from_store, case.value)

    assert jsonable(case.value) == jsonable(back) == case.display
    code, out, _ = main(["--url", url, "show", keys[name], "--json"]), *capsys.readouterr()
    assert code == 0
    shown = json.loads(out)
    assert shown["value"] == case.display
    assert "note" not in shown or not shown["note"]


def test_a_fresh_process_reads_standard_types_without_registering_them(
    store: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    """Paths, times, bytearrays and numpy scalars are rebuilt by any process (their classes are the standard
    library's or numpy's, trusted by name), not shown in their stored form."""
    url, keys = store
    for name in ("time", "pure_windows_path", "path", "bytearray", "numpy_float64", "numpy_datetime64"):
        proc = subprocess.run(
            [sys.executable, "-m", "agentcache", "show", keys[name], "--json"],
            env={**os.environ, "AGENTCACHE_URL": url},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        shown = json.loads(proc.stdout)
        assert shown["value"] == CASES[name].display
        assert not shown.get("note"), (name, shown.get("note"))


class TaggedPrompt(str):
    model: str


def test_subclass_state_is_refused_by_keys_and_values_alike() -> None:
    """A builtin's subclass instance with attributes would lose them as a key and as a stored value: both refuse."""
    prompt = TaggedPrompt("hello")
    prompt.model = "gpt-4o"
    with pytest.raises(KeyEncodingError, match=r"\(model\)"):
        canonical_bytes(prompt, "prompt")
    with pytest.raises(SerializationError, match=r"\(model\)"):
        encode_entry(prompt, key=KEY)


def _old_entry(body: bytes) -> bytes:
    """A type-tagged entry as the encoder before the registry wrote it (same header; `body` is its value JSON)."""
    import struct
    import zlib

    head = MAGIC + b"V"
    rest = struct.pack("<8sddI", key_digest(KEY), 1.7e9, 0.5, 0) + body
    return head + struct.pack("<I", zlib.crc32(rest, zlib.crc32(head))) + rest


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"$t":"tuple","v":[1,{"$t":"tuple","v":[2]}]}', (1, (2,))),
        (b'{"$t":"dict","v":[[1,"a"]]}', {1: "a"}),
        (b'{"$t":"int","v":"1180591620717411303424"}', 2**70),
        (b'{"$t":"float","v":"inf"}', float("inf")),
        (b'{"$t":"bytes","v":"aGk="}', b"hi"),  # a bytearray was written so, and reads back as bytes
        (b'{"$t":"set","v":[1]}', {1}),
        (b'{"$t":"frozenset","v":["a"]}', frozenset({"a"})),
        (b'{"$t":"datetime","v":"2026-01-01T00:00:00+00:00"}', dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)),
        (b'{"$t":"date","v":"2026-01-02"}', dt.date(2026, 1, 2)),
        (b'{"$t":"timedelta","v":[1,2,3]}', dt.timedelta(1, 2, 3)),
        (b'{"$t":"decimal","v":"1.5"}', decimal.Decimal("1.5")),
        (b'{"$t":"uuid","v":"00000000-0000-0000-0000-000000000001"}', uuid.UUID(int=1)),
        (b'{"$t":"ndarray","v":["<i2",[3],"AAABAAIA"]}', np.arange(3, dtype=np.int16)),
        (b'{"$t":"ndarray","v":["<f8",[],"AAAAAAAA+D8="]}', np.array(1.5)),  # numpy.float64 was written so
    ],
    ids=lambda x: x.decode()[7:20] if isinstance(x, bytes) else "",
)
def test_entries_written_before_the_registry_still_decode(body: bytes, expected: Any) -> None:
    """Value bodies exactly as the encoder before the registry wrote them (captured from it) decode as before."""
    back = decode_entry(_old_entry(body), KEY).value
    assert type(back) is type(expected)
    assert _same(back, expected)


@pytest.mark.parametrize(
    "body",
    [
        b'{"$t":"path","c":"test_codec_types:Params","v":"/x"}',  # a registered class of another kind
        b'{"$t":"sub","c":"test_codec_types:Params","v":"x"}',
        b'{"$t":"sub","c":"test_codec_types:Prompt","v":1}',  # a str subclass holding an int
        b'{"$t":"path","c":"os:system","v":"ls"}',  # never imported, never called
        b'{"$t":"path","v":"/x"}',  # a path names its class
        b'{"$t":"np","v":["|O",""]}',  # object dtype
        b'{"$t":"np","v":["<f8","AAAA"]}',  # wrong size
        b'{"$t":"time","v":"not a time"}',
        b'{"$t":"nope","v":1}',
    ],
)
def test_stored_forms_that_do_not_fit_their_tag_are_refused(body: bytes) -> None:
    """A tag's class must be registered (or trusted) and derive from the tag's type; the form must fit it."""
    encode_entry([Params(1.0), Prompt("x")], key=KEY)  # registers both classes in this process
    with pytest.raises(SerializationError):
        decode_entry(_old_entry(body), KEY)


def test_path_subclass_state_is_refused_by_keys_and_values_alike() -> None:
    """The same for a path subclass (its class is always named, so the check is not only for subclasses of
    builtins)."""
    doc = Doc("a.md")
    doc.owner = "me"  # type: ignore[attr-defined]
    with pytest.raises(KeyEncodingError, match=r"\(owner\)"):
        canonical_bytes(doc, "doc")
    with pytest.raises(SerializationError, match=r"\(owner\)"):
        encode_entry(doc, key=KEY)
