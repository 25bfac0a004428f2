"""`RedisEventLog`: `SupportsEventLog` for a `RedisBackend`, on Redis Streams (XADD / XRANGE).

Each namespace has one stream, stored in the namespace's group next to its data (so it lives in the same
cluster slot and `clear(namespace)` removes it too); it is trimmed to about `MAXLEN` events and expires a
day after its last event. A reader that finds its cursor older than the first event left (trimmed), or the
stream gone (cleared, expired, server restarted), gets `complete=False` and rebuilds from the backend.
Uses the backend's public `subscriber_client()` (a blocking client) and its key `layout`; the async face of
the semantic cache calls it from a worker thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from agentcache.errors import BackendError, BackendUnavailable
from agentcache.semantic.eventlog import EventBatch

__all__ = ["MAXLEN", "RedisEventLog", "STREAM_TTL_MS"]

#: Events kept per stream (approximate trimming); a reader further behind than this rebuilds.
MAXLEN = 10_000
#: A stream nobody writes to for a day disappears; readers then rebuild, which is cheap for idle caches.
STREAM_TTL_MS = 86_400_000
_PAGE = 1_000


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _id_tuple(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


class RedisEventLog:
    """Event logs as Redis Streams under the key layout of `backend` (a `RedisBackend`)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self._client: Any = None
        self._owns = False
        self._pid = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RedisEventLog({self.backend!r})"

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
            return BackendUnavailable(f"redis unavailable: {type(exc).__name__}: {exc}")
        return BackendError(f"redis error: {type(exc).__name__}: {exc}")

    def append(self, stream: str, fields: Mapping[str, str], /) -> str:
        """XADD one event (trimmed to about `MAXLEN`) and refresh the stream's expiry; return its id."""
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
        key = self.stream_key(stream)
        try:
            client = self._redis()
            if after_id is None:
                last = client.xrevrange(key, "+", "-", count=1)
                return EventBatch([], _text(last[0][0]) if last else "0-0", True)
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
        if after_id == "0-0":  # we last saw an empty stream: everything in it is new to us
            complete = True
        else:
            complete = bool(first) and _id_tuple(_text(first[0][0])) <= _id_tuple(after_id)
        last_id = events[-1][0] if events else (after_id if complete else "0-0")
        return EventBatch(events, last_id, complete)

    def close(self) -> None:
        """Close the client this adapter opened."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None and self._owns:
            client.close()
