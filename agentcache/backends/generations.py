"""Generation-checked writes: a computation that overlapped an invalidation never stores its result.

The promise: after ``invalidate()`` returns, no caller gets the old value, not even from a call that was
already running, in this process or any other process sharing the store.

Design
------
The store keeps *generation counters* per invalidation scope, and every invalidation bumps the counters it
covers atomically with its deletes (same SQLite transaction, same Redis Lua script, under the memory store's
lock). A miss reads the counters of the scopes its entry belongs to (its *fence*) BEFORE computing, and the
write is conditional: the store compares the fence inside the same transaction/script that writes, and drops
the write if any counter moved. So a write either lands before the invalidation (which then deletes it) or
after it (and sees the bump): no interleaving leaves a value computed before an invalidation in the store.

Scopes. An entry ``ac:v1:<ns>:<rest>`` carrying tags ``T`` (always including the function tag
``@fn:<name>``, which covers ``cache_clear()``) depends on these counters:

* for each *level* - the global scope ``g``, the tree ``t:<a>`` of every ancestor ``a`` of a nested
  namespace (``a`` and ``a/b`` for ``a/b/c``: the prefix ``ac:v1:a/`` covers them), and the namespace
  ``n:<ns>`` itself - the level's whole-scope counter ``*`` and one counter ``#<tag>`` per tag;
* one key counter ``k<crc32(key) % 256>`` in its namespace (explicit-key invalidation; 256 buckets per
  namespace bound the state, and a collision only drops one extra write).

Invalidations map to scopes: ``delete_many(keys)`` bumps each key's bucket; ``delete_tags(tags, prefix)``
bumps ``#<tag>`` at the level ``prefix`` names (a namespace ``ac:v1:<ns>:``, a tree ``ac:v1:<ns>/``, else
global); ``clear(prefix)`` bumps ``*`` at that level. A prefix narrower than a namespace (``ac:v1:ns:tool:``)
bumps the whole namespace: coarser is safe, it only drops more in-flight writes.

Counters are never deleted (clearing a namespace keeps its counters), only increase, and are few: per
namespace at most 1 + tags + 256 buckets. Memory and SQLite keep them as named rows (`scope_names`); Redis
keeps one hash ``<base>#gen`` per namespace group (fields ``*``, ``#<tag>``, ``k<n>``, ``id``) in the group's
cluster slot, and fans global and tree invalidations out to every group (see `agentcache.backends._redis_plan`).

Protocol. `agentcache.backends.base.SupportsGenerations` is the optional capability: ``read_fence(keys,
tags)`` returns an opaque fence, ``set_many_fenced(items, fence)`` writes only if no invalidation covering
the items happened since the fence was read (it returns whether it wrote), with async twins; a store may
also offer ``get_fenced(key, tags)``, a read fused with the fence read (one Redis round trip).
`ResilientBackend` and `TieredBackend` pass the capability through. The helpers below are what the cache
layers call: they use the capability when the store has it and return ``None`` as the fence otherwise.

Fallback. A third-party store without the capability gets ``None`` fences; the cache layers then fall back
to the in-process check: a miss does not store when an invalidation went through the same `agentcache.Cache`
object while it computed. That covers invalidations made by this process only; one made by another process
during the computation is not seen, and the old result may be stored (the bound before generations existed).

Failure. A fence that could not be read (the store failed) is `UNKNOWN_FENCE`: the write is dropped, since
nothing proves it is still valid.
"""

from __future__ import annotations

import zlib
from collections.abc import Collection, Sequence

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

    from agentcache.backends.base import Item

__all__ = [
    "KEY_BUCKETS",
    "ScopeFence",
    "UNKNOWN_FENCE",
    "aget_fenced",
    "aread_fence",
    "awrite_fenced",
    "bucket",
    "clear_scopes",
    "get_fenced",
    "key_scopes",
    "read_fence",
    "scope_names",
    "tag_scopes",
    "write_fenced",
]

_HEAD = "ac:v1:"
KEY_BUCKETS: Final = 256
_SEP = "\x1f"  # between a scope's level and its counter: never part of a namespace or a sane tag


class _Unknown:
    """The fence of a store that failed while reading it: a write under it is dropped."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN_FENCE"


UNKNOWN_FENCE: Final[Any] = _Unknown()


def bucket(key: str) -> int:
    """The key-counter bucket of `key` (stable across processes, unlike `hash`)."""
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % KEY_BUCKETS


def namespace_of(key: str) -> str:
    """The namespace of a core key ('' for a key outside the ``ac:v1:<ns>:`` layout)."""
    if key.startswith(_HEAD):
        ns, sep, _ = key[len(_HEAD) :].partition(":")
        if sep:
            return ns
    return ""


def _level(prefix: str) -> str:
    """The scope level an invalidation under `prefix` covers: ``n:<ns>``, ``t:<ns>`` or ``g``."""
    if prefix.startswith(_HEAD):
        rest = prefix[len(_HEAD) :]
        ns, sep, _ = rest.partition(":")
        if sep:
            return f"n:{ns}"
        if rest.endswith("/") and len(rest) > 1:
            return f"t:{rest[:-1]}"
        return "g"
    if _HEAD.startswith(prefix):
        return "g"  # "", "ac:", ...: everything
    return "n:"  # keys outside the layout only


def _levels(ns: str) -> list[str]:
    parts = ns.split("/") if ns else []
    return ["g", *(f"t:{'/'.join(parts[:i])}" for i in range(1, len(parts))), f"n:{ns}"]


def scope_names(keys: Sequence[str], tags: Collection[str]) -> tuple[str, ...]:
    """Every counter a write of `keys` tagged `tags` depends on (sorted, unique)."""
    names: set[str] = set()
    for key in keys:
        ns = namespace_of(key)
        for level in _levels(ns):
            names.add(f"{level}{_SEP}*")
            names.update(f"{level}{_SEP}#{tag}" for tag in tags)
        names.add(f"n:{ns}{_SEP}k{bucket(key)}")
    return tuple(sorted(names))


def key_scopes(keys: Sequence[str]) -> list[str]:
    """The counters `delete_many(keys)` bumps."""
    return sorted({f"n:{namespace_of(k)}{_SEP}k{bucket(k)}" for k in keys})


def tag_scopes(tags: Collection[str], prefix: str) -> list[str]:
    """The counters `delete_tags(tags, prefix)` bumps."""
    level = _level(prefix)
    return sorted({f"{level}{_SEP}#{tag}" for tag in tags})


def clear_scopes(prefix: str) -> list[str]:
    """The counters `clear(prefix)` bumps."""
    return [f"{_level(prefix)}{_SEP}*"]


# -- what the cache layers call ----------------------------------------------------------------------------


def read_fence(store: Any, keys: Sequence[str], tags: Collection[str]) -> object | None:
    """The fence of a write of `keys` (read before computing), or `None` when the store has no generations."""
    reader = getattr(store, "read_fence", None)
    return None if reader is None else reader(keys, tags)


async def aread_fence(store: Any, keys: Sequence[str], tags: Collection[str]) -> object | None:
    """Awaitable `read_fence`."""
    reader = getattr(store, "aread_fence", None)
    return None if reader is None else await reader(keys, tags)


def get_fenced(store: Any, key: str, tags: Collection[str]) -> tuple[bytes | None, object | None]:
    """Read `key` and the fence of writing it (fused into one round trip when the store offers it)."""
    fused = getattr(store, "get_fenced", None)
    if fused is not None:
        result: tuple[bytes | None, object | None] = fused(key, tags)
        return result
    fence = read_fence(store, (key,), tags)
    return store.get(key), fence


async def aget_fenced(store: Any, key: str, tags: Collection[str]) -> tuple[bytes | None, object | None]:
    """Awaitable `get_fenced`."""
    fused = getattr(store, "aget_fenced", None)
    if fused is not None:
        result: tuple[bytes | None, object | None] = await fused(key, tags)
        return result
    fence = await aread_fence(store, (key,), tags)
    return await store.aget(key), fence


def write_fenced(store: Any, items: Sequence[Item], fence: object | None) -> bool:
    """Write `items` unless an invalidation moved `fence`; `None` (no generations) writes unconditionally."""
    if fence is None:
        store.set_many(items)
        return True
    return bool(store.set_many_fenced(items, fence))


async def awrite_fenced(store: Any, items: Sequence[Item], fence: object | None) -> bool:
    """Awaitable `write_fenced`."""
    if fence is None:
        await store.aset_many(items)
        return True
    return bool(await store.aset_many_fenced(items, fence))


class ScopeFence:
    """The fence of a store that keeps named counters (memory, SQLite): the names and the values read."""

    __slots__ = ("names", "values")

    def __init__(self, names: tuple[str, ...], values: tuple[int, ...]) -> None:
        self.names = names
        self.values = values

    def __repr__(self) -> str:
        return f"ScopeFence({dict(zip(self.names, self.values, strict=True))!r})"
