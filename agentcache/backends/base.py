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

from collections.abc import Collection, Sequence

from agentcache._record import Frozen

TYPE_CHECKING = False
if TYPE_CHECKING:
    from agentcache.backends.protocols import (
        AsyncBackend,
        Backend,
        SupportsGenerations,
        SupportsLocking,
        SupportsScan,
        SyncBackend,
    )

__all__ = [
    "LOCKING_METHODS",
    "SCAN_METHODS",
    "AsyncBackend",
    "InlineAsyncFace",
    "Backend",
    "EntryInfo",
    "Item",
    "SupportsGenerations",
    "SupportsLocking",
    "SupportsScan",
    "SyncBackend",
    "supports",
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


SCAN_METHODS = ("scan",)
"""The methods of `SupportsScan`."""
LOCKING_METHODS = ("acquire_lock", "release_lock", "aacquire_lock", "arelease_lock")
"""The methods of `SupportsLocking`."""


def supports(store: object, methods: tuple[str, ...]) -> bool:
    """Whether `store` has every one of `methods` (not `None`): what ``isinstance(store, SupportsScan)`` answers
    for ``SCAN_METHODS``, without loading `typing` (~2.5 ms of a process's first hit, #13)."""
    return all(getattr(store, name, None) is not None for name in methods)


_PROTOCOLS = frozenset(
    ("AsyncBackend", "Backend", "SupportsGenerations", "SupportsLocking", "SupportsScan", "SyncBackend")
)


def __getattr__(name: str) -> object:
    # The protocols live in `agentcache.backends.protocols` (they import `typing`, ~2.5 ms that a first hit
    # never needs); they are still importable from here.
    if name not in _PROTOCOLS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from agentcache.backends import protocols

    value: object = getattr(protocols, name)
    return value
