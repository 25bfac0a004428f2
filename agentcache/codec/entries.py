"""Values to bytes and back, without pickle.

An entry is a 36-byte header, the call's usage as JSON (may be empty), then the value as JSON::

    b"ac3" + kind byte + <checksum: u32> <key digest: 8 bytes> <created: f64> <duration: f64> <usage length: u32>
    + usage JSON + value JSON

The kind byte is ``v`` (a value), ``s`` (the recorded chunks of a stream), upper-case when the value holds type
tags. The key digest binds the entry to the key it was written under (an entry copied or moved under another key
is refused); the checksum (CRC-32 of every byte but its own four) is verified when bytes are read for the first
time, so a flipped bit anywhere in the entry is a miss, never a wrong value. A hit reads the header with one
`struct` call and parses only the value; the usage bytes are parsed when statistics are read.

Failures are `SerializationError`; the subclass `CorruptEntryError` means the bytes are damaged, foreign or belong
to another key (the cache counts them as ``corrupt``), `OutdatedEntryError` that they were written in an earlier
format (a quiet miss: the next store replaces them).

Values are JSON with type tags (``{"$t": "tuple", "v": [...]}``) for tuples, dicts with other keys than strings, big
ints and non-finite floats (written here), and for every type of the registry in `agentcache.codec.types`, the one
shared with key encoding and the CLI: bytes, sets, datetimes, times, decimals, UUIDs, paths, enums, subclasses of
builtins, dataclasses, pydantic models (SDK objects round-trip through their own schemas:
``model_dump(mode="json")`` / ``model_validate``), numpy arrays and scalars. A tag naming a class is only honoured
for a class this process has registered (one it has encoded itself, one named in a cached function's return
annotation, or one passed to `register_type`) or one the registry trusts by name (the standard library's path
classes, `bytearray`, `memoryview`). Anything else in stored bytes — unknown classes, bad JSON, other formats —
raises `SerializationError`, which the cache treats as a miss and deletes the entry. Nothing read from a store can
make this module import a module or call an arbitrary constructor.

Embedding vectors are entries of their own (`encode_vector` / `decode_vector`): the same checksum and key digest,
the dimension, then little-endian float32 bytes (`pack_vector` / `unpack_vector`).
"""

from __future__ import annotations

import functools
import math
import struct
import sys
import threading
import time
import zlib
from collections.abc import Sequence

from agentcache import _fork
from agentcache._record import Record
from agentcache.codec.types import BY_TAG, base_classes, classify, no_walk, trusted_class
from agentcache.errors import SerializationError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

    from agentcache.usage import Usage

    Kind = Literal["value", "stream"]
    _Memo = tuple[bytes, Kind, Any, Any, float, bytes, int]  # raw, kind, template, copy steps, duration, usage, cost
    _Step = tuple[int, Any, Any]  # (index of the parent copy, key or index in it, the template container)


__all__ = [
    "CorruptEntryError",
    "Entry",
    "OutdatedEntryError",
    "decode_entry",
    "decode_hit",
    "decode_parts",
    "decode_vector",
    "encode_entry",
    "encode_vector",
    "key_digest",
    "seal",
    "sealed_body",
    "unseal",
    "pack_vector",
    "parse_usage",
    "register_type",
    "stored_form",
    "unpack_vector",
]

MAGIC = b"ac3"  # every entry starts with it; the fourth byte says what follows
_OLD_MAGICS = (b"ac2",)  # earlier formats: read as a quiet miss, replaced by the next store
_MAGIC_OF: dict[tuple[str, bool], bytes] = {
    ("value", False): MAGIC + b"v",  # a plain JSON value
    ("value", True): MAGIC + b"V",  # a value holding type tags: decoded with the tag walk
    ("stream", False): MAGIC + b"s",  # the recorded chunks of a stream, as a JSON list
    ("stream", True): MAGIC + b"S",
}
# magic + kind byte -> (kind, tagged, CRC-32 of those four bytes: the seed of the checksum over the rest)
_KIND_OF: dict[bytes, tuple[Kind, bool, int]] = {
    m: (k, t, zlib.crc32(m))  # type: ignore[misc]
    for (k, t), m in _MAGIC_OF.items()
}
# checksum, key digest, created (Unix s), duration of the original call (s), length of the usage JSON
_HEAD = struct.Struct("<I8sddI")
_CRC = struct.Struct("<I")
_HEAD_REST = struct.Struct("<8sddI")  # the header past the checksum
_SUMMED = 8  # the checksum covers bytes [0, 4) (magic and kind) and [8, end)
HEADER_SIZE = len(MAGIC) + 1 + _HEAD.size
_SEAL = struct.Struct("<I8s")  # checksum and key digest of the other framed records (`seal`)
SEALED_HEADER_SIZE = 4 + _SEAL.size
VECTOR_MAGIC = MAGIC + b"e"  # embedding entries: a sealed u32 dimension, then float32 values
VECTOR_HEADER_SIZE = SEALED_HEADER_SIZE + 4
RECORD_MAGIC = MAGIC + b"r"  # semantic vector records (`agentcache.semantic.partitions`)
_USAGE_INTS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens")
_TAG = "$t"
_types: dict[str, type] = {}
_types_lock = threading.Lock()


class CorruptEntryError(SerializationError):
    """Stored bytes fail their checksum, are not an agentcache entry, or were written under another key."""


class OutdatedEntryError(SerializationError):
    """Stored bytes are an entry of an earlier format (not damaged: the next store replaces them)."""


def key_digest(key: str) -> bytes:
    """The 8-byte digest of `key` every entry carries (BLAKE2b: a copy under another key never matches)."""
    return _blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()


try:  # hashlib's own BLAKE2b, without importing hashlib (which loads OpenSSL's constructors too)
    from _blake2 import blake2b as _blake2b
except ImportError:  # pragma: no cover - a Python built without it
    from hashlib import blake2b as _blake2b


def _checksum(raw: bytes, seed: int) -> int:
    """CRC-32 of `raw` past its checksum field, seeded with the CRC of its magic and kind byte."""
    return zlib.crc32(memoryview(raw)[_SUMMED:], seed)


def _name(t: type) -> str:
    return f"{t.__module__}:{t.__qualname__}"


def register_type(cls: type) -> type:
    """Allow instances of `cls` (a dataclass, enum, pydantic model, or a subclass of a type the codec stores) to be
    rebuilt from stored entries.

    Classes are registered automatically when this process stores one, and from cached functions' return
    annotations; call this for types that only ever come back from a shared store. Usable as a decorator.
    """
    with _types_lock:
        _types[_name(cls)] = cls
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
        found = classify(obj)
        if found is None:
            raise SerializationError(f"values of type {t.__module__}.{t.__qualname__} cannot be cached")
        spec, cls = found
        if spec.tag in _NUMPY and obj.dtype.hasobject:
            raise SerializationError("numpy arrays of Python objects cannot be cached")
        if cls is not None and spec.tag not in _OWN_FIELDS:
            # A subclass instance's own attributes would be lost on the way back: refuse, never drop them.
            hidden = [n for n in getattr(obj, "__dict__", None) or () if n not in _derived(t)]
            if hidden:
                raise SerializationError(
                    f"values of type {t.__module__}.{t.__qualname__} hold attributes a stored copy would lose "
                    f"({', '.join(hidden)})"
                )
        return self.tag(spec.tag, spec.form(obj, self.walk if spec.nested else no_walk), cls)

    def walk(self, obj: Any, where: str) -> Any:
        """`encode`, as the type registry's `walk` (stored values need no path)."""
        return self.encode(obj)


_NUMPY = frozenset(("np", "ndarray"))
_OWN_FIELDS = frozenset(("enum", "dataclass", "model"))  # their form says what they hold


def _derived(t: type) -> frozenset[str]:
    """Names of a class' ``functools.cached_property`` attributes (computed again after a round trip)."""
    return frozenset(name for k in t.__mro__ for name, a in vars(k).items() if isinstance(a, functools.cached_property))


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
    spec = BY_TAG.get(kind) if type(kind) is str else None
    if spec is None:
        raise SerializationError(f"unknown type tag {kind!r}")
    name = d.get("c")
    cls = None
    if name is not None:
        cls = _types.get(name) if type(name) is str else None
        if cls is None:
            cls = trusted_class(spec, name, _name) if type(name) is str else None
            if cls is None:
                raise SerializationError(f"stored entry names an unregistered type {name!r}")
        if spec.bases:  # (none loaded: the class cannot derive from them)
            bases = base_classes(spec)
            if not bases or not issubclass(cls, bases):
                raise SerializationError(f"{cls!r} is not a {kind}")
    try:
        return spec.rebuild(cls, v)
    except SerializationError:
        raise
    except Exception as exc:  # whatever a constructor raises on bytes that do not fit it
        raise SerializationError(f"stored {kind} cannot be rebuilt: {type(exc).__name__}: {exc}") from exc


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
_loads: Any = None  # orjson.loads once imported: the hit path calls it directly


_EARLY_DECODES = 32
_early = [_EARLY_DECODES]  # values left to parse before orjson is imported anyway


def _early_loads() -> Any:
    """The parser of a stored value before orjson is imported: the stdlib's for a process's first few values (it
    reads what orjson wrote exactly as orjson does; a short-lived process serving a few hits never pays orjson's
    imports, ~5 ms), then orjson's, as soon as anything in the process has imported it."""
    if _early[0] > 0 and "orjson" not in sys.modules:
        _early[0] -= 1
        import json

        return json.loads
    return _codec().loads


_EARLY_ENCODES = 32
_early_encodes = [_EARLY_ENCODES]  # values left to write before orjson is imported anyway
_stdlib_dumps: Any = None


def _dumps(plain: Any) -> bytes:
    """JSON bytes of an encoded (plain) value: orjson's once it is imported; before, the stdlib's for a process's
    first few values, unless something imported orjson already. A value's bytes need not be orjson's (only keys
    must be byte-exact): both parsers read them back as the same value. So a short-lived process that only hits
    does not import orjson (~5 ms) to write its stats snapshot at exit. What the stdlib refuses (lone surrogates)
    goes to orjson, for its error."""
    global _stdlib_dumps
    if _orjson is None and _early_encodes[0] > 0 and "orjson" not in sys.modules:
        _early_encodes[0] -= 1
        if _stdlib_dumps is None:
            import json

            _stdlib_dumps = json.JSONEncoder(
                ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False
            ).encode
        try:
            return bytes(_stdlib_dumps(plain).encode())
        except (ValueError, TypeError, UnicodeEncodeError):
            pass
    return bytes(_codec().dumps(plain))


def _codec() -> Any:
    global _orjson, _loads
    if _orjson is None:
        import orjson

        _orjson = orjson
        _loads = orjson.loads
    return _orjson


class Entry(Record):
    """A decoded cache entry: the value (or the recorded chunks of a stream) and what the call cost."""

    __match_args__ = ("value", "kind", "created_at", "duration", "usage")
    __slots__ = __match_args__

    value: Any
    kind: Kind
    created_at: float
    duration: float
    usage: Usage | None

    def __init__(
        self,
        value: Any,
        kind: Kind = "value",
        created_at: float = 0.0,
        duration: float = 0.0,
        usage: Usage | None = None,
    ) -> None:
        self.value = value
        self.kind = kind
        self.created_at = created_at
        self.duration = duration
        self.usage = usage


def encode_entry(
    value: Any, *, key: str, kind: Kind = "value", duration: float = 0.0, usage: Usage | None = None
) -> bytes:
    """Serialize `value` into entry bytes bound to `key` (the key it will be stored under) and checksummed.

    Raises:
        SerializationError: the value (or a part of it) has a type that cannot be stored safely.
    """
    enc = _Encoder()
    try:
        body = _dumps(enc.encode(value))
        usage_json = b"" if usage is None else _dumps(usage.to_dict())
    except RecursionError as exc:
        raise SerializationError("value is nested too deeply to cache") from exc
    except (TypeError, ValueError) as exc:  # orjson.JSONEncodeError is a TypeError
        raise SerializationError(f"value cannot be cached: {exc}") from exc
    magic = _MAGIC_OF[kind, enc.tagged]
    created = round(time.time(), 3)
    rest = _HEAD_REST.pack(key_digest(key), created, max(float(duration), 0.0), len(usage_json))
    checksum = zlib.crc32(body, zlib.crc32(usage_json, zlib.crc32(rest, _KIND_OF[magic][2])))
    return b"".join((magic, _CRC.pack(checksum), rest, usage_json, body))


def decode_parts(raw: bytes, key: str) -> tuple[Kind, Any, float, bytes]:
    """The hit path's decoder: ``(kind, value, duration, usage JSON bytes or b"")``, no other objects built.

    `key` is the key the bytes were read under. The usage bytes are parsed only when statistics are read
    (`agentcache.stats.Counters`), so a hit pays for parsing its value and nothing else.

    Raises:
        CorruptEntryError: the bytes are damaged, foreign, or belong to another key.
        OutdatedEntryError: the bytes are an entry of an earlier format.
        SerializationError: the bytes name a type this process has not registered.
    """
    kind, value, _, duration, usage = _decode(raw, key)
    return kind, value, duration, usage


def _verify(raw: bytes, key: str) -> tuple[Kind, bool, float, float, int]:
    """Check magic, checksum and key digest: ``(kind, tagged, created, duration, usage length)``."""
    try:
        kind, tagged, seed = _KIND_OF[raw[:4]]
        checksum, owner, created, duration, n = _HEAD.unpack_from(raw, 4)
    except (KeyError, struct.error, TypeError):
        if raw[:3] in _OLD_MAGICS:
            raise OutdatedEntryError("entry of an earlier format") from None
        raise CorruptEntryError("not an agentcache entry") from None
    if _checksum(raw, seed) != checksum:
        raise CorruptEntryError("entry fails its checksum")
    if owner != key_digest(key):
        raise CorruptEntryError("entry was written under another key")
    return kind, tagged, created, duration, n


def _decode(raw: bytes, key: str, *, untag: bool = True) -> tuple[Kind, Any, float, float, bytes]:
    """``(kind, value, created, duration, usage bytes)``: the one reader of the entry format. With `untag`
    false, type tags are left in the value (see `stored_form`)."""
    kind, tagged, created, duration, n = _verify(raw, key)
    return kind, _parse(raw, kind, tagged and untag, duration, n), created, duration, raw[HEADER_SIZE : HEADER_SIZE + n]


def _parse(raw: bytes, kind: Kind, untag: bool, duration: float, n: int) -> Any:
    """The value of verified entry bytes whose usage JSON is `n` bytes long."""
    try:
        start = HEADER_SIZE + n
        value = (_loads or _early_loads())(raw[start:])
        if untag:
            value = _untag(value)
        if not 0.0 <= duration < 1e9 or len(raw) < start or (kind == "stream" and type(value) is not list):
            raise SerializationError("entry header or kind is inconsistent")
        return value
    except SerializationError:
        raise
    except Exception as exc:  # any malformed input, whatever the parser raises
        raise SerializationError(f"corrupt entry: {type(exc).__name__}: {exc}") from exc


# -- hits of entries seen before ---------------------------------------------------------------------------------
#
# Parsing JSON builds every object of a value again, strings included. A value read before under the same key is
# instead kept decoded (the *template*) and each hit gets a copy in which every dict and list is new and the
# immutable leaves (str, int, float, bool, None) are shared: the caller may mutate it freely, at a fraction of the
# cost of parsing. The template is used only while the store returns the very same bytes for the key, so a changed,
# expired or invalidated entry is never served from it. Values holding type tags are always parsed (their objects
# may be mutable), but their bytes too are verified (checksum, key digest) only when they differ from the last seen.

MEMO_ENTRY_MAX = 256 << 10  # larger entries are parsed on every hit; all together (heap): `Settings.decoded_bytes`


class _FifoMemo(dict[str, "_Memo"]):
    """The memo: the entries decoded first go first once the heap they hold (each memo's last item) exceeds
    `maxsize` bytes (an entry still hit is simply decoded and kept again). FIFO, not LRU: a hit reads it (a plain
    dict look-up) without a lock and without reordering it (an LRU's reorder on every hit cost 7% of a memory hit,
    `benchmarks/results/memo.md`). Writers hold `_memo_lock`."""

    def __init__(self, maxsize: int) -> None:
        super().__init__()
        self.maxsize = maxsize
        self.currsize = 0

    def __setitem__(self, key: str, memo: _Memo) -> None:
        """Keep `memo` as the newest entry, evicting the oldest ones beyond `maxsize`.

        Raises:
            ValueError: `memo` alone costs more than `maxsize`.
        """
        cost = memo[6]
        if cost > self.maxsize:
            raise ValueError("value too large")
        self.pop(key, None)
        while self and self.currsize + cost > self.maxsize:
            self.pop(next(iter(self)))
        super().__setitem__(key, memo)
        self.currsize += cost

    def pop(self, key: str, default: Any = None) -> Any:
        memo = super().pop(key, None)
        if memo is None:
            return default
        self.currsize -= memo[6]
        return memo

    def clear(self) -> None:
        super().clear()
        self.currsize = 0


def _new_memo(budget: int) -> _FifoMemo:
    return _FifoMemo(max(budget, 1))


_budget = 8 << 20  # set from `Settings.decoded_bytes` whenever the settings are resolved (`set_memo_budget`)
_memo = _new_memo(_budget)
_memo_lock = threading.Lock()  # writers only: a read is one dict look-up inside the cache, atomic
_CONTAINERS = (dict, list)


def decode_hit(key: str, raw: bytes) -> tuple[Kind, Any, float, bytes]:
    """`decode_parts` for bytes just read under `key`, returning a fresh copy of a template when `raw` is the
    entry this process decoded last for the key (those bytes were verified then: equal bytes need no new check).

    Raises:
        SerializationError: as `decode_parts`.
    """
    try:
        memo: _Memo | None = _memo[key]  # no lock: a concurrent eviction makes this a KeyError, i.e. a miss
    except KeyError:
        memo = None
    if memo is not None and memo[0] == raw:  # bytes equality checks identity first
        steps = memo[3]
        if steps is _REPARSE:  # verified before; type-tagged objects may be mutable, so they are built anew
            return memo[1], _parse(raw, memo[1], True, memo[4], len(memo[5])), memo[4], memo[5]
        return memo[1], (memo[2] if steps is None else _copy(memo[2], steps)), memo[4], memo[5]
    kind, value, duration, usage = decode_parts(raw, key)
    if len(raw) <= MEMO_ENTRY_MAX:
        if raw[3] in _PLAIN:
            steps = _copy_steps(value) if type(value) in _CONTAINERS else None
            cost = _heap_cost(key, raw, usage) + _value_cost(value) + _STEP_COST * len(steps or ())
            _remember(key, (raw, kind, value, steps, duration, usage), cost)
            if steps is not None:
                value = _copy(value, steps)
        else:
            _remember(key, (raw, kind, None, _REPARSE, duration, usage), _heap_cost(key, raw, usage))
    return kind, value, duration, usage


_REPARSE: Any = object()  # the memo's "steps" of a type-tagged entry: its bytes were verified, it is parsed again
_ENTRY_COST = 200  # bytes of heap per memo entry besides its parts: the memo tuple, a dict slot, the cost record
_STEP_COST = 72  # one (parent, key, container) step tuple and its slot in the steps tuple


def _heap_cost(key: str, raw: bytes, usage: bytes) -> int:
    """Heap bytes a memo entry holds for its key, entry bytes and usage bytes (the decoded value aside)."""
    return _ENTRY_COST + sys.getsizeof(key) + sys.getsizeof(raw) + sys.getsizeof(usage)


def _value_cost(value: Any) -> int:
    """Heap bytes of a decoded JSON value: its dicts, lists, strings and numbers, except the objects the parser
    shares (dict keys, which orjson caches; None, booleans and small ints, which are singletons)."""
    size = sys.getsizeof
    stack = [value]
    total = 0
    while stack:
        v = stack.pop()
        t = type(v)
        if t is dict:
            stack.extend(v.values())
        elif t is list:
            stack.extend(v)
        elif v is None or t is bool or (t is int and -5 <= v <= 256):
            continue
        total += size(v)
    return total


_PLAIN = frozenset(b"vs")  # kind bytes of entries without type tags


def _copy_steps(value: Any) -> tuple[_Step, ...]:
    """The nested dicts and lists of `value` in the order `_copy` rebuilds them, each with its parent's index."""
    steps: list[_Step] = []

    def walk(container: Any, index: int) -> None:
        for k, v in container.items() if type(container) is dict else enumerate(container):
            if type(v) in _CONTAINERS:
                steps.append((index, k, v))
                walk(v, len(steps))

    walk(value, 0)
    return tuple(steps)


def _copy(value: Any, steps: tuple[_Step, ...]) -> Any:
    """A copy of the dict or list `value` in which every nested dict and list is new (the leaves are shared)."""
    copies = [value.copy()]
    add = copies.append
    for parent, k, template in steps:
        c = template.copy()
        copies[parent][k] = c
        add(c)
    return copies[0]


def _remember(key: str, memo: tuple[bytes, Kind, Any, Any, float, bytes], cost: int) -> None:
    """Keep `memo` for `key`, accounting `cost` heap bytes; the oldest entries go beyond the budget."""
    with _memo_lock:
        if cost > _budget:
            _memo.pop(key, None)
            return
        _memo[key] = (*memo, cost)


def set_memo_budget(budget: int) -> None:
    """Keep at most `budget` bytes of heap in decoded entries (0: none); shrinks the memo at once if needed."""
    global _budget, _memo
    budget = max(int(budget), 0)
    with _memo_lock:
        if budget == _budget:
            return
        _budget = budget
        kept = _new_memo(budget)
        for key, memo in list(_memo.items()):
            if budget and memo[6] <= kept.maxsize - kept.currsize:
                kept[key] = memo
        _memo = kept


def decoded_footprint() -> tuple[int, int]:
    """How many entries are kept decoded, and the heap they hold (at most `Settings.decoded_bytes`)."""
    with _memo_lock:
        return len(_memo), int(_memo.currsize)


def forget_decoded() -> None:
    """Drop every kept template (tests and `agentcache.reset`; never needed for correctness)."""
    with _memo_lock:
        _memo.clear()


def parse_usage(data: bytes) -> Usage | None:
    """The `Usage` stored in an entry's usage bytes; `None` when empty or unreadable (never raises)."""
    if not data:
        return None
    from agentcache.usage import Usage  # not at import time: only entries with usage need it

    try:
        fields = _codec().loads(data)
        usage = Usage.from_dict(fields) if type(fields) is dict else None
    except Exception:
        return None
    if usage is None or not all(type(getattr(usage, f)) is int for f in _USAGE_INTS):
        return None
    return usage if usage.model is None or type(usage.model) is str else None


def decode_entry(raw: bytes, key: str) -> Entry:
    """Parse entry bytes written by `encode_entry` and read under `key` (with creation time and parsed usage).

    Raises:
        SerializationError: as `decode_parts`.
    """
    kind, value, created, duration, usage = _decode(raw, key)
    return Entry(value, kind, created, duration, parse_usage(usage))


def stored_form(raw: bytes, key: str) -> Entry:
    """The entry with its value as stored (type tags left in): for showing entries this process cannot rebuild.

    Raises:
        SerializationError: the bytes are damaged, not an agentcache entry of `key`, or not JSON.
    """
    kind, value, created, duration, usage = _decode(raw, key, untag=False)
    return Entry(value, kind, created, duration, parse_usage(usage))


def pack_vector(vector: Sequence[float] | Any) -> bytes:
    """Pack a vector (a sequence of floats or a numpy array) as little-endian float32 bytes."""
    if hasattr(vector, "astype"):  # numpy: no per-element Python work
        arr_np: Any = vector
        return bytes(arr_np.astype("<f4", copy=False).tobytes())
    import array  # not at import time (~1 ms): only vectors need it

    arr = array.array("f", vector)
    if sys.byteorder == "big":
        arr.byteswap()
    return arr.tobytes()


def unpack_vector(data: bytes) -> list[float]:
    """Inverse of `pack_vector` (as a list of Python floats)."""
    if len(data) % 4:
        raise SerializationError("vector bytes are not a whole number of float32 values")
    import array

    arr = array.array("f")
    arr.frombytes(data)
    if sys.byteorder == "big":
        arr.byteswap()
    return arr.tolist()


def seal(magic: bytes, key: str, body: bytes) -> bytes:
    """Frame `body` like an entry: 4-byte `magic`, checksum, digest of `key`, then `body` (see `unseal`)."""
    digest = key_digest(key)
    return b"".join((magic, _CRC.pack(zlib.crc32(body, zlib.crc32(digest, zlib.crc32(magic)))), digest, body))


def unseal(magic: bytes, raw: bytes, key: str) -> bytes:
    """The body of bytes framed by `seal(magic, key, ...)`, read under `key`.

    Raises:
        CorruptEntryError: another magic, a failed checksum, or a frame written under another key.
    """
    if raw[:4] != magic or len(raw) < SEALED_HEADER_SIZE:
        raise CorruptEntryError(f"not an agentcache {magic[3:].decode(errors='replace')!r} record")
    checksum, owner = _SEAL.unpack_from(raw, 4)
    if _checksum(raw, zlib.crc32(magic)) != checksum:
        raise CorruptEntryError("record fails its checksum")
    if owner != key_digest(key):
        raise CorruptEntryError("record was written under another key")
    return raw[SEALED_HEADER_SIZE:]


def sealed_body(magic: bytes, raw: bytes, key: str, seed: int) -> memoryview | None:
    """`unseal` for bulk reads (a semantic cold start reads 100k records): the body as a view, no copy, and
    `None` where `unseal` would raise. `seed` is `zlib.crc32(magic)`, computed once by the caller."""
    if raw[:4] != magic or len(raw) < SEALED_HEADER_SIZE:
        return None
    view = memoryview(raw)
    if _CRC.unpack_from(raw, 4)[0] != zlib.crc32(view[_SUMMED:], seed) or raw[8:SEALED_HEADER_SIZE] != key_digest(key):
        return None
    return view[SEALED_HEADER_SIZE:]


def encode_vector(vector: Sequence[float] | Any, *, key: str) -> bytes:
    """An embedding entry for `key`: `seal`ed dimension (u32) and little-endian float32 bytes."""
    data = pack_vector(vector)
    if not data:
        raise SerializationError("an empty vector cannot be cached")
    return seal(VECTOR_MAGIC, key, struct.pack("<I", len(data) // 4) + data)


def decode_vector(raw: bytes, key: str) -> list[float]:
    """The vector of an embedding entry read under `key`, after checking checksum, key digest and dimension.

    Raises:
        CorruptEntryError: the bytes are damaged, foreign, or belong to another key.
        OutdatedEntryError: the bytes are a bare float32 vector of the earlier format.
    """
    if raw[:4] != VECTOR_MAGIC and len(raw) % 4 == 0 and raw[:2] != MAGIC[:2]:
        raise OutdatedEntryError("embedding stored in the earlier format (bare float32 bytes)")
    body = unseal(VECTOR_MAGIC, raw, key)
    dim = struct.unpack_from("<I", body)[0] if len(body) >= 4 else 0
    if dim == 0 or len(body) != 4 + 4 * dim:
        raise CorruptEntryError("embedding entry's dimension does not match its length")
    return unpack_vector(body[4:])


@_fork.at_fork
def _after_fork_in_child() -> None:
    global _types_lock, _memo_lock
    _types_lock, _memo_lock = threading.Lock(), threading.Lock()


def __getattr__(name: str) -> object:
    # `Kind` is defined for type checkers above; a module importing it at run time gets it built here, with
    # `typing` (which a process's first hit never loads, #13).
    if name != "Kind":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from typing import Literal

    kind: object = Literal["value", "stream"]
    return kind
