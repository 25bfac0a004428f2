"""Cross-process single-flight steps of a miss, fused into single round trips when the store offers them.

A miss on a store with cross-process locks (`SupportsLocking`) rechecks the entry, takes the lock and reads the
fence of its write (`lock_get`), computes, then writes and releases the lock (`store_unlock`). A caller that
found the lock held calls `lock_get` again with `wait`: it first waits for the lock's release. Redis fuses each
step into one Lua call, and a release wakes the waiters at once (a stream entry ends their blocking `XREAD`,
pipelined before the recheck), so a miss costs three round trips (the read, `lock_get`, `store_unlock`), a
waiter one more per wait, and nobody polls. These helpers are what the flow drivers call: they use a store's
fused methods when it has them and fall back to the separate `get` / `acquire_lock` / `get_fenced` /
`set_many_fenced` / `release_lock` calls, and to sleeping `poll` seconds instead of a wake-up, otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence

from agentcache.backends.generations import aget_fenced, awrite_fenced, get_fenced, write_fenced

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from agentcache.backends.base import Item

__all__ = ["LockGot", "alock_get", "astore_unlock", "lock_get", "store_unlock"]

LockGot = tuple[str | None, bytes | None, object | None]
"""`(owner token or None, value or None, fence or None)`: the fence is read only with the lock."""


def lock_get(
    store: Any,
    key: str,
    name: str,
    ttl: float,
    tags: Collection[str],
    force: bool = False,
    wait: float = 0.0,
    poll: float = 0.0,
) -> LockGot:
    """Read `key`; when it is missing (or `force`: the entry there is unusable), try to take lock `name` for `ttl`
    seconds and read the fence of writing `key` tagged `tags`. With `wait`, first wait for the lock's release: at
    most `wait` seconds on a store that wakes waiters, else `poll` seconds."""
    fused = getattr(store, "lock_get", None)
    if fused is not None:
        got: LockGot = fused(key, name, ttl, tags, force=force, wait=wait)
        return got
    if wait > 0:
        time.sleep(poll)
    raw = None
    if not force:
        raw = store.get(key)
        if raw is not None:
            return None, raw, None
    token: str | None = store.acquire_lock(name, ttl)
    if token is None:
        return None, raw, None
    raw, fence = get_fenced(store, key, tags)
    return token, raw, fence


async def alock_get(
    store: Any,
    key: str,
    name: str,
    ttl: float,
    tags: Collection[str],
    force: bool = False,
    wait: float = 0.0,
    poll: float = 0.0,
) -> LockGot:
    """Awaitable `lock_get`."""
    fused = getattr(store, "alock_get", None)
    if fused is not None:
        got: LockGot = await fused(key, name, ttl, tags, force=force, wait=wait)
        return got
    if wait > 0:
        import asyncio  # not at import time: `import agentcache` stays light

        await asyncio.sleep(poll)
    raw = None
    if not force:
        raw = await store.aget(key)
        if raw is not None:
            return None, raw, None
    token: str | None = await store.aacquire_lock(name, ttl)
    if token is None:
        return None, raw, None
    raw, fence = await aget_fenced(store, key, tags)
    return token, raw, fence


def store_unlock(store: Any, items: Sequence[Item], fence: object | None, name: str, token: str) -> bool:
    """Write `items` unless an invalidation moved `fence` (see `write_fenced`), then release lock `name` held
    with `token`; return whether the write went through. The lock is released whatever happens to the write."""
    fused = getattr(store, "store_unlock", None)
    if fused is not None and fence is not None:
        return bool(fused(items, fence, name, token))
    try:
        return write_fenced(store, items, fence)
    finally:
        store.release_lock(name, token)


async def astore_unlock(store: Any, items: Sequence[Item], fence: object | None, name: str, token: str) -> bool:
    """Awaitable `store_unlock`."""
    fused = getattr(store, "astore_unlock", None)
    if fused is not None and fence is not None:
        return bool(await fused(items, fence, name, token))
    try:
        return await awrite_fenced(store, items, fence)
    finally:
        await store.arelease_lock(name, token)
