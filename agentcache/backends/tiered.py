"""A two-tier store: an in-process L1 (`MemoryBackend`) in front of a shared L2, kept coherent by Redis itself.

Reads hit L1 at memory speed and fall back to L2, filling L1 with the entry's remaining TTL and tags. Every
write, delete, tag invalidation and clear goes to L2 and drops the affected L1 entries of this process.

Coherence across processes uses Redis' server-assisted client-side caching: a dedicated connection per
primary runs ``CLIENT TRACKING ON REDIRECT <itself> BCAST PREFIX <our key prefixes>`` and is subscribed to
``__redis__:invalidate``, so the server pushes the name of every key of ours that anyone writes, deletes,
expires or evicts. Every L1 read first drains, without blocking, what arrived on that connection (a
``poll`` and, when something is there, the parse), so an L1 hit is never served while an invalidation of it
sits unread in this process's socket. A background thread drains it too when nobody reads, and PINGs it.

Bound (measured in benchmarks/results/l1_coherence.md): the server writes the invalidation to every tracking
connection before the reply of the command that caused it, so on one host, once process A's ``invalidate()``
has returned, the invalidation is already in process B's socket and B's next read cannot be stale, idle or
busy. Across hosts, the bound is the difference between the two network paths (A -> B signal versus Redis ->
B push). While the tracking connection is down (Redis down, restarting, unreachable), L1 is bypassed, and it
is emptied when the connection (re)opens, since pushes sent meanwhile are lost; a silent connection is found
by a PING every `ping_interval` seconds (worst case about ``2 * ping_interval + socket_timeout``, 2.5 s by
default), and `l1_ttl`, when set, caps an entry's life further. A fill from L2 is dropped if any invalidation
was applied during that read, so a racing read never puts back a value that was just invalidated.

Use it through a URL: `redis://host:6379/0?l1=1000&l1_ttl=60` (see `agentcache.backends.redis.open_redis`).
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from agentcache import _fork
from agentcache.backends import flight
from agentcache.backends.base import Backend, EntryInfo, Item
from agentcache.backends.generations import (
    aget_fenced,
    aread_fence,
    awrite_fenced,
    get_fenced,
    read_fence,
    write_fenced,
)

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
        l2: the shared store. When it is a `RedisBackend`, Redis' invalidation tracking keeps every process's
            L1 coherent; any other `Backend` works too, but then L1 is only coherent within this process.
        l1_ttl: an upper bound, in seconds, on how long an entry stays in L1 (`None`: the L2 TTL).
        ping_interval: seconds between liveness PINGs on the tracking connection.

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
        self._bus: Any = l2 if hasattr(l2, "tracking_connections") else None
        self._entries = hasattr(l2, "get_entries")
        self._epoch = 0
        self._conns: list[Any] = []  # the tracking connections while connected (guarded by _rx_lock)
        self._pending: Any = _nothing  # whether anything arrived on the tracking connections (a zero-timeout poll)
        self._pongs: dict[int, float] = {}
        self._new_process_state()
        self._stop = threading.Event()
        _fork.track(self)

    def _new_process_state(self) -> None:
        """Locks, flags and the thread handle of this process (made again in a forked child)."""
        self._lock = threading.RLock()
        self._rx_lock = threading.Lock()  # the tracking connections: drained by readers and the thread
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def _after_fork_in_child(self) -> None:
        """Forget the parent's tracking connections (closing only this process's descriptors); the thread
        and a new connection start on first use, and L1, flushed then, is bypassed until they are up."""
        for conn in self._conns:
            sock = getattr(conn, "_sock", None)
            if sock is not None:
                sock.close()  # this process's descriptor only: no shutdown, so the parent's stream is intact
        _fork.keep(self._conns)
        self._conns, self._pending = [], _nothing
        self._new_process_state()

    def __repr__(self) -> str:
        return f"TieredBackend(l1={self.l1!r}, l2={self.l2!r}, l1_ttl={self.l1_ttl!r})"

    # -- coherence -------------------------------------------------------------------------------------------

    def _l1_usable(self) -> bool:
        """Whether L1 may serve now: the tracking connection is up and nothing unread sits on it."""
        if self._bus is None:
            return True
        if self._pid != os.getpid():
            self._start_subscriber()
        if not self._connected.is_set():
            return False
        return self._sync()

    def _sync(self) -> bool:
        """Apply every invalidation already received; False (and L1 bypassed) if the connection broke."""
        with self._rx_lock:
            if not self._connected.is_set():
                return False
            if not self._pending():
                return True
            try:
                self._drain_locked()
            except Exception as exc:
                self._broken(exc)
                return False
            return True

    def _broken(self, exc: BaseException) -> None:
        """The tracking connection failed under a reader: bypass and empty L1; the thread reconnects."""
        if self._connected.is_set():
            _log.warning("agentcache L1 invalidation connection lost Redis (%s); L1 bypassed", exc)
        self._connected.clear()
        self._flush()
        for conn in self._conns:
            conn.disconnect()

    def _start_subscriber(self) -> None:
        with self._lock:
            if self._pid == os.getpid() or self._stop.is_set():
                return
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
            conns: list[Any] = []
            try:
                conns = self._bus.tracking_connections()
                self._pongs = dict.fromkeys(range(len(conns)), time.monotonic())
                with self._rx_lock:
                    self._conns, self._pending = conns, _poller(conns)
                    self._flush()
                    self._connected.set()
                backoff = 0.05
                self._pump(conns)
            except Exception as exc:
                if self._connected.is_set():
                    _log.warning("agentcache L1 invalidation connection lost Redis (%s); L1 bypassed", exc)
            finally:
                with self._rx_lock:
                    self._connected.clear()
                    self._flush()
                    self._conns, self._pending = [], _nothing
                for conn in conns:
                    try:
                        conn.disconnect()
                    except Exception:
                        _log.debug("closing the tracking connection failed", exc_info=True)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 1.0)

    def _pump(self, conns: list[Any]) -> None:
        now = time.monotonic()
        next_ping = now
        while not self._stop.is_set() and self._connected.is_set():
            socks = [c._sock for c in conns]
            if any(sock is None for sock in socks):
                raise ConnectionError("the tracking connection was closed")
            select.select(socks, [], [], min(0.25, self.ping_interval))
            with self._rx_lock:
                if not self._connected.is_set():
                    return
                self._drain_locked()
                now = time.monotonic()
                if now >= next_ping:
                    for conn in conns:
                        conn.send_command("PING")
                    next_ping = now + self.ping_interval
            if now - min(self._pongs.values()) > 2 * self.ping_interval + 0.5:
                raise TimeoutError("the tracking connection stopped answering PING")

    def _drain_locked(self) -> None:
        """Read and apply everything received on the tracking connections (caller holds `_rx_lock`)."""
        for i, conn in enumerate(self._conns):
            while conn.can_read(timeout=0):
                message = conn.read_response()
                if isinstance(message, list) and message and _text(message[0]) == "pong":
                    self._pongs[i] = time.monotonic()
                    continue
                keys = self._bus.invalidated_keys(message)
                if keys is None:
                    self._flush()
                elif keys:
                    self._drop("del", keys, (), "")

    def _drop(self, op: str, keys: Sequence[str], tags: Collection[str], prefix: str) -> None:
        self._invalidated()
        if op == "del":
            self.l1.delete_many(keys)
        elif op == "tags" and self._entries:
            self.l1.delete_tags(tags, prefix)
        else:
            self.l1.clear(prefix)
        self._invalidated()

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
        # Apply what arrived during the L2 read first (it moves the epoch), then fill under the lock.
        if not items or not self._l1_usable():
            return
        with self._lock:
            if epoch == self._epoch and (self._bus is None or self._connected.is_set()):
                self.l1.set_many(items)

    @staticmethod
    def _values(found: Sequence[Entry | bytes | None]) -> list[bytes | None]:
        return [got if got is None or isinstance(got, bytes) else got[0] for got in found]

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
        return wrote

    def delete_many(self, keys: Sequence[str], /) -> int:
        """Delete from L2 and from every process's L1; return how many existed in L2."""
        self._drop("del", keys, (), "")
        try:
            count = self.l2.delete_many(keys)
        finally:
            self._drop("del", keys, (), "")
        return count

    def delete_tags(self, tags: Collection[str], /, prefix: str = "") -> int:
        """Delete tagged entries from L2 and from every process's L1; return the L2 count."""
        try:
            count = self.l2.delete_tags(tags, prefix)
        finally:
            self._drop("tags", (), tags, prefix)
        return count

    def clear(self, prefix: str = "", /) -> int:
        """Clear `prefix` in L2 and in every process's L1; return the L2 count."""
        try:
            count = self.l2.clear(prefix)
        finally:
            self._drop("clear", (), (), prefix)
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

    def lock_get(
        self, key: str, name: str, ttl: float, tags: Collection[str], /, *, force: bool = False, wait: float = 0.0
    ) -> tuple[str | None, bytes | None, object | None]:
        """L2's fused recheck + lock + fence (a miss's recheck, so L1 has nothing to offer)."""
        return flight.lock_get(self.l2, key, name, ttl, tags, force, wait, 0.05)

    def store_unlock(self, items: Sequence[Item], fence: object, name: str, token: str, /) -> bool:
        """L2's fused fenced write + lock release; the keys leave every L1 either way."""
        keys = [item.key for item in items]
        self._drop("del", keys, (), "")
        try:
            wrote = flight.store_unlock(self.l2, items, fence, name, token)
        finally:
            self._drop("del", keys, (), "")
        return wrote

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
        return wrote

    async def adelete_many(self, keys: Sequence[str], /) -> int:
        """Awaitable `delete_many`."""
        self._drop("del", keys, (), "")
        try:
            count = await self.l2.adelete_many(keys)
        finally:
            self._drop("del", keys, (), "")
        return count

    async def adelete_tags(self, tags: Collection[str], /, prefix: str = "") -> int:
        """Awaitable `delete_tags`."""
        try:
            count = await self.l2.adelete_tags(tags, prefix)
        finally:
            self._drop("tags", (), tags, prefix)
        return count

    async def aclear(self, prefix: str = "", /) -> int:
        """Awaitable `clear`."""
        try:
            count = await self.l2.aclear(prefix)
        finally:
            self._drop("clear", (), (), prefix)
        return count

    async def aacquire_lock(self, name: str, ttl: float, /) -> str | None:
        """Awaitable `acquire_lock`."""
        token: str | None = await self.l2.aacquire_lock(name, ttl)  # type: ignore[attr-defined]
        return token

    async def arelease_lock(self, name: str, token: str, /) -> bool:
        """Awaitable `release_lock`."""
        released: bool = await self.l2.arelease_lock(name, token)  # type: ignore[attr-defined]
        return released

    async def alock_get(
        self, key: str, name: str, ttl: float, tags: Collection[str], /, *, force: bool = False, wait: float = 0.0
    ) -> tuple[str | None, bytes | None, object | None]:
        """Awaitable `lock_get`."""
        return await flight.alock_get(self.l2, key, name, ttl, tags, force, wait, 0.05)

    async def astore_unlock(self, items: Sequence[Item], fence: object, name: str, token: str, /) -> bool:
        """Awaitable `store_unlock`."""
        keys = [item.key for item in items]
        self._drop("del", keys, (), "")
        try:
            wrote = await flight.astore_unlock(self.l2, items, fence, name, token)
        finally:
            self._drop("del", keys, (), "")
        return wrote

    async def aclose(self) -> None:
        """Awaitable `close`."""
        self._stop.set()
        self._connected.clear()
        self.l1.clear("")
        await self.l2.aclose()


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _nothing() -> bool:
    return False


def _poller(conns: list[Any]) -> Any:
    """A zero-timeout readiness check of every tracking connection at once (one `poll` system call)."""
    # Each drain reads until the parser's buffer is empty, and only drains (under `_rx_lock`) read the socket,
    # so between drains "something to read" means "bytes on a socket".
    if hasattr(select, "poll"):
        poll = select.poll()
        for conn in conns:
            poll.register(conn._sock, select.POLLIN | select.POLLERR | select.POLLHUP)
        return lambda: bool(poll.poll(0))
    return lambda: any(conn.can_read(timeout=0) for conn in conns)
