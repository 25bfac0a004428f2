"""The backend protocols (re-exported by `agentcache.backends.base`, where they are documented)."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Protocol, runtime_checkable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from agentcache.backends.base import EntryInfo, Item

__all__ = ["AsyncBackend", "Backend", "SupportsGenerations", "SupportsLocking", "SupportsScan", "SyncBackend"]


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
