"""Cache keys: a readable scope prefix plus a digest of an unambiguous, canonical encoding of the arguments.

A key looks like ``ac:v1:{namespace}:{layer}:{function}:{digest}``:

* the prefix (schema version, namespace, layer, function) is readable, so a namespace or a function can be
  cleared by prefix and `agentcache ls` can show what is cached;
* the digest is SHA-256 (truncated to 128 bits) over the canonical bytes of everything that identifies the
  call (including the namespace and layer again, so a key can never be forged by choosing argument values).

Canonical encoding is JSON (orjson, sorted keys) with *type tags* for everything JSON cannot say unambiguously:
``(1, 2)`` and ``[1, 2]`` differ, ``{1: "a"}`` and ``{"1": "a"}`` differ, ``b"hi"`` and ``"hi"`` differ, an
``IntEnum`` differs from its int. Dataclasses, pydantic models, enums, datetimes, decimals, UUIDs, paths, sets and
numpy arrays are supported; objects may define ``__cache_key__()`` to return an encodable value. NaN and every other
type raise `KeyEncodingError` naming the argument, never a silent ``str()`` fallback.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import math
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .errors import ConfigurationError, KeyEncodingError

__all__ = [
    "KEY_PREFIX",
    "SCHEMA_VERSION",
    "KeyParts",
    "canonical_bytes",
    "digest",
    "make_key",
    "namespace_prefixes",
    "split_key",
    "validate_namespace",
]

SCHEMA_VERSION = "v1"
KEY_PREFIX = f"ac:{SCHEMA_VERSION}:"
_TAG = "$t"
# One or more "/"-separated parts, each starting with a letter or digit (no ".", ".." or empty parts).
_NAMESPACE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-@+=]*(?:/[A-Za-z0-9][A-Za-z0-9_.\-@+=]*)*")
_SEGMENT_RE = re.compile(r"[A-Za-z0-9_.\-@+=<>]+")

_stdlib_dumps = json.JSONEncoder(
    ensure_ascii=True, sort_keys=True, separators=(",", ":"), allow_nan=False, check_circular=False
).encode
_orjson: Any = None


def _json(obj: Any) -> bytes:
    """Sorted-key JSON bytes of already-canonical data.

    orjson is imported on first use (it pulls in ~30 ms of stdlib modules, so `import agentcache` does not).
    The rare values orjson refuses (integers beyond 64 bits, lone surrogates) take the stdlib encoder, in a
    separate domain marked by a leading 0x01 byte, so the two encodings can never produce the same bytes.
    """
    orjson = _orjson or _load_orjson()
    try:
        return bytes(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS))
    except orjson.JSONEncodeError:
        return b"\x01" + _stdlib_dumps(obj).encode()


def _load_orjson() -> Any:
    global _orjson
    import orjson

    _orjson = orjson
    return orjson


def _plain_json(obj: Any) -> bytes | None:
    """The canonical bytes of `obj` when JSON says it unambiguously as it is, else `None` (then the caller
    takes the tagging walk, `_canonical`).

    This is the hit path's encoder. Plain means: dicts, lists, str, int, bool, None and finite floats, no
    ``"$t"`` key. Dict keys are not walked: orjson refuses every key that is not exactly a str (and integers
    beyond 64 bits, and lone surrogates), and such a refusal also means "not plain".
    """
    t = type(obj)
    if t is dict:
        plain = _TAG not in obj and _plain_values(obj.values())
    else:
        plain = _plain_values(obj if t is list else (obj,))
    if not plain:
        return None
    orjson = _orjson or _load_orjson()
    try:
        return bytes(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS))
    except orjson.JSONEncodeError:
        return None


def _plain_values(values: Any) -> bool:
    """The walk behind `_plain_json`, over a list or a dict's values: str first (the common leaf), a dict is
    entered through its values, written as one plain loop because it runs on every cached call."""
    for v in values:
        tv = type(v)
        if tv is str:
            continue
        if tv is dict:
            if _TAG in v or not _plain_values(v.values()):
                return False
        elif tv is list:
            if not _plain_values(v):
                return False
        elif tv is float:
            if v - v != 0.0:  # true exactly for NaN and the infinities
                return False
        elif not (tv is int or tv is bool or v is None):
            return False
    return True


def _qualname(t: type) -> str:
    return f"{t.__module__}.{t.__qualname__}"


def _sort_key(item: Any) -> bytes:
    return _json(item)


def _tag(kind: str, value: Any, cls: type | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {_TAG: kind, "v": value}
    if cls is not None:
        out["c"] = _qualname(cls)
    return out


def _canonical(obj: Any, path: str) -> Any:
    t = type(obj)
    if t is str or t is bool or t is int or obj is None:
        return obj
    if t is float:
        if not math.isfinite(obj):
            raise KeyEncodingError(
                f"argument {path!r} is {obj!r}: NaN and infinities have no stable cache key; "
                f"exclude it with ignore=({path.split('.')[0].split('[')[0]!r},) or supply key=..."
            )
        return obj
    if t is list:
        return [_canonical(v, f"{path}[{i}]") for i, v in enumerate(obj)]
    if t is dict:
        if all(type(k) is str for k in obj) and _TAG not in obj:
            return {k: _canonical(v, f"{path}.{k}") for k, v in obj.items()}
        pairs = [[_canonical(k, f"{path}<key>"), _canonical(v, f"{path}[{k!r}]")] for k, v in obj.items()]
        return _tag("dict", sorted(pairs, key=_sort_key))
    if t is tuple:
        return _tag("tuple", [_canonical(v, f"{path}[{i}]") for i, v in enumerate(obj)])
    hook = getattr(obj, "__cache_key__", None)
    if hook is not None and callable(hook):
        return _tag("custom", _canonical(hook(), f"{path}.__cache_key__()"), t)
    if isinstance(obj, enum.Enum):
        return _tag("enum", _canonical(obj.value, f"{path}.value"), t)
    if isinstance(obj, (set, frozenset)):
        items = [_canonical(v, f"{path}<item>") for v in obj]
        return _tag("set" if isinstance(obj, set) else "frozenset", sorted(items, key=_sort_key))
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return _tag("bytes", base64.b64encode(bytes(obj)).decode("ascii"))
    # An object of a type whose module was never imported cannot exist, so look modules up instead of
    # importing them: `import agentcache` stays light.
    mods = sys.modules
    if (dt := mods.get("datetime")) is not None:
        if isinstance(obj, dt.datetime):
            return _tag("datetime", obj.isoformat())
        if isinstance(obj, dt.date):
            return _tag("date", obj.isoformat())
        if isinstance(obj, dt.time):
            return _tag("time", obj.isoformat())
        if isinstance(obj, dt.timedelta):
            return _tag("timedelta", [obj.days, obj.seconds, obj.microseconds])
    if (dec := mods.get("decimal")) is not None and isinstance(obj, dec.Decimal):
        if not obj.is_finite():
            raise KeyEncodingError(f"argument {path!r} is {obj!r}: a non-finite Decimal has no stable key")
        return _tag("decimal", str(obj))
    if (uid := mods.get("uuid")) is not None and isinstance(obj, uid.UUID):
        return _tag("uuid", str(obj))
    if (pl := mods.get("pathlib")) is not None and isinstance(obj, pl.PurePath):
        return _tag("path", obj.as_posix(), t)
    if isinstance(obj, (str, int, float, list, dict)):  # subclasses of JSON types keep their class
        base: Any = next(b for b in (str, bool, int, float, list, dict) if isinstance(obj, b))
        return _tag("sub", _canonical(base(obj), path), t)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: _canonical(getattr(obj, f.name), f"{path}.{f.name}") for f in dataclasses.fields(obj)}
        return _tag("dataclass", fields, t)
    dump = getattr(obj, "model_dump", None)
    if dump is not None and hasattr(type(obj), "model_fields"):  # pydantic v2 model
        return _tag("model", _canonical(dump(mode="json"), path), t)
    module = t.__module__
    if module == "numpy" or module.startswith("numpy."):
        shape = getattr(obj, "shape", None)
        dtype = getattr(obj, "dtype", None)
        if shape is not None and dtype is not None:
            if getattr(dtype, "hasobject", False):
                raise KeyEncodingError(f"argument {path!r} is a numpy array of Python objects: no stable key")
            if shape == ():  # numpy scalar
                return _tag("np", [dtype.str, _canonical(obj.item(), path)])
            data = obj.tobytes(order="C")
            return _tag("ndarray", [dtype.str, list(shape), base64.b64encode(data).decode("ascii")])
    raise KeyEncodingError(
        f"argument {path!r} of type {_qualname(t)} cannot be part of a cache key: exclude it with "
        f"ignore=({path.split('.')[0].split('[')[0]!r},), supply key=lambda ...: ..., or give the class a "
        f"__cache_key__() method returning plain data"
    )


def canonical_bytes(obj: Any, name: str = "value") -> bytes:
    """Encode `obj` canonically: equal inputs give equal bytes, inputs of different types never do.

    Raises:
        KeyEncodingError: `obj` (or something inside it, reported by its path under `name`) is NaN or of a
            type with no canonical encoding.
    """
    plain = _plain_json(obj)
    return plain if plain is not None else _json(_canonical(obj, name))


def digest(data: bytes) -> str:
    """The first 32 hex characters (128 bits) of the SHA-256 of `data`."""
    return (_sha256_ctor or _load_sha256())(data).hexdigest()[:32]


class _Hash(Protocol):
    def hexdigest(self) -> str: ...
    def copy(self) -> _Hash: ...
    def update(self, data: bytes, /) -> None: ...


def _load_sha256() -> Callable[[bytes], _Hash]:
    global _sha256_ctor
    from hashlib import sha256  # imported on first use: hashlib loads OpenSSL, `import agentcache` does not

    _sha256_ctor = sha256
    return sha256


_sha256_ctor: Callable[[bytes], _Hash] | None = None


def validate_namespace(namespace: str) -> str:
    """Return `namespace` if it is valid, else raise `ConfigurationError`.

    A namespace is 1-200 characters of letters, digits and ``_ . - @ + = /``. ``/`` nests namespaces
    (``tenant-42/search``) and every ``/``-separated part starts with a letter or digit, so path-like parts
    (``..``, ``.``, ``a//b``) are refused. Separators (``:``) and glob characters are refused too, so one
    namespace can never read or clear another's keys.
    """
    if len(namespace) > 200 or _NAMESPACE_RE.fullmatch(namespace) is None:
        raise ConfigurationError(
            f"invalid namespace {namespace!r}: use 1-200 letters, digits and _ . - @ + = /, where each "
            "'/'-separated part starts with a letter or digit (no '.', '..' or empty parts; no ':' or glob characters)"
        )
    return namespace


def _segment(value: str) -> str:
    """A function or layer name made safe for the readable prefix."""
    cleaned = value.replace(":", ".").replace(" ", "_")
    return cleaned if _SEGMENT_RE.fullmatch(cleaned) else re.sub(r"[^A-Za-z0-9_.\-@+=<>]", "_", cleaned)


def make_key(namespace: str, layer: str, function: str, payload_digest: str) -> str:
    """Assemble ``ac:v1:{namespace}:{layer}:{function}:{digest}`` (namespace already validated)."""
    return f"{KEY_PREFIX}{namespace}:{layer}:{function}:{payload_digest}"


def namespace_prefixes(namespace: str) -> tuple[str, str]:
    """The key prefixes of `namespace` itself and of every namespace nested under it."""
    ns = validate_namespace(namespace)
    return f"{KEY_PREFIX}{ns}:", f"{KEY_PREFIX}{ns}/"


@dataclasses.dataclass(frozen=True, slots=True)
class KeyParts:
    """The readable parts of a key."""

    namespace: str
    layer: str
    function: str
    digest: str


def split_key(key: str) -> KeyParts | None:
    """Split a key made by `make_key`; `None` for anything else (a foreign or internal key)."""
    if not key.startswith(KEY_PREFIX):
        return None
    parts = key[len(KEY_PREFIX) :].split(":")
    if len(parts) != 4:
        return None
    return KeyParts(*parts)


def function_name(func: Callable[..., Any]) -> str:
    """The readable, stable identity of a function: ``module.qualname`` with ``<locals>`` folded."""
    module = getattr(func, "__module__", None) or "?"
    qual = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or type(func).__name__
    return _segment(f"{module}.{qual}".replace(".<locals>", ""))


def preview(value: Any, limit: int = 60) -> str:
    """A short, human-readable rendering of a canonical value (for `explain_key`)."""
    try:
        text = canonical_bytes(value).decode()
    except KeyEncodingError as exc:
        text = f"<{exc}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fields_bytes(fields: Mapping[str, Any]) -> bytes:
    """Canonical bytes of named values (a call's key fields); an error names the field that cannot be encoded."""
    data = fields if type(fields) is dict else dict(fields)
    plain = _plain_json(data)
    return plain if plain is not None else _json({k: _canonical(v, k) for k, v in data.items()})


def scope_head(scope: tuple[str, ...]) -> bytes:
    """The bytes hashed before a call's fields: its scope (namespace, layer, function, version), unambiguously."""
    return _json(list(scope)) + b"\x00"


def scoped_digest(scope: tuple[str, ...]) -> Callable[[bytes], str]:
    """The digest function of one scope: ``scoped_digest(scope)(fields_bytes(f)) == mapping_digest(f, scope=scope)``.

    It resumes a SHA-256 state that has already consumed the scope head, which is cheaper than hashing the head
    again with every call's fields. Made once per scope (the last 4096 are kept).
    """
    fn = _scoped.get(scope)
    if fn is not None:
        return fn
    head = (_sha256_ctor or _load_sha256())(scope_head(scope))

    def digest_in_scope(payload: bytes) -> str:
        h = head.copy()
        h.update(payload)
        return h.hexdigest()[:32]

    if len(_scoped) >= 4096:  # a namespace per tenant: bounded, remaking one is cheap
        _scoped.clear()
    _scoped[scope] = digest_in_scope
    return digest_in_scope


_scoped: dict[tuple[str, ...], Callable[[bytes], str]] = {}


def mapping_digest(fields: Mapping[str, Any], *, scope: tuple[str, ...]) -> str:
    """Digest of named fields plus the scope they belong to (namespace, layer, function, version)."""
    return scoped_digest(scope)(fields_bytes(fields))
