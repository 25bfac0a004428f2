"""Sans-I/O flows and their two drivers.

A flow is a generator that yields operations (`Get`, `Put`, `LockGet`, ...) and receives their results; it holds
every decision, and `run_sync` / `run_async` perform the I/O. The miss path of every cache layer is written
once this way and runs unchanged under both drivers (the idea of httpx's ``Auth.auth_flow``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection, Generator, Sequence

from agentcache.backends import flight as _flight
from agentcache.backends import generations as _gen

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar, cast

    from agentcache.backends.base import Backend, Item

    T = TypeVar("T")
else:

    def cast(_type: object, value: object) -> object:
        """`typing.cast` (an identity), without importing `typing` on a process's first hit (#13)."""
        return value


__all__ = [
    "Compute",
    "Flow",
    "Get",
    "GetFenced",
    "GetMany",
    "Lock",
    "LockGet",
    "ReadFence",
    "Sleep",
    "Put",
    "StoreUnlock",
    "Unlock",
    "no_acompute",
    "no_compute",
    "run_async",
    "run_sync",
]


class _Op:
    """Base of the operations a flow yields (plain slotted classes: cheap to define at import)."""

    __slots__ = ()

    def __repr__(self) -> str:
        names: tuple[str, ...] = self.__slots__
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
        return f"{type(self).__name__}({fields})"


class Get(_Op):
    """Read one key; the reply is `bytes | None`."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key


class GetMany(_Op):
    """Read several keys; the reply is `list[bytes | None]`."""

    __slots__ = ("keys",)

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = keys


class GetFenced(_Op):
    """Read one key and the fence of writing it with `tags` (one round trip on Redis); the reply is
    `(bytes | None, fence | None)` (see `agentcache.backends.generations`)."""

    __slots__ = ("key", "tags")

    def __init__(self, key: str, tags: Collection[str]) -> None:
        self.key = key
        self.tags = tags


class ReadFence(_Op):
    """Read the fence of writing `keys` with `tags`; the reply is the fence, `None` without generations."""

    __slots__ = ("keys", "tags")

    def __init__(self, keys: Sequence[str], tags: Collection[str]) -> None:
        self.keys = keys
        self.tags = tags


class Put(_Op):
    """Write items unless an invalidation moved `fence` (`None`: unconditionally); the reply is whether it wrote."""

    __slots__ = ("fence", "items")

    def __init__(self, items: Sequence[Item], fence: object | None = None) -> None:
        self.items = items
        self.fence = fence


class Compute(_Op):
    """Call the user's function with `args`; the reply is `(result, seconds)`; its exception is thrown in."""

    __slots__ = ("args",)

    def __init__(self, args: Any = None) -> None:
        self.args = args


class Lock(_Op):
    """Try to take a cross-process lock; the reply is an owner token or `None`."""

    __slots__ = ("name", "ttl")

    def __init__(self, name: str, ttl: float) -> None:
        self.name = name
        self.ttl = ttl


class Unlock(_Op):
    """Release a cross-process lock; the reply is `bool`."""

    __slots__ = ("name", "token")

    def __init__(self, name: str, token: str) -> None:
        self.name = name
        self.token = token


class LockGet(_Op):
    """Read `key`; when it is missing (or `force`: the entry there is unusable), try to take lock `name` and read
    the fence of writing `key` tagged `tags` (one round trip on Redis). With `wait`, first wait for the lock's
    release: woken by it on a store that can (at most `wait` seconds; Redis, still one round trip), else sleep
    `poll` seconds. The reply is `(token | None, bytes | None, fence | None)`; see `backends.flight.lock_get`."""

    __slots__ = ("force", "key", "name", "poll", "tags", "ttl", "wait")

    def __init__(
        self,
        key: str,
        name: str,
        ttl: float,
        tags: Collection[str],
        force: bool = False,
        wait: float = 0.0,
        poll: float = 0.0,
    ) -> None:
        self.key = key
        self.name = name
        self.ttl = ttl
        self.tags = tags
        self.force = force
        self.wait = wait
        self.poll = poll


class StoreUnlock(_Op):
    """`Put(items, fence)` then `Unlock(name, token)` (one round trip on Redis, whose release wakes the lock's
    waiters); the reply is whether it wrote. The lock is released in any case."""

    __slots__ = ("fence", "items", "name", "token")

    def __init__(self, items: Sequence[Item], fence: object | None, name: str, token: str) -> None:
        self.items = items
        self.fence = fence
        self.name = name
        self.token = token


class Sleep(_Op):
    """Wait; the reply is `None`."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


Op = Get | GetMany | GetFenced | ReadFence | Put | Compute | Lock | Unlock | Sleep | LockGet | StoreUnlock
if TYPE_CHECKING:
    Flow = Generator[Op, Any, T]


def no_compute(_: Any) -> Any:
    """The `compute` of `run_sync` for flows that compute nothing (reads, writes, fences)."""
    raise AssertionError("this flow computes nothing")


async def no_acompute(_: Any) -> Any:
    """The `compute` of `run_async` for flows that compute nothing."""
    raise AssertionError("this flow computes nothing")


def run_sync(flow: Flow[T], store: Backend, compute: Callable[[Any], Any]) -> T:
    """Drive `flow` with blocking I/O; `compute(args)` runs the user's function.

    An exception raised by an operation is thrown into the flow, so its ``finally`` blocks (lock release)
    always run; the flow decides whether it propagates.
    """
    perf = time.perf_counter
    try:
        op = flow.send(None)
        while True:
            t = type(op)
            try:
                if t is Compute:
                    start = perf()
                    reply: Any = (compute(cast(Compute, op).args), 0.0)
                    reply = (reply[0], perf() - start)
                elif t is Get:
                    reply = store.get(cast(Get, op).key)
                elif t is GetMany:
                    reply = store.get_many(cast(GetMany, op).keys)
                elif t is Put:
                    write = cast(Put, op)
                    reply = _gen.write_fenced(store, write.items, write.fence)
                elif t is GetFenced:
                    fenced = cast(GetFenced, op)
                    reply = _gen.get_fenced(store, fenced.key, fenced.tags)
                elif t is ReadFence:
                    fence = cast(ReadFence, op)
                    reply = _gen.read_fence(store, fence.keys, fence.tags)
                elif t is LockGet:
                    lg = cast(LockGet, op)
                    reply = _flight.lock_get(store, lg.key, lg.name, lg.ttl, lg.tags, lg.force, lg.wait, lg.poll)
                elif t is StoreUnlock:
                    su = cast(StoreUnlock, op)
                    reply = _flight.store_unlock(store, su.items, su.fence, su.name, su.token)
                elif t is Lock:
                    lock = cast(Lock, op)
                    reply = store.acquire_lock(lock.name, lock.ttl)  # type: ignore[attr-defined]
                elif t is Unlock:
                    unlock = cast(Unlock, op)
                    reply = store.release_lock(unlock.name, unlock.token)  # type: ignore[attr-defined]
                else:
                    time.sleep(cast(Sleep, op).seconds)
                    reply = None
            except BaseException as exc:
                op = flow.throw(exc)
                continue
            op = flow.send(reply)
    except StopIteration as stop:
        return cast("T", stop.value)


async def run_async(flow: Flow[T], store: Backend, compute: Callable[[Any], Awaitable[Any]]) -> T:
    """Drive `flow` with awaitable I/O; `compute(args)` returns the user's coroutine. Same contract."""
    import asyncio

    perf = time.perf_counter
    try:
        op = flow.send(None)
        while True:
            t = type(op)
            try:
                if t is Compute:
                    start = perf()
                    reply: Any = (await compute(cast(Compute, op).args), 0.0)
                    reply = (reply[0], perf() - start)
                elif t is Get:
                    reply = await store.aget(cast(Get, op).key)
                elif t is GetMany:
                    reply = await store.aget_many(cast(GetMany, op).keys)
                elif t is Put:
                    write = cast(Put, op)
                    reply = await _gen.awrite_fenced(store, write.items, write.fence)
                elif t is GetFenced:
                    fenced = cast(GetFenced, op)
                    reply = await _gen.aget_fenced(store, fenced.key, fenced.tags)
                elif t is ReadFence:
                    fence = cast(ReadFence, op)
                    reply = await _gen.aread_fence(store, fence.keys, fence.tags)
                elif t is LockGet:
                    lg = cast(LockGet, op)
                    reply = await _flight.alock_get(store, lg.key, lg.name, lg.ttl, lg.tags, lg.force, lg.wait, lg.poll)
                elif t is StoreUnlock:
                    su = cast(StoreUnlock, op)
                    reply = await _flight.astore_unlock(store, su.items, su.fence, su.name, su.token)
                elif t is Lock:
                    lock = cast(Lock, op)
                    reply = await store.aacquire_lock(lock.name, lock.ttl)  # type: ignore[attr-defined]
                elif t is Unlock:
                    unlock = cast(Unlock, op)
                    reply = await store.arelease_lock(unlock.name, unlock.token)  # type: ignore[attr-defined]
                else:
                    await asyncio.sleep(cast(Sleep, op).seconds)
                    reply = None
            except BaseException as exc:
                op = flow.throw(exc)
                continue
            op = flow.send(reply)
    except StopIteration as stop:
        return cast("T", stop.value)


def __getattr__(name: str) -> object:
    # `Flow` is defined for type checkers above; a module importing it at run time gets it built here, with
    # `typing` (which a process's first hit never loads, #13).
    if name != "Flow":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from types import GenericAlias
    from typing import Any, TypeVar

    return GenericAlias(Generator, (Op, Any, TypeVar("T")))  # `Generator[Op, Any, T]`
