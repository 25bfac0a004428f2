"""An in-process byte store: thread-safe LRU with per-entry TTL, tags, and entry/byte limits."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Sequence

from agentcache import _fork
from agentcache.backends.base import EntryInfo, InlineAsyncFace, Item
from agentcache.backends.generations import ScopeFence, clear_scopes, key_scopes, scope_names, tag_scopes

__all__ = ["MemoryBackend"]

_monotonic = time.monotonic
_wall = time.time

# How often an over-full store may sweep for expired entries before evicting live ones (seconds).
_SWEEP_INTERVAL = 1.0


class _Entry:
    """One stored value; `expires` is on the monotonic clock, `created` is Unix seconds."""

    __slots__ = ("created", "expires", "size", "tags", "value")

    def __init__(self, value: bytes, expires: float | None, created: float, tags: tuple[str, ...], size: int):
        self.value = value
        self.expires = expires
        self.created = created
        self.tags = tags
        self.size = size


class MemoryBackend(InlineAsyncFace):
    """A thread-safe in-process LRU byte store implementing `Backend`, `SupportsScan` and `SupportsGenerations`.

    Entries expire after their TTL (monotonic clock), are read as missing once expired and are removed lazily.
    When `max_entries` or `max_bytes` (sum of `len(key) + len(value)`) is exceeded, expired entries are swept
    first and then the least recently used ones are evicted; a `get` counts as a use. `None` disables a limit.
    An item larger than `max_bytes` on its own is not stored. The async face calls the sync methods directly:
    nothing here blocks, so a thread hop would only add latency.

    Reads take no lock: a dict lookup and `OrderedDict.move_to_end` are each atomic, writers hold the lock and
    never iterate the live dict (they iterate a snapshot or pop from its ends). Access times are not recorded
    (`scan` reports `accessed_at=None`); the recency order itself is exact.

    Example:
        >>> b = MemoryBackend(max_entries=2)
        >>> b.set_many([Item("k", b"v", ttl=60)])
        >>> b.get("k")
        b'v'
    """

    def __init__(self, *, max_entries: int | None = 10_000, max_bytes: int | None = None) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._data: OrderedDict[str, _Entry] = OrderedDict()
        self._tags: dict[str, set[str]] = {}
        self._bytes = 0
        self._gens: dict[str, int] = {}  # invalidation generations (see agentcache.backends.generations)
        self._lock = threading.Lock()
        self._last_sweep = float("-inf")
        #: Called (under the store's lock, so it must be quick) with the key of every entry that leaves the store,
        #: whatever the cause: delete, invalidation, expiry, eviction, replacement. The semantic cache uses it
        #: to drop vectors from its indexes without rescanning (`agentcache.semantic.partitions`).
        self.on_remove: Callable[[str], None] | None = None
        _fork.track(self)

    def __repr__(self) -> str:
        return f"MemoryBackend(max_entries={self.max_entries!r}, max_bytes={self.max_bytes!r})"

    # -- sync face -------------------------------------------------------------------------------------------

    def get(self, key: str, /) -> bytes | None:
        """Return the value stored under `key`, or `None` when it is missing or expired."""
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry.expires is not None and entry.expires <= _monotonic():
            with self._lock:
                if self._data.get(key) is entry:
                    self._remove(key, entry)
            return None
        try:
            self._data.move_to_end(key)
        except KeyError:  # removed by a writer since the lookup: this read still saw a live entry
            pass
        return entry.value

    def get_many(self, keys: Sequence[str], /) -> list[bytes | None]:
        """Return the values of `keys`, in order, with `None` for each missing or expired one."""
        out: list[bytes | None] = []
        with self._lock:
            now = _monotonic()
            data = self._data
            for key in keys:
                entry = data.get(key)
                if entry is None:
                    out.append(None)
                elif entry.expires is not None and entry.expires <= now:
                    self._remove(key, entry)
                    out.append(None)
                else:
                    data.move_to_end(key)
                    out.append(entry.value)
        return out

    def set_many(self, items: Sequence[Item], /) -> None:
        """Store every item, replacing existing values, TTLs and tags; `ttl <= 0` removes the key."""
        with self._lock:
            self._set_locked(items)

    def read_fence(self, keys: Sequence[str], tags: Collection[str], /) -> object:
        """The generations a write of `keys` tagged `tags` depends on (see `SupportsGenerations`)."""
        names = scope_names(keys, tags)
        with self._lock:
            return ScopeFence(names, tuple(self._gens.get(n, 0) for n in names))

    def set_many_fenced(self, items: Sequence[Item], fence: object, /) -> bool:
        """`set_many` unless an invalidation moved `fence` (checked under the lock that writes)."""
        if not isinstance(fence, ScopeFence):
            return False
        with self._lock:
            gens = self._gens
            if any(gens.get(n, 0) != v for n, v in zip(fence.names, fence.values, strict=True)):
                return False
            self._set_locked(items)
            return True

    async def aread_fence(self, keys: Sequence[str], tags: Collection[str], /) -> object:
        """Awaitable `read_fence` (runs inline)."""
        return self.read_fence(keys, tags)

    async def aset_many_fenced(self, items: Sequence[Item], fence: object, /) -> bool:
        """Awaitable `set_many_fenced` (runs inline)."""
        return self.set_many_fenced(items, fence)

    def _set_locked(self, items: Sequence[Item]) -> None:
        now = _monotonic()
        wall = _wall()
        for item in items:
            old = self._data.get(item.key)
            if old is not None:
                self._remove(item.key, old)
            size = len(item.key) + len(item.value)
            if (item.ttl is not None and item.ttl <= 0) or (self.max_bytes is not None and size > self.max_bytes):
                continue
            expires = None if item.ttl is None else now + item.ttl
            tags = tuple(dict.fromkeys(item.tags))
            self._data[item.key] = _Entry(item.value, expires, wall, tags, size)
            self._bytes += size
            for tag in tags:
                self._tags.setdefault(tag, set()).add(item.key)
        self._enforce_limits(now)

    def delete_many(self, keys: Sequence[str], /) -> int:
        """Delete `keys`; return how many existed (expired entries do not count)."""
        with self._lock:
            self._bump(key_scopes(keys))
            now = _monotonic()
            count = 0
            for key in keys:
                entry = self._data.get(key)
                if entry is not None:
                    count += self._alive(entry, now)
                    self._remove(key, entry)
            return count

    def delete_tags(self, tags: Collection[str], /, prefix: str = "") -> int:
        """Delete every entry tagged with any of `tags` whose key starts with `prefix`; return the count."""
        with self._lock:
            self._bump(tag_scopes(tags, prefix))
            keys: set[str] = set()
            for tag in tags:
                keys.update(k for k in self._tags.get(tag, ()) if k.startswith(prefix))
            return self._delete_keys(keys)

    def clear(self, prefix: str = "", /) -> int:
        """Delete every entry whose key starts with `prefix`; return the count of live entries deleted."""
        with self._lock:
            self._bump(clear_scopes(prefix))
            return self._delete_keys([k for k in list(self._data) if k.startswith(prefix)])

    def _after_fork_in_child(self) -> None:
        """A fresh lock (a thread of the parent may have held the old one at fork); the entries stay."""
        self._lock = threading.Lock()

    def close(self) -> None:
        """Nothing to release: the entries stay until the object is garbage collected."""

    def keys(self, prefix: str = "", /) -> list[str]:
        """The keys starting with `prefix`, unordered, expired ones included (`scan` without its per-entry cost)."""
        with self._lock:
            return [key for key in list(self._data) if key.startswith(prefix)]  # readers reorder it unlocked

    def scan(self, prefix: str = "", /, *, tag: str | None = None) -> Iterator[EntryInfo]:
        """Yield every live entry whose key starts with `prefix` (and carries `tag`, when given)."""
        with self._lock:
            now = _monotonic()
            wall = _wall()
            keys = list(self._data) if tag is None else self._tags.get(tag, set())
            found = [
                EntryInfo(
                    key=key,
                    size=e.size,
                    created_at=e.created,
                    expires_at=None if e.expires is None else wall + (e.expires - now),
                    tags=e.tags,
                )
                for key in sorted(keys)
                if key.startswith(prefix) and self._alive(e := self._data[key], now)
            ]
        return iter(found)

    # -- internals (callers hold the lock) -------------------------------------------------------------------

    def _bump(self, names: Sequence[str]) -> None:
        gens = self._gens
        for name in names:
            gens[name] = gens.get(name, 0) + 1

    @staticmethod
    def _alive(entry: _Entry, now: float) -> bool:
        return entry.expires is None or entry.expires > now

    def _remove(self, key: str, entry: _Entry) -> None:
        del self._data[key]
        self._forget(key, entry)

    def _forget(self, key: str, entry: _Entry) -> None:
        """Size and tag bookkeeping of an entry that left `_data`."""
        if self.on_remove is not None:
            self.on_remove(key)
        self._bytes -= entry.size
        for tag in entry.tags:
            keys = self._tags.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tags[tag]

    def _delete_keys(self, keys: Collection[str]) -> int:
        now = _monotonic()
        count = 0
        for key in keys:
            entry = self._data[key]
            count += self._alive(entry, now)
            self._remove(key, entry)
        return count

    def _over(self) -> bool:
        return (self.max_entries is not None and len(self._data) > self.max_entries) or (
            self.max_bytes is not None and self._bytes > self.max_bytes
        )

    def _enforce_limits(self, now: float) -> None:
        if not self._over():
            return
        # A full sweep is O(n), so it runs at most once per interval; between sweeps plain LRU applies.
        if now - self._last_sweep >= _SWEEP_INTERVAL:
            self._last_sweep = now
            for key, entry in [(k, e) for k, e in list(self._data.items()) if not self._alive(e, now)]:
                self._remove(key, entry)
        while self._data and self._over():
            key, entry = self._data.popitem(last=False)  # least recently used first
            self._forget(key, entry)
