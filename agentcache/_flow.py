"""Sans-I/O flows and their two drivers.

A flow is a generator that yields operations (`Get`, `Store`, `Lock`, ...) and receives their results; it holds
every decision, and `run_sync` / `run_async` perform the I/O. The miss path of every cache layer is written
once this way and runs unchanged under both drivers (the idea of httpx's ``Auth.auth_flow``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from .backends.base import Backend, Item

__all__ = ["Compute", "Flow", "Get", "GetMany", "Lock", "Sleep", "Store", "Unlock", "run_async", "run_sync"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Get:
    """Read one key; the reply is `bytes | None`."""

    key: str


@dataclass(frozen=True, slots=True)
class GetMany:
    """Read several keys; the reply is `list[bytes | None]`."""

    keys: Sequence[str]


@dataclass(frozen=True, slots=True)
class Store:
    """Write items; the reply is `None`."""

    items: Sequence[Item]


@dataclass(frozen=True, slots=True)
class Compute:
    """Call the user's function with `args`; the reply is `(result, seconds)`; its exception is thrown in."""

    args: Any = None


@dataclass(frozen=True, slots=True)
class Lock:
    """Try to take a cross-process lock; the reply is an owner token or `None`."""

    name: str
    ttl: float


@dataclass(frozen=True, slots=True)
class Unlock:
    """Release a cross-process lock; the reply is `bool`."""

    name: str
    token: str


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait; the reply is `None`."""

    seconds: float


Op = Get | GetMany | Store | Compute | Lock | Unlock | Sleep
Flow = Generator[Op, Any, T]


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
                elif t is Store:
                    store.set_many(cast(Store, op).items)
                    reply = None
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
        return cast(T, stop.value)


async def run_async(flow: Flow[T], store: Backend, compute: Callable[[Any], Awaitable[Any]]) -> T:
    """Drive `flow` with awaitable I/O; `compute(args)` returns the user's coroutine. Same contract."""
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
                elif t is Store:
                    await store.aset_many(cast(Store, op).items)
                    reply = None
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
        return cast(T, stop.value)
