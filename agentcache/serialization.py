"""Values to bytes and back, without pickle.

An entry is ``b"ac1j"`` followed by a JSON envelope::

    {"k": "value" | "stream", "v": <tagged value>, "t": created, "d": seconds the call took,
     "u": normalized usage or absent}

(``b"ac1t"`` instead when the value holds type tags, so plain values decode without a per-object hook.)

Values are JSON with type tags (``{"$t": "tuple", "v": [...]}``) for tuples, bytes, sets, datetimes, decimals,
UUIDs, enums, dataclasses, pydantic models (SDK objects round-trip through their own schemas:
``model_dump(mode="json")`` / ``model_validate``) and numpy arrays. A tag naming a class is only honoured for a
class this process has registered: one it has encoded itself, one named in a cached function's return
annotation, or one passed to `register_type`. Anything else in stored bytes — unknown classes, bad JSON, other
formats — raises `SerializationError`, which the cache treats as a miss and deletes the entry. Nothing read from a
store can make this module import a module or call an arbitrary constructor.

Embedding vectors are stored as little-endian float32 bytes (`pack_vector` / `unpack_vector`).
"""

from __future__ import annotations

import array
import base64
import dataclasses
import enum
import math
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .errors import SerializationError
from .usage import Usage

__all__ = [
    "Entry",
    "decode_entry",
    "encode_entry",
    "pack_vector",
    "register_type",
    "unpack_vector",
]

MAGIC = b"ac1j"  # plain JSON value
MAGIC_TAGGED = b"ac1t"  # the value holds type tags: decode with the tag hook
_TAG = "$t"
_types: dict[str, type] = {}
_types_lock = threading.Lock()

Kind = Literal["value", "stream"]


def _name(t: type) -> str:
    return f"{t.__module__}:{t.__qualname__}"


def register_type(cls: type) -> type:
    """Allow instances of `cls` (a dataclass, enum or pydantic model) to be rebuilt from stored entries.

    Classes are registered automatically when this process stores one, and from cached functions' return
    annotations; call this for types that only ever come back from a shared store. Usable as a decorator.
    """
    with _types_lock:
        _types[_name(cls)] = cls
    return cls


def _lookup(name: Any) -> type:
    cls = _types.get(name) if isinstance(name, str) else None
    if cls is None:
        raise SerializationError(f"stored entry names an unregistered type {name!r}")
    return cls


class _Encoder:
    """Walks a value into tagged JSON; records whether any tag was needed."""

    __slots__ = ("tagged",)

    def __init__(self) -> None:
        self.tagged = False

    def tag(self, kind: str, value: Any, cls: type | None = None) -> dict[str, Any]:
        self.tagged = True
        out: dict[str, Any] = {_TAG: kind, "v": value}
        if cls is not None:
            if _types.get(_name(cls)) is not cls:
                register_type(cls)
            out["c"] = _name(cls)
        return out

    def encode(self, obj: Any) -> Any:
        t = type(obj)
        if t is str or t is bool or obj is None:
            return obj
        if t is int:
            return obj if -(2**63) <= obj < 2**64 else self.tag("int", str(obj))
        if t is float:
            return obj if math.isfinite(obj) else self.tag("float", repr(obj))
        if t is list:
            return [self.encode(v) for v in obj]
        if t is dict:
            if _TAG not in obj and all(type(k) is str for k in obj):
                return {k: self.encode(v) for k, v in obj.items()}
            return self.tag("dict", [[self.encode(k), self.encode(v)] for k, v in obj.items()])
        if t is tuple:
            return self.tag("tuple", [self.encode(v) for v in obj])
        if isinstance(obj, enum.Enum):
            return self.tag("enum", self.encode(obj.value), t)
        dump = getattr(obj, "model_dump", None)
        if dump is not None and hasattr(t, "model_validate"):
            # Through encode() again: a "$t" key inside the model's data must be escaped like any other.
            return self.tag("model", self.encode(dump(mode="json", by_alias=True, exclude_unset=True)), t)
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            fields = {f.name: self.encode(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
            return self.tag("dataclass", fields, t)
        if isinstance(obj, (bytes, bytearray)):
            return self.tag("bytes", base64.b64encode(obj).decode("ascii"))
        if isinstance(obj, (set, frozenset)):
            return self.tag("set" if isinstance(obj, set) else "frozenset", [self.encode(v) for v in obj])
        mods = sys.modules  # a type whose module was never imported has no instances: no import needed
        if (dt := mods.get("datetime")) is not None:
            if isinstance(obj, dt.datetime):
                return self.tag("datetime", obj.isoformat())
            if isinstance(obj, dt.date):
                return self.tag("date", obj.isoformat())
            if isinstance(obj, dt.timedelta):
                return self.tag("timedelta", [obj.days, obj.seconds, obj.microseconds])
        if (dec := mods.get("decimal")) is not None and isinstance(obj, dec.Decimal):
            return self.tag("decimal", str(obj))
        if (uid := mods.get("uuid")) is not None and isinstance(obj, uid.UUID):
            return self.tag("uuid", str(obj))
        if t.__module__ == "numpy" and hasattr(obj, "tobytes") and hasattr(obj, "dtype"):
            if obj.dtype.hasobject:
                raise SerializationError("numpy arrays of Python objects cannot be cached")
            data = base64.b64encode(obj.tobytes(order="C")).decode("ascii")
            return self.tag("ndarray", [obj.dtype.str, list(getattr(obj, "shape", ())), data])
        raise SerializationError(f"values of type {t.__module__}.{t.__qualname__} cannot be cached")


def _decode_tag(d: dict[str, Any]) -> Any:
    kind = d.get(_TAG)
    v: Any = d.get("v")
    if kind is None:
        return d
    if kind == "tuple":
        return tuple(v)
    if kind == "dict":
        return {_hashable(k): val for k, val in v}
    if kind == "float":
        return float(v)
    if kind == "int":
        return int(v)
    if kind == "bytes":
        return base64.b64decode(v, validate=True)
    if kind == "set":
        return {_hashable(x) for x in v}
    if kind == "frozenset":
        return frozenset(_hashable(x) for x in v)
    if kind in ("datetime", "date", "timedelta"):
        import datetime as dt

        if kind == "datetime":
            return dt.datetime.fromisoformat(v)
        if kind == "date":
            return dt.date.fromisoformat(v)
        return dt.timedelta(days=v[0], seconds=v[1], microseconds=v[2])
    if kind == "decimal":
        import decimal

        return decimal.Decimal(v)
    if kind == "uuid":
        import uuid

        return uuid.UUID(v)
    if kind == "ndarray":
        import numpy as np

        dtype_name, shape, data = v
        np_dtype = np.dtype(dtype_name)
        if np_dtype.hasobject:
            raise SerializationError("stored numpy array has an object dtype")
        return np.frombuffer(base64.b64decode(data, validate=True), dtype=np_dtype).reshape(shape).copy()
    cls = _lookup(d.get("c"))
    if kind == "enum":
        if not issubclass(cls, enum.Enum):
            raise SerializationError(f"{cls!r} is not an Enum")
        return cls(v)
    if kind == "model":
        validate = getattr(cls, "model_validate", None)
        if validate is None:
            raise SerializationError(f"{cls!r} is not a pydantic model")
        return validate(v)
    if kind == "dataclass":
        if not dataclasses.is_dataclass(cls) or not isinstance(v, dict):
            raise SerializationError(f"{cls!r} is not a dataclass")
        return cls(**v)
    raise SerializationError(f"unknown type tag {kind!r}")


def _hashable(x: Any) -> Any:
    return tuple(_hashable(i) for i in x) if isinstance(x, list) else x


def _untag(x: Any) -> Any:
    """Rebuild tagged values bottom-up (what `json.loads(object_hook=...)` would do)."""
    t = type(x)
    if t is list:
        return [_untag(v) for v in x]
    if t is dict:
        d = {k: _untag(v) for k, v in x.items()}
        return _decode_tag(d) if _TAG in d else d
    return x


_orjson: Any = None


def _codec() -> Any:
    global _orjson
    if _orjson is None:
        import orjson

        _orjson = orjson
    return _orjson


@dataclass(slots=True)
class Entry:
    """A decoded cache entry: the value (or the recorded chunks of a stream) and what the call cost."""

    value: Any
    kind: Kind = "value"
    created_at: float = 0.0
    duration: float = 0.0
    usage: Usage | None = None


def encode_entry(value: Any, *, kind: Kind = "value", duration: float = 0.0, usage: Usage | None = None) -> bytes:
    """Serialize `value` into entry bytes.

    Raises:
        SerializationError: the value (or a part of it) has a type that cannot be stored safely.
    """
    enc = _Encoder()
    try:
        payload: dict[str, Any] = {
            "k": kind,
            "v": enc.encode(value),
            "t": round(time.time(), 3),
            "d": round(duration, 6),
        }
    except RecursionError as exc:
        raise SerializationError("value is nested too deeply to cache") from exc
    if usage is not None:
        payload["u"] = usage.to_dict()
    try:
        return (MAGIC_TAGGED if enc.tagged else MAGIC) + _codec().dumps(payload)  # type: ignore[no-any-return]
    except (TypeError, ValueError) as exc:  # orjson.JSONEncodeError is a TypeError
        raise SerializationError(f"value cannot be cached: {exc}") from exc


def decode_parts(raw: bytes) -> tuple[str, Any, float, dict[str, Any] | None, dict[str, Any]]:
    """The hit path's decoder: ``(kind, value, duration, usage dict or None, envelope)`` with no objects built.

    Raises:
        SerializationError: the bytes are corrupt, foreign, or name a type this process has not registered.
    """
    magic = raw[:4]
    try:
        if magic != MAGIC and magic != MAGIC_TAGGED:
            raise SerializationError("not an agentcache entry")
        head = _codec().loads(memoryview(raw)[4:])
        if type(head) is not dict:
            raise SerializationError("entry envelope is not an object")
        value = head["v"]
        if magic == MAGIC_TAGGED:
            value = _untag(value)
        kind = head.get("k", "value")
        if kind != "value" and (kind != "stream" or type(value) is not list):
            raise SerializationError(f"bad entry kind {kind!r}")
        duration = head.get("d", 0.0)
        if type(duration) is not float:
            duration = float(duration)
        u = head.get("u")
        return kind, value, duration, (u if type(u) is dict else None), head
    except SerializationError:
        raise
    except Exception as exc:  # any malformed input, whatever the parser raises
        raise SerializationError(f"corrupt entry: {type(exc).__name__}: {exc}") from exc


def decode_entry(raw: bytes) -> Entry:
    """Parse entry bytes written by `encode_entry`.

    Raises:
        SerializationError: the bytes are corrupt, foreign, or name a type this process has not registered.
    """
    kind, value, duration, u, head = decode_parts(raw)
    try:
        usage = Usage.from_dict(u) if u is not None else None
        return Entry(value, kind, float(head.get("t", 0.0)), duration, usage)  # type: ignore[arg-type]
    except Exception as exc:
        raise SerializationError(f"corrupt entry metadata: {exc}") from exc


def pack_vector(vector: Sequence[float] | Any) -> bytes:
    """Pack a vector (a sequence of floats or a numpy array) as little-endian float32 bytes."""
    if hasattr(vector, "astype"):  # numpy: no per-element Python work
        arr_np: Any = vector
        return bytes(arr_np.astype("<f4", copy=False).tobytes())
    arr = array.array("f", vector)
    if sys.byteorder == "big":
        arr.byteswap()
    return arr.tobytes()


def unpack_vector(data: bytes) -> list[float]:
    """Inverse of `pack_vector` (as a list of Python floats)."""
    if len(data) % 4:
        raise SerializationError("vector bytes are not a whole number of float32 values")
    arr = array.array("f")
    arr.frombytes(data)
    if sys.byteorder == "big":
        arr.byteswap()
    return arr.tolist()
