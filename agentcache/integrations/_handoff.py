"""Single flight for misses the caller computes itself, outside the cache: a lookup, then an update after the
caller's own call (LangChain's `BaseCache`), or a stream recorded while its caller reads it (the HTTP transport).

Such a protocol never hands the cache the computation, so N concurrent identical lookups would all miss and all
call upstream. `Handoff` turns the pair into one ``call`` of a `Target`: a cache with one miss path and single
flight, such as `CacheLayer` (in-process and across processes on stores that take locks) or a semantic cache's
decorated function (in-process):

* ``start`` reads; on a miss it starts ``target.call(request, compute)`` aside (a thread; a task in async code)
  and returns when that call returned (a hit after all, another caller's result) or its ``compute`` began: then
  this caller leads (a `Lead`) and makes the call itself;
* ``Lead.finish(value)`` is the compute's result: the target stores it and the waiting callers get it;
* ``Lead.abandon()`` (the call failed; or `timeout` seconds passed) makes the compute raise `Abandoned`, which
  the single flight hands to the waiting callers: they get `None` and call upstream themselves. Nothing is
  stored.

``lookup``/``update`` find a caller's lead again by the request and the calling thread (or asyncio task).
Values are never `None` (`None` in ``finish`` means "not storable": the waiting callers call upstream too).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Protocol

from agentcache.engine.layer import MISS

__all__ = ["Abandoned", "Handoff", "Lead", "Target", "abandon_here"]


class Target(Protocol):
    """What a `Handoff` drives (`CacheLayer` is one): ``peek`` returns `MISS` when nothing is cached without
    counting a miss; ``call`` returns the cached value or runs ``compute`` once for concurrent identical
    requests, storing its result."""

    def peek(self, request: Any) -> Any: ...

    async def apeek(self, request: Any) -> Any: ...

    def call(self, request: Any, compute: Callable[[], Any]) -> Any: ...

    async def acall(self, request: Any, compute: Callable[[], Awaitable[Any]]) -> Any: ...

    def set(self, request: Any, value: Any) -> object: ...

    async def aset(self, request: Any, value: Any) -> object: ...


_NONE: Any = object()  # no value given (yet)


class Abandoned(Exception):
    """The caller leading a computation gave no value: its call failed, was cancelled or outlived the wait."""


class _Slot:
    """A lookup that missed: its `CacheLayer.call` running aside, until the caller's update (or abandon)."""

    def __init__(self, owner: object, key: tuple[Handoff, Any], timeout: float) -> None:
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

    def wake(self) -> None:
        raise NotImplementedError

    def taken(self) -> Any:
        """The compute's result: the given value, or `Abandoned`."""
        if self.value is _NONE:
            raise Abandoned()
        return self.value


class _ThreadSlot(_Slot):
    def __init__(self, owner: object, key: tuple[Handoff, Any], timeout: float) -> None:
        super().__init__(owner, key, timeout)
        self.started = threading.Event()  # the compute began, or the call returned
        self.given = threading.Event()
        self.done = threading.Event()

    def wake(self) -> None:
        self.given.set()

    def run(self, target: Target, request: Any) -> None:
        try:
            self.result = target.call(request, self.compute)
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
    def __init__(self, owner: object, key: tuple[Handoff, Any], timeout: float) -> None:
        super().__init__(owner, key, timeout)
        self.loop = asyncio.get_running_loop()
        self.started: asyncio.Future[None] = self.loop.create_future()
        self.given: asyncio.Future[None] = self.loop.create_future()
        self.task: asyncio.Future[None] | None = None

    def wake(self) -> None:
        try:
            self.loop.call_soon_threadsafe(_resolve, self.given)
        except RuntimeError:  # the loop is closed: nothing waits on it any more
            pass

    async def run(self, target: Target, request: Any) -> None:
        try:
            self.result = await target.acall(request, self.compute)
        except Exception:
            self.result = None
        finally:
            _resolve(self.started)

    async def compute(self) -> Any:
        self.leading = True
        _resolve(self.started)
        try:
            await asyncio.wait_for(asyncio.shield(self.given), self.timeout)
        except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
            self.expire()
        return self.taken()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_leads: dict[object, dict[tuple[Handoff, Any], Lead]] = {}  # owner (thread id or task) -> its open leads
_leads_lock = threading.Lock()


def _led(owner: object, key: tuple[Handoff, Hashable]) -> bool:
    with _leads_lock:
        return key in _leads.get(owner, ())


def _claim(lead: Lead) -> None:
    with _leads_lock:
        _leads.setdefault(lead.owner, {})[lead.key] = lead
    _leader.set(lead.owner)


def _take(owner: object, key: tuple[Handoff, Hashable]) -> Lead | None:
    with _leads_lock:
        mine = _leads.get(owner)
        if mine is None:
            return None
        lead = mine.pop(key, None)
        if not mine:
            del _leads[owner]
        return lead


def _release(lead: Lead) -> None:
    """Forget `lead` and abandon it (a no-op once finished)."""
    with _leads_lock:
        mine = _leads.get(lead.owner)
        if mine is not None and mine.get(lead.key) is lead:
            del mine[lead.key]
            if not mine:
                del _leads[lead.owner]
    lead.abandon()


_leader: contextvars.ContextVar[object] = contextvars.ContextVar("agentcache_leader", default=None)
"""The owner of the last lead claimed in this context: seen by tasks the owner starts afterwards (LangChain runs
the error callbacks of a completion model's async call in such tasks)."""


def abandon_here() -> None:
    """The call running here failed: release whoever waits for the calls led by this thread, this asyncio task
    and the owner of this context's last lead."""
    owners = {threading.get_ident(), _leader.get()}
    try:
        owners.add(asyncio.current_task())
    except RuntimeError:  # no event loop in this thread
        pass
    for owner in owners:
        if owner is not None:
            _abandon(owner)


def _abandon(owner: object) -> None:
    with _leads_lock:
        mine = _leads.pop(owner, {})
    for lead in mine.values():
        lead.abandon()


class Handoff:
    """Single-flight misses of `target` computed by the caller; `timeout`: the longest a computation is waited
    for; `admit`: which values are stored (the target's own rule, e.g. the layer's ``cache_if``; `None`: any
    value but `None`), consulted when a leader's value comes after its waiters left.

    `start` / `astart` for callers that hold on to their lead (the HTTP transport's streams); `lookup` /
    `update` (and async) for protocols that only repeat the request (LangChain's), where the lead is found again
    by the request and the calling thread (or task).
    """

    def __init__(self, target: Target, timeout: float, admit: Callable[[Any], bool] | None = None) -> None:
        self.target = target
        self.timeout = timeout
        self.admit = admit

    # -- holding the lead ----------------------------------------------------------------------------------

    def start(self, request: Any, owner: object = None) -> tuple[Any, Lead | None]:
        """``(value, None)``: a hit, or another caller's result (`None`: that caller failed: call upstream
        yourself); ``(None, lead)``: make the call, then `Lead.finish` (or `Lead.abandon`)."""
        value = self.target.peek(request)
        if value is not MISS:
            return value, None
        slot = _ThreadSlot(owner, (self, request), self.timeout)
        context = contextvars.copy_context()  # the caller's namespace() and mode() blocks
        threading.Thread(target=context.run, args=(slot.run, self.target, request), daemon=True).start()
        slot.started.wait()
        return (None, Lead(self, request, slot)) if slot.leading else (slot.result, None)

    async def astart(self, request: Any, owner: object = None) -> tuple[Any, Lead | None]:
        """Async `start`."""
        value = await self.target.apeek(request)
        if value is not MISS:
            return value, None
        slot = _TaskSlot(owner, (self, request), self.timeout)
        slot.task = task = asyncio.ensure_future(slot.run(self.target, request))
        try:
            await asyncio.shield(slot.started)
        except asyncio.CancelledError:
            slot.give(_NONE)
            task.cancel()
            raise
        return (None, Lead(self, request, slot)) if slot.leading else (slot.result, None)

    # -- lookup / update ---------------------------------------------------------------------------------

    def lookup(self, request: Hashable) -> Any:
        """The cached value, another caller's fresh result, or `None`: then this caller calls and `update`s."""
        owner = threading.get_ident()
        if _led(owner, (self, request)):  # twice the same request in one batch: never wait for ourselves
            return None
        value, lead = self.start(request, owner)
        if lead is not None:
            _claim(lead)
        return value

    def update(self, request: Hashable, value: Any) -> None:
        """The caller's result (`None`: not to be stored): stored, and handed to the lookups waiting for it."""
        lead = _take(threading.get_ident(), (self, request))
        if lead is not None:
            lead.finish(value)
        elif value is not None:
            self.target.set(request, value)

    async def alookup(self, request: Hashable) -> Any:
        """Async `lookup`; a leader whose task ends without `aupdate` is abandoned."""
        task = asyncio.current_task()
        owner: object = task if task is not None else threading.get_ident()
        if _led(owner, (self, request)):
            return None
        value, lead = await self.astart(request, owner)
        if lead is not None:
            _claim(lead)
            if task is not None:
                task.add_done_callback(lambda _: _release(lead))
        return value

    async def aupdate(self, request: Hashable, value: Any) -> None:
        """Async `update`."""
        task = asyncio.current_task()
        lead = _take(task if task is not None else threading.get_ident(), (self, request))
        if lead is not None:
            await lead.afinish(value)
        elif value is not None:
            await self.target.aset(request, value)


class Lead:
    """A caller's lead of a computation: `finish` with its result, or `abandon` it."""

    def __init__(self, handoff: Handoff, request: Any, slot: _Slot) -> None:
        self.handoff = handoff
        self.request = request
        self.slot = slot

    @property
    def owner(self) -> object:
        return self.slot.owner

    @property
    def key(self) -> tuple[Handoff, Any]:
        return self.slot.key

    def storable(self, value: Any) -> bool:
        """Whether `value` is stored on its own, once the wait expired (the handoff's `admit` still applies)."""
        admit = self.handoff.admit
        return value is not None and (admit is None or bool(admit(value)))

    def finish(self, value: Any) -> None:
        """Store `value` (`None`: nothing to store) and hand it to the waiting callers."""
        slot = self.slot
        if not slot.give(value):  # the wait expired: the waiters left, store it on its own
            if self.storable(value):
                self.handoff.target.set(self.request, value)
            return
        if isinstance(slot, _ThreadSlot):
            slot.done.wait(slot.timeout)

    async def afinish(self, value: Any) -> None:
        """Async `finish`."""
        slot = self.slot
        if not slot.give(value):
            if self.storable(value):
                await self.handoff.target.aset(self.request, value)
            return
        if isinstance(slot, _TaskSlot) and slot.task is not None:
            await asyncio.shield(slot.task)

    def abandon(self) -> None:
        """No value will come (the call failed): the waiting callers call upstream themselves."""
        self.slot.give(_NONE)
