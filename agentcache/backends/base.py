"""The backend protocol: a byte store with TTL and tags, with a sync and an async face.

Backends never see Python objects: keys arrive fully namespaced (see `agentcache.keys`) and values are
opaque bytes (see `agentcache.codec.entries`). Every backend that ships with agentcache implements both faces
(`get` / `aget`, ...) with one implementation of its logic, plus `SupportsScan` for the CLI.

Contract shared by all methods:

* A key that is missing or expired reads as `None`; expiry is exact to the backend's clock resolution.
* `ttl` is in seconds (`float`); `None` means no expiry; `ttl <= 0` means the item is not stored.
* `set_many` replaces the value, TTL and tags of an existing key atomically per item.
* `delete_tags(tags, prefix)` deletes every entry that carries *any* of the tags and whose key starts
  with `prefix`; it returns how many entries were deleted.
* `clear(prefix)` deletes every entry whose key starts with `prefix` (never the whole server unless
  `prefix == ""` and the store belongs to agentcache alone).
* Optional powers: `SupportsScan` (listing), `SupportsLocking` (cross-process single-flight) and
  `SupportsGenerations` (writes checked against invalidations; see `agentcache.backends.generations`).
* Driver failures are raised as `BackendError` / `BackendUnavailable` (mapped `from exc`); the
  fail-open policy lives in one wrapper, `agentcache.backends.resilient.ResilientBackend`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Protocol, runtime_checkable

from agentcache._record import Frozen

__all__ = [
    "AsyncBackend",
    "InlineAsyncFace",
    "Backend",
    "EntryInfo",
    "Item",
    "SupportsGenerations",
    "SupportsLocking",
    "SupportsScan",
    "SyncBackend",
]


class Item(Frozen):
    """One entry to write: `value` bytes under `key`, expiring after `ttl` seconds, carrying `tags`."""

    __match_args__ = ("key", "value", "ttl", "tags")
    __slots__ = __match_args__

    key: str
    value: bytes
    ttl: float | None
    tags: tuple[str, ...]

    def __init__(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        tags: tuple[str, ...] = (),
    ) -> None:
        _set = object.__setattr__  # frozen; one call per field is faster than `_fill` (built per call)
        _set(self, "key", key)
        _set(self, "value", value)
        _set(self, "ttl", ttl)
        _set(self, "tags", tags)


class EntryInfo(Frozen):
    """What `SupportsScan.scan` reports about a stored entry (timestamps are Unix seconds)."""

    __match_args__ = ("key", "size", "created_at", "expires_at", "accessed_at", "tags")
    __slots__ = __match_args__

    key: str
    size: int
    created_at: float | None
    expires_at: float | None
    accessed_at: float | None
    tags: tuple[str, ...]

    def __init__(
        self,
        key: str,
        size: int,
        created_at: float | None = None,
        expires_at: float | None = None,
        accessed_at: float | None = None,
        tags: tuple[str, ...] = (),
    ) -> None:
        _set = object.__setattr__  # frozen; one call per field is faster than `_fill` (one per stored entry)
        _set(self, "key", key)
        _set(self, "size", size)
        _set(self, "created_at", created_at)
        _set(self, "expires_at", expires_at)
        _set(self, "accessed_at", accessed_at)
        _set(self, "tags", tags)


class SyncBackend(Protocol):
    """The blocking face of a byte store."""

    def get(self, key: str, /) -> bytes | None:
        """Return the value stored under `key`, or `None` when it is missing or expired."""
        ...

    def get_many(self, keys: Sequence[str], /) -> list[bytes | None]:
        """Return the values of `keys`, in order, with `None` for each missing or expired one."""
        ...

    def set_many(self, items: Sequence[Item], /) -> None:
        """Store every item, replacing existing values, TTLs and tags."""
        ...

    def delete_many(self, keys: Sequence[str], /) -> int:
        """Delete `keys`; return how many existed."""
        ...

    def delete_tags(self, tags: Collection[str], /, prefix: str = "") -> int:
        """Delete every entry tagged with any of `tags` whose key starts with `prefix`; return the count."""
        ...

    def clear(self, prefix: str = "", /) -> int:
        """Delete every entry whose key starts with `prefix`; return the count."""
        ...

    def close(self) -> None:
        """Release connections and files; the backend may be reopened lazily by a later call."""
        ...


class AsyncBackend(Protocol):
    """The awaitable face of a byte store: the same contract as `SyncBackend`."""

    async def aget(self, key: str, /) -> bytes | None:
        """Awaitable `SyncBackend.get`."""
        ...

    async def aget_many(self, keys: Sequence[str], /) -> list[bytes | None]:
        """Awaitable `SyncBackend.get_many`."""
        ...

    async def aset_many(self, items: Sequence[Item], /) -> None:
        """Awaitable `SyncBackend.set_many`."""
        ...

    async def adelete_many(self, keys: Sequence[str], /) -> int:
        """Awaitable `SyncBackend.delete_many`."""
        ...

    async def adelete_tags(self, tags: Collection[str], /, prefix: str = "") -> int:
        """Awaitable `SyncBackend.delete_tags`."""
        ...

    async def aclear(self, prefix: str = "", /) -> int:
        """Awaitable `SyncBackend.clear`."""
        ...

    async def aclose(self) -> None:
        """Awaitable `SyncBackend.close`."""
        ...


class Backend(SyncBackend, AsyncBackend, Protocol):
    """A byte store with both faces; what `agentcache.Cache` expects."""


class InlineAsyncFace:
    """Mixin: the async face of a store whose sync methods never block (memory), calling them directly.

    A store whose sync methods do block (disk, network) must not use this: it would stall the event loop.
    """

    async def aget(self: SyncBackend, key: str, /) -> bytes | None:
        """Awaitable `get` (runs inline)."""
        return self.get(key)

    async def aget_many(self: SyncBackend, keys: Sequence[str], /) -> list[bytes | None]:
        """Awaitable `get_many` (runs inline)."""
        return self.get_many(keys)

    async def aset_many(self: SyncBackend, items: Sequence[Item], /) -> None:
        """Awaitable `set_many` (runs inline)."""
        self.set_many(items)

    async def adelete_many(self: SyncBackend, keys: Sequence[str], /) -> int:
        """Awaitable `delete_many` (runs inline)."""
        return self.delete_many(keys)

    async def adelete_tags(self: SyncBackend, tags: Collection[str], /, prefix: str = "") -> int:
        """Awaitable `delete_tags` (runs inline)."""
        return self.delete_tags(tags, prefix)

    async def aclear(self: SyncBackend, prefix: str = "", /) -> int:
        """Awaitable `clear` (runs inline)."""
        return self.clear(prefix)

    async def aclose(self: SyncBackend) -> None:
        """Awaitable `close`."""
        self.close()


@runtime_checkable
class SupportsScan(Protocol):
    """Optional power: list entries (used by the CLI's `ls`, `stats` and `show`)."""

    def scan(self, prefix: str = "", /, *, tag: str | None = None) -> Iterator[EntryInfo]:
        """Yield every live entry whose key starts with `prefix` (and carries `tag`, when given)."""
        ...


@runtime_checkable
class SupportsLocking(Protocol):
    """Optional power: a lock shared by every process using the store (cross-process single-flight).

    `acquire_lock` returns an owner token when the lock was taken, `None` when someone else holds it.
    A lock expires by itself after `ttl` seconds, so a crashed owner never blocks others for longer.
    `release_lock` releases it only if `token` still owns it.
    """

    def acquire_lock(self, name: str, ttl: float, /) -> str | None:
        """Try once to take the lock `name` for `ttl` seconds; return the owner token or `None`."""
        ...

    def release_lock(self, name: str, token: str, /) -> bool:
        """Release `name` if `token` owns it; return whether it did."""
        ...

    async def aacquire_lock(self, name: str, ttl: float, /) -> str | None:
        """Awaitable `acquire_lock`."""
        ...

    async def arelease_lock(self, name: str, token: str, /) -> bool:
        """Awaitable `release_lock`."""
        ...


@runtime_checkable
class SupportsGenerations(Protocol):
    """Optional power: writes checked against invalidations (design in `agentcache.backends.generations`).

    The store keeps generation counters per invalidation scope and bumps them atomically with every
    `delete_many`, `delete_tags` and `clear`. `read_fence` returns the counters a write of `keys` tagged
    `tags` depends on (an opaque value); `set_many_fenced` writes `items` only if none of them moved since,
    checked atomically with the write, and returns whether it wrote. A store without this power is still a
    valid `Backend`: the cache layers then fall back to an in-process check (see the module above).
    """

    def read_fence(self, keys: Sequence[str], tags: Collection[str], /) -> object:
        """The counters a write of `keys` tagged `tags` depends on, read now (call before computing)."""
        ...

    def set_many_fenced(self, items: Sequence[Item], fence: object, /) -> bool:
        """`set_many(items)` unless an invalidation covering them happened since `fence`; whether it wrote."""
        ...

    async def aread_fence(self, keys: Sequence[str], tags: Collection[str], /) -> object:
        """Awaitable `read_fence`."""
        ...

    async def aset_many_fenced(self, items: Sequence[Item], fence: object, /) -> bool:
        """Awaitable `set_many_fenced`."""
        ...
