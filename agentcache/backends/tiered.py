"""A two-tier store: an in-process L1 (`MemoryBackend`) in front of a shared L2, kept coherent by pub/sub.

Reads hit L1 at memory speed and fall back to L2, filling L1 with the entry's remaining TTL and tags. Every
write, delete, tag invalidation and clear goes to L2, drops the affected L1 entries, and is published on the
L2's Redis channel; a subscriber thread in every process drops the same entries from its own L1.

Staleness bound: while the subscriber is connected, another process's change reaches this L1 within one
pub/sub delivery (about a millisecond on a LAN; the tests assert < 100 ms). While it is not connected (Redis
down, restarting, or unreachable), L1 is bypassed, and it is flushed when the subscriber (re)connects, since
messages sent meanwhile are lost. A silent connection is detected by a PING every `ping_interval` seconds,
so the worst case is about `2 * ping_interval + socket_timeout` (about 2.5 s by default) and `l1_ttl`, when
set, caps it further. A fill from L2 is dropped if any invalidation arrived during that read, so a racing
read never puts back a value that was just invalidated.

Use it through a URL: `redis://host:6379/0?l1=1000&l1_ttl=60` (see `agentcache.backends.redis.open_redis`).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from agentcache.backends.base import Backend, EntryInfo, Item
from agentcache.backends.generations import (
    aget_fenced,
    aread_fence,
    awrite_fenced,
    get_fenced,
    read_fence,
    write_fenced,
)
from agentcache.errors import BackendError

if TYPE_CHECKING:
    from agentcache.backends.memory import MemoryBackend

__all__ = ["TieredBackend"]

_log = logging.getLogger(__name__)

Entry = tuple[bytes, float | None, tuple[str, ...]]


def _cap(ttl: float | None, cap: float | None) -> float | None:
    if cap is None:
        return ttl
    return cap if ttl is None else min(ttl, cap)


class TieredBackend:
    """`Backend` + `SupportsScan` with an L1 `MemoryBackend` in front of `l2` (see the module docstring).

    Args:
        l1: the in-process store (its own `max_entries` bounds it).
        l2: the shared store. When it is a `RedisBackend`, its pub/sub channel keeps every process's L1
            coherent; any other `Backend` works too, but then L1 is only coherent within this process.
        l1_ttl: an upper bound, in seconds, on how long an entry stays in L1 (`None`: the L2 TTL).
        ping_interval: seconds between liveness PINGs on the subscription.

    Example:
        >>> from agentcache.backends.memory import MemoryBackend
        >>> from agentcache.backends.redis import RedisBackend
        >>> b = TieredBackend(MemoryBackend(max_entries=1000), RedisBackend("redis://localhost:6379/0"))
    """

    def __init__(
        self,
        l1: MemoryBackend,
        l2: Backend,
        *,
        l1_ttl: float | None = None,
        ping_interval: float = 1.0,
    ) -> None:
        self.l1 = l1
        self.l2 = l2
        self.l1_ttl = l1_ttl
        self.ping_interval = ping_interval
        self._bus: Any = l2 if hasattr(l2, "subscriber_client") and hasattr(l2, "publish") else None
        self._entries = hasattr(l2, "get_entries")
        self._origin = secrets.token_hex(8)
        self._epoch = 0
        self._lock = threading.RLock()
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def __repr__(self) -> str:
        return f"TieredBackend(l1={self.l1!r}, l2={self.l2!r}, l1_ttl={self.l1_ttl!r})"

    # -- coherence -------------------------------------------------------------------------------------------

    def _l1_usable(self) -> bool:
        if self._bus is None:
            return True
        if self._pid != os.getpid():
            self._start_subscriber()
        return self._connected.is_set()

    def _start_subscriber(self) -> None:
        with self._lock:
            if self._pid == os.getpid() or self._stop.is_set():
                return
            # A forked child inherits L1 and the flags but not the thread.
            self._connected.clear()
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._listen, name="agentcache-l1-invalidation", daemon=True)
            self._thread.start()

    def _invalidated(self) -> None:
        with self._lock:
            self._epoch += 1

    def _flush(self) -> None:
        self._invalidated()
        self.l1.clear("")

    def _listen(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            client, owned, pubsub = None, False, None
            try:
                client, owned = self._bus.subscriber_client()
                pubsub = client.pubsub()
                pubsub.subscribe(self._bus.channel())
                deadline = time.monotonic() + 5
                while (msg := pubsub.get_message(timeout=0.5)) is None or msg["type"] != "subscribe":
                    if time.monotonic() > deadline or self._stop.is_set():
                        raise TimeoutError("no subscribe confirmation")
                self._flush()
                self._connected.set()
                backoff = 0.05
                self._pump(pubsub)
            except Exception as exc:
                if self._connected.is_set():
                    _log.warning("agentcache L1 invalidation subscriber lost Redis (%s); L1 bypassed", exc)
            finally:
                self._connected.clear()
                self._flush()
                for closer in (pubsub, client if owned else None):
                    try:
                        if closer is not None:
                            closer.close()
                    except Exception:
                        _log.debug("closing the subscriber failed", exc_info=True)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 1.0)

    def _pump(self, pubsub: Any) -> None:
        last_pong = next_ping = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_ping:
                pubsub.ping()
                next_ping = now + self.ping_interval
            if now - last_pong > 2 * self.ping_interval + 0.5:
                raise TimeoutError("the subscription stopped answering PING")
            msg = pubsub.get_message(timeout=min(0.25, self.ping_interval))
            if msg is None:
                continue
            if msg["type"] == "pong":
                last_pong = time.monotonic()
            elif msg["type"] == "message":
                self._apply(msg["data"])

    def _apply(self, data: bytes) -> None:
        """Drop what a message from another process invalidates (everything, if it cannot be read)."""
        try:
            msg = json.loads(data)
            if msg.get("o") == self._origin:
                return
            self._drop(msg["op"], msg.get("keys", ()), msg.get("tags", ()), msg.get("prefix", ""))
        except (ValueError, KeyError, TypeError, AttributeError):
            self._flush()

    def _drop(self, op: str, keys: Sequence[str], tags: Collection[str], prefix: str) -> None:
        self._invalidated()
        if op == "del":
            self.l1.delete_many(keys)
        elif op == "tags" and self._entries:
            self.l1.delete_tags(tags, prefix)
        else:
            self.l1.clear(prefix)
        self._invalidated()

    def _message(self, op: str, keys: Sequence[str] = (), tags: Collection[str] = (), prefix: str = "") -> bytes:
        body: dict[str, Any] = {"o": self._origin, "op": op}
        if op == "del":
            body["keys"] = list(keys)
        elif op == "tags":
            body["tags"], body["prefix"] = list(tags), prefix
        else:
            body["prefix"] = prefix
        return json.dumps(body, separators=(",", ":")).encode()

    def _fills(self, keys: Sequence[str], found: Sequence[Entry | bytes | None]) -> list[Item]:
        """L1 items for what L2 returned (remaining TTL and tags when L2 reports them)."""
        items = []
        for key, got in zip(keys, found, strict=True):
            if got is None:
                continue
            if isinstance(got, bytes):
                items.append(Item(key, got, self.l1_ttl))
            else:
                value, ttl, tags = got
                items.append(Item(key, value, _cap(ttl, self.l1_ttl), tags))
        return items

    def _fill(self, epoch: int, items: list[Item]) -> None:
        with self._lock:
            if items and epoch == self._epoch and self._l1_usable():
                self.l1.set_many(items)

    @staticmethod
    def _values(found: Sequence[Entry | bytes | None]) -> list[bytes | None]:
        return [got if got is None or isinstance(got, bytes) else got[0] for got in found]

    def _publish(self, message: bytes) -> None:
        if self._bus is not None:
            try:
                self._bus.publish(message)
            except BackendError:
                _log.debug("publishing an invalidation failed; subscribers flush on reconnect", exc_info=True)

    async def _apublish(self, message: bytes) -> None:
        if self._bus is not None:
            try:
                await self._bus.apublish(message)
            except BackendError:
                _log.debug("publishing an invalidation failed; subscribers flush on reconnect", exc_info=True)

    def _local_hits(self, keys: Sequence[str]) -> tuple[list[bytes | None], list[int], int]:
        """L1 values, indexes still missing, and the epoch to check before filling."""
        epoch = self._epoch
        values: list[bytes | None] = self.l1.get_many(keys) if self._l1_usable() else [None] * len(keys)
        return values, [i for i, v in enumerate(values) if v is None], epoch

    # -- sync face -------------------------------------------------------------------------------------------

    def get(self, key: str, /) -> bytes | None:
        """Return the value from L1, else from L2 (filling L1), else `None`."""
        if self._l1_usable():
            value = self.l1.get(key)
            if value is not None:
                return value
        return self.get_many((key,))[0]

    def get_many(self, keys: Sequence[str], /) -> list[bytes | None]:
        """Return the values of `keys`; only L1 misses go to L2 (one round trip)."""
        values, missing, epoch = self._local_hits(keys)
        if missing:
            wanted = [keys[i] for i in missing]
            found = self.l2.get_entries(wanted) if self._entries else self.l2.get_many(wanted)  # type: ignore[attr-defined]
            self._fill(epoch, self._fills(wanted, found))
            for i, value in zip(missing, self._values(found), strict=True):
                values[i] = value
        return values

    def set_many(self, items: Sequence[Item], /) -> None:
        """Write to L2, drop the keys from every process's L1 (the next read refills from L2)."""
        keys = [item.key for item in items]
        self._drop("del", keys, (), "")
        try:
            self.l2.set_many(items)
        finally:
            self._drop("del", keys, (), "")
        self._publish(self._message("del", keys))

    def read_fence(self, keys: Sequence[str], tags: Collection[str], /) -> object:
        """L2's fence (generations live in the shared tier; `None` when L2 has none)."""
        return read_fence(self.l2, keys, tags)

    def get_fenced(self, key: str, tags: Collection[str], /) -> tuple[bytes | None, object]:
        """L2's fused read + fence (the recheck of a miss, so L1 has nothing to offer)."""
        return get_fenced(self.l2, key, tags)

    def set_many_fenced(self, items: Sequence[Item], fence: object, /) -> bool:
        """`set_many` through L2's fenced write; the keys leave every L1 either way."""
        keys = [item.key for item in items]
        self._drop("del", keys, (), "")
        try:
            wrote = write_fenced(self.l2, items, fence)
        finally:
            self._drop("del", keys, (), "")
        if wrote:
            self._publish(self._message("del", keys))
        return wrote

    def delete_many(self, keys: Sequence[str], /) -> int:
        """Delete from L2 and from every process's L1; return how many existed in L2."""
        self._drop("del", keys, (), "")
        try:
            count = self.l2.delete_many(keys)
        finally:
            self._drop("del", keys, (), "")
        self._publish(self._message("del", keys))
        return count

    def delete_tags(self, tags: Collection[str], /, prefix: str = "") -> int:
        """Delete tagged entries from L2 and from every process's L1; return the L2 count."""
        try:
            count = self.l2.delete_tags(tags, prefix)
        finally:
            self._drop("tags", (), tags, prefix)
        self._publish(self._message("tags", tags=tags, prefix=prefix))
        return count

    def clear(self, prefix: str = "", /) -> int:
        """Clear `prefix` in L2 and in every process's L1; return the L2 count."""
        try:
            count = self.l2.clear(prefix)
        finally:
            self._drop("clear", (), (), prefix)
        self._publish(self._message("clear", prefix=prefix))
        return count

    def scan(self, prefix: str = "", /, *, tag: str | None = None) -> Iterator[EntryInfo]:
        """Yield L2's entries (L1 only holds copies)."""
        scan = getattr(self.l2, "scan", None)
        if scan is None:
            return iter(())
        entries: Iterator[EntryInfo] = scan(prefix, tag=tag)
        return entries

    def acquire_lock(self, name: str, ttl: float, /) -> str | None:
        """L2's `acquire_lock` (locks are only meaningful in the shared tier)."""
        token: str | None = self.l2.acquire_lock(name, ttl)  # type: ignore[attr-defined]
        return token

    def release_lock(self, name: str, token: str, /) -> bool:
        """L2's `release_lock`."""
        released: bool = self.l2.release_lock(name, token)  # type: ignore[attr-defined]
        return released

    def close(self) -> None:
        """Stop the subscriber, empty L1 and close L2."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(2)
        self._connected.clear()
        self.l1.clear("")
        self.l2.close()

    # -- async face ------------------------------------------------------------------------------------------

    async def aget(self, key: str, /) -> bytes | None:
        """Awaitable `get`."""
        if self._l1_usable():
            value = self.l1.get(key)
            if value is not None:
                return value
        return (await self.aget_many((key,)))[0]

    async def aget_many(self, keys: Sequence[str], /) -> list[bytes | None]:
        """Awaitable `get_many`."""
        values, missing, epoch = self._local_hits(keys)
        if missing:
            wanted = [keys[i] for i in missing]
            found = await (self.l2.aget_entries(wanted) if self._entries else self.l2.aget_many(wanted))  # type: ignore[attr-defined]
            self._fill(epoch, self._fills(wanted, found))
            for i, value in zip(missing, self._values(found), strict=True):
                values[i] = value
        return values

    async def aset_many(self, items: Sequence[Item], /) -> None:
        """Awaitable `set_many`."""
        keys = [item.key for item in items]
        self._drop("del", keys, (), "")
        try:
            await self.l2.aset_many(items)
        finally:
            self._drop("del", keys, (), "")
        await self._apublish(self._message("del", keys))

    async def aread_fence(self, keys: Sequence[str], tags: Collection[str], /) -> object:
        """Awaitable `read_fence`."""
        return await aread_fence(self.l2, keys, tags)

    async def aget_fenced(self, key: str, tags: Collection[str], /) -> tuple[bytes | None, object]:
        """Awaitable `get_fenced`."""
        return await aget_fenced(self.l2, key, tags)

    async def aset_many_fenced(self, items: Sequence[Item], fence: object, /) -> bool:
        """Awaitable `set_many_fenced`."""
        keys = [item.key for item in items]
        self._drop("del", keys, (), "")
        try:
            wrote = await awrite_fenced(self.l2, items, fence)
        finally:
            self._drop("del", keys, (), "")
        if wrote:
            await self._apublish(self._message("del", keys))
        return wrote

    async def adelete_many(self, keys: Sequence[str], /) -> int:
        """Awaitable `delete_many`."""
        self._drop("del", keys, (), "")
        try:
            count = await self.l2.adelete_many(keys)
        finally:
            self._drop("del", keys, (), "")
        await self._apublish(self._message("del", keys))
        return count

    async def adelete_tags(self, tags: Collection[str], /, prefix: str = "") -> int:
        """Awaitable `delete_tags`."""
        try:
            count = await self.l2.adelete_tags(tags, prefix)
        finally:
            self._drop("tags", (), tags, prefix)
        await self._apublish(self._message("tags", tags=tags, prefix=prefix))
        return count

    async def aclear(self, prefix: str = "", /) -> int:
        """Awaitable `clear`."""
        try:
            count = await self.l2.aclear(prefix)
        finally:
            self._drop("clear", (), (), prefix)
        await self._apublish(self._message("clear", prefix=prefix))
        return count

    async def aacquire_lock(self, name: str, ttl: float, /) -> str | None:
        """Awaitable `acquire_lock`."""
        token: str | None = await self.l2.aacquire_lock(name, ttl)  # type: ignore[attr-defined]
        return token

    async def arelease_lock(self, name: str, token: str, /) -> bool:
        """Awaitable `release_lock`."""
        released: bool = await self.l2.arelease_lock(name, token)  # type: ignore[attr-defined]
        return released

    async def aclose(self) -> None:
        """Awaitable `close`."""
        self._stop.set()
        self._connected.clear()
        self.l1.clear("")
        await self.l2.aclose()
