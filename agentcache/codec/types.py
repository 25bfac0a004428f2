"""The non-JSON types agentcache knows: one registry read by key encoding, value encoding and the CLI.

Each `TypeSpec` says, for one type: its tag (the ``"$t"`` of its JSON form), how an instance is recognised
(`spec_of`), its JSON form as a stored value (`form`), how to rebuild it from that form (`rebuild`), its form in a
cache key where a key needs another one (`key`), and how ``agentcache show`` displays it (`show`). What only keys
need (sorted sets, class names, refusing hidden state) stays in `agentcache.keys.encoding`; what only stored values
need (registered classes, escaping ``"$t"`` keys) in `agentcache.codec.entries`. So every type a key accepts can
be stored and read back, and the CLI shows it the same way whichever way it came.

Tuples, dicts with non-string keys, big ints and non-finite floats are not here: the walkers write them inline,
on their fast paths. Recognising a type never imports its module: an object of a type whose module was never
imported cannot exist, so modules are looked up in `sys.modules` (`import agentcache` stays light).
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable

from agentcache._record import Frozen

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

    Walk = Callable[[Any, str], Any]
    """Encodes a value nested in another: ``walk(value, where)``, `where` its path below the parent (for errors)."""
    Show = Callable[[Any], Any]
    """Turns a nested value into its display form."""


__all__ = [
    "BY_TAG",
    "SPECS",
    "TypeSpec",
    "base_classes",
    "builtin_base",
    "classify",
    "dataclass_fields",
    "is_dataclass_type",
    "named_class",
    "no_walk",
    "spec_of",
    "trusted_class",
]


class TypeSpec(Frozen):
    """One non-JSON type, as every walker sees it."""

    __match_args__ = (
        "tag",
        "module",
        "bases",
        "form",
        "rebuild",
        "show",
        "key",
        "named",
        "plain",
        "trusted",
        "recognise",
        "nested",
    )
    __slots__ = __match_args__

    tag: str
    """The ``"$t"`` of its JSON form (the same in keys and stored values)."""
    module: str
    """The module defining `bases`: looked up in `sys.modules`, never imported to recognise a value."""
    bases: tuple[str, ...]
    """Names of the classes in `module` whose instances (subclasses included) this spec covers."""
    form: Callable[[Any, Walk], Any]
    """The value's JSON form as stored; nested values go through `walk`."""
    rebuild: Callable[[type | None, Any], Any]
    """The value from its stored form and its class (`None`: not named, the base type itself)."""
    show: Callable[[Any, Show], Any]
    """Its display form (JSON-ready once `show` has been applied to nested values)."""
    key: Callable[[Any, Walk], Any] | None
    """Its form in a cache key, when that is not `form`."""
    named: Literal["always", "subclass", "never"]
    """When the JSON form carries the class (``"c"``): always, for instances of subclasses only, or never."""
    plain: tuple[str, ...] | None
    """With ``named="subclass"``: the classes written without their name (default: `bases`)."""
    trusted: tuple[str, ...]
    """Classes of `module` (standard library) that stored entries may name without registering them."""
    recognise: Callable[[Any], bool] | None
    """Recognises an instance when `isinstance` against `bases` is not enough (`bases` then unused)."""
    nested: bool
    """Whether its forms hold other values (they call `walk`); leaf forms are given `no_walk`."""

    def __init__(
        self,
        tag: str,
        module: str,
        bases: tuple[str, ...],
        form: Callable[[Any, Walk], Any],
        rebuild: Callable[[type | None, Any], Any],
        show: Callable[[Any, Show], Any],
        key: Callable[[Any, Walk], Any] | None = None,
        named: Literal["always", "subclass", "never"] = "subclass",
        plain: tuple[str, ...] | None = None,
        trusted: tuple[str, ...] = (),
        recognise: Callable[[Any], bool] | None = None,
        nested: bool = False,
    ) -> None:
        self._fill(tag, module, bases, form, rebuild, show, key, named, plain, trusted, recognise, nested)

    __eq__ = object.__eq__  # identity, as the dataclass was (eq=False)
    __hash__ = object.__hash__


def _classes(module: str, names: tuple[str, ...]) -> tuple[type, ...] | None:
    mod = sys.modules.get(module)
    if mod is None:
        return None
    found = _resolved.get((module, names))
    if found is None:
        found = _resolved[module, names] = tuple(getattr(mod, n) for n in names)
    return found


_resolved: dict[tuple[str, tuple[str, ...]], tuple[type, ...]] = {}


def base_classes(spec: TypeSpec) -> tuple[type, ...]:
    """The classes `spec` covers (empty while their module is not imported)."""
    return _classes(spec.module, spec.bases) or ()


def named_class(spec: TypeSpec, t: type) -> type | None:
    """The class an instance of type `t` names in its JSON form, or `None` if it names none."""
    if spec.named == "always":
        return t
    if spec.named == "never":
        return None
    plain = _classes(spec.module, spec.bases if spec.plain is None else spec.plain) or ()
    return None if t in plain else t


def trusted_class(spec: TypeSpec, name: str, qualify: Callable[[type], str]) -> type | None:
    """The standard-library class `name` (as `qualify` spells class names) if `spec` trusts it, else `None`.
    Imports `spec.module` (a fixed standard-library module, never one read from stored bytes)."""
    if not spec.trusted:
        return None
    __import__(spec.module)
    for cls in _classes(spec.module, spec.trusted) or ():
        if qualify(cls) == name:
            return cls
    return None


_BUILTINS: tuple[type, ...] = (str, bool, int, float, list, dict, tuple)


def builtin_base(t: type) -> type:
    """The JSON builtin a subclass of one derives from (`str`, `int`, `float`, `list`, `dict` or `tuple`)."""
    return next(b for b in _BUILTINS if issubclass(t, b))


def _b64(data: bytes) -> str:
    import base64  # not at import time (~1 ms with binascii): only bytes values need it

    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    if type(text) is not str:
        raise ValueError("expected base64 text")
    import base64

    return base64.b64decode(text, validate=True)


def _hashable(x: Any) -> Any:
    return tuple(_hashable(i) for i in x) if isinstance(x, list) else x


def _require(cls: type | None) -> type:
    if cls is None:
        raise ValueError("stored entry names no class")
    return cls


# -- rebuilding ---------------------------------------------------------------------------------------------------


def _rebuild_enum(cls: type | None, v: Any) -> Any:
    cls = _require(cls)
    if not issubclass(cls, enum.Enum):
        raise ValueError(f"{cls!r} is not an Enum")
    return cls(v)


def _rebuild_set(base: type) -> Callable[[type | None, Any], Any]:
    def rebuild(cls: type | None, v: Any) -> Any:
        return (cls or base)(_hashable(x) for x in v)

    return rebuild


def _rebuild_bytes(cls: type | None, v: Any) -> Any:
    data = _unb64(v)
    return data if cls is None or cls is bytes else cls(data)


def _rebuild_iso(name: str) -> Callable[[type | None, Any], Any]:
    def rebuild(cls: type | None, v: Any) -> Any:
        import datetime

        target: Any = cls or getattr(datetime, name)
        return target.fromisoformat(v)

    return rebuild


def _rebuild_timedelta(cls: type | None, v: Any) -> Any:
    import datetime

    return (cls or datetime.timedelta)(days=v[0], seconds=v[1], microseconds=v[2])


def _rebuild_decimal(cls: type | None, v: Any) -> Any:
    import decimal

    return (cls or decimal.Decimal)(v)


def _rebuild_uuid(cls: type | None, v: Any) -> Any:
    import uuid

    return (cls or uuid.UUID)(v)


def _rebuild_path(cls: type | None, v: Any) -> Any:
    if type(v) is not str:
        raise ValueError("a stored path is not text")
    return _require(cls)(v)


def _rebuild_sub(cls: type | None, v: Any) -> Any:
    """A subclass of a JSON builtin, rebuilt the way pickle rebuilds one (``__new__``, then the items), so its
    ``__init__`` never runs on stored data."""
    cls = _require(cls)
    base: Any = builtin_base(cls)
    if type(v) is not base:
        raise ValueError(f"stored {base.__name__} subclass holds a {type(v).__name__}")
    new: Any = cls.__new__
    if base is tuple and hasattr(cls, "_make") and hasattr(cls, "_fields"):  # a namedtuple
        return cls._make(v)
    if base is list or base is dict:
        obj = new(cls)
        (list.extend if base is list else dict.update)(obj, v)
        return obj
    return new(cls, v)


def _rebuild_dataclass(cls: type | None, v: Any) -> Any:
    cls = _require(cls)
    if not is_dataclass_type(cls) or not isinstance(v, dict):
        raise ValueError(f"{cls!r} is not a dataclass")
    return cls(**v)


def _rebuild_model(cls: type | None, v: Any) -> Any:
    validate = getattr(_require(cls), "model_validate", None)
    if validate is None:
        raise ValueError(f"{cls!r} is not a pydantic model")
    return validate(v)


def _numpy_dtype(name: Any) -> Any:
    import numpy as np

    dtype = np.dtype(name)
    if dtype.hasobject:
        raise ValueError("stored numpy value has an object dtype")
    return dtype


def _rebuild_ndarray(cls: type | None, v: Any) -> Any:
    import numpy as np

    dtype_name, shape, data = v
    arr = np.frombuffer(_unb64(data), dtype=_numpy_dtype(dtype_name)).reshape(shape).copy()
    if cls is not None:
        if not issubclass(cls, np.ndarray):
            raise ValueError(f"{cls!r} is not a numpy array type")
        arr = arr.view(cls)
    return arr


def _rebuild_np(cls: type | None, v: Any) -> Any:
    import numpy as np

    dtype_name, data = v
    arr = np.frombuffer(_unb64(data), dtype=_numpy_dtype(dtype_name))
    if arr.shape != (1,):
        raise ValueError("stored numpy scalar has the wrong size")
    return arr[0]


# -- recognising --------------------------------------------------------------------------------------------------


def is_dataclass_type(cls: Any) -> bool:
    """`dataclasses.is_dataclass` for a class, without importing `dataclasses` (loaded once a dataclass exists)."""
    return hasattr(cls, "__dataclass_fields__")


def dataclass_fields(obj: Any) -> tuple[Any, ...]:
    """`dataclasses.fields` of a dataclass instance (`dataclasses` is loaded: the instance's class made it)."""
    import dataclasses

    return dataclasses.fields(obj)


def _is_dataclass(obj: Any) -> bool:
    return hasattr(type(obj), "__dataclass_fields__")


def _is_model(obj: Any) -> bool:  # pydantic v2
    return getattr(obj, "model_dump", None) is not None and hasattr(type(obj), "model_fields")


def _numpy_kind(name: str) -> Callable[[Any], bool]:
    def recognise(obj: Any) -> bool:
        np = sys.modules.get("numpy")
        if np is None or not isinstance(obj, getattr(np, name)):
            return False
        module = type(obj).__module__  # numpy's own types only (an ndarray subclass elsewhere may hold more)
        return module == "numpy" or module.startswith("numpy.")

    return recognise


def _dump_value(obj: Any) -> Any:
    return obj.model_dump(mode="json", by_alias=True, exclude_unset=True)


def _numpy_key_kind(obj: Any) -> str:
    # A structured dtype's `.str` is only its size ("|V12"): a key spells its fields out.
    dtype = obj.dtype
    return str(dtype.str if getattr(dtype, "fields", None) is None else str(dtype.descr))


SPECS: tuple[TypeSpec, ...] = (
    TypeSpec(
        "enum",
        "enum",
        ("Enum",),
        form=lambda obj, walk: walk(obj.value, ".value"),
        rebuild=_rebuild_enum,
        show=lambda obj, show: show(obj.value),
        named="always",
        nested=True,
    ),
    TypeSpec(
        "set",
        "builtins",
        ("set",),
        form=lambda obj, walk: [walk(v, "<item>") for v in obj],
        rebuild=_rebuild_set(set),
        show=lambda obj, show: sorted((show(v) for v in obj), key=repr),
        nested=True,
    ),
    TypeSpec(
        "frozenset",
        "builtins",
        ("frozenset",),
        form=lambda obj, walk: [walk(v, "<item>") for v in obj],
        rebuild=_rebuild_set(frozenset),
        show=lambda obj, show: sorted((show(v) for v in obj), key=repr),
        nested=True,
    ),
    TypeSpec(
        "bytes",
        "builtins",
        ("bytes", "bytearray", "memoryview"),
        form=lambda obj, walk: _b64(bytes(obj)),
        rebuild=_rebuild_bytes,
        show=lambda obj, show: f"<{len(obj)} bytes, base64 {_b64(bytes(obj[:48]))}{'…' if len(obj) > 48 else ''}>",
        plain=("bytes",),
        trusted=("bytearray", "memoryview"),
    ),
    TypeSpec(
        "datetime",
        "datetime",
        ("datetime",),
        form=lambda obj, walk: obj.isoformat(),
        rebuild=_rebuild_iso("datetime"),
        show=lambda obj, show: obj.isoformat(),
    ),
    TypeSpec(
        "date",
        "datetime",
        ("date",),
        form=lambda obj, walk: obj.isoformat(),
        rebuild=_rebuild_iso("date"),
        show=lambda obj, show: obj.isoformat(),
    ),
    TypeSpec(
        "time",
        "datetime",
        ("time",),
        form=lambda obj, walk: obj.isoformat(),
        rebuild=_rebuild_iso("time"),
        show=lambda obj, show: obj.isoformat(),
    ),
    TypeSpec(
        "timedelta",
        "datetime",
        ("timedelta",),
        form=lambda obj, walk: [obj.days, obj.seconds, obj.microseconds],
        rebuild=_rebuild_timedelta,
        show=lambda obj, show: str(obj),
    ),
    TypeSpec(
        "decimal",
        "decimal",
        ("Decimal",),
        form=lambda obj, walk: str(obj),
        rebuild=_rebuild_decimal,
        show=lambda obj, show: str(obj),
    ),
    TypeSpec(
        "uuid", "uuid", ("UUID",), form=lambda obj, walk: str(obj), rebuild=_rebuild_uuid, show=lambda o, s: str(o)
    ),
    TypeSpec(
        "path",
        "pathlib",
        ("PurePath",),
        form=lambda obj, walk: obj.as_posix(),
        rebuild=_rebuild_path,
        show=lambda obj, show: obj.as_posix(),
        named="always",
        trusted=("PurePath", "PurePosixPath", "PureWindowsPath", "Path", "PosixPath", "WindowsPath"),
    ),
    # numpy's scalars come before "sub": some are subclasses of float or str (a key keeps writing those as "sub")
    TypeSpec(
        "np",
        "numpy",
        ("generic",),
        form=lambda obj, walk: [obj.dtype.str, _b64(obj.tobytes())],
        rebuild=_rebuild_np,
        show=lambda obj, show: show(obj.item()),
        key=lambda obj, walk: [_numpy_key_kind(obj), walk(obj.item(), "")],
        named="never",
        recognise=_numpy_kind("generic"),
        nested=True,
    ),
    TypeSpec(
        "sub",
        "builtins",
        ("str", "int", "float", "list", "dict", "tuple"),
        form=lambda obj, walk: walk(builtin_base(type(obj))(obj), ""),
        rebuild=_rebuild_sub,
        show=lambda obj, show: show(builtin_base(type(obj))(obj)),
        named="always",
        nested=True,
    ),
    TypeSpec(
        "dataclass",
        "dataclasses",
        (),
        form=lambda obj, walk: {
            f.name: walk(getattr(obj, f.name), f".{f.name}") for f in dataclass_fields(obj) if f.init
        },
        rebuild=_rebuild_dataclass,
        show=lambda obj, show: {f.name: show(getattr(obj, f.name)) for f in dataclass_fields(obj)},
        key=lambda obj, walk: {f.name: walk(getattr(obj, f.name), f".{f.name}") for f in dataclass_fields(obj)},
        named="always",
        recognise=_is_dataclass,
        nested=True,
    ),
    TypeSpec(
        "model",
        "pydantic",
        (),
        form=lambda obj, walk: walk(_dump_value(obj), ""),
        rebuild=_rebuild_model,
        show=lambda obj, show: show(obj.model_dump(mode="json")),
        key=lambda obj, walk: walk(obj.model_dump(mode="json"), ""),
        named="always",
        recognise=_is_model,
        nested=True,
    ),
    TypeSpec(
        "ndarray",
        "numpy",
        ("ndarray",),
        form=lambda obj, walk: [obj.dtype.str, list(obj.shape), _b64(obj.tobytes(order="C"))],
        rebuild=_rebuild_ndarray,
        show=lambda obj, show: show(obj.tolist()),
        key=lambda obj, walk: [_numpy_key_kind(obj), list(obj.shape), _b64(obj.tobytes(order="C"))],
        recognise=_numpy_kind("ndarray"),
    ),
)
"""In the order they are tried: the first spec that recognises a value encodes it."""

BY_TAG: dict[str, TypeSpec] = {spec.tag: spec for spec in SPECS}


def classify(obj: Any) -> tuple[TypeSpec, type | None] | None:
    """The spec covering `obj` (the first of `SPECS` that recognises it) and the class its JSON form names
    (`named_class`), or `None` for a type no spec covers. Remembered per type."""
    t = type(obj)
    found = _found.get(t, _UNSEEN)
    if found is not _UNSEEN and obj.__class__ is t:
        return found  # type: ignore[no-any-return]
    spec = _recognise(obj)
    found = None if spec is None else (spec, named_class(spec, t))
    if obj.__class__ is t:  # a proxy reports another class: recognised anew each time, like isinstance would
        if len(_found) >= 4096:  # classes made at run time: bounded, recognising again is cheap
            _found.clear()
        _found[t] = found
    return found


def spec_of(obj: Any) -> TypeSpec | None:
    """The spec covering `obj`, or `None` for a type no spec covers."""
    found = classify(obj)
    return None if found is None else found[0]


def no_walk(value: Any, where: str) -> Any:
    """The `walk` given to forms of specs that are not `nested` (they never call it)."""
    raise AssertionError("a leaf form walked a nested value")


_UNSEEN: Any = object()
_found: dict[type, tuple[TypeSpec, type | None] | None] = {}


def _recognise(obj: Any) -> TypeSpec | None:
    for spec in SPECS:
        if spec.recognise is not None:
            if spec.recognise(obj):
                return spec
            continue
        bases = _classes(spec.module, spec.bases)
        if bases is not None and isinstance(obj, bases):
            return spec
    return None
