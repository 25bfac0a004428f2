"""The event log of a store, found once per store and process: the store's own (`SupportsEventLog`), or the
Redis Stream adapter of `agentcache.semantic.redis_sync` for a `RedisBackend` (looking through wrappers and
tiers); `None` for stores without one (memory, SQLite)."""

from __future__ import annotations

import os
import sys
import threading
import weakref
from typing import Any

from agentcache.semantic.eventlog import SupportsEventLog

__all__ = ["event_log_for", "forget_event_logs"]

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
