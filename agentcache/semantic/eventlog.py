"""An optional backend power: an append-only event log, which keeps every process's semantic index in sync.

The vectors themselves live in the backend (ordinary entries). When the store is shared by several processes,
each one holds a local index per partition; the log tells them which vector records were added or removed
elsewhere, so a paraphrase stored by process A is found by process B on its next lookup, without rescanning.
A backend may implement `SupportsEventLog` itself; for `RedisBackend` the adapter in
`agentcache.semantic.redis_sync` does it with a Redis Stream. Stores without a log fall back to a periodic
rescan on a background thread (SQLite), or to the removals the store itself reports (memory).
"""

from __future__ import annotations

import os
import sys
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["EventBatch", "SupportsEventLog", "event_log_for", "forget_event_logs"]


@dataclass(frozen=True, slots=True)
class EventBatch:
    """What `SupportsEventLog.read` returns.

    events: `(event id, fields)` pairs, oldest first. `last_id`: the cursor to pass to the next `read`.
    complete: `False` when events after the given cursor may have been lost (the log was trimmed, expired or
    deleted): the reader must rebuild its state from the backend.
    """

    events: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    last_id: str = "0-0"
    complete: bool = True


@runtime_checkable
class SupportsEventLog(Protocol):
    """Optional power: named append-only logs shared by every process using the store.

    `append` adds one event and returns its id (ids increase within a log). `read(stream, None)` returns no
    events and the id to read after from now on; `read(stream, after_id)` returns every event newer than
    `after_id`. Both raise `BackendError` on failure; callers degrade (a rescan replaces the log).
    """

    def append(self, stream: str, fields: Mapping[str, str], /) -> str:
        """Append one event to `stream`; return its id."""
        ...

    def read(self, stream: str, after_id: str | None, /) -> EventBatch:
        """Return the events of `stream` after `after_id` (see the class docstring)."""
        ...


_logs: weakref.WeakKeyDictionary[Any, tuple[int, SupportsEventLog | None]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _find_log(store: Any) -> SupportsEventLog | None:
    seen: set[int] = set()
    node = store
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        if isinstance(node, SupportsEventLog):
            return node
        redis_module = sys.modules.get("agentcache.backends.redis")  # only loaded when Redis is in use
        if redis_module is not None and isinstance(node, redis_module.RedisBackend):
            from agentcache.semantic.redis_sync import RedisEventLog

            return RedisEventLog(node)
        node = getattr(node, "inner", None) or getattr(node, "l2", None)
    return None


def event_log_for(store: Any) -> SupportsEventLog | None:
    """The event log of `store` (looking through wrappers and tiers), or `None` when it has none.

    One adapter per store and process (a forked child builds its own connection).
    """
    entry = _logs.get(store)
    if entry is not None and entry[0] == os.getpid():
        return entry[1]
    with _lock:
        log = _find_log(store)
        _logs[store] = (os.getpid(), log)
        return log


def forget_event_logs() -> None:
    """Drop every adapter (they are rebuilt on next use)."""
    with _lock:
        for _, log in list(_logs.values()):
            close = getattr(log, "close", None)
            if callable(close):
                close()
        _logs.clear()
