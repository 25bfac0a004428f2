"""`USearchIndex`: approximate (HNSW) cosine search via usearch, with real deletes and a file format.

usearch keys are integers, so string ids map to labels that are never reused; the mapping is saved in a
JSON sidecar (`<path>.ids.json`) next to usearch's own file. Loading reads the built graph back instead
of rebuilding it (a 100k build takes about a minute on 2 cores).
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentcache.errors import ConfigurationError, MissingDependencyError, SerializationError
from agentcache.semantic.vectors import normalize_rows

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["USearchIndex"]

_SEED = 1024  # nodes inserted one thread at a time before batches use every core (see `USearchIndex.add`)


def _usearch() -> Any:
    # Importing onnxruntime *after* usearch (its numkong kernels) segfaults the process (usearch 2.26,
    # onnxruntime 1.32); the other order is fine, so load onnxruntime first when it is installed.
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime  # noqa: F401
    try:
        from usearch.index import Index
    except ImportError as exc:
        raise MissingDependencyError("usearch", "ann") from exc
    return Index


class USearchIndex:
    """HNSW over unit float32 vectors (cosine); `remove` really deletes (usearch frees the slot).

    `connectivity` (M) and `expansion_add` (efConstruction) are usearch's usual values. `expansion_search`
    (ef) defaults to a size-dependent value measured to keep recall@1 of true hits >= 0.99 against exact
    search (16 below 20k entries, 32 below 200k, 64 above; see `benchmarks/results/semantic_speed.md`).
    `dtype` is the stored precision: float32 below 1024 dimensions, float16 from 1024 up (half the memory
    and bandwidth; scores then carry ~1e-3 error, far below any useful threshold step).
    """

    def __init__(
        self,
        dim: int,
        *,
        connectivity: int = 16,
        expansion_add: int = 128,
        expansion_search: int | None = None,
        dtype: str | None = None,
    ) -> None:
        index_cls = _usearch()
        self.dim = dim
        self._index: Any = index_cls(
            ndim=dim,
            metric="cos",
            dtype=dtype or ("f16" if dim >= 1024 else "f32"),
            connectivity=connectivity,
            expansion_add=expansion_add,
            expansion_search=expansion_search or 16,
        )
        self._auto_ef = expansion_search is None
        self._labels: dict[str, int] = {}
        self._ids: dict[int, str] = {}
        self._next = 0
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._labels)

    def __contains__(self, id_: object, /) -> bool:
        return id_ in self._labels

    def ids(self) -> list[str]:
        """Every id held."""
        with self._lock:
            return list(self._labels)

    @property
    def expansion_search(self) -> int:
        """HNSW search breadth (ef): higher is more accurate and slower."""
        return int(self._index.expansion_search)

    @expansion_search.setter
    def expansion_search(self, value: int) -> None:
        self._auto_ef = False
        self._index.expansion_search = value

    def _tune(self) -> None:
        if self._auto_ef:
            n = len(self._labels)
            ef = 16 if n < 20_000 else 32 if n < 200_000 else 64
            if self._index.expansion_search != ef:
                self._index.expansion_search = ef

    def add(self, ids: Sequence[str], vectors: npt.ArrayLike, /, *, threads: int = 0) -> None:
        """Insert (or replace) one vector per id, on `threads` threads (0: every core for a batch, one thread for
        a few vectors: a caller's single insert waiting on a pool of busy cores)."""
        import numpy as np

        threads = threads or (1 if len(ids) < 64 else 0)

        rows = normalize_rows(vectors, self.dim)
        if len(rows) != len(ids):
            raise ConfigurationError(f"{len(ids)} ids for {len(rows)} vectors")
        with self._lock:
            self.remove([i for i in ids if i in self._labels])
            labels = np.arange(self._next, self._next + len(ids), dtype=np.uint64)
            self._next += len(ids)
            for id_, label in zip(ids, labels.tolist(), strict=True):
                self._labels[id_] = label
                self._ids[label] = id_
            # usearch inserts a batch on all cores; into a graph of a few hundred nodes, concurrent inserts
            # can leave a node that no search reaches (seen: an exact stored vector missed by 1 search in 5
            # at 60 entries). Growing the first `_SEED` nodes on one thread makes small graphs whole.
            seed = max(0, min(len(ids), _SEED - len(self._index)))
            if seed:
                self._index.add(labels[:seed], rows[:seed], threads=1)
            if len(ids) > seed:
                self._index.add(labels[seed:], rows[seed:], threads=threads)
            self._tune()

    def remove(self, ids: Sequence[str], /) -> int:
        """Delete `ids` from the graph; return how many were present."""
        removed = 0
        with self._lock:
            for id_ in ids:
                label = self._labels.pop(id_, None)
                if label is None:
                    continue
                del self._ids[label]
                self._index.remove(label)
                removed += 1
        return removed

    def search(self, vector: npt.ArrayLike, /, k: int = 1) -> list[tuple[str, float]]:
        """Return up to `k` `(id, cosine)` pairs, best first (approximate)."""
        query = normalize_rows(vector, self.dim)[0]
        # No lock: usearch searches concurrently with inserts and deletes, and a lookup must not wait for a
        # save (which holds the lock). A label removed meanwhile is simply not mapped back.
        if not self._labels or k <= 0:
            return []
        matches = self._index.search(query, k)
        out: list[tuple[str, float]] = []
        for label, distance in zip(matches.keys.tolist(), matches.distances.tolist(), strict=True):
            id_ = self._ids.get(label)
            if id_ is not None:
                out.append((id_, 1.0 - float(distance)))
        return out

    def save(self, path: str | Path, /) -> None:
        """Write the graph to `path` and the id mapping to `path + '.ids.json'`."""
        import orjson

        path = Path(path)
        with self._lock:
            self._index.save(str(path))
            meta = {"dim": self.dim, "next": self._next, "labels": self._labels}
            Path(f"{path}.ids.json").write_bytes(orjson.dumps(meta))

    def save_graph(self, path: str | Path, /) -> tuple[dict[str, int], int]:
        """Write the graph alone to `path`; return its id -> label map and the next label (saved by the caller,
        and given back to `from_graph`)."""
        with self._lock:
            self._index.save(str(path))
            return dict(self._labels), self._next

    @classmethod
    def from_graph(
        cls, path: str | Path, dim: int, labels: dict[str, int], next_label: int, /, *, view: bool = False
    ) -> USearchIndex:
        """The index of a graph written by `save_graph`, with the label map it returned (taken, not copied);
        `view` as in `load`. Raises `SerializationError` when they disagree."""
        index = cls(dim)
        with index._lock:
            if view:
                index._index.view(str(path))
            else:
                index._index.load(str(path))
            index._labels, index._next = labels, next_label
            index._ids = dict(zip(labels.values(), labels.keys(), strict=True))
            if len(index._index) != len(labels) or len(index._ids) != len(labels):
                raise SerializationError(f"{path} and its id map disagree")
            index._tune()
        return index

    def vectors_of(self, ids: Sequence[str], /) -> npt.NDArray[np.float32]:
        """The stored unit vectors of `ids` (all held), as float32 rows (also of a read-only, mapped index)."""
        import numpy as np

        labels = np.array([self._labels[i] for i in ids], dtype=np.uint64)
        rows: npt.NDArray[np.float32] = np.stack(self._index.get(labels, dtype=np.float32)).astype(np.float32)
        return rows

    @classmethod
    def load(cls, path: str | Path, /, *, view: bool = False) -> USearchIndex:
        """Read back an index written by `save` (graph and ids). `view`: map the graph file instead of reading
        it (milliseconds instead of ~0.5 s at 100k x 384) into a read-only index (`add` and `remove` raise)."""
        import orjson

        path = Path(path)
        try:
            meta = orjson.loads(Path(f"{path}.ids.json").read_bytes())
        except (OSError, ValueError) as exc:  # orjson.JSONDecodeError is a ValueError
            raise SerializationError(f"cannot read the id map of {path}: {exc}") from exc
        index = cls(int(meta["dim"]))
        with index._lock:
            if view:
                index._index.view(str(path))
            else:
                index._index.load(str(path))
            index._labels = {str(k): int(v) for k, v in meta["labels"].items()}
            index._ids = {v: k for k, v in index._labels.items()}
            index._next = int(meta["next"])
            if len(index._index) != len(index._labels):
                raise SerializationError(f"{path} and its id map disagree")
        return index
