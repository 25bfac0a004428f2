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
type raise `KeyEncodingError` naming the argument, never a silent ``str()`` fallback; so does an object holding state
its encoding would leave out (a pydantic model's private attributes, a dataclass's attributes outside its fields, a
builtin subclass's instance attributes), so that it never becomes a constant in a key.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Collection, Mapping

from agentcache._record import Frozen
from agentcache.codec.types import (
    BY_TAG,
    TypeSpec,
    base_classes,
    classify,
    dataclass_fields,
    is_dataclass_type,
    named_class,
    no_walk,
)
from agentcache.errors import ConfigurationError, KeyEncodingError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

    class _Hash(Protocol):
        def hexdigest(self) -> str: ...
        def copy(self) -> _Hash: ...
        def update(self, data: bytes, /) -> None: ...


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
    out = _sorted_json(obj)
    return out if out is not None else b"\x01" + _stdlib_dumps(obj).encode()


def _sorted_json(obj: Any) -> bytes | None:
    """``orjson.dumps(obj, option=OPT_SORT_KEYS)``, or `None` where orjson refuses `obj`.

    A process's first keys (`_EARLY_KEYS` of them) are written by the stdlib encoder when `obj` is made only of
    what both encoders write byte for byte alike (`_early_json`): a short-lived process that serves a few hits
    never pays orjson's imports (~5 ms with uuid and platform), and its keys are the same bytes.
    """
    orjson = _orjson
    if orjson is None:
        if _early[0] > 0 and _alike(obj, 0):
            try:
                out = _early_dumps(obj).encode()
            except UnicodeEncodeError:  # a lone surrogate: orjson refuses it too (below)
                pass
            else:
                _early[0] -= 1
                return out
        orjson = _load_orjson()
    try:
        return bytes(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS))
    except orjson.JSONEncodeError:
        return None


_EARLY_KEYS = 32
_early = [_EARLY_KEYS]  # encodings left before orjson is imported anyway
_early_dumps = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False, check_circular=False
).encode
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # orjson's integer range


def _alike(obj: Any, depth: int) -> bool:
    """Whether orjson and `_early_dumps` write `obj` alike: dicts with exactly-str keys, lists, str, bool, None and
    integers in orjson's range, nested at most 16 deep. (Floats are not: the two spell exponents differently.)"""
    t = type(obj)
    if t is str or t is bool or obj is None:
        return True
    if t is int:
        return bool(_INT_MIN <= obj <= _INT_MAX)
    if depth > 16:
        return False
    if t is dict:
        return all(type(k) is str for k in obj) and all(_alike(v, depth + 1) for v in obj.values())
    if t is list:
        return all(_alike(v, depth + 1) for v in obj)
    return False


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
    orjson = _orjson
    if orjson is None:
        return _sorted_json(obj)
    try:  # `_sorted_json`, inlined: this runs on every cached call
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
                f"exclude it with ignore=({_argument(path)!r},) or supply key=..."
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
    if hook is not None and callable(hook):  # authoritative: the class says what identifies it
        return _tag("custom", _canonical(hook(), f"{path}.__cache_key__()"), t)
    found = classify(obj)
    if found is None:
        _refuse_context(obj, path)
        raise KeyEncodingError(
            f"argument {path!r} of type {_qualname(t)} cannot be part of a cache key: exclude it with "
            f"ignore=({_argument(path)!r},), supply key=lambda ...: ..., or give the class a "
            f"__cache_key__() method returning plain data"
        )
    spec, cls = found
    tag = spec.tag
    own = _OWN_CHECKS.get(tag)
    if own is not None:  # a framework's context object may be a model, a dataclass...
        _refuse_context(obj, path)
    if own is not None:
        return own(obj, t, spec, path)
    if tag == "decimal" and not obj.is_finite():
        raise KeyEncodingError(f"argument {path!r} is {obj!r}: a non-finite Decimal has no stable key")
    if cls is not None and tag != "enum":  # an enum member's attributes are the enum's own
        _subclass(obj, t, base_classes(spec), path)
    value = (spec.key or spec.form)(obj, _walker(path) if spec.nested else no_walk)
    if tag == "set" or tag == "frozenset":
        value.sort(key=_sort_key)
    return _tag(tag, value, cls)


def _walker(path: str) -> Callable[[Any, str], Any]:
    """The registry's `walk` for a value at `path`: nested values are encoded canonically, at their own path."""
    return lambda value, where: _canonical(value, path + where)


def _dataclass_key(obj: Any, t: type, spec: TypeSpec, path: str) -> Any:
    _refuse_hidden(obj, path, _hidden_state(obj, [f.name for f in dataclass_fields(obj)]))
    return _tag("dataclass", (spec.key or spec.form)(obj, _walker(path)), t)


def _model_key(obj: Any, t: type, spec: TypeSpec, path: str) -> Any:
    _refuse_hidden(obj, path, _model_hidden_state(obj))
    return _tag("model", (spec.key or spec.form)(obj, _walker(path)), t)


def _numpy_key(obj: Any, t: type, spec: TypeSpec, path: str) -> Any:
    if isinstance(obj, _BUILTIN_TYPES):  # numpy.float64, numpy.str_: keys have always written them as "sub"
        sub = BY_TAG["sub"]
        _subclass(obj, t, base_classes(sub), path)
        return _tag("sub", sub.form(obj, _walker(path)), t)
    if obj.dtype.hasobject:
        raise KeyEncodingError(f"argument {path!r} is a numpy array of Python objects: no stable key")
    _refuse_hidden(obj, path, sorted(getattr(obj, "__dict__", None) or ()))  # e.g. a masked array's mask
    if obj.shape == ():  # a numpy scalar, or an array of none dimensions: keyed alike
        scalar = BY_TAG["np"]
        return _tag("np", (scalar.key or scalar.form)(obj, _walker(path)))
    return _tag("ndarray", (spec.key or spec.form)(obj, no_walk), named_class(spec, t))


_BUILTIN_TYPES = (str, int, float, list, dict, tuple)
_OWN_CHECKS: dict[str, Callable[[Any, type, TypeSpec, str], Any]] = {
    "dataclass": _dataclass_key,
    "model": _model_key,
    "np": _numpy_key,
    "ndarray": _numpy_key,
}


def _refuse_context(obj: Any, path: str) -> None:
    if _is_injected_context(obj):
        raise KeyEncodingError(
            f"argument {path!r} is a framework's context object ({_qualname(type(obj))}): it is left out of keys "
            f"when it is a parameter of the cached function itself, never encoded inside another value; exclude it "
            f"with ignore=({_argument(path)!r},) or supply key=lambda ...: ..."
        )


def _is_injected_context(obj: Any) -> bool:
    from .injected import is_injected_context

    return is_injected_context(obj)


def _argument(path: str) -> str:
    """The parameter a value's path starts with (``messages`` for ``messages[0].client``)."""
    return path.split(".")[0].split("[")[0].split("<")[0]


def _subclass(obj: Any, t: type, bases: tuple[type, ...], path: str) -> type | None:
    """`None` for an instance of one of `bases` itself; for a subclass instance, its class (which then goes into
    the key), after checking that the subclass adds no state the base's encoding would leave out."""
    if t in bases:
        return None
    _refuse_hidden(obj, path, _hidden_state(obj, (), stop=bases))
    return t


def _hidden_state(obj: Any, known: Collection[str], stop: tuple[type, ...] = ()) -> list[str]:
    """The attributes of `obj` its encoding leaves out: entries of its ``__dict__`` not in `known` (values a
    ``functools.cached_property`` derived from the encoded ones excepted) and the ``__slots__`` declared by its
    classes above `stop` that hold a value."""
    t = type(obj)
    slots, derived = _layout(t, stop)
    hidden = [name for name in getattr(obj, "__dict__", None) or () if name not in known and name not in derived]
    hidden += [name for name, attr in slots if name not in known and hasattr(obj, attr)]
    return hidden


def _layout(t: type, stop: tuple[type, ...]) -> tuple[tuple[tuple[str, str], ...], frozenset[str]]:
    """A class' declared slots (name, attribute name after private-name mangling) and cached-property names."""
    found = _layouts.get((t, stop))
    if found is None:
        slots: list[tuple[str, str]] = []
        for klass in t.__mro__:
            if klass in stop or klass is object:
                break
            declared = klass.__dict__.get("__slots__", ())
            for name in (declared,) if isinstance(declared, str) else declared:
                if name in ("__dict__", "__weakref__"):
                    continue
                private = name.startswith("__") and not name.endswith("__")
                slots.append((name, f"_{klass.__name__.lstrip('_')}{name}" if private else name))
        derived = frozenset(
            name
            for klass in t.__mro__
            for name, attr in vars(klass).items()
            if isinstance(attr, functools.cached_property)
        )
        if len(_layouts) >= 4096:  # classes made at run time: bounded, recomputing is cheap
            _layouts.clear()
        found = _layouts[t, stop] = (tuple(slots), derived)
    return found


_layouts: dict[tuple[type, tuple[type, ...]], tuple[tuple[tuple[str, str], ...], frozenset[str]]] = {}


def _model_hidden_state(obj: Any, depth: int = 0) -> list[str]:
    """What a pydantic model's ``model_dump`` leaves out: private attributes (``_name``, e.g. the request and
    server a framework's context object carries), fields declared with ``exclude=True``, attributes set outside
    its fields; and the same in the models and dataclasses it holds (``model_dump`` encodes them too)."""
    private = getattr(obj, "__pydantic_private__", None) or {}
    fields = type(obj).model_fields
    excluded = [name for name, info in fields.items() if getattr(info, "exclude", None) is True]
    hidden = [*private, *excluded, *_hidden_state(obj, fields, stop=_pydantic_bases(type(obj)))]
    for name in fields:
        hidden += [f"{name}{inner}" for inner in _nested_hidden_state(getattr(obj, name, None), depth + 1)]
    return hidden


def _nested_hidden_state(value: Any, depth: int) -> list[str]:
    """Hidden state (see `_model_hidden_state`) of the models and dataclasses inside a model's field value, as
    paths relative to that value (``.ctx._request``, ``[0]._client``)."""
    t = type(value)
    if t is str or t is int or t is float or t is bool or value is None or depth > 32:
        return []
    if t is list or t is tuple or t is set or t is frozenset:
        return [f"[{i}]{inner}" for i, v in enumerate(value) for inner in _nested_hidden_state(v, depth + 1)]
    if t is dict:
        return [f"[{k!r}]{inner}" for k, v in value.items() for inner in _nested_hidden_state(v, depth + 1)]
    if hasattr(t, "model_fields") and hasattr(value, "model_dump"):
        return [f".{inner}" for inner in _model_hidden_state(value, depth)]
    if not isinstance(value, type) and is_dataclass_type(t):
        names = [f.name for f in dataclass_fields(value)]
        hidden = [f".{name}" for name in _hidden_state(value, names)]
        for name in names:
            hidden += [f".{name}{inner}" for inner in _nested_hidden_state(getattr(value, name, None), depth + 1)]
        return hidden
    return []


def _pydantic_bases(t: type) -> tuple[type, ...]:
    """pydantic's own classes in `t`'s bases: their slots (``__pydantic_fields_set__``, ...) are bookkeeping."""
    return tuple(k for k in t.__mro__ if k.__module__.split(".")[0] == "pydantic")


def _refuse_hidden(obj: Any, path: str, hidden: list[str]) -> None:
    if hidden:
        raise KeyEncodingError(
            f"argument {path!r} of type {_qualname(type(obj))} holds state its cache key would leave out "
            f"({', '.join(hidden)}), so different values could share one key: exclude it with "
            f"ignore=({_argument(path)!r},), supply key=lambda ...: ..., or give the class a __cache_key__() "
            f"method returning what identifies it"
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


def _load_sha256() -> Callable[[bytes], _Hash]:
    """The SHA-256 constructor, remembered in `_sha256_ctor` once it is OpenSSL's.

    A process's first digests (`_EARLY_DIGESTS`) take the interpreter's built-in SHA-256 (the same digests):
    OpenSSL's library costs ~2.5 ms to load, which a process serving a few hits never pays. It is 4x faster on
    long inputs, so every later digest is OpenSSL's.
    """
    global _sha256_ctor
    if _early_digests[0] > 0:
        builtin = _builtin_sha256()
        if builtin is not None:
            _early_digests[0] -= 1
            return builtin
    try:  # hashlib.sha256 is this constructor
        from _hashlib import openssl_sha256 as sha256
    except ImportError:  # pragma: no cover - a Python built without OpenSSL
        from hashlib import sha256

    _sha256_ctor = sha256
    return sha256


def _builtin_sha256() -> Callable[[bytes], _Hash] | None:
    for name in ("_sha256", "_sha2"):  # Python <= 3.11, >= 3.12
        try:
            module: Any = __import__(name)
        except ImportError:
            continue
        found: Callable[[bytes], _Hash] = module.sha256
        return found
    return None  # pragma: no cover - a Python built without it


_EARLY_DIGESTS = 32
_early_digests = [_EARLY_DIGESTS]


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


def safe_segment(value: str) -> str:
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


class KeyParts(Frozen):
    """The readable parts of a key."""

    __match_args__ = ("namespace", "layer", "function", "digest")
    __slots__ = __match_args__

    namespace: str
    layer: str
    function: str
    digest: str

    def __init__(
        self,
        namespace: str,
        layer: str,
        function: str,
        digest: str,
    ) -> None:
        self._fill(namespace, layer, function, digest)


def split_key(key: str) -> KeyParts | None:
    """Split a key made by `make_key`; `None` for anything else (a foreign or internal key)."""
    if not key.startswith(KEY_PREFIX):
        return None
    parts = key[len(KEY_PREFIX) :].split(":")
    if len(parts) != 4:
        return None
    return KeyParts(*parts)


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
    head_bytes = scope_head(scope)
    resumed: list[_Hash] = []  # the state after the head, made with OpenSSL's constructor (see `_load_sha256`)

    def digest_in_scope(payload: bytes) -> str:
        if not resumed:
            if _sha256_ctor is None:  # a process's first digests: hash the head again (`_load_sha256`)
                return _load_sha256()(head_bytes + payload).hexdigest()[:32]
            resumed.append(_sha256_ctor(head_bytes))
        h = resumed[0].copy()
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
