"""Persisted ANN indexes: a large partition's HNSW graph is saved to disk and read back at restart.

Building HNSW over 100k vectors takes about a minute; reading the saved graph takes a fraction of a second.
Only partitions that moved to `USearchIndex` are saved (an exact index is rebuilt from the backend faster
than it could be checked). Files go next to the SQLite file (``<db>.semantic/``), or under
``AGENTCACHE_DIR/semantic/<store digest>/`` for Redis; memory stores are never persisted.

Per partition: ``<digest>.json`` (the manifest: a JSON header line with the partition prefix, dimension,
generation and record count, then lines of 4,096 records as columns: record keys, entry keys, queries, graph
labels) names ``<digest>-<generation>.usearch``. Graph files are written under fresh names and the manifest is
replaced atomically last, so concurrent writers (several processes on one store) never leave a manifest pointing
at a mixed graph. A loaded graph is memory-mapped and answers at once (`AutoIndex.loading`); it is reconciled
with the backend's listing on a background thread (`agentcache.semantic.partitions`), so entries added or
removed while the process was away are picked up. A save freezes the graph (`AutoIndex.freeze`): lookups and
inserts go on meanwhile.
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import sys
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentcache.keys.encoding import digest

if TYPE_CHECKING:
    from agentcache.backends.base import Backend
    from agentcache.semantic.index import AutoIndex
    from agentcache.semantic.partitions import Partition

__all__ = ["index_dir", "load_partition", "maybe_save", "save_indexes", "save_partition", "track"]

logger = logging.getLogger("agentcache")

_dirs: weakref.WeakKeyDictionary[Any, Path | None] = weakref.WeakKeyDictionary()
_stores: weakref.WeakSet[Any] = weakref.WeakSet()
_atexit_lock = threading.Lock()
_atexit_registered = False


def _store_dir(store: Any) -> Path | None:
    from agentcache.engine.settings import get_settings

    seen: set[int] = set()
    node = store
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        sqlite = sys.modules.get("agentcache.backends.sqlite")
        if sqlite is not None and isinstance(node, sqlite.SQLiteBackend):
            path = Path(node.path)
            return path.with_name(path.name + ".semantic")
        redis = sys.modules.get("agentcache.backends.redis")
        if redis is not None and isinstance(node, redis.RedisBackend):
            return get_settings().cache_dir / "semantic" / digest(repr(node).encode())
        node = getattr(node, "inner", None) or getattr(node, "l2", None)
    return None


def index_dir(store: Backend) -> Path | None:
    """Where the persisted indexes of `store` live, or `None` when its indexes are not persisted."""
    if store not in _dirs:
        _dirs[store] = _store_dir(store)
    return _dirs[store]


def _manifest(directory: Path, prefix: str) -> Path:
    return directory / f"{digest(prefix.encode())}.json"


_FORMAT = 2
_SETTLE = 30.0  # seconds `save_indexes` waits for a partition's background HNSW build
_CHUNK = 4096  # records per manifest line: each line is one quick (de)serialisation, not one 20 MB call


def save_partition(store: Backend, part: Partition) -> bool:
    """Save the partition's HNSW index (a no-op for exact indexes); return whether it was written."""
    from agentcache.semantic.usearch_index import USearchIndex

    directory = index_dir(store)
    if directory is None or not isinstance(part.index.inner, USearchIndex):
        return False
    name = digest(part.prefix.encode())
    generation = secrets.token_hex(6)
    graph = directory / f"{name}-{generation}.usearch"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with part.lock:  # the graph as frozen here and the metadata agree (writes take this lock)
            inner = part.index.freeze()
            if inner is None:  # a background build, load or save runs: saved later
                return False
            records = dict(part.meta)
            changes, part.changes = part.changes, 0
        try:  # lookups and inserts go on meanwhile (see `AutoIndex.freeze`)
            if not isinstance(inner, USearchIndex):
                part.changes += changes
                return False
            labels, next_label = inner.save_graph(graph)
        finally:
            part.index.thaw()
        if labels.keys() != records.keys():
            raise ValueError("the graph and the records disagree")
        target = _manifest(directory, part.prefix)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.{generation}.tmp")
        _write_manifest(tmp, part.prefix, inner.dim, generation, next_label, records, labels)
        tmp.replace(target)
    except Exception as exc:  # a failed save only costs a rebuild at the next restart
        logger.warning("agentcache: could not save the semantic index of %s: %r", part.prefix, exc)
        return False
    for old in directory.glob(f"{name}-*.usearch*"):  # older generations (another process may still be reading)
        if generation not in old.name:
            old.unlink(missing_ok=True)
    return True


def _write_manifest(
    path: Path,
    prefix: str,
    dim: int,
    generation: str,
    next_label: int,
    records: dict[str, tuple[str, str]],
    labels: dict[str, int],
) -> None:
    """A header line (JSON), then one line per `_CHUNK` records: `{"k": keys, "e": entry keys, "q": queries,
    "l": graph labels}` (columns: loading them is a few C-level zips, no per-record Python)."""
    import orjson

    keys = list(records)
    with path.open("wb") as f:
        header = {"format": _FORMAT, "prefix": prefix, "dim": dim, "generation": generation, "next": next_label}
        f.write(orjson.dumps({**header, "count": len(keys)}) + b"\n")
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            meta = [records[k] for k in chunk]
            columns = {
                "k": chunk,
                "e": [m[0] for m in meta],
                "q": [m[1] for m in meta],
                "l": [labels[k] for k in chunk],
            }
            f.write(orjson.dumps(columns) + b"\n")


def load_partition(store: Backend, prefix: str, dim: int) -> tuple[AutoIndex, dict[str, tuple[str, str]]] | None:
    """The saved index of a partition and its record metadata, or `None` (no file, or an unusable one).

    The graph is memory-mapped and answers at once; writes go to a side index until enough piled up for a
    writable graph to be built on a background thread (`AutoIndex.loading`)."""
    directory = index_dir(store)
    if directory is None:
        return None
    target = _manifest(directory, prefix)
    if not target.exists():
        return None
    try:
        import orjson

        from agentcache.semantic.index import AutoIndex
        from agentcache.semantic.usearch_index import USearchIndex

        lines = target.read_bytes().split(b"\n")
        header = orjson.loads(lines[0])
        if header.get("format") != _FORMAT or header["prefix"] != prefix or int(header["dim"]) != dim:
            return None
        meta: dict[str, tuple[str, str]] = {}
        labels: dict[str, int] = {}
        for line in lines[1:]:
            if line:
                columns = orjson.loads(line)
                keys = columns["k"]
                meta.update(zip(keys, zip(columns["e"], columns["q"], strict=True), strict=True))
                labels.update(zip(keys, columns["l"], strict=True))
        if len(meta) != int(header["count"]) or meta.keys() != labels.keys():
            raise ValueError("the manifest is truncated or inconsistent")
        graph = directory / f"{digest(prefix.encode())}-{header['generation']}.usearch"
        viewed = USearchIndex.from_graph(graph, dim, labels, int(header["next"]), view=True)
    except Exception as exc:  # any unusable file means a rebuild from the backend, never a failed lookup
        logger.info("agentcache: rebuilding the semantic index of %s (saved copy unusable: %r)", prefix, exc)
        return None
    return AutoIndex.loading(viewed), meta


_partitions_of: Callable[[Backend], list[Partition]] | None = None


def track(store: Backend, partitions_of: Callable[[Backend], list[Partition]]) -> None:
    """Arrange for the HNSW partition indexes of `store` to be saved at exit (when it has an index dir);
    `partitions_of(store)` lists the partitions loaded in this process."""
    global _atexit_registered, _partitions_of
    _partitions_of = partitions_of
    if index_dir(store) is None or store in _stores:
        return
    with _atexit_lock:
        _stores.add(store)
        if not _atexit_registered:
            atexit.register(save_indexes)
            _atexit_registered = True


def maybe_save(store: Backend, part: Partition, *, built: int) -> None:
    """Save a partition that uses HNSW after a large (re)build or many changes."""
    from agentcache.semantic.usearch_index import USearchIndex

    if not isinstance(part.index.inner, USearchIndex) or index_dir(store) is None:
        return
    if built >= 1_000 or part.changes >= max(1_000, len(part.index) // 10):
        save_partition(store, part)


def save_indexes() -> int:
    """Save every changed HNSW partition index of this process now (also runs at exit); return how many."""
    saved = 0
    lister = _partitions_of
    if lister is None:
        return 0
    for store in list(_stores):
        for part in lister(store):
            part.index.settle(timeout=_SETTLE)  # a build about to finish is saved (at exit, builds were stopped)
            if part.changes and save_partition(store, part):
                saved += 1
    return saved
