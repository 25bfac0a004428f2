"""Single-flight for caches used as a lookup, then an update after the caller's own call (LangChain's `BaseCache`).

Such a protocol never hands the cache the computation, so N concurrent identical lookups would all miss and all
call upstream. `Handoff` turns the pair into one `CacheLayer.call` (the engine's one miss path and single flight,
in-process and across processes on stores that take locks):

* ``lookup`` reads; on a miss it starts ``layer.call(request, compute)`` aside (a thread; a task in async code)
  and returns when that call returned (a hit after all, another caller's result) or its ``compute`` began: then
  this caller leads, gets `None` and makes the call itself;
* ``update`` by the leader is the compute's result: the layer stores it and the waiting lookups get it;
* a leader that gives no update (its call failed, it was cancelled) is *abandoned*: `abandon` (or the end of
  the leader's task, or `timeout` seconds) makes its compute raise `Abandoned`, which the single flight hands to
  the waiting lookups, and they return `None`: each caller then calls upstream itself. Nothing is stored.

Values are never `None` (`None` in ``update`` means "not storable": the waiting lookups call upstream too).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from agentcache.engine.layer import MISS

if TYPE_CHECKING:
    from agentcache.engine.layer import CacheLayer

__all__ = ["Abandoned", "Handoff", "abandon"]

_NONE: Any = object()  # no value given (yet)


class Abandoned(Exception):
    """The caller leading a computation gave no value: its call failed, was cancelled or outlived the wait."""


class _Slot:
    """A lookup that missed: its `CacheLayer.call` running aside, until the caller's update (or abandon)."""

    def __init__(self, owner: object, key: tuple[Handoff, Hashable], timeout: float) -> None:
        self.owner = owner
        self.key = key
        self.timeout = timeout
        self.leading = False  # the aside call's compute began: this lookup's caller makes the call
        self.result: Any = None  # what the aside call returned (None: nothing usable)
        self.value: Any = _NONE
        self.closed = False  # given, abandoned or timed out: later gives are refused
        self.lock = threading.Lock()

    def give(self, value: Any) -> bool:
        """Hand the leader's value to the compute (`_NONE`: abandon); false when the compute gave up already."""
        with self.lock:
            if self.closed:
                return False
            self.closed = True
            self.value = value
        self.wake()
        return True

    def expire(self) -> None:
        """The leader outlived the wait: its update, if it comes, is stored on its own."""
        with self.lock:
            self.closed = True
        _forget(self)

    def wake(self) -> None:
        raise NotImplementedError

    def taken(self) -> Any:
        """The compute's result: the given value, or `Abandoned`."""
        if self.value is _NONE:
            raise Abandoned()
        return self.value


class _ThreadSlot(_Slot):
    def __init__(self, owner: object, key: tuple[Handoff, Hashable], timeout: float) -> None:
        super().__init__(owner, key, timeout)
        self.started = threading.Event()  # the compute began, or the call returned
        self.given = threading.Event()
        self.done = threading.Event()

    def wake(self) -> None:
        self.given.set()

    def run(self, layer: CacheLayer, request: Hashable) -> None:
        try:
            self.result = layer.call(request, self.compute)
        except Exception:  # Abandoned (re-raised to followers too): the caller calls upstream itself
            self.result = None
        finally:
            self.done.set()
            self.started.set()

    def compute(self) -> Any:
        self.leading = True
        self.started.set()
        if not self.given.wait(self.timeout):
            self.expire()
        return self.taken()


class _TaskSlot(_Slot):
    def __init__(self, owner: object, key: tuple[Handoff, Hashable], timeout: float) -> None:
        super().__init__(owner, key, timeout)
        self.loop = asyncio.get_running_loop()
        self.started: asyncio.Future[None] = self.loop.create_future()
        self.given: asyncio.Future[None] = self.loop.create_future()
        self.task: asyncio.Future[None] | None = None

    def wake(self) -> None:
        self.loop.call_soon_threadsafe(_resolve, self.given)

    async def run(self, layer: CacheLayer, request: Hashable) -> None:
        try:
            self.result = await layer.acall(request, self.compute)
        except Exception:
            self.result = None
        finally:
            _resolve(self.started)

    async def compute(self) -> Any:
        self.leading = True
        _resolve(self.started)
        try:
            await asyncio.wait_for(asyncio.shield(self.given), self.timeout)
        except TimeoutError:
            self.expire()
        return self.taken()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_slots: dict[object, dict[tuple[Handoff, Hashable], _Slot]] = {}  # owner (thread id or task) -> its open slots
_slots_lock = threading.Lock()


def _claim(slot: _Slot) -> bool:
    with _slots_lock:
        mine = _slots.setdefault(slot.owner, {})
        if slot.key in mine:  # this caller already leads this request (twice the same prompt in one batch)
            return False
        mine[slot.key] = slot
        return True


def _forget(slot: _Slot) -> None:
    with _slots_lock:
        mine = _slots.get(slot.owner)
        if mine is not None and mine.get(slot.key) is slot:
            del mine[slot.key]
            if not mine:
                del _slots[slot.owner]


def _take(owner: object, key: tuple[Handoff, Hashable]) -> _Slot | None:
    with _slots_lock:
        mine = _slots.get(owner)
        if mine is None:
            return None
        slot = mine.pop(key, None)
        if not mine:
            del _slots[owner]
        return slot


def abandon(owner: object) -> None:
    """The calls led by `owner` (a thread id or an asyncio task) failed: release whoever waits for them."""
    with _slots_lock:
        mine = _slots.pop(owner, {})
    for slot in mine.values():
        slot.give(_NONE)


def _abandon_slot(slot: _Slot) -> None:
    _forget(slot)
    slot.give(_NONE)


class Handoff:
    """Lookups and updates of `layer` with single flight; `timeout`: the longest a computation is waited for."""

    def __init__(self, layer: CacheLayer, timeout: float) -> None:
        self.layer = layer
        self.timeout = timeout

    def lookup(self, request: Hashable) -> Any:
        """The cached value, another caller's fresh result, or `None`: then this caller calls and `update`s."""
        value = self.layer.peek(request)
        if value is not MISS:
            return value
        slot = _ThreadSlot(threading.get_ident(), (self, request), self.timeout)
        if not _claim(slot):
            return None
        context = contextvars.copy_context()  # the caller's namespace() and mode() blocks
        threading.Thread(target=context.run, args=(slot.run, self.layer, request), daemon=True).start()
        slot.started.wait()
        if not slot.leading:
            _forget(slot)
        return slot.result

    def update(self, request: Hashable, value: Any) -> None:
        """The caller's result (`None`: not to be stored): stored, and handed to the lookups waiting for it."""
        slot = _take(threading.get_ident(), (self, request))
        if slot is None or not slot.give(value):
            if value is not None:
                self.layer.set(request, value)
            return
        if isinstance(slot, _ThreadSlot):
            slot.done.wait(self.timeout)

    async def alookup(self, request: Hashable) -> Any:
        """Async `lookup`; a leader whose task ends without `aupdate` is abandoned."""
        value = await self.layer.apeek(request)
        if value is not MISS:
            return value
        task = asyncio.current_task()
        slot = _TaskSlot(task if task is not None else threading.get_ident(), (self, request), self.timeout)
        if not _claim(slot):
            return None
        slot.task = asyncio.ensure_future(slot.run(self.layer, request))
        try:
            await asyncio.shield(slot.started)
        except asyncio.CancelledError:
            _abandon_slot(slot)
            slot.task.cancel()
            raise
        if not slot.leading:
            _forget(slot)
        elif task is not None:
            task.add_done_callback(lambda _: _abandon_slot(slot))
        return slot.result

    async def aupdate(self, request: Hashable, value: Any) -> None:
        """Async `update`."""
        owner: object = asyncio.current_task() or threading.get_ident()
        slot = _take(owner, (self, request))
        if slot is None or not slot.give(value):
            if value is not None:
                await self.layer.aset(request, value)
            return
        if isinstance(slot, _TaskSlot) and slot.task is not None:
            await asyncio.shield(slot.task)
