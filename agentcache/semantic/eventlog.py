"""An optional backend power: an append-only event log, which keeps every process's semantic index in sync.

The vectors themselves live in the backend (ordinary entries). When the store is shared by several processes,
each one holds a local index per partition; the log tells them which vector records were added or removed
elsewhere, so a paraphrase stored by process A is found by process B on its next lookup, without rescanning.
A backend may implement `SupportsEventLog` itself; for `RedisBackend` the adapter in
`agentcache.semantic.redis_sync` does it with a Redis Stream. Stores without a log (memory, SQLite) fall back
to a periodic rescan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = ["EventBatch", "SupportsEventLog"]


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
