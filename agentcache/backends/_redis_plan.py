"""Pure command plans for the Redis backend: the key layout, the Lua scripts and one flow per operation.

Nothing here imports redis or does I/O. Every backend operation is a generator ("flow") that yields
operations (`Batch`, `Nodes`, `ScanStep`, `Emit`) and receives their results; `agentcache.backends.redis`
drives the same flow with a sync client or an async one, so each decision exists once.

Key layout (cluster-safe): a core key `ac:v1:{ns}:{rest}` is stored as `<prefix>ac:v1:{<ns>}:{rest}`, so
the namespace is the Redis hash tag and every key of one namespace lives in one slot. Any other key `k` is
stored as `<prefix>{_}:k`. The part up to the first `}` is the *group base*; per-group metadata sits next to
the data in the same slot: `<base>#t:<tag>` (set of data keys carrying a tag), `<base>#lru` (sorted set of
last access, only with `max_entries`), `<base>#lock:<name>` (single-flight locks) and `<base>#gen` (the
group's invalidation generations: fields `*`, `#<tag>`, `k<bucket>` and a random `id`, see
`agentcache.backends.generations`). Data keys have `:` right after the base and metadata has `#`, so a scan
for data never matches metadata.

Generations: every delete/tag script bumps the fields it covers in the same script, and a fenced write
compares its fence inside the write script. `clear` bumps `*` in every group it covers before it scans for
what to delete; global and tree invalidations find the groups by scanning (the `#gen` hash of a group is
created by the first fence read, before anything is computed, so a group a concurrent miss writes to is
either found by the scan or was created after the invalidation started).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Collection, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from agentcache.backends.base import EntryInfo, Item
from agentcache.backends.generations import bucket

__all__ = [
    "ACQUIRE_SCRIPT",
    "DEL_SCRIPT",
    "FENCE_SCRIPT",
    "LOCK_GET_SCRIPT",
    "RELEASE_SCRIPT",
    "SET_SCRIPT",
    "SET_UNLOCK_SCRIPT",
    "TAGS_SCRIPT",
    "Batch",
    "Command",
    "Emit",
    "CommandFlow",
    "KeyLayout",
    "Nodes",
    "RedisFence",
    "ScanStep",
    "Script",
]

_CORE_HEAD = "ac:v1:"
_GENERIC_TAG = "{_}"
_BAD_NS_CHARS = frozenset(":*?[]{}\\") | frozenset(" \t\r\n\v\f")
SCAN_COUNT = 500


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script and its SHA1 (EVALSHA first, SCRIPT LOAD on NOSCRIPT)."""

    name: str
    source: str

    @property
    def sha(self) -> str:
        """The SHA1 Redis uses to name the script."""
        import hashlib

        return hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class Command:
    """One Redis command; `script` is set for EVALSHA calls so a NOSCRIPT reply can be repaired."""

    args: tuple[Any, ...]
    script: Script | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """Run `calls` in one round trip (a non-transactional pipeline); the result is the list of replies."""

    calls: tuple[Command, ...]


@dataclass(frozen=True, slots=True)
class Nodes:
    """Ask for the nodes to scan: the one owning `key`'s slot, or every primary when `key` is None."""

    key: str | None = None


@dataclass(frozen=True, slots=True)
class ScanStep:
    """One `SCAN cursor MATCH pattern COUNT n` on `node` (None outside a cluster); result: (cursor, keys)."""

    node: Any
    cursor: int
    pattern: str
    count: int = SCAN_COUNT


@dataclass(frozen=True, slots=True)
class Emit:
    """Hand entries to the caller of an iterating flow (`scan`); the result is None."""

    entries: tuple[EntryInfo, ...]


Op: TypeAlias = Batch | Nodes | ScanStep | Emit
CommandFlow: TypeAlias = Generator[Op, Any, Any]

_UNTAG = """
local function untag(key)
  local old = redis.call('HGET', key, 't')
  if old and old ~= '' then
    for _, tag in ipairs(cjson.decode(old)) do redis.call('SREM', base .. '#t:' .. tag, key) end
  end
end
"""

_BUMP = """
local function bump(gen, first, last)
  for j = first, last do redis.call('HINCRBY', gen, ARGV[j], 1) end
end
"""

# KEYS: data keys of one group. Returns their values (nil where missing).
GET_MANY_SCRIPT = Script(
    "get_many",
    """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HGET', key, 'v') end
return out
""",
)
GET_MANY_AT = 64  # keys from which an unbounded store's `get_many` calls `GET_MANY_SCRIPT`
# Keys per call: each call blocks the server for its length (~6 us a key) and holds its values in Lua at once
# (large entries); 100-3,000 read 100k semantic records equally fast.
GET_MANY_CHUNK = 250

# KEYS[1]: the group's generations hash. ARGV[1]: a random id (set once), ARGV[2..]: fields. Returns their values.
FENCE_SCRIPT = Script(
    "fence",
    """
redis.call('HSETNX', KEYS[1], 'id', ARGV[1])
return redis.call('HMGET', KEYS[1], unpack(ARGV, 2))
""",
)

# The body of a write (SET_SCRIPT, SET_UNLOCK_SCRIPT): `write()` returns evictions, or -1 when the fence moved.
# KEYS[1]: the group's LRU zset, KEYS[2]: its generations, KEYS[K0 + 1..]: data keys. ARGV[A0 + ...]: base,
# now_ms, max_entries (0: unbounded), nfence, then nfence (field, expected value) pairs (the write is dropped
# when one moved), then per key: ttl_ms (-1: none, 0: do not store), value, tags_json, ntags, tag...
_WRITE = (
    "local base, now, maxn = ARGV[A0 + 1], tonumber(ARGV[A0 + 2]), tonumber(ARGV[A0 + 3])\nlocal lru = KEYS[1]\n"
    + _UNTAG
    + """
local function write()
local nf = tonumber(ARGV[A0 + 4])
for j = 0, nf - 1 do
  local got = redis.call('HGET', KEYS[2], ARGV[A0 + 5 + 2 * j])
  if (got or '') ~= ARGV[A0 + 6 + 2 * j] then return -1 end
end
local i = A0 + 5 + 2 * nf
for k = K0 + 1, #KEYS do
  local key = KEYS[k]
  local ttl, val, tj, n = tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  untag(key)
  redis.call('DEL', key)
  if ttl == 0 then
    redis.call('ZREM', lru, key)
  else
    redis.call('HSET', key, 'v', val, 't', tj, 'c', now)
    if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
    for j = 1, n do
      local tk = base .. '#t:' .. ARGV[i + 3 + j]
      local left = redis.call('PTTL', tk)
      redis.call('SADD', tk, key)
      if ttl < 0 then
        redis.call('PERSIST', tk)
      elseif left == -2 or (left >= 0 and left < ttl) then
        redis.call('PEXPIRE', tk, ttl)
      end
    end
    if maxn > 0 then redis.call('ZADD', lru, now, key) end
  end
  i = i + 4 + n
end
local evicted = 0
if maxn > 0 then
  local over = redis.call('ZCARD', lru) - maxn
  if over > 0 then
    for _, victim in ipairs(redis.call('ZRANGE', lru, 0, over - 1)) do
      untag(victim)
      evicted = evicted + redis.call('DEL', victim)
    end
    redis.call('ZREMRANGEBYRANK', lru, 0, over - 1)
  end
end
return evicted
end
"""
)

# Releasing a lock wakes the processes waiting for it: `wake` (a stream next to the lock) gets an entry, which
# ends their `XREAD BLOCK ... STREAMS <wake> 0-0`. Taking a lock deletes the stream, so while a lock is held
# its stream does not exist and a waiter blocks until the owner releases it (or its slice of time ends).
_RELEASE = """
local function release(lock, wake, token)
  if redis.call('GET', lock) ~= token then return 0 end
  redis.call('DEL', lock)
  redis.call('XADD', wake, 'MAXLEN', '1', '*', 'w', '1')
  redis.call('PEXPIRE', wake, WAKE_TTL_MS)
  return 1
end
"""
WAKE_TTL_MS = 10_000  # a wake stream outlives its release only for waiters between their lock try and XREAD

# See _WRITE (K0 = 2, A0 = 0). Returns evictions, or -1 when the fence moved (nothing written).
SET_SCRIPT = Script("set", "local K0, A0 = 2, 0\n" + _WRITE + "return write()\n")

# A miss's write and the release of its lock, in one round trip. KEYS[1]: LRU zset, KEYS[2]: generations,
# KEYS[3]: the lock, KEYS[4]: its wake stream, KEYS[5..]: data keys. ARGV[1]: the owner token, then as
# SET_SCRIPT. Returns {evictions or -1, whether the token still owned the lock}.
SET_UNLOCK_SCRIPT = Script(
    "set_unlock",
    "local K0, A0 = 4, 1\n"
    + _WRITE
    + _RELEASE.replace("WAKE_TTL_MS", str(WAKE_TTL_MS))
    + "local r = write()\nreturn {r, release(KEYS[3], KEYS[4], ARGV[1])}\n",
)

# KEYS[1]: the group's LRU zset, KEYS[2]: its generations, KEYS[3..]: data keys. ARGV[1]: base, ARGV[2..]:
# generation fields to bump. Returns how many keys existed.
DEL_SCRIPT = Script(
    "delete",
    "local base, lru = ARGV[1], KEYS[1]\n"
    + _UNTAG
    + _BUMP
    + """
bump(KEYS[2], 2, #ARGV)
local n = 0
for k = 3, #KEYS do
  untag(KEYS[k])
  n = n + redis.call('DEL', KEYS[k])
  redis.call('ZREM', lru, KEYS[k])
end
return n
""",
)

# KEYS[1]: the group's LRU zset, KEYS[2]: its generations, KEYS[3..]: tag sets. ARGV: base, data-key prefix,
# then generation fields to bump. Returns deletions.
TAGS_SCRIPT = Script(
    "delete_tags",
    "local base, lru, pfx = ARGV[1], KEYS[1], ARGV[2]\n"
    + _UNTAG
    + _BUMP
    + """
bump(KEYS[2], 3, #ARGV)
local tagsets = {}
for k = 3, #KEYS do tagsets[#tagsets + 1] = KEYS[k] end
local n = 0
for _, key in ipairs(redis.call('SUNION', unpack(tagsets))) do
  if string.sub(key, 1, #pfx) == pfx then
    untag(key)
    for _, tk in ipairs(tagsets) do redis.call('SREM', tk, key) end
    n = n + redis.call('DEL', key)
    redis.call('ZREM', lru, key)
  end
end
return n
""",
)

# KEYS[1]: the lock, KEYS[2]: its wake stream. ARGV[1]: the owner token. Deletes (and wakes the waiters) only
# when the token still owns it.
RELEASE_SCRIPT = Script(
    "release",
    _RELEASE.replace("WAKE_TTL_MS", str(WAKE_TTL_MS)) + "return release(KEYS[1], KEYS[2], ARGV[1])\n",
)

# KEYS[1]: the lock, KEYS[2]: its wake stream. ARGV[1]: the owner token, ARGV[2]: ttl ms. Returns 1 when taken.
ACQUIRE_SCRIPT = Script(
    "acquire",
    """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
redis.call('DEL', KEYS[2])
return 1
""",
)

# The recheck, the lock and the fence of a miss in one round trip. KEYS[1]: the data key, KEYS[2]: the lock,
# KEYS[3]: its wake stream, KEYS[4]: the group's generations, KEYS[5]: its LRU zset. ARGV[1]: the owner token,
# ARGV[2]: lock ttl ms, ARGV[3]: '1' to lock even when a value is there (it is unusable and is to be
# replaced), ARGV[4]: now ms (LRU touch, '' without LRU), ARGV[5]: the generations' id (set once), ARGV[6..]:
# fence fields. Returns {false, value} without the lock, or {token, value, fence values} with it.
LOCK_GET_SCRIPT = Script(
    "lock_get",
    """
local v = redis.call('HGET', KEYS[1], 'v')
if v and ARGV[4] ~= '' then redis.call('ZADD', KEYS[5], 'XX', ARGV[4], KEYS[1]) end
if v and ARGV[3] ~= '1' then return {false, v} end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {false, v} end
redis.call('DEL', KEYS[3])
redis.call('HSETNX', KEYS[4], 'id', ARGV[5])
return {ARGV[1], v, redis.call('HMGET', KEYS[4], unpack(ARGV, 6))}
""",
)


def glob_escape(text: str) -> str:
    """Escape `text` for a Redis MATCH pattern."""
    out = []
    for ch in text:
        if ch in "*?[]\\":
            out.append("\\")
        out.append(ch)
    return "".join(out)


def ttl_ms(ttl: float | None) -> int:
    """Seconds to the script's milliseconds: -1 for no expiry, 0 for do-not-store, else at least 1."""
    if ttl is None:
        return -1
    if ttl <= 0:
        return 0
    return max(1, math.ceil(ttl * 1000))


def _valid_ns(ns: str) -> bool:
    return bool(ns) and _BAD_NS_CHARS.isdisjoint(ns)


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """Translates core keys to Redis keys and back (see the module docstring); `prefix` isolates users."""

    prefix: str = ""
    max_entries: int | None = None

    def __post_init__(self) -> None:
        if "{" in self.prefix or "}" in self.prefix:
            raise ValueError("a Redis key prefix must not contain '{' or '}' (they set the cluster slot)")
        if self.max_entries is not None and self.max_entries < 1:
            raise ValueError("max_entries must be at least 1 (or None for unbounded)")

    # -- translation -----------------------------------------------------------------------------------------

    def split(self, key: str) -> tuple[str, str]:
        """Return `(base, rest)`: the group base (hash-tagged) and the key's part after it."""
        if key.startswith(_CORE_HEAD):
            ns, sep, rest = key[len(_CORE_HEAD) :].partition(":")
            if sep and _valid_ns(ns):
                return f"{self.prefix}{_CORE_HEAD}{{{ns}}}", rest
        return self.prefix + _GENERIC_TAG, key

    def data_key(self, key: str) -> str:
        """The Redis key holding core key `key`."""
        base, rest = self.split(key)
        return f"{base}:{rest}"

    def logical_key(self, redis_key: bytes | str) -> str | None:
        """The core key stored at `redis_key`, or None for metadata and foreign keys."""
        raw = _text(redis_key)
        if not raw.startswith(self.prefix):
            return None
        raw = raw[len(self.prefix) :]
        if raw.startswith(_GENERIC_TAG + ":"):
            return raw[len(_GENERIC_TAG) + 1 :]
        if raw.startswith(_CORE_HEAD + "{"):
            ns, sep, rest = raw[len(_CORE_HEAD) + 1 :].partition("}")
            if sep and rest.startswith(":") and _valid_ns(ns):
                return f"{_CORE_HEAD}{ns}{rest}"
        return None

    @staticmethod
    def base_of(redis_key: str) -> str:
        """The group base of any key in our layout: everything up to the first `}`."""
        return redis_key[: redis_key.index("}") + 1]

    @staticmethod
    def lru_key(base: str) -> str:
        """The group's sorted set of last access times."""
        return base + "#lru"

    @staticmethod
    def gen_key(base: str) -> str:
        """The group's hash of invalidation generations."""
        return base + "#gen"

    @staticmethod
    def tag_key(base: str, tag: str) -> str:
        """The group's set of data keys carrying `tag`."""
        return f"{base}#t:{tag}"

    def lock_key(self, name: str) -> str:
        """The Redis key of lock `name` (in the slot of the cache key of the same name)."""
        base, rest = self.split(name)
        return f"{base}#lock:{rest}"

    def wake_key(self, name: str) -> str:
        """The stream that wakes the waiters of lock `name` when it is released (next to the lock)."""
        base, rest = self.split(name)
        return f"{base}#wake:{rest}"

    def tracking_prefixes(self) -> tuple[str, str]:
        """The Redis key prefixes of every group (for `CLIENT TRACKING ... BCAST PREFIX`)."""
        return f"{self.prefix}{_CORE_HEAD}{{", f"{self.prefix}{_GENERIC_TAG}:"

    def channel(self) -> str:
        """The pub/sub channel carrying invalidations between tiered processes."""
        return self.prefix + "ac:inv"

    def _logical_head(self, base: str) -> str:
        """Every core key in group `base` starts with this."""
        if base == self.prefix + _GENERIC_TAG:
            return ""
        return _CORE_HEAD + base[len(self.prefix) + len(_CORE_HEAD) + 1 : -1] + ":"

    def group_filter(self, base: str, prefix: str) -> str | None:
        """The data-key prefix in group `base` matching core-key `prefix`, or None if none can match."""
        head = self._logical_head(base)
        if prefix.startswith(head):
            return f"{base}:{prefix[len(head) :]}"
        if head.startswith(prefix):
            return f"{base}:"
        return None

    def single_group(self, prefix: str) -> tuple[str, str] | None:
        """`(base, rest)` when every key starting with `prefix` sits in one namespace group."""
        if prefix.startswith(_CORE_HEAD):
            ns, sep, rest = prefix[len(_CORE_HEAD) :].partition(":")
            if sep and _valid_ns(ns):
                return f"{self.prefix}{_CORE_HEAD}{{{ns}}}", rest
        return None

    def scan_patterns(self, prefix: str) -> list[tuple[str, str | None]]:
        """MATCH patterns covering every data key that may start with `prefix`, each with a slot key or None.

        A whole-group pattern (`<base>*`) also matches the group's metadata, which `clear` then drops too.
        """
        group = self.single_group(prefix)
        if group is not None:
            base, rest = group
            return [(glob_escape(base) + ("*" if not rest else ":" + glob_escape(rest) + "*"), base)]
        p = glob_escape(self.prefix)
        patterns: list[tuple[str, str | None]] = [(p + _GENERIC_TAG + "*", None)]
        if prefix:
            patterns[0] = (f"{p}{{_}}:{glob_escape(prefix)}*", None)
        if prefix.startswith(_CORE_HEAD):
            patterns.append((f"{p}{_CORE_HEAD}{{{glob_escape(prefix[len(_CORE_HEAD) :])}*", None))
        elif _CORE_HEAD.startswith(prefix):
            patterns.append((f"{p}{_CORE_HEAD}{{*", None))
        return patterns

    def whole_groups(self, prefix: str) -> bool:
        """Whether `prefix` selects whole groups (then metadata goes with the data)."""
        group = self.single_group(prefix)
        return prefix == "" or (group is not None and group[1] == "")


# -- flows -------------------------------------------------------------------------------------------------


def _script_call(script: Script, keys: Sequence[str], args: Iterable[Any]) -> Command:
    return Command(("EVALSHA", script.sha, len(keys), *keys, *args), script)


def get_command(layout: KeyLayout, key: str) -> tuple[str, str, str]:
    """The single command reading `key`'s value (the whole hit when there is no LRU to touch)."""
    base, rest = layout.split(key)
    return ("HGET", f"{base}:{rest}", "v")


def get_flow(layout: KeyLayout, keys: Sequence[str], now_ms: int) -> CommandFlow:
    """Read values (and touch the LRU when bounded): one pipeline of HGETs, or of `GET_MANY_SCRIPT` calls for
    many keys of an unbounded store."""
    if layout.max_entries is None and len(keys) >= GET_MANY_AT:
        return (yield from _get_many_flow(layout, keys))
    calls: list[Command] = []
    for key in keys:
        base, rest = layout.split(key)
        dkey = f"{base}:{rest}"
        calls.append(Command(get_command(layout, key)))
        if layout.max_entries is not None:
            calls.append(Command(("ZADD", layout.lru_key(base), "XX", now_ms, dkey)))
    replies = yield Batch(tuple(calls))
    step = 1 if layout.max_entries is None else 2
    return [replies[i] for i in range(0, len(replies), step)]


def _get_many_flow(layout: KeyLayout, keys: Sequence[str]) -> CommandFlow:
    # One command per group and chunk instead of one per key: redis-py packs and parses each command in Python
    # (~14 us), which made reading a 100k-record semantic partition take 1.4 s; a script call per
    # `GET_MANY_CHUNK` keys, its reply an array, costs half the client CPU. A group's keys share one cluster slot.
    groups: dict[str, list[int]] = {}
    dkeys: list[str] = []
    for i, key in enumerate(keys):
        base, rest = layout.split(key)
        dkeys.append(f"{base}:{rest}")
        groups.setdefault(base, []).append(i)
    order: list[int] = []
    calls: list[Command] = []
    for positions in groups.values():
        for start in range(0, len(positions), GET_MANY_CHUNK):
            chunk = positions[start : start + GET_MANY_CHUNK]
            order += chunk
            # EVAL, not EVALSHA: no NOSCRIPT round of one call at a time on a server that never ran it
            calls.append(Command(("EVAL", GET_MANY_SCRIPT.source, len(chunk), *(dkeys[i] for i in chunk))))
    replies = yield Batch(tuple(calls))
    values: list[bytes | None] = [None] * len(keys)
    for i, value in zip(order, (v for reply in replies for v in reply), strict=True):
        values[i] = value  # nil (Lua false) where the entry is missing
    return values


def get_entries_flow(layout: KeyLayout, keys: Sequence[str], now_ms: int) -> CommandFlow:
    """Read `(value, ttl_seconds_left, tags)` per key (None when missing), for an L1 fill."""
    calls: list[Command] = []
    for key in keys:
        base, rest = layout.split(key)
        dkey = f"{base}:{rest}"
        calls += [Command(("HMGET", dkey, "v", "t")), Command(("PTTL", dkey))]
        if layout.max_entries is not None:
            calls.append(Command(("ZADD", layout.lru_key(base), "XX", now_ms, dkey)))
    replies = yield Batch(tuple(calls))
    step = 2 if layout.max_entries is None else 3
    out: list[tuple[bytes, float | None, tuple[str, ...]] | None] = []
    for i in range(0, len(replies), step):
        value, tags_json = replies[i]
        pttl = int(replies[i + 1])
        if value is None or pttl == -2:
            out.append(None)
            continue
        tags = tuple(json.loads(tags_json)) if tags_json else ()
        out.append((value, None if pttl < 0 else pttl / 1000, tags))
    return out


class RedisFence:
    """What a fence read found, per group: `(base, fields, values)` (a missing field reads as '')."""

    __slots__ = ("groups",)

    def __init__(self, groups: dict[str, tuple[tuple[str, ...], tuple[str, ...]]]) -> None:
        self.groups = groups

    def __repr__(self) -> str:
        return f"RedisFence({self.groups!r})"


def _fence_fields(layout: KeyLayout, keys: Sequence[str], tags: Collection[str]) -> dict[str, list[str]]:
    """Per group: the generation fields a write of `keys` tagged `tags` depends on ('id' first)."""
    out: dict[str, list[str]] = {}
    tag_fields = ["*", *(f"#{t}" for t in dict.fromkeys(tags))]
    for key in keys:
        base, _ = layout.split(key)
        fields = out.setdefault(base, ["id", *tag_fields])
        field = f"k{bucket(key)}"
        if field not in fields:
            fields.append(field)
    return out


def _fence_calls(layout: KeyLayout, keys: Sequence[str], tags: Collection[str], token: str) -> list[Command]:
    groups = _fence_fields(layout, keys, tags)
    return [_script_call(FENCE_SCRIPT, [layout.gen_key(b)], [token, *fields]) for b, fields in groups.items()]


def _fence_of(layout: KeyLayout, keys: Sequence[str], tags: Collection[str], replies: Sequence[Any]) -> RedisFence:
    groups = _fence_fields(layout, keys, tags)
    found: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    for (base, fields), values in zip(groups.items(), replies, strict=True):
        found[base] = (tuple(fields), tuple("" if v is None else _text(v) for v in values))
    return RedisFence(found)


def fence_flow(layout: KeyLayout, keys: Sequence[str], tags: Collection[str], token: str) -> CommandFlow:
    """Read (and register) the generations a write of `keys` tagged `tags` depends on: one script per group."""
    replies = yield Batch(tuple(_fence_calls(layout, keys, tags, token)))
    return _fence_of(layout, keys, tags, replies)


def get_fenced_flow(layout: KeyLayout, key: str, tags: Collection[str], now_ms: int, token: str) -> CommandFlow:
    """Read `key` and the fence of writing it, in one round trip: `(value, fence)`."""
    reads = [Command(get_command(layout, key))]
    if layout.max_entries is not None:
        base, rest = layout.split(key)
        reads.append(Command(("ZADD", layout.lru_key(base), "XX", now_ms, f"{base}:{rest}")))
    replies = yield Batch((*reads, *_fence_calls(layout, (key,), tags, token)))
    return replies[0], _fence_of(layout, (key,), tags, replies[len(reads) :])


def _write_args(
    layout: KeyLayout, items: Sequence[Item], now_ms: int, fence: RedisFence | None
) -> dict[str, tuple[list[str], list[Any]]]:
    """Per group: `(data keys, ARGV)` of its write script (see `_WRITE`)."""
    groups: dict[str, tuple[list[str], list[Any]]] = defaultdict(lambda: ([], []))
    for item in items:
        base, rest = layout.split(item.key)
        keys, args = groups[base]
        tags = tuple(dict.fromkeys(item.tags))
        keys.append(f"{base}:{rest}")
        args += [ttl_ms(item.ttl), item.value, json.dumps(tags) if tags else "", len(tags), *tags]
    maxn = layout.max_entries or 0
    out: dict[str, tuple[list[str], list[Any]]] = {}
    for base, (keys, args) in groups.items():
        checks: list[str] = []
        if fence is not None and base in fence.groups:
            fields, values = fence.groups[base]
            for field, value in zip(fields, values, strict=True):
                checks += [field, value]
        out[base] = (keys, [base, now_ms, maxn, len(checks) // 2, *checks, *args])
    return out


def set_flow(layout: KeyLayout, items: Sequence[Item], now_ms: int, fence: RedisFence | None = None) -> CommandFlow:
    """Write items: one SET_SCRIPT call per group, all pipelined; with a fence, each group's write is dropped
    when one of its generations moved. Returns whether every group wrote."""
    calls = [
        _script_call(SET_SCRIPT, [layout.lru_key(base), layout.gen_key(base), *keys], args)
        for base, (keys, args) in _write_args(layout, items, now_ms, fence).items()
    ]
    if not calls:
        return True
    replies = yield Batch(tuple(calls))
    return all(int(r) >= 0 for r in replies)


def set_unlock_flow(
    layout: KeyLayout, items: Sequence[Item], now_ms: int, fence: RedisFence | None, name: str, token: str
) -> CommandFlow:
    """`set_flow`, then release lock `name` (waking its waiters) in the same round trip: the write of the lock's
    group and the release are one SET_UNLOCK_SCRIPT call. Returns `(whether every group wrote, whether
    `token` still owned the lock)`."""
    lock_base, _ = layout.split(name)
    lock = [layout.lock_key(name), layout.wake_key(name)]
    calls: list[Command] = []
    for base, (keys, args) in _write_args(layout, items, now_ms, fence).items():
        head = [layout.lru_key(base), layout.gen_key(base)]
        if base == lock_base:
            calls.append(_script_call(SET_UNLOCK_SCRIPT, [*head, *lock, *keys], [token, *args]))
        else:
            calls.append(_script_call(SET_SCRIPT, [*head, *keys], args))
    if not any(call.script is SET_UNLOCK_SCRIPT for call in calls):
        calls.append(_script_call(RELEASE_SCRIPT, lock, [token]))
    replies = yield Batch(tuple(calls))
    wrote, released = True, False
    for call, reply in zip(calls, replies, strict=True):
        if call.script is RELEASE_SCRIPT:
            released = bool(int(reply))
        elif call.script is SET_UNLOCK_SCRIPT:
            wrote = wrote and int(reply[0]) >= 0
            released = bool(int(reply[1]))
        else:
            wrote = wrote and int(reply) >= 0
    return wrote, released


def delete_flow(layout: KeyLayout, keys: Iterable[str], *, redis_keys: bool = False) -> CommandFlow:
    """Delete keys (core keys, or Redis data keys with `redis_keys`): one DEL_SCRIPT call per group, which
    bumps each key's generation bucket."""
    groups: dict[str, tuple[list[str], set[str]]] = defaultdict(lambda: ([], set()))
    for key in keys:
        dkey = key if redis_keys else layout.data_key(key)
        logical = layout.logical_key(dkey) if redis_keys else key
        dkeys, bumps = groups[layout.base_of(dkey)]
        dkeys.append(dkey)
        if logical is not None:
            bumps.add(f"k{bucket(logical)}")
    calls = tuple(
        _script_call(DEL_SCRIPT, [layout.lru_key(base), layout.gen_key(base), *dkeys], [base, *sorted(bumps)])
        for base, (dkeys, bumps) in groups.items()
    )
    if not calls:
        return 0
    replies = yield Batch(calls)
    return sum(int(r) for r in replies)


def _scan_keys(layout: KeyLayout, prefix: str) -> Generator[Op, Any, list[list[str]]]:
    """Run the SCANs covering `prefix`; return the found keys in batches (one per SCAN reply)."""
    found: list[list[str]] = []
    for pattern, slot_key in layout.scan_patterns(prefix):
        nodes = yield Nodes(slot_key)
        for node in nodes:
            cursor = 0
            while True:
                cursor, keys = yield ScanStep(node, cursor, pattern)
                if keys:
                    found.append([_text(k) for k in keys])
                if int(cursor) == 0:
                    break
    return found


def _bases_under(layout: KeyLayout, prefix: str, found: Iterable[str]) -> set[str]:
    """The groups of `found` Redis keys that `prefix` covers."""
    bases = set()
    for key in found:
        if "}" in key:
            base = layout.base_of(key)
            if layout.group_filter(base, prefix) is not None:
                bases.add(base)
    return bases


def clear_flow(layout: KeyLayout, prefix: str) -> CommandFlow:
    """Delete every entry under `prefix` with SCAN (never KEYS/FLUSHDB); whole groups lose metadata too
    (but not their generations, which are bumped first, in every group `prefix` covers)."""
    group = layout.single_group(prefix)
    if group is not None:
        bases = {group[0]}
    else:
        seen = yield from _scan_keys(layout, prefix)
        bases = _bases_under(layout, prefix, (k for batch in seen for k in batch))
        bases.add(layout.prefix + _GENERIC_TAG)
    if bases:
        yield Batch(tuple(Command(("HINCRBY", layout.gen_key(b), "*", 1)) for b in sorted(bases)))
    batches = yield from _scan_keys(layout, prefix)
    whole = layout.whole_groups(prefix)
    total = 0
    for found in batches:
        data = [k for k in found if (lk := layout.logical_key(k)) is not None and lk.startswith(prefix)]
        if not whole:
            total += yield from delete_flow(layout, data, redis_keys=True)
            continue
        meta = [
            k
            for k in found
            if layout.logical_key(k) is None
            and "}#lock:" not in k
            and "}#wake:" not in k
            and "}#" in k
            and not k.endswith("}#gen")
        ]
        by_base: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
        for k in data:
            by_base[layout.base_of(k)][0].append(k)
        for k in meta:
            by_base[layout.base_of(k)][1].append(k)
        calls = [Command(("UNLINK", *d)) for d, _ in by_base.values() if d]
        calls += [Command(("UNLINK", *m)) for _, m in by_base.values() if m]
        if calls:
            replies = yield Batch(tuple(calls))
            total += sum(int(r) for r in replies[: sum(1 for d, _ in by_base.values() if d)])
    return total


def delete_tags_flow(layout: KeyLayout, tags: Collection[str], prefix: str) -> CommandFlow:
    """Delete entries carrying any of `tags` under `prefix`: one TAGS_SCRIPT call per group, which bumps the
    tags' generations (in every group `prefix` covers, found by their tag sets and generation hashes)."""
    tags = list(dict.fromkeys(tags))
    if not tags:
        return 0
    group = layout.single_group(prefix)
    bases: list[str]
    if group is not None:
        bases = [group[0]]
    else:
        found: set[str] = set()
        p = glob_escape(layout.prefix)
        wanted = {f"{p}*}}#gen": "#gen", **{f"{p}*}}#t:{glob_escape(tag)}": f"#t:{tag}" for tag in tags}}
        for pattern, suffix in wanted.items():
            nodes = yield Nodes(None)
            for node in nodes:
                cursor = 0
                while True:
                    cursor, keys = yield ScanStep(node, cursor, pattern)
                    for k in keys:
                        text = _text(k)
                        if "}" in text and text == layout.base_of(text) + suffix:
                            found.add(layout.base_of(text))
                    if int(cursor) == 0:
                        break
        bases = sorted(found)
    calls = []
    bumps = [f"#{t}" for t in tags]
    for base in bases:
        pfx = layout.group_filter(base, prefix)
        if pfx is not None:
            tag_keys = [layout.tag_key(base, t) for t in tags]
            keys = [layout.lru_key(base), layout.gen_key(base), *tag_keys]
            calls.append(_script_call(TAGS_SCRIPT, keys, [base, pfx, *bumps]))
    if not calls:
        return 0
    replies = yield Batch(tuple(calls))
    return sum(int(r) for r in replies)


def scan_flow(layout: KeyLayout, prefix: str, tag: str | None, now: float) -> CommandFlow:
    """Emit an `EntryInfo` per live entry under `prefix` (carrying `tag` when given), in key order."""
    collected: list[EntryInfo] = []
    for pattern, slot_key in layout.scan_patterns(prefix):
        nodes = yield Nodes(slot_key)
        for node in nodes:
            cursor = 0
            while True:
                cursor, raw = yield ScanStep(node, cursor, pattern)
                pairs = [(k, lk) for k in map(_text, raw) if (lk := layout.logical_key(k)) is not None]
                pairs = [(k, lk) for k, lk in pairs if lk.startswith(prefix)]
                if pairs:
                    calls: list[Command] = []
                    for k, _ in pairs:
                        calls += [Command(("HSTRLEN", k, "v")), Command(("HMGET", k, "t", "c")), Command(("PTTL", k))]
                        if layout.max_entries is not None:
                            calls.append(Command(("ZSCORE", layout.lru_key(layout.base_of(k)), k)))
                    replies = yield Batch(tuple(calls))
                    step = 3 if layout.max_entries is None else 4
                    entries = []
                    for i, (_, lk) in enumerate(pairs):
                        size, (tags_json, created), pttl = replies[i * step : i * step + 3]
                        if int(pttl) == -2 or created is None:
                            continue
                        tags = tuple(json.loads(tags_json)) if tags_json else ()
                        if tag is not None and tag not in tags:
                            continue
                        accessed = replies[i * step + 3] if step == 4 else None
                        entries.append(
                            EntryInfo(
                                key=lk,
                                size=len(lk) + int(size),  # the protocol's size: key + value
                                created_at=int(created) / 1000,
                                expires_at=None if int(pttl) < 0 else now + int(pttl) / 1000,
                                accessed_at=None if accessed is None else float(accessed) / 1000,
                                tags=tags,
                            )
                        )
                    collected += entries
                if int(cursor) == 0:
                    break
    # SCAN order is arbitrary; the protocol promises key order, so the listing is sorted once at the end.
    yield Emit(tuple(sorted(collected, key=lambda e: e.key)))


def keys_flow(layout: KeyLayout, prefix: str) -> CommandFlow:
    """The logical keys under `prefix`: SCAN alone, none of `scan_flow`'s three reads per entry (a semantic
    partition of 100k records is listed in ~100 round trips instead of 300k commands)."""
    found: list[str] = []
    group = layout.single_group(prefix)
    # Within one group, below its base, every match is a data key `<base>:<rest>...`: its logical key is a slice
    # (a third of the client's CPU of listing 100k keys went to `logical_key`).
    cut, head = (len(group[0]), prefix[: len(prefix) - len(group[1]) - 1]) if group and group[1] else (0, "")
    for batch in (yield from _scan_keys(layout, prefix)):
        if cut:
            found += [head + k[cut:] for k in batch]
        else:
            found += [lk for k in batch if (lk := layout.logical_key(k)) is not None and lk.startswith(prefix)]
    return list(dict.fromkeys(found))  # SCAN may return a key twice


def acquire_flow(layout: KeyLayout, name: str, ttl: float, token: str) -> CommandFlow:
    """SET NX PX with a random owner token (and drop the lock's wake stream); return the token when taken."""
    keys = [layout.lock_key(name), layout.wake_key(name)]
    (reply,) = yield Batch((_script_call(ACQUIRE_SCRIPT, keys, [token, max(1, ttl_ms(ttl))]),))
    return token if int(reply) else None


def release_flow(layout: KeyLayout, name: str, token: str) -> CommandFlow:
    """Compare-and-delete the lock in Lua, waking its waiters; return whether `token` owned it."""
    keys = [layout.lock_key(name), layout.wake_key(name)]
    (reply,) = yield Batch((_script_call(RELEASE_SCRIPT, keys, [token]),))
    return bool(int(reply))


def lock_get_flow(
    layout: KeyLayout,
    key: str,
    name: str,
    ttl: float,
    tags: Collection[str],
    *,
    force: bool,
    wait: float,
    now_ms: int,
    token: str,
    fence_id: str,
) -> CommandFlow:
    """Read `key`; when it is missing (or `force`), try to take lock `name` and read the fence of writing `key`:
    one LOCK_GET_SCRIPT call. With `wait` (seconds), first block until the lock's owner releases it, at most that
    long: an `XREAD BLOCK` on its wake stream pipelined before the script, which Redis runs as soon as the XREAD
    returns, so a woken waiter gets the value in the same round trip. Returns `(token or None, value or None,
    fence or None)`."""
    base, rest = layout.split(key)
    ((_, fields),) = _fence_fields(layout, (key,), tags).items()
    keys = [f"{base}:{rest}", layout.lock_key(name), layout.wake_key(name), layout.gen_key(base)]
    keys.append(layout.lru_key(base))
    touch = "" if layout.max_entries is None else now_ms
    args = [token, max(1, ttl_ms(ttl)), "1" if force else "0", touch, fence_id, *fields]
    calls = [_script_call(LOCK_GET_SCRIPT, keys, args)]
    if wait > 0:
        ms = max(1, math.ceil(wait * 1000))
        calls.insert(0, Command(("XREAD", "BLOCK", ms, "STREAMS", layout.wake_key(name), "0-0")))
    replies = yield Batch(tuple(calls))
    reply = replies[-1]
    if not reply[0]:
        return None, reply[1], None
    return token, reply[1], _fence_of(layout, (key,), tags, [reply[2]])


def publish_flow(layout: KeyLayout, message: bytes) -> CommandFlow:
    """PUBLISH an invalidation message on the layout's channel."""
    yield Batch((Command(("PUBLISH", layout.channel(), message)),))
