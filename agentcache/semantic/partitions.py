"""The local indexes of the semantic cache, one per partition, and how they stay in step with the backend.

The backend is the truth: a partition's vector records are ordinary entries under one key prefix. A process
builds the partition's index on first use, from a persisted file when one exists (`agentcache.semantic.persist`)
or from a scan, and reconciles it with the backend's listing (entries added or removed while it was away).
Afterwards it follows the store's event log when the store has one (`SupportsEventLog`: Redis Streams), so
an entry added or invalidated in another process is reflected at this process's next lookup; stores without
a log are rescanned at most every `RESCAN_SECONDS`. Whatever the index holds, a candidate is re-read from the
backend before it is served, so a stale index can cost a miss, never a stale hit.

Everything here does blocking I/O; the async face of `semantic_cached` runs it in a worker thread.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentcache.codec.entries import RECORD_MAGIC, pack_vector, seal, unpack_vector, unseal
from agentcache.errors import SerializationError
from agentcache.keys.encoding import KEY_PREFIX, split_key
from agentcache.semantic.eventlog import event_log_for

if TYPE_CHECKING:
    from agentcache.backends.base import Backend
    from agentcache.semantic.eventlog import SupportsEventLog
    from agentcache.semantic.index import AutoIndex

__all__ = [
    "ANN_SWITCH_AT",
    "RESCAN_SECONDS",
    "VECTOR_LAYER",
    "Partition",
    "announce",
    "decode_record",
    "encode_record",
    "forget_partitions",
    "loaded_partitions",
    "partition_of",
    "refresh",
]

VECTOR_LAYER = "semvec"  # the key layer of vector records: ``ac:v1:{ns}:semvec:{partition}:{digest}``
RESCAN_SECONDS = 10.0  # how stale a partition may get on a store without an event log
#: Entries above which a partition's exact index moves to HNSW; `None`: AutoIndex's measured crossover.
ANN_SWITCH_AT: int | None = None

logger = logging.getLogger("agentcache")


def encode_record(record_key: str, query: str, entry_key: str, model: str, vector: Sequence[float]) -> bytes:
    """The vector record stored under `record_key`: length-prefixed JSON metadata, then the float32 vector,
    `seal`ed (checksum and key digest, like every entry)."""
    meta = json.dumps({"q": query, "k": entry_key, "m": model}).encode()
    return seal(RECORD_MAGIC, record_key, struct.pack("<I", len(meta)) + meta + pack_vector(vector))


def decode_record(record_key: str, raw: bytes) -> tuple[str, str, str, list[float]]:
    """`(query, entry_key, model, vector)` of the vector record read under `record_key`; raises
    `SerializationError` if it is damaged, malformed or another key's."""
    query, entry_key, model, packed = _decode_packed(record_key, raw)
    return query, entry_key, model, unpack_vector(packed)


def _decode_packed(record_key: str, raw: bytes) -> tuple[str, str, str, bytes]:
    """`decode_record` with the vector left packed (little-endian float32 bytes)."""
    raw = unseal(RECORD_MAGIC, raw, record_key)
    try:
        (size,) = struct.unpack_from("<I", raw)
        meta = json.loads(raw[4 : 4 + size])
        packed = raw[4 + size :]
        if len(packed) % 4:
            raise ValueError("vector bytes are not a whole number of float32 values")
        return str(meta["q"]), str(meta["k"]), str(meta["m"]), packed
    except (struct.error, ValueError, KeyError, TypeError) as exc:
        raise SerializationError(f"corrupt semantic vector record: {exc}") from exc


def partition_of(record_key: str) -> str:
    """The partition prefix of a vector-record key (everything up to its last `:`)."""
    return record_key[: record_key.rindex(":") + 1]


def stream_of(namespace: str) -> str:
    """The event-log stream of a namespace's semantic records."""
    return f"{KEY_PREFIX}{namespace}:semlog"


@dataclass
class Partition:
    """The local index of one partition: vector-record key -> (entry key, query text)."""

    prefix: str
    namespace: str
    index: AutoIndex
    meta: dict[str, tuple[str, str]] = field(default_factory=dict)
    scanned_at: float = float("-inf")
    stale: bool = True  # the next lookup reconciles with the backend's listing first
    origin: str = "empty"  # "file" when loaded from a persisted index, else "scan"
    changes: int = 0  # adds and removes since the index was last persisted
    lock: threading.RLock = field(default_factory=threading.RLock)
    refreshing: threading.Lock = field(default_factory=threading.Lock)

    def add_records(self, records: Iterable[tuple[str, bytes | None]]) -> list[str]:
        """Index the given vector records (missing ones are skipped); return the keys of unreadable ones
        (damaged, another key's, or of an earlier format), which the caller removes from the store."""
        import numpy as np

        unreadable: list[str] = []
        decoded: dict[str, tuple[str, str, bytes]] = {}
        for key, raw in records:
            if raw is None or key in decoded:
                continue
            try:
                query, entry_key, _, packed = _decode_packed(key, raw)
            except SerializationError:
                unreadable.append(key)
                continue
            if len(packed) == 4 * self.index.dim:  # another model's dimension is skipped, as a failed add was
                decoded[key] = (entry_key, query, packed)
        with self.lock:
            fresh = [key for key in decoded if key not in self.meta]
            # one batch, straight from the packed bytes: a cold start of 100k records added one at a time took
            # 188 s (each an HNSW insert), and lists of Python floats cost seconds more
            if fresh:
                packed_rows = b"".join(decoded[key][2] for key in fresh)
                self.index.add(fresh, np.frombuffer(packed_rows, dtype="<f4").reshape(len(fresh), self.index.dim))
            for key in fresh:
                entry_key, query, _ = decoded[key]
                self.meta[key] = (entry_key, query)
            self.changes += len(fresh)
        return unreadable

    def add(self, key: str, entry_key: str, query: str, vector: Sequence[float]) -> None:
        """Index one record this process just stored."""
        with self.lock:
            self.index.add([key], [vector])
            self.meta[key] = (entry_key, query)
            self.changes += 1

    def drop(self, keys: Iterable[str]) -> None:
        """Forget vector records (removed from the backend)."""
        with self.lock:
            gone = [k for k in keys if self.meta.pop(k, None) is not None]
            if gone:
                self.index.remove(gone)
                self.changes += len(gone)

    def search(self, vector: Sequence[float], k: int) -> list[tuple[str, float, str, str]]:
        """`(record key, cosine, entry key, cached query)` of the `k` nearest records, best first."""
        with self.lock:
            return [(key, s, *self.meta[key]) for key, s in self.index.search(vector, k) if key in self.meta]


@dataclass
class _StoreState:
    partitions: dict[str, Partition] = field(default_factory=dict)
    cursors: dict[str, str] = field(default_factory=dict)  # namespace -> event-log cursor
    pull_locks: dict[str, threading.Lock] = field(default_factory=dict)


# Keyed weakly by store: a closed and collected store takes its indexes with it (ids are never confused).
_states: weakref.WeakKeyDictionary[Any, _StoreState] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _state(store: Backend) -> _StoreState:
    state = _states.get(store)
    if state is None:
        with _lock:
            state = _states.setdefault(store, _StoreState())
    return state


def forget_partitions() -> None:
    """Drop every local index (the next lookup rebuilds from the backend, or from a persisted file)."""
    with _lock:
        _states.clear()


def loaded_partitions(store: Backend | None = None) -> list[Partition]:
    """The partitions this process holds (for `store` only, when given)."""
    with _lock:
        states = list(_states.values()) if store is None else [s for s in (_states.get(store),) if s is not None]
        return [p for s in states for p in list(s.partitions.values())]


def _new_index(dim: int) -> AutoIndex:
    from agentcache.semantic.index import AutoIndex

    return AutoIndex(dim, switch_at=ANN_SWITCH_AT)


def _partition(store: Backend, prefix: str, namespace: str, dim: int) -> Partition:
    state = _state(store)
    part = state.partitions.get(prefix)
    if part is not None:
        return part
    from agentcache.semantic import persist

    persist.track(store)
    loaded = persist.load_partition(store, prefix, dim)
    with _lock:
        part = state.partitions.get(prefix)
        if part is None:
            if loaded is not None:
                index, meta = loaded
                part = Partition(prefix, namespace, index, meta, origin="file")
            else:
                part = Partition(prefix, namespace, _new_index(dim))
            state.partitions[prefix] = part
        return part


def _list_keys(store: Backend, prefix: str) -> list[str] | None:
    """Every live key under `prefix`, or `None` when the store cannot list keys or failed."""
    from agentcache.backends.base import SupportsScan

    inner = getattr(store, "inner", store)
    if not isinstance(inner, SupportsScan):
        return None
    try:
        return [e.key for e in inner.scan(prefix)]
    except Exception:  # a failing store degrades to "nothing new"
        return None


def _reconcile(store: Backend, part: Partition) -> None:
    """Make the index hold exactly the backend's records: drop the vanished, fetch only the unknown."""
    with part.lock:
        before = set(part.meta)
    keys = _list_keys(store, part.prefix)
    if keys is None:
        part.scanned_at = time.monotonic()
        return
    listed = set(keys)
    part.drop(before - listed)
    with part.lock:
        unknown = [k for k in keys if k not in part.meta]
    if unknown:
        try:
            values = store.get_many(unknown)
        except Exception:
            values = [None] * len(unknown)
        _remove(store, part.add_records(zip(unknown, values, strict=True)))
    if part.origin == "empty":
        part.origin = "scan"
    part.scanned_at = time.monotonic()
    part.stale = False
    from agentcache.semantic import persist

    persist.maybe_save(store, part, built=len(unknown))


def _remove(store: Backend, keys: list[str]) -> None:
    """Delete unreadable vector records, so no rescan fetches them again (best effort)."""
    if keys:
        logger.debug("agentcache: removing %d unreadable semantic vector records", len(keys))
        try:
            store.delete_many(keys)
        except Exception as exc:  # a failing store: they are refused again next time
            logger.debug("agentcache: removing unreadable vector records failed: %r", exc)


def _pull(store: Backend, log: SupportsEventLog, namespace: str) -> bool:
    """Apply the events of `namespace` since the last pull; return `False` when the log failed."""
    state = _state(store)
    with _lock:
        pull_lock = state.pull_locks.setdefault(namespace, threading.Lock())
    with pull_lock:
        try:
            batch = log.read(stream_of(namespace), state.cursors.get(namespace))
        except Exception as exc:
            logger.debug("agentcache: reading the semantic event log failed: %r", exc)
            return False
        parts = {p.prefix: p for p in list(state.partitions.values()) if p.namespace == namespace}
        if not batch.complete:  # events were lost: every partition of the namespace reconciles
            for p in parts.values():
                p.stale = True
        fetch: list[tuple[Partition, str]] = []
        for _, fields in batch.events:
            keys = fields.get("keys", "").split()
            for key in keys:
                target = parts.get(partition_of(key))
                if target is None:  # a partition this process has not loaded: it will scan when it does
                    continue
                if fields.get("op") == "del":
                    target.drop([key])
                elif key not in target.meta:
                    fetch.append((target, key))
        if fetch:
            try:
                values = store.get_many([k for _, k in fetch])
            except Exception:
                values = [None] * len(fetch)
            for (p, key), raw in zip(fetch, values, strict=True):
                _remove(store, p.add_records([(key, raw)]))
        state.cursors[namespace] = batch.last_id
        return True


def refresh(store: Backend, namespace: str, prefix: str, dim: int) -> Partition:
    """The partition's index, brought up to date with the backend before a lookup (blocking I/O)."""
    part = _partition(store, prefix, namespace, dim)
    try:
        log = event_log_for(store)
        # The cursor is taken before the first scan, so nothing written between the two is missed.
        followed = log is not None and _pull(store, log, namespace)
        if not part.stale and (followed or time.monotonic() - part.scanned_at < RESCAN_SECONDS):
            return part
        first = part.scanned_at == float("-inf")
        if part.refreshing.acquire(blocking=first):  # later refreshes never make a lookup wait for another's
            try:
                _reconcile(store, part)
            finally:
                part.refreshing.release()
    except Exception as exc:  # a stale index costs misses, never a failed call
        logger.debug("agentcache: refreshing the semantic index of %s failed: %r", prefix, exc)
    return part


def announce(store: Backend, op: str, keys: Sequence[str]) -> None:
    """Tell other processes sharing `store` that vector records were added (`op="add"`) or removed."""
    log = event_log_for(store)
    if log is None or not keys:
        return
    by_namespace: dict[str, list[str]] = {}
    for key in keys:
        parts = split_key(key)
        if parts is not None:
            by_namespace.setdefault(parts.namespace, []).append(key)
    for namespace, group in by_namespace.items():
        try:
            log.append(stream_of(namespace), {"op": op, "keys": " ".join(group)})
        except Exception as exc:  # others still converge: their candidates are re-read, and rescans happen
            logger.debug("agentcache: writing the semantic event log failed: %r", exc)


def needs_io(store: Backend, prefix: str) -> bool:
    """Whether `refresh` would do I/O now (the async face skips the thread hop when it would not)."""
    state = _states.get(store)
    part = None if state is None else state.partitions.get(prefix)
    if part is None or part.stale or event_log_for(store) is not None:
        return True
    return time.monotonic() - part.scanned_at >= RESCAN_SECONDS
