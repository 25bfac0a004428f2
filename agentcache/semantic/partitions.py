"""The local indexes of the semantic cache, one per partition, and how they stay in step with the backend.

The backend is the truth: a partition's vector records are ordinary entries under one key prefix. A process
builds the partition's index on first use: from a persisted file when one exists (`agentcache.semantic.persist`),
reconciled with the backend's listing (entries added or removed while it was away) on a background thread;
otherwise from the backend's records, read and indexed in one batch. Afterwards it follows the store's event
log when the store has one (`SupportsEventLog`: Redis Streams), so an entry added or invalidated in another
process is reflected at this process's next lookup. A `memory://` store, which no other process can write,
reports the vector records it drops (deleted, invalidated, expired, evicted) and is never rescanned; other
stores without a log are rescanned every `RESCAN_SECONDS`, on the background thread, never on a lookup.
Whatever the index holds, a candidate is re-read from the backend before it is served, so a stale index can
cost a miss, never a stale hit.

The first build and the event-log reads are blocking I/O; the async face of `semantic_cached` runs them in a
worker thread.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import struct
import sys
import threading
import time
import weakref
import zlib
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentcache.codec.entries import RECORD_MAGIC, pack_vector, seal, sealed_body, unpack_vector, unseal
from agentcache.errors import SerializationError
from agentcache.keys.encoding import KEY_PREFIX, split_key
from agentcache.semantic.store_logs import event_log_for
from agentcache.semantic.vectors import normalize_in_place

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
    "settle",
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


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection meanwhile: decoding 100k records allocates ~10 objects each, which set off
    full collections over the whole heap (decoding took 1.0-1.5 s with them, 0.6 s without)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _decode_batch(
    records: Iterable[tuple[str, bytes | None]], dim: int
) -> tuple[list[str], list[tuple[str, str]], bytearray, list[str]]:
    """`decode_record` over many records: `(keys, (entry key, query) of each, their vectors as one buffer of
    little-endian float32 rows, keys of unreadable records)`. Missing records, repeated keys and vectors of another
    dimension (another model's, skipped as a failed add would be) are left out."""
    import orjson

    keys: list[str] = []
    meta: list[tuple[str, str]] = []
    packed: list[memoryview] = []
    unreadable: list[str] = []
    seen: set[str] = set()
    seed = zlib.crc32(RECORD_MAGIC)
    want = 4 * dim
    for key, raw in records:  # `_decode_packed`, inlined: it runs once per record of a cold start (100k and more)
        if raw is None or key in seen:
            continue
        seen.add(key)
        body = sealed_body(RECORD_MAGIC, raw, key, seed)
        try:
            if body is None:
                raise ValueError("unreadable")
            size = int.from_bytes(body[:4], "little")
            fields = orjson.loads(body[4 : 4 + size])
            entry = (str(fields["k"]), str(fields["q"]))
        except (ValueError, KeyError, TypeError):  # orjson.JSONDecodeError is a ValueError
            unreadable.append(key)
            continue
        vector = body[4 + size :]
        if len(vector) == want:
            keys.append(key)
            meta.append(entry)
            packed.append(vector)
        elif len(vector) % 4:
            unreadable.append(key)
    return keys, meta, bytearray().join(packed), unreadable


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
    queued: bool = False  # a background reconcile is queued or running (see `_Refresher`)
    rescans: int = 0  # reconciles with the backend's listing done so far (the first build included)

    def add_records(self, records: Iterable[tuple[str, bytes | None]]) -> list[str]:
        """Index the given vector records (missing ones are skipped); return the keys of unreadable ones
        (damaged, another key's, or of an earlier format), which the caller removes from the store."""
        with _gc_paused():
            return self._add_records(records)

    def _add_records(self, records: Iterable[tuple[str, bytes | None]]) -> list[str]:
        import numpy as np

        dim = self.index.dim
        keys, meta, packed, unreadable = _decode_batch(records, dim)
        # one batch, straight from the packed bytes: a cold start of 100k records added one at a time took
        # 188 s (each an HNSW insert), and lists of Python floats cost seconds more
        rows = np.frombuffer(packed, dtype="<f4").reshape(len(keys), dim)
        with self.lock:
            if not self.meta and len(self.index) == 0:  # a cold start: the buffer becomes the exact index's matrix
                if keys:
                    self.index.adopt(keys, normalize_in_place(rows))
                    self.meta.update(zip(keys, meta, strict=True))
                fresh = len(keys)
            else:
                new = [i for i, key in enumerate(keys) if key not in self.meta]
                if new:
                    self.index.add([keys[i] for i in new], rows[new])
                    self.meta.update((keys[i], meta[i]) for i in new)
                fresh = len(new)
            self.changes += fresh
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
        meta = self.meta  # no lock: a save or a reconcile holding it must not hold up lookups
        return [(key, s, *m) for key, s in self.index.search(vector, k) if (m := meta.get(key)) is not None]


@dataclass
class _StoreState:
    partitions: dict[str, Partition] = field(default_factory=dict)
    cursors: dict[str, str] = field(default_factory=dict)  # namespace -> event-log cursor
    pull_locks: dict[str, threading.Lock] = field(default_factory=dict)
    local: bool = False  # a `memory://` store: nobody else writes it, so it is never rescanned
    removed: deque[str] = field(default_factory=deque)  # vector records a local store reported gone
    memory: weakref.ref[Any] | None = None  # that store (weakly: this state is a value keyed by it)


# Keyed weakly by store: a closed and collected store takes its indexes with it (ids are never confused).
_states: weakref.WeakKeyDictionary[Any, _StoreState] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _local_store(store: Any) -> Any:
    """The `MemoryBackend` holding `store`'s entries (through wrappers), or `None` for a shared store."""
    memory = sys.modules.get("agentcache.backends.memory")
    seen: set[int] = set()
    node = store
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        if memory is not None and isinstance(node, memory.MemoryBackend):
            return node
        node = getattr(node, "inner", None) or getattr(node, "l2", None)  # a tier's L1 is a copy of its L2
    return None


def _state(store: Backend) -> _StoreState:
    state = _states.get(store)
    if state is None:
        with _lock:
            state = _states.get(store)
            if state is None:
                state = _states[store] = _StoreState()
                memory = _local_store(store)
                if memory is not None:
                    # Removals are reported by the store itself (an event, not a rescan): its evictions, expiries
                    # and invalidations otherwise left dead vectors in the index for good.
                    state.local, state.memory = True, weakref.ref(memory)
                    removed, marker = state.removed, f":{VECTOR_LAYER}:"
                    memory.on_remove = lambda key: removed.append(key) if marker in key else None
    return state


def forget_partitions() -> None:
    """Drop every local index (the next lookup rebuilds from the backend, or from a persisted file)."""
    with _lock:
        for state in _states.values():
            for part in state.partitions.values():
                part.index.close()  # a background HNSW build of a forgotten index stops early
            memory = state.memory() if state.memory is not None else None
            if memory is not None:
                memory.on_remove = None  # nobody would drain its reports any more
        _states.clear()


def _after_fork_in_child() -> None:
    # A lock the parent's background thread held at the fork would stay held in the child for good.
    for state in _states.values():
        for part in state.partitions.values():
            part.refreshing = threading.Lock()
            part.queued = False
    _refresher.reset()


def loaded_partitions(store: Backend | None = None) -> list[Partition]:
    """The partitions this process holds (for `store` only, when given)."""
    with _lock:
        states = list(_states.values()) if store is None else [s for s in (_states.get(store),) if s is not None]
        return [p for s in states for p in list(s.partitions.values())]


class _Refresher:
    """One daemon thread per process that reconciles partitions with their backend off the lookup path.

    Rescans (a listing of the partition's keys, then a read of the unknown ones) took 0.2-2 s at 100k entries;
    done inline they stalled the lookup that found the partition due. A lookup now only queues the partition
    (once: a queued one is not queued again) and searches the index as it is; a stale index costs a miss,
    never a stale hit, since candidates are re-read before they are served.
    """

    IDLE = 30.0  # seconds the thread waits for work before it ends (the next `submit` starts another)

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start empty, with no thread (also in a forked child: the parent's thread and queue are not its own)."""
        self._cond = threading.Condition()
        self._queue: deque[tuple[weakref.ref[Any], Partition]] = deque()
        self._thread: threading.Thread | None = None
        self._busy = 0

    def submit(self, store: Backend, part: Partition) -> None:
        """Queue a reconcile of `part` (no-op when one is queued or running)."""
        with self._cond:
            if part.queued:
                return
            part.queued = True
            self._queue.append((weakref.ref(store), part))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="agentcache-semantic-refresh", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _run(self) -> None:
        # The condition and queue this thread serves: `reset()` (agentcache.reset(), a fork) replaces them while
        # the thread may be waiting, and notifying the new condition under the old one's lock raises.
        cond, queue = self._cond, self._queue
        while True:
            with cond:
                if not queue:
                    cond.wait(self.IDLE)
                    if not queue or self._cond is not cond:
                        if self._cond is cond:
                            self._thread = None
                        cond.notify_all()
                        return
                ref, part = queue.popleft()
                if self._cond is cond:
                    self._busy += 1
            try:
                store = ref()
                if store is not None:
                    from agentcache.engine import cache as _cache

                    with _cache.background_use, part.refreshing:  # `Cache.close` waits for it
                        _reconcile(store, part)
            except Exception as exc:  # a stale index costs misses, never a failed call
                logger.debug("agentcache: refreshing the semantic index of %s failed: %r", part.prefix, exc)
            finally:
                with cond:
                    part.queued = False
                    if self._cond is cond:
                        self._busy -= 1
                    cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until nothing is queued or running; return whether that happened within `timeout`."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)


_refresher = _Refresher()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def settle(timeout: float | None = None) -> bool:
    """Wait for the background reconciles queued by lookups; return whether none is left (tests, benchmarks)."""
    return _refresher.wait(timeout)


def _new_index(dim: int) -> AutoIndex:
    from agentcache.semantic.index import AutoIndex

    return AutoIndex(dim, switch_at=ANN_SWITCH_AT)


def _partition(store: Backend, prefix: str, namespace: str, dim: int) -> Partition:
    state = _state(store)
    part = state.partitions.get(prefix)
    if part is not None:
        return part
    from agentcache.semantic import persist

    persist.track(store, loaded_partitions)
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

    memory = _local_store(store)
    if memory is not None:  # no per-entry info wanted: its `keys` is ~10x cheaper than `scan`
        return list(memory.keys(prefix))
    inner = getattr(store, "inner", store)
    redis = sys.modules.get("agentcache.backends.redis")
    try:
        if redis is not None and isinstance(inner, redis.RedisBackend):  # keys alone: no per-entry reads
            return list(inner.keys(prefix))
        if not isinstance(inner, SupportsScan):
            return None
        return [e.key for e in inner.scan(prefix)]
    except Exception:  # a failing store degrades to "nothing new"
        return None


def _reconcile(store: Backend, part: Partition) -> None:
    """Make the index hold exactly the backend's records: drop the vanished, fetch only the unknown (and for an
    index loaded from a file that took enough writes, start building its writable graph)."""
    with part.lock:
        before = set(part.meta)
    keys = _list_keys(store, part.prefix)
    if keys is None:  # nothing to reconcile with: retried at the next periodic rescan
        part.scanned_at = time.monotonic()
        part.stale = False
        return
    listed = set(keys)
    part.drop(before - listed)
    meta = part.meta  # read without the lock (inserts must not wait for 100k lookups); `add_records` re-checks
    unknown = [k for k in keys if k not in meta]
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
    part.rescans += 1
    from agentcache.semantic import persist

    persist.maybe_save(store, part, built=len(unknown))
    if part.index.wants_finishing:
        part.index.finish_loading()


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
    """The partition's index before a lookup: built (or loaded) on first use, then kept up to date.

    Inline, only what the lookup needs: the first build from the backend (one batch; concurrent first lookups
    wait for it), the events of the store's log, and the removals a `memory://` store reported. A partition
    loaded from a persisted file, one whose log lost events, and one due for its periodic rescan (stores with
    neither a log nor a single owner) are reconciled on a background thread (`_Refresher`) meanwhile.
    """
    part = _partition(store, prefix, namespace, dim)
    state = _state(store)
    try:
        log = event_log_for(store)
        # The cursor is taken before the first scan, so nothing written between the two is missed.
        followed = log is not None and _pull(store, log, namespace)
        if part.scanned_at == float("-inf") and part.origin != "file":
            with part.refreshing:
                if part.scanned_at == float("-inf"):
                    _reconcile(store, part)
        elif (
            part.stale
            or part.index.wants_finishing
            or (not followed and not state.local and time.monotonic() - part.scanned_at >= RESCAN_SECONDS)
        ):
            _refresher.submit(store, part)
        if state.removed:
            _apply_removals(store, state)
    except Exception as exc:  # a stale index costs misses, never a failed call
        logger.debug("agentcache: refreshing the semantic index of %s failed: %r", prefix, exc)
    return part


def _apply_removals(store: Backend, state: _StoreState) -> None:
    """Drop the vectors whose records a local store reported gone (and which did not come back since)."""
    gone: list[str] = []
    while state.removed:
        try:
            gone.append(state.removed.popleft())
        except IndexError:  # another lookup took the rest
            break
    held = [k for k in dict.fromkeys(gone) if (p := state.partitions.get(partition_of(k))) is not None and k in p.meta]
    if not held:
        return
    for key, raw in zip(held, store.get_many(held), strict=True):  # a replaced record is reported too
        if raw is None:
            state.partitions[partition_of(key)].drop([key])


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
    if part is None or event_log_for(store) is not None:
        return True
    return part.scanned_at == float("-inf") and part.origin != "file"
