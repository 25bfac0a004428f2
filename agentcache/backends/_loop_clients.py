"""Asyncio clients kept per event loop, each closed while its own loop can still close it.

An asyncio connection belongs to the loop it was opened on: using it from another loop fails, and once that
loop is closed nothing can close it cleanly (the garbage collector then warns `unclosed Connection`). A
script that calls `asyncio.run()` twice, or a test suite with one loop per test, meets both problems.

`LoopClients` keeps one client per running loop (keyed weakly by the loop) and registers a tiny async
generator with that loop. `asyncio.run()`, `asyncio.Runner` and pytest-asyncio finalize every live async
generator (`loop.shutdown_asyncgens()`) before closing the loop, so the generator's `finally` closes the
client on its own loop, in time. `close()` closes the remaining clients from any thread: on their loop when
it is still usable, otherwise (a loop closed without that shutdown step) by closing their sockets directly.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, Generic, TypeVar

__all__ = ["LoopClients"]

_log = logging.getLogger(__name__)

C = TypeVar("C")


class _Entry(Generic[C]):
    """One loop's client and the async generator that closes it at the loop's shutdown."""

    __slots__ = ("client", "keeper")

    def __init__(self, client: C) -> None:
        self.client = client
        self.keeper: Any = None


class LoopClients(Generic[C]):
    """One client per running event loop (see the module docstring).

    Args:
        factory: builds a client; called inside the running loop that will own it.
        closer: closes a client on its own loop (e.g. `redis.asyncio.Redis.aclose`).
        abandon: closes a client synchronously when its loop is gone (only sockets are left to close).
    """

    def __init__(
        self,
        factory: Callable[[], C],
        closer: Callable[[C], Awaitable[object]],
        abandon: Callable[[C], None],
    ) -> None:
        self._factory = factory
        self._closer = closer
        self._abandon = abandon
        self._entries: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Entry[C]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._closing: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._entries)

    def abandon_all(self) -> None:
        """In a forked child: forget every client (kept referenced, never closed) and make a new lock."""
        from agentcache import _fork

        _fork.keep(dict(self._entries))
        self._entries = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self) -> C:
        """The client of the running loop, created on first use. Must be called inside a running loop."""
        loop = asyncio.get_running_loop()
        entry = self._entries.get(loop)
        if entry is not None:
            return entry.client
        return self._open(loop)

    def _open(self, loop: asyncio.AbstractEventLoop) -> C:
        with self._lock:
            entry = self._entries.get(loop)
            if entry is not None:
                return entry.client
            entry = _Entry(self._factory())
            keeper = self._keep(loop, entry)
            # Start the generator by hand (it yields without awaiting): its first step registers it with the
            # running loop, whose shutdown_asyncgens() will then run its `finally` before the loop closes.
            try:
                keeper.asend(None).send(None)
            except StopIteration:
                pass
            entry.keeper = keeper
            self._entries[loop] = entry
            self._prune()
            return entry.client

    async def _keep(self, loop: asyncio.AbstractEventLoop, entry: _Entry[C]) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            with self._lock:
                if self._entries.get(loop) is entry:
                    del self._entries[loop]
            try:
                await self._closer(entry.client)
            except Exception:
                _log.debug("closing an asyncio Redis client failed", exc_info=True)

    def _prune(self) -> None:
        """Forget clients of loops that were closed without finalizing async generators (caller holds the lock)."""
        for loop in [lp for lp in self._entries if lp.is_closed()]:
            self._abandon_quietly(self._entries.pop(loop).client)

    def _abandon_quietly(self, client: C) -> None:
        try:
            self._abandon(client)
        except Exception:
            _log.debug("closing the sockets of an abandoned asyncio client failed", exc_info=True)

    def _take_all(self) -> list[tuple[asyncio.AbstractEventLoop, _Entry[C]]]:
        with self._lock:
            entries = list(self._entries.items())
            self._entries.clear()
        return entries

    def _close_elsewhere(self, loop: asyncio.AbstractEventLoop, entry: _Entry[C]) -> None:
        """Close `entry` from a context that is not its loop's (or from its loop without awaiting)."""
        if loop.is_closed():
            self._abandon_quietly(entry.client)
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            task = loop.create_task(entry.keeper.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        elif loop.is_running():
            asyncio.run_coroutine_threadsafe(entry.keeper.aclose(), loop)
        elif running is None:
            loop.run_until_complete(entry.keeper.aclose())
        else:
            self._abandon_quietly(entry.client)

    def close(self) -> None:
        """Close every client: on its own loop when that loop is usable, else by closing its sockets."""
        for loop, entry in self._take_all():
            self._close_elsewhere(loop, entry)

    async def aclose(self) -> None:
        """Close every client; the running loop's is awaited, the others are closed as `close` does."""
        running = asyncio.get_running_loop()
        for loop, entry in self._take_all():
            if loop is running:
                await entry.keeper.aclose()
            else:
                self._close_elsewhere(loop, entry)
