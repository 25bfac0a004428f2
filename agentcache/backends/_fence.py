"""Pending invalidations: what a store must neither serve nor store in this process until they land.

An invalidation that could not reach its store is never dropped. Its `Invalidation` joins the store's `Fence`,
which a background thread retries (with backoff, at most `MAX_DELAY` apart) until it lands. Meanwhile:

* a read of a key the fence may cover returns a miss: by exact key, by key prefix (a namespace or a clear), and,
  for a tag invalidation, every key under its prefix (entries' tags are not known when they are read);
* a write of an item the fence covers is dropped: by key, prefix, or (precisely) by the item's tags.

With no pending invalidation the cost on the hit path is one truth test of an empty tuple.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence

from agentcache._record import Frozen
from agentcache.backends.base import Item

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    from typing import Literal

    from agentcache.backends.base import Backend

__all__ = ["Fence", "Invalidation"]


def _logger() -> logging.Logger:
    """The "agentcache" logger; `logging` is imported on first use (~3 ms of a process's first hit, #13)."""
    import logging

    return logging.getLogger("agentcache")


FIRST_DELAY = 0.05  # seconds before the first background retry
MAX_DELAY = 0.5  # background retries are at most this far apart


class Invalidation(Frozen):
    """One invalidation: delete `keys`, or the entries tagged any of `tags` under `prefix`, or all of `prefix`."""

    __match_args__ = ("op", "keys", "tags", "prefix")
    __slots__ = __match_args__

    op: Literal["delete_many", "delete_tags", "clear"]
    keys: frozenset[str]
    tags: frozenset[str]
    prefix: str

    def __init__(
        self,
        op: Literal["delete_many", "delete_tags", "clear"],
        keys: frozenset[str] = frozenset(),
        tags: frozenset[str] = frozenset(),
        prefix: str = "",
    ) -> None:
        _set = object.__setattr__  # frozen; one call per field is faster than `_fill` (built per call)
        _set(self, "op", op)
        _set(self, "keys", keys)
        _set(self, "tags", tags)
        _set(self, "prefix", prefix)

    @classmethod
    def of_keys(cls, keys: Sequence[str]) -> Invalidation:
        """Delete exact keys."""
        return cls("delete_many", keys=frozenset(keys))

    @classmethod
    def of_tags(cls, tags: Sequence[str], prefix: str = "") -> Invalidation:
        """Delete entries carrying any of `tags` whose key starts with `prefix`."""
        return cls("delete_tags", tags=frozenset(tags), prefix=prefix)

    @classmethod
    def of_prefix(cls, prefix: str) -> Invalidation:
        """Delete every entry whose key starts with `prefix`."""
        return cls("clear", prefix=prefix)

    def __str__(self) -> str:
        if self.op == "delete_many":
            return f"keys {sorted(self.keys)[:3]}{'...' if len(self.keys) > 3 else ''}"
        if self.op == "delete_tags":
            return f"tags {sorted(self.tags)} under {self.prefix!r}"
        return f"everything under {self.prefix!r}"

    def may_cover(self, key: str) -> bool:
        """Whether the entry under `key` may be one this invalidation deletes (a read must not serve it)."""
        if self.op == "delete_many":
            return key in self.keys
        return key.startswith(self.prefix)

    def covers(self, item: Item) -> bool:
        """Whether this invalidation would delete `item` (a write must not store it)."""
        if self.op == "delete_tags":
            return item.key.startswith(self.prefix) and not self.tags.isdisjoint(item.tags)
        return self.may_cover(item.key)

    def apply(self, store: Backend) -> int:
        """Run it on `store` (blocking); returns the count the store reports."""
        if self.op == "delete_many":
            return store.delete_many(list(self.keys))
        if self.op == "delete_tags":
            return store.delete_tags(list(self.tags), self.prefix)
        return store.clear(self.prefix)

    async def aapply(self, store: Backend) -> int:
        """Awaitable `apply`."""
        if self.op == "delete_many":
            return await store.adelete_many(list(self.keys))
        if self.op == "delete_tags":
            return await store.adelete_tags(list(self.tags), self.prefix)
        return await store.aclear(self.prefix)


class Fence:
    """The pending invalidations of one store, retried in a background thread until each lands.

    Args:
        retry: applies one pending invalidation to the store (raising on failure); rebound with `bind` when the
            store is reopened.
        name: names the store in the thread's name and in log lines.
    """

    def __init__(self, retry: Callable[[Invalidation], object] | None = None, name: str = "") -> None:
        self.pending: tuple[Invalidation, ...] = ()
        self._retry = retry
        self._name = name
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._pid = 0

    def __repr__(self) -> str:
        return f"Fence({self._name!r}, pending={len(self.pending)})"

    def bind(self, retry: Callable[[Invalidation], object], name: str = "") -> None:
        """Retry through `retry` from now on (the store was reopened)."""
        self._retry = retry
        self._name = name or self._name

    # -- what the store's wrapper asks on every read and write (only when something is pending) ---------------

    def blocks(self, key: str) -> bool:
        """Whether a read of `key` must miss."""
        return any(inv.may_cover(key) for inv in self.pending)

    def allowed(self, items: Sequence[Item]) -> list[Item]:
        """The items a write may store."""
        pending = self.pending
        return [item for item in items if not any(inv.covers(item) for inv in pending)]

    # -- adding and lifting ---------------------------------------------------------------------------------------

    def add(self, invalidations: Sequence[Invalidation]) -> None:
        """Keep `invalidations` pending (fenced) and make sure the retry thread runs."""
        with self._lock:
            self.pending = (*self.pending, *(i for i in invalidations if i not in self.pending))
            self._ensure_thread()

    def ensure_running(self) -> None:
        """Restart the retry thread in a forked child that inherited pending invalidations."""
        if self._pid != os.getpid() and self.pending:
            with self._lock:
                self._ensure_thread()

    def landed(self, invalidation: Invalidation) -> None:
        """Lift `invalidation` (it reached the store, directly or inside a broader one)."""
        with self._lock:
            self.pending = tuple(i for i in self.pending if i != invalidation)

    def retry_now(self) -> bool:
        """Try every pending invalidation once, in order; lift those that land. Returns whether none is left."""
        retry = self._retry
        if retry is None:
            return not self.pending
        for invalidation in self.pending:
            try:
                retry(invalidation)
            except Exception:
                return False
            self.landed(invalidation)
            _logger().info("agentcache: a pending invalidation (%s) reached %s", invalidation, self._name)
        return not self.pending

    def stop(self) -> None:
        """Forget every pending invalidation and stop retrying (for `agentcache.reset()` and tests)."""
        with self._lock:
            self._stopped = True
            self.pending = ()
        self._wake.set()

    # -- the retry thread ----------------------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        """Start the retry thread if this process has none running (caller holds the lock)."""
        thread = self._thread
        if self._stopped or (thread is not None and thread.is_alive() and self._pid == os.getpid()):
            return
        self._pid = os.getpid()  # a forked child inherits the pending list but not the thread
        self._thread = threading.Thread(
            target=self._run, name=f"agentcache-invalidation-retry {self._name}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        delay = FIRST_DELAY
        while True:
            self._wake.wait(delay)
            self._wake.clear()
            with self._lock:
                if self._stopped or not self.pending:
                    self._thread = None
                    return
            delay = FIRST_DELAY if self.retry_now() else min(delay * 2, MAX_DELAY)
