"""`RedisEventLog`: `SupportsEventLog` for a `RedisBackend`, on Redis Streams (XADD / XRANGE).

Each namespace has one stream (created by its first reader), stored in the namespace's group next to its
data (so it lives in the same cluster slot and `clear(namespace)` removes it too); it is trimmed to about
`MAXLEN` events and expires a day after its last event. A reader that finds its cursor older than the first
event left (trimmed), or the stream gone (cleared, expired, server restarted), gets `complete=False` and
rebuilds from the backend. Uses the backend's public `subscriber_client()` (a blocking client) and its key
`layout`; the async face of the semantic cache calls it from a worker thread. After a connection failure the
log is left alone for `COOLDOWN` seconds, so lookups do not each pay a timeout during an outage.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

from agentcache.errors import BackendError, BackendUnavailable
from agentcache.semantic.eventlog import EventBatch

__all__ = ["COOLDOWN", "MAXLEN", "STREAM_TTL_MS", "RedisEventLog"]

#: Events kept per stream (approximate trimming); a reader further behind than this rebuilds.
MAXLEN = 10_000
#: A stream nobody writes to for a day disappears; readers then rebuild, which is cheap for idle caches.
STREAM_TTL_MS = 86_400_000
#: Seconds an unreachable server is left alone before the log is tried again (lookups must not pay a timeout
#: each while the server is down; meanwhile partitions fall back to periodic rescans).
COOLDOWN = 5.0
_PAGE = 1_000


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _id_tuple(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


class RedisEventLog:
    """Event logs as Redis Streams under the key layout of `backend` (a `RedisBackend`)."""

    def __init__(self, backend: Any) -> None:
        self._backend = weakref.ref(backend)  # the adapter is cached per store: it must not keep it alive
        self._client: Any = None
        self._owns = False
        self._pid = 0
        self._lock = threading.Lock()
        self._down_until = 0.0

    def __repr__(self) -> str:
        return f"RedisEventLog({self._backend()!r})"

    @property
    def backend(self) -> Any:
        """The `RedisBackend` this log lives in."""
        backend = self._backend()
        if backend is None:
            raise BackendError("the Redis backend of this event log was closed and collected")
        return backend

    def stream_key(self, stream: str) -> str:
        """The Redis key of `stream` (a core-style key such as ``ac:v1:<ns>:semlog``)."""
        layout = getattr(self.backend, "layout", None)
        if layout is None:
            return stream
        base, rest = layout.split(stream)
        return f"{base}#log:{rest}"

    def _redis(self) -> Any:
        if self._client is None or self._pid != os.getpid():
            with self._lock:
                if self._client is None or self._pid != os.getpid():
                    client, owns = self.backend.subscriber_client()
                    self._client, self._owns, self._pid = client, owns, os.getpid()
        return self._client

    def _mapped(self, exc: Exception) -> BackendError:
        from redis import exceptions as rx

        if isinstance(exc, (rx.ConnectionError, rx.TimeoutError, OSError)):
            self._down_until = time.monotonic() + COOLDOWN
            return BackendUnavailable(f"redis unavailable: {type(exc).__name__}: {exc}")
        return BackendError(f"redis error: {type(exc).__name__}: {exc}")

    def _check_up(self) -> None:
        if time.monotonic() < self._down_until:
            raise BackendUnavailable("redis was unreachable moments ago; the event log is cooling down")

    def append(self, stream: str, fields: Mapping[str, str], /) -> str:
        """XADD one event (trimmed to about `MAXLEN`) and refresh the stream's expiry; return its id."""
        self._check_up()
        key = self.stream_key(stream)
        try:
            pipe = self._redis().pipeline(transaction=False)
            pipe.xadd(key, dict(fields), maxlen=MAXLEN, approximate=True)
            pipe.pexpire(key, STREAM_TTL_MS)
            event_id, _ = pipe.execute()
        except BackendError:
            raise
        except Exception as exc:
            raise self._mapped(exc) from exc
        return _text(event_id)

    def read(self, stream: str, after_id: str | None, /) -> EventBatch:
        """Every event after `after_id` (paged XRANGE), with a check that none was trimmed away unread."""
        self._check_up()
        key = self.stream_key(stream)
        try:
            client = self._redis()
            if after_id is None:
                last = client.xrevrange(key, "+", "-", count=1)
                if last:
                    return EventBatch([], _text(last[0][0]), True)
                # Never leave a reader's cursor on a missing stream: a stream deleted and recreated later
                # could not be told apart from a new one, and the removals it implied would go unnoticed.
                return EventBatch([], self.append(stream, {"op": "start"}), True)
            pipe = client.pipeline(transaction=False)
            pipe.xrange(key, "-", "+", count=1)
            pipe.xrange(key, f"({after_id}", "+", count=_PAGE)
            first, page = pipe.execute()
            events = [(_text(i), {_text(k): _text(v) for k, v in f.items()}) for i, f in page]
            while len(page) == _PAGE:
                page = client.xrange(key, f"({events[-1][0]}", "+", count=_PAGE)
                events += [(_text(i), {_text(k): _text(v) for k, v in f.items()}) for i, f in page]
        except BackendError:
            raise
        except Exception as exc:
            raise self._mapped(exc) from exc
        complete = bool(first) and _id_tuple(_text(first[0][0])) <= _id_tuple(after_id)
        if events:
            return EventBatch(events, events[-1][0], complete)
        # Nothing newer: stay put, or (after a gap) start over from the stream's tail, recreating it.
        return EventBatch([], after_id if complete else self.read(stream, None).last_id, complete)

    def close(self) -> None:
        """Close the client this adapter opened."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None and self._owns:
            client.close()
