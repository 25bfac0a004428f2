"""Vector indexes behind one small protocol: exact numpy search, with an automatic switch to HNSW.

Ids are strings (the semantic cache uses its entry keys). Vectors are stored L2-normalized as float32,
so a score is the cosine similarity. Every index really deletes: a removed id can never be returned.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import struct
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from agentcache.errors import ConfigurationError, MissingDependencyError, SerializationError
from agentcache.semantic._blas import single_thread
from agentcache.semantic.vectors import normalize_rows, require_numpy

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from agentcache.semantic.usearch_index import USearchIndex

__all__ = ["AutoIndex", "NumpyIndex", "VectorIndex", "load_index"]

_MAGIC = b"ACNPIDX1"

logger = logging.getLogger("agentcache")


@runtime_checkable
class VectorIndex(Protocol):
    """A mutable set of `(id, vector)` searched by cosine similarity.

    Contract: `add` inserts or replaces; `remove` returns how many ids existed; `search` returns at most
    `k` `(id, cosine)` pairs, best first, never a removed id; `save`/`load` round-trip every entry.
    """

    dim: int

    def add(self, ids: Sequence[str], vectors: npt.ArrayLike, /) -> None:
        """Insert (or replace) one vector per id; `vectors` has shape `(len(ids), dim)`."""
        ...

    def remove(self, ids: Sequence[str], /) -> int:
        """Delete `ids`; return how many were present."""
        ...

    def search(self, vector: npt.ArrayLike, /, k: int = 1) -> list[tuple[str, float]]:
        """Return up to `k` `(id, cosine similarity)` pairs, best first."""
        ...

    def __len__(self) -> int:
        """The number of vectors held."""
        ...

    def __contains__(self, id_: object, /) -> bool:
        """Whether `id_` is held."""
        ...

    def save(self, path: str | Path, /) -> None:
        """Write the index to `path` (and sidecar files next to it, if the index needs them)."""
        ...


class NumpyIndex:
    """Exact search: one float32 matrix and one matrix-vector product per query (numpy only).

    Growth is amortized (capacity doubles); `remove` moves the last row into the hole, so the matrix stays
    dense and a search never scans dead rows. Exact and fastest up to about 10k x 384 or 2.6k x 1536 (see
    `benchmarks/results/semantic_speed.md`); above that `AutoIndex` switches to HNSW.
    """

    def __init__(self, dim: int) -> None:
        require_numpy()
        import numpy as np

        self.dim = dim
        self._mat = np.empty((0, dim), dtype=np.float32)
        self._n = 0
        self._ids: list[str] = []
        self._rows: dict[str, int] = {}
        self._shared = 0  # leading rows of `_mat` a reader holds (`rows_view`): copied before they are written
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return self._n

    def __contains__(self, id_: object, /) -> bool:
        return id_ in self._rows

    def ids(self) -> list[str]:
        """Every id held, in storage order."""
        with self._lock:
            return list(self._ids)

    def vectors(self) -> npt.NDArray[np.float32]:
        """A copy of the stored unit vectors, row i belonging to `ids()[i]`."""
        with self._lock:
            out: npt.NDArray[np.float32] = self._mat[: self._n].copy()
            return out

    def rows_view(self) -> tuple[list[str], npt.NDArray[np.float32]]:
        """`(ids(), a read-only view of their rows)` without copying the matrix (153 MB at 100k x 384): the
        rows are copied before this index next writes over one of them, so the view never changes."""
        with self._lock:
            self._shared = max(self._shared, self._n)
            view = self._mat[: self._n].view()
            view.flags.writeable = False
            return list(self._ids), view

    def adopt(self, ids: Sequence[str], rows: npt.NDArray[np.float32]) -> bool:
        """Take `rows` (C-contiguous float32 unit vectors that nothing else writes) as the matrix, without a copy,
        when this index is empty and `ids` are distinct; return whether it did (else nothing changed)."""
        with self._lock:
            if self._n or len(set(ids)) != len(ids) or rows.shape != (len(ids), self.dim):
                return False
            self._mat, self._n, self._shared = rows, len(ids), 0
            self._ids = list(ids)
            self._rows = dict(zip(self._ids, range(self._n), strict=True))
            return True

    def _unshare(self, row: int) -> None:
        """Before writing `row`: copy the matrix if a reader holds that row (see `rows_view`)."""
        if row < self._shared:
            self._mat = self._mat.copy()
            self._shared = 0

    def _reserve(self, needed: int) -> None:
        import numpy as np

        if needed <= self._mat.shape[0]:
            return
        capacity = max(needed, 2 * self._mat.shape[0], 64)
        grown = np.empty((capacity, self.dim), dtype=np.float32)
        grown[: self._n] = self._mat[: self._n]
        self._mat, self._shared = grown, 0

    def add(self, ids: Sequence[str], vectors: npt.ArrayLike, /) -> None:
        """Insert (or replace) one vector per id."""
        rows = normalize_rows(vectors, self.dim)
        if len(rows) != len(ids):
            raise ConfigurationError(f"{len(ids)} ids for {len(rows)} vectors")
        with self._lock:
            bulk = len(ids) > 1 and self._rows.keys().isdisjoint(ids) and len(set(ids)) == len(ids)
            if bulk and self._n == 0:  # a cold start: the normalized rows (a fresh array) become the matrix
                self._mat, self._shared = rows, 0
            else:
                self._reserve(self._n + len(ids))
            if bulk:
                self._unshare(self._n)
                start, self._n = self._n, self._n + len(ids)  # all new: one slice copy (a bulk load)
                if rows is not self._mat:
                    self._mat[start : self._n] = rows
                self._ids.extend(ids)
                self._rows.update(zip(ids, range(start, self._n), strict=True))
                return
            for id_, row in zip(ids, rows, strict=True):
                at = self._rows.get(id_)
                if at is None:
                    at = self._n
                    self._rows[id_] = at
                    self._ids.append(id_)
                    self._n += 1
                self._unshare(at)
                self._mat[at] = row

    def remove(self, ids: Sequence[str], /) -> int:
        """Delete `ids` by swapping the last row into each hole; return how many were present."""
        removed = 0
        with self._lock:
            for id_ in ids:
                at = self._rows.pop(id_, None)
                if at is None:
                    continue
                last = self._n - 1
                if at != last:
                    moved = self._ids[last]
                    self._unshare(at)
                    self._mat[at] = self._mat[last]
                    self._ids[at] = moved
                    self._rows[moved] = at
                self._ids.pop()
                self._n -= 1
                removed += 1
        return removed

    def search(self, vector: npt.ArrayLike, /, k: int = 1) -> list[tuple[str, float]]:
        """Return the `k` most similar `(id, cosine)` pairs, best first (exact)."""
        import numpy as np

        query = normalize_rows(vector, self.dim)[0]
        with self._lock:
            if self._n == 0 or k <= 0:
                return []
            with single_thread():  # BLAS threads waiting for a busy core made the tail ~5x (see `_blas`)
                scores = self._mat[: self._n] @ query
            if k == 1:
                best = int(np.argmax(scores))
                return [(self._ids[best], float(scores[best]))]
            k = min(k, self._n)
            top = np.argpartition(-scores, k - 1)[:k]
            top = top[np.argsort(-scores[top])]
            return [(self._ids[int(i)], float(scores[i])) for i in top]

    def save(self, path: str | Path, /) -> None:
        """Write one file: magic, a JSON header (dim, ids) and the raw little-endian float32 rows."""
        with self._lock:
            header = json.dumps({"dim": self.dim, "ids": self._ids}).encode()
            body = self._mat[: self._n].astype("<f4").tobytes()
        Path(path).write_bytes(_MAGIC + struct.pack("<Q", len(header)) + header + body)

    @classmethod
    def load(cls, path: str | Path, /) -> NumpyIndex:
        """Read a file written by `save`; raises `SerializationError` if it is not one."""
        import numpy as np

        data = Path(path).read_bytes()
        if not data.startswith(_MAGIC):
            raise SerializationError(f"{path} is not a saved NumpyIndex")
        (size,) = struct.unpack_from("<Q", data, len(_MAGIC))
        start = len(_MAGIC) + 8
        header = json.loads(data[start : start + size])
        index = cls(int(header["dim"]))
        ids: list[str] = header["ids"]
        mat = np.frombuffer(data, dtype="<f4", offset=start + size).astype(np.float32)
        if mat.size != len(ids) * index.dim:
            raise SerializationError(f"{path} is truncated")
        if ids:
            index.add(ids, mat.reshape(len(ids), index.dim))
        return index


class AutoIndex:
    """Exact `NumpyIndex` while small; moves everything into a `USearchIndex` once `len > switch_at`.

    Below the crossover brute force is both exact and faster than HNSW; above it a scan of every row grows
    linearly, and falls off a cliff once the matrix leaves the CPU cache (0.14 ms at 10k x 384, 1 ms at
    20k x 384, 11 ms at 10k x 1536), while HNSW stays under half a millisecond. The measured crossover is
    about 4M floats (16 MB), so `switch_at` defaults to `4_000_000 // dim` entries (10.4k at 384-d, 2.6k at
    1536-d). The switch is one-way. With usearch missing it stays exact (correct, only slower).

    The HNSW graph is built on a background thread from a copy of the rows (building 10.4k x 384 took 3.8 s
    inline, stalling the call that crossed the threshold); until it is ready the exact index keeps answering
    and taking writes, which are replayed on the graph before it takes over (`background=False`: build inline).
    """

    CROSSOVER_FLOATS = 4_000_000
    _REPLAY_INLINE = 8  # journal operations replayed under the lock at the swap (~1 ms each); more: first outside it
    _BUILD_CHUNK = 1024  # rows per insert call of a background build (between them it may stop)
    FINISH_AFTER = 1024  # writes to a `loading` index before its writable graph is built

    def __init__(self, dim: int, *, switch_at: int | None = None, background: bool = True) -> None:
        self.dim = dim
        self.switch_at = switch_at if switch_at is not None else max(1_000, self.CROSSOVER_FLOATS // dim)
        self.background = background
        self._inner: VectorIndex = NumpyIndex(dim)
        self._lock = threading.Lock()
        self._journal: list[tuple[Sequence[str], npt.NDArray[np.float32] | None]] | None = None  # while building
        self._builder: threading.Thread | None = None
        self._builder_pid = 0  # the process the builder runs in (a forked child has no such thread: it starts over)
        self._exact_only = False  # usearch missing (or a build failed): stay exact
        self._closed = False  # dropped by its owner: a build in progress stops at its next chunk
        # While the inner index is frozen (being saved): writes land in `_side` (exact) and `_pending` (replayed
        # on the inner index at `thaw`); `_shadow` names the ids whose copy in the inner index is out of date.
        self._side: NumpyIndex | None = None
        self._shadow: set[str] = set()
        self._masked: set[str] = set()  # the ids of `_shadow` the inner index holds (searches fetch that many more)
        self._pending: list[tuple[Sequence[str], npt.NDArray[np.float32] | None]] = []
        self._loaded = True  # False while a read-only index answers (`loading`): its side index is never thawed

    @classmethod
    def from_index(cls, inner: VectorIndex, *, switch_at: int | None = None) -> AutoIndex:
        """An `AutoIndex` answering with an existing index (e.g. one loaded by `load_index`)."""
        auto = cls(inner.dim, switch_at=switch_at)
        auto._inner = inner
        return auto

    @classmethod
    def loading(cls, viewed: USearchIndex, *, switch_at: int | None = None) -> AutoIndex:
        """An `AutoIndex` answering at once with `viewed`, a read-only (memory-mapped) saved graph.

        Writes go to the side index (as during a save), which searches consult too. Only once `FINISH_AFTER` of
        them piled up does `finish_loading` build the writable graph from the mapped one's vectors, on a
        background thread, and replay them on it. Not a copy of the graph: usearch holds the GIL while it copies
        or loads one (0.7 s at 100k x 384, stalling every other thread of the process), not while it inserts.
        """
        auto = cls(viewed.dim, switch_at=switch_at)
        auto._inner = viewed
        auto._side, auto._shadow, auto._masked, auto._pending = NumpyIndex(viewed.dim), set(), set(), []
        auto._loaded = False
        return auto

    @property
    def wants_finishing(self) -> bool:
        """Whether a `loading` index has taken enough writes for `finish_loading` to run."""
        return not self._loaded and self._builder is None and len(self._pending) >= self.FINISH_AFTER

    def finish_loading(self) -> None:
        """Start building the writable graph of a `loading` index on a background thread (no-op otherwise)."""
        with self._lock:
            if self._builder is not None and self._builder_pid != os.getpid():
                self._journal, self._builder = None, None  # a forked child: the parent's thread is not here
            if self._loaded or self._builder is not None or self._closed:
                return
            self._builder = threading.Thread(target=self._rebuild, name="agentcache-hnsw-build", daemon=True)
            self._builder_pid = os.getpid()
            self._builder.start()
            _building(self)

    def _rebuild(self) -> None:
        """`finish_loading`'s thread: the mapped graph's vectors, inserted chunk by chunk into a new graph."""
        viewed = self._inner
        try:
            from agentcache.semantic.usearch_index import USearchIndex

            if not isinstance(viewed, USearchIndex):
                raise TypeError(f"cannot rebuild a {type(viewed).__name__}")
            hnsw = USearchIndex(self.dim)
            ids = viewed.ids()
            for start in range(0, len(ids), self._BUILD_CHUNK):
                if self._closed:
                    raise RuntimeError("closed")
                chunk = ids[start : start + self._BUILD_CHUNK]
                hnsw.add(chunk, viewed.vectors_of(chunk), threads=_build_threads())
        except Exception as exc:  # keep answering with the mapped graph and the side index (correct)
            if not self._closed:
                logger.warning("agentcache: could not build a writable semantic index: %r", exc)
            with self._lock:
                self._builder = None
            return
        with self._lock:
            self._inner, self._loaded = hnsw, True
        try:
            self.thaw()  # the writes made meanwhile (searches see them in the side index until then)
        finally:
            with self._lock:
                self._builder = None  # only now: `settle` returns once the new graph holds every write

    @property
    def inner(self) -> VectorIndex:
        """The index currently answering."""
        return self._inner

    def __len__(self) -> int:
        side = self._side
        if side is None:
            return len(self._inner)
        return len(self._inner) + sum((i in side) - (i in self._inner) for i in list(self._shadow))

    def __contains__(self, id_: object, /) -> bool:
        side = self._side
        if side is not None and id_ in self._shadow:
            return id_ in side
        return id_ in self._inner

    def add(self, ids: Sequence[str], vectors: npt.ArrayLike, /) -> None:
        """Insert (or replace) vectors, switching to HNSW when the size passes `switch_at`."""
        import numpy as np

        with self._lock:
            if self._side is not None:
                rows = normalize_rows(vectors, self.dim)
                self._side.add(ids, rows)
                self._shadow.update(ids)
                self._masked.update(i for i in ids if i in self._inner)
                self._pending.append((list(ids), rows))
                return
            self._inner.add(ids, vectors)
            if self._journal is not None:
                self._journal.append((list(ids), np.array(vectors, dtype=np.float32)))
            self._maybe_switch()

    def adopt(self, ids: Sequence[str], rows: npt.NDArray[np.float32], /) -> None:
        """`add` for a cold start: into an empty exact index, `rows` (C-contiguous float32 unit vectors the caller
        gives up) become its matrix without a copy, and a background HNSW build reads them in place."""
        with self._lock:
            inner = self._inner
            idle = self._side is None and self._builder is None
            if idle and isinstance(inner, NumpyIndex) and inner.adopt(ids, rows):
                self._maybe_switch()
                return
        self.add(ids, rows)

    def _maybe_switch(self) -> None:
        """Start the move to HNSW once the exact index has grown past `switch_at` (under `_lock`)."""
        inner = self._inner
        if self._builder is not None and self._builder_pid != os.getpid():
            self._journal, self._builder = None, None
        if isinstance(inner, NumpyIndex) and len(inner) > self.switch_at and self._builder is None:
            if self._exact_only or self._closed:
                return
            if not self.background:
                self._inner = self._to_hnsw(inner)
                return
            self._journal = []
            self._builder = threading.Thread(
                target=self._build, args=inner.rows_view(), name="agentcache-hnsw-build", daemon=True
            )
            self._builder_pid = os.getpid()
            self._builder.start()
            _building(self)

    def _to_hnsw(self, exact: NumpyIndex) -> VectorIndex:
        try:
            from agentcache.semantic.usearch_index import USearchIndex

            hnsw = USearchIndex(self.dim)
        except MissingDependencyError:
            self._exact_only = True
            return exact
        hnsw.add(exact.ids(), exact.vectors())
        return hnsw

    def _build(self, ids: list[str], vectors: npt.NDArray[np.float32]) -> None:
        """The background build: the graph of the copied rows, then the writes made meanwhile, then the swap."""
        try:
            from agentcache.semantic.usearch_index import USearchIndex

            hnsw = USearchIndex(self.dim)
            for start in range(0, len(ids), self._BUILD_CHUNK):
                if self._closed:
                    raise RuntimeError("closed")
                chunk = slice(start, start + self._BUILD_CHUNK)
                hnsw.add(ids[chunk], vectors[chunk], threads=_build_threads())
            while True:
                with self._lock:
                    journal = self._journal or []
                    if len(journal) <= self._REPLAY_INLINE:
                        self._replay(hnsw, journal)
                        self._inner = hnsw
                        self._journal, self._builder = None, None
                        return
                    self._journal = []
                self._replay(hnsw, journal)  # a long backlog: catch up outside the lock, then look again
        except Exception:  # usearch missing or failing: keep answering exactly (correct, only slower)
            with self._lock:
                self._journal, self._builder, self._exact_only = None, None, True

    @staticmethod
    def _replay(hnsw: VectorIndex, journal: list[tuple[Sequence[str], npt.NDArray[np.float32] | None]]) -> None:
        """Apply journaled writes in order, consecutive adds of distinct ids as one batch: replaying 14k single
        inserts one call each kept a background thread busy in Python, taking the GIL from lookups."""
        import numpy as np

        batch_ids: list[str] = []
        batch_rows: list[npt.NDArray[np.float32]] = []
        seen: set[str] = set()

        def flush() -> None:
            if batch_ids:
                hnsw.add(list(batch_ids), np.concatenate(batch_rows))
                batch_ids.clear()
                batch_rows.clear()
                seen.clear()

        for ids, vectors in journal:
            if vectors is None or len(set(ids)) != len(ids):  # a remove, or an add that repeats an id: alone
                flush()
                if vectors is None:
                    hnsw.remove(ids)
                else:
                    hnsw.add(ids, vectors)
                continue
            if not seen.isdisjoint(ids):
                flush()
            batch_ids.extend(ids)
            batch_rows.append(np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1))
            seen.update(ids)
        flush()

    def settle(self, timeout: float | None = None) -> bool:
        """Wait for a background switch to HNSW to finish; return whether none is running any more."""
        builder = self._builder
        if builder is not None:
            builder.join(timeout)
        return self._builder is None

    def close(self) -> None:
        """Stop a background build in progress (its owner dropped this index); the index still answers."""
        self._closed = True

    def freeze(self) -> VectorIndex | None:
        """Stop writing to the inner index, which is returned (to be saved by the caller) until `thaw`.

        Meanwhile writes go to a small exact side index that searches consult too, so neither a lookup nor an
        insert waits for the save (a 100k x 384 graph takes ~0.2 s to write). `None` (nothing to save now, and no
        `thaw` to call) during a background build or load, or another save.
        """
        with self._lock:
            if self._side is not None or self._builder is not None:
                return None
            self._side, self._shadow, self._masked, self._pending = NumpyIndex(self.dim), set(), set(), []
            return self._inner

    def thaw(self) -> None:
        """Apply the writes made since `freeze` to the inner index and write to it directly again."""
        while True:
            with self._lock:
                if self._side is None or not self._loaded:  # nothing frozen, or still the read-only index
                    return
                pending, self._pending = self._pending, []
                if len(pending) <= self._REPLAY_INLINE:
                    self._replay(self._inner, pending)
                    self._side, self._shadow, self._masked = None, set(), set()
                    return
            # a long backlog is caught up outside the lock (searches still see it in the side index)
            self._replay(self._inner, pending)

    def remove(self, ids: Sequence[str], /) -> int:
        """Delete `ids`; return how many were present."""
        with self._lock:
            if self._side is not None:
                removed = sum(i in self for i in ids)
                self._side.remove(ids)
                self._shadow.update(ids)
                self._masked.update(i for i in ids if i in self._inner)
                self._pending.append((list(ids), None))
                return removed
            removed = self._inner.remove(ids)
            if self._journal is not None:
                self._journal.append((list(ids), None))
            return removed

    def search(self, vector: npt.ArrayLike, /, k: int = 1) -> list[tuple[str, float]]:
        """Return up to `k` `(id, cosine)` pairs, best first."""
        side, shadow, masked = self._side, self._shadow, self._masked
        if side is None:
            return self._inner.search(vector, k)
        # ids whose inner copy is outdated or removed (the side index has the truth): fetched as many more
        found = [(i, s) for i, s in self._inner.search(vector, k + len(masked)) if i not in shadow]
        best: dict[str, float] = {}
        for i, score in [*found, *side.search(vector, k)]:  # an id in both: a `thaw` ran meanwhile
            best[i] = max(score, best.get(i, score))
        return sorted(best.items(), key=lambda hit: -hit[1])[:k]

    def save(self, path: str | Path, /) -> None:
        """Save the current inner index (load it back with `load_index`)."""
        self._inner.save(path)


def _build_threads() -> int:
    # One core stays free for lookups: with every core building, exact lookups during a 20k x 384 build on
    # 2 cores took 18 ms median and 74 ms at worst (see benchmarks/results/semantic_cold_start.md).
    return max(1, (os.cpu_count() or 1) - 1)


_builds: weakref.WeakSet[AutoIndex] = weakref.WeakSet()
_builds_lock = threading.Lock()


def _building(index: AutoIndex) -> None:
    """Remember an index with a background build, so the process stops it before exiting."""
    with _builds_lock:
        if not _builds:
            atexit.unregister(_stop_builds)
            atexit.register(_stop_builds)
        _builds.add(index)


def _stop_builds() -> None:
    # A process exiting while usearch inserted on a daemon thread was seen to abort ("terminate called without
    # an active exception"); each build stops at its next chunk instead (rebuilt or reloaded next time).
    with _builds_lock:
        indexes = list(_builds)
    for index in indexes:
        index.close()
    for index in indexes:
        index.settle(timeout=10)


def load_index(path: str | Path, /) -> VectorIndex:
    """Load an index saved by any index here, recognising its format."""
    with Path(path).open("rb") as f:
        head = f.read(len(_MAGIC))
    if head == _MAGIC:
        return NumpyIndex.load(path)
    from agentcache.semantic.usearch_index import USearchIndex

    return USearchIndex.load(path)
