"""How a partition's index stays in step with its store without stalling lookups (issue #13).

- A cold start indexes the partition's records in one batch, not one insert per record.
- Rescans (and the reconcile of an index loaded from a file) run on a background thread: the lookup that
  finds one due returns before it ends.
- `memory://` is never rescanned: its store reports removed vector records, and the index drops them.
- A save of the HNSW graph holds up neither lookups nor inserts.

No wall-clock assertions: a spy blocks the background work on an event, and the test checks what finished
while it was blocked.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

np = pytest.importorskip("numpy")

from support.vector_records import VectorPartition  # noqa: E402

from agentcache.backends.base import Item  # noqa: E402
from agentcache.engine.cache import Cache  # noqa: E402
from agentcache.semantic import partitions, persist  # noqa: E402
from agentcache.semantic.index import AutoIndex, NumpyIndex  # noqa: E402
from agentcache.semantic.partitions import encode_record, refresh  # noqa: E402

PART = VectorPartition("p")
DIM, NS, PREFIX = PART.dim, PART.ns, PART.prefix
vectors, key, write, lookup = PART.vectors, PART.key, PART.write, PART.lookup
# Not importorskip: importing usearch before onnxruntime crashes the process (see usearch_index._usearch).
needs_usearch = pytest.mark.skipif(importlib.util.find_spec("usearch") is None, reason="usearch is not installed")


class Blocked:
    """A spy for `partitions._reconcile`: records the thread of each call; calls made off the main thread
    wait for `release` before doing the real work."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.real = partitions._reconcile
        self.threads: list[str] = []
        self.release = threading.Event()
        self.started = threading.Event()
        monkeypatch.setattr(partitions, "_reconcile", self)

    def __call__(self, store: Any, part: partitions.Partition) -> None:
        self.threads.append(threading.current_thread().name)
        if threading.current_thread() is not threading.main_thread():
            self.started.set()
            assert self.release.wait(60)
        self.real(store, part)


@pytest.fixture
def sqlite_cache(tmp_path: Path) -> Iterator[Cache]:
    cache = Cache(f"sqlite://{tmp_path / 'cache.db'}")
    yield cache
    partitions.settle(timeout=60)
    cache.close()


class TestColdStart:
    def test_first_lookup_indexes_every_record_in_one_batch(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The partition's 300 records reach the index in one call (one insert each took 188 s at 100k), whose
        buffer becomes the exact index's matrix (no copy)."""
        cache = Cache("memory://")
        data = vectors(300)
        write(cache, data)
        batches: list[tuple[str, int]] = []
        real_add, real_adopt = AutoIndex.add, AutoIndex.adopt

        def spy_add(self: AutoIndex, ids: Any, rows: Any, /) -> None:
            batches.append(("add", len(ids)))
            real_add(self, ids, rows)

        def spy_adopt(self: AutoIndex, ids: Any, rows: Any, /) -> None:
            batches.append(("adopt", len(ids)))
            real_adopt(self, ids, rows)
            inner = self.inner
            assert isinstance(inner, NumpyIndex)
            assert np.shares_memory(inner.rows_view()[1], rows)

        monkeypatch.setattr(AutoIndex, "add", spy_add)
        monkeypatch.setattr(AutoIndex, "adopt", spy_adopt)
        assert lookup(cache, data[123]) == key(123)
        assert batches == [("adopt", 300)]

    def test_bulk_add_keeps_replacements_exact(self) -> None:
        """The one-copy bulk path is taken only for new ids; a batch that replaces ids still replaces them."""
        index = NumpyIndex(DIM)
        data = vectors(6, seed=3)
        index.add(["a", "b", "c"], data[:3])
        index.add(["c", "d", "d"], data[3:6])  # "c" replaced; "d" twice: the last vector wins
        assert len(index) == 4
        assert index.search(data[3], 1)[0][0] == "c"
        assert index.search(data[5], 1)[0][0] == "d"
        assert index.search(data[2], 2)[0][0] != "c"

    def test_unreadable_and_foreign_records_are_left_out(self) -> None:
        """A damaged record is reported (and removed from the store); another model's dimension is skipped."""
        cache = Cache("memory://")
        data = vectors(5)
        write(cache, data)
        cache.store.set_many(
            [
                Item(key(90), b"garbage"),
                Item(key(91), encode_record(key(91), "q", "e", "m", [1.0] * (DIM + 1))),
            ]
        )
        part = refresh(cache.store, NS, PREFIX, DIM)
        assert set(part.meta) == {key(i) for i in range(5)} | set()
        assert cache.store.get(key(90)) is None  # removed: no later rescan reads it again
        assert cache.store.get(key(91)) is not None


class TestBackgroundRescans:
    def test_due_rescan_runs_on_the_background_thread_not_the_lookup(
        self, sqlite_cache: Cache, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A lookup that finds the partition due returns while the rescan is still blocked; the rescan then
        brings in what another process wrote."""
        data = vectors(40)
        write(sqlite_cache, data[:20])
        spy = Blocked(monkeypatch)
        assert lookup(sqlite_cache, data[3]) == key(3)  # the first build: inline, one batch
        assert spy.threads == ["MainThread"]
        write(sqlite_cache, data[20:], start=20)  # "another process"
        monkeypatch.setattr(partitions, "RESCAN_SECONDS", 0.0)
        assert lookup(sqlite_cache, data[30]) != key(30)  # answered from the index as it was
        assert spy.started.wait(60)
        assert lookup(sqlite_cache, data[30]) != key(30)  # still blocked: lookups go on, none queued twice
        spy.release.set()
        assert partitions.settle(timeout=60)
        assert spy.threads[1] == "agentcache-semantic-refresh"
        assert lookup(sqlite_cache, data[30]) == key(30)

    @needs_usearch
    def test_index_loaded_from_file_answers_before_its_reconcile(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A restart serves the saved graph at once; the reconcile with the store runs in the background."""
        monkeypatch.setattr(partitions, "ANN_SWITCH_AT", 50)
        url = f"sqlite://{tmp_path / 'cache.db'}"
        data = vectors(120)
        first = Cache(url)
        write(first, data[:100])
        part = refresh(first.store, NS, PREFIX, DIM)
        assert part.index.settle(timeout=60)
        assert persist.save_partition(first.store, part)
        write(first, data[100:], start=100)  # added while the next process is away
        first.close()
        partitions.forget_partitions()

        second = Cache(url)
        spy = Blocked(monkeypatch)
        assert lookup(second, data[7]) == key(7)  # from the file, while the reconcile waits
        assert spy.started.wait(60)
        (loaded,) = partitions.loaded_partitions(second.store)
        assert loaded.origin == "file"
        assert key(110) not in loaded.meta
        spy.release.set()
        assert partitions.settle(timeout=60)
        assert spy.threads == ["agentcache-semantic-refresh"]
        assert lookup(second, data[110]) == key(110)
        second.close()

    def test_an_async_lookup_needs_no_thread_hop_once_built(self, sqlite_cache: Cache) -> None:
        """After the first build a store without an event log has nothing to do inline (rescans are queued)."""
        write(sqlite_cache, vectors(10))
        assert partitions.needs_io(sqlite_cache.store, PREFIX)  # not built yet
        refresh(sqlite_cache.store, NS, PREFIX, DIM)
        assert not partitions.needs_io(sqlite_cache.store, PREFIX)


class TestMemoryStores:
    def test_memory_store_is_never_rescanned(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """No other process can write `memory://`: however due, no rescan is queued or run."""
        cache = Cache("memory://")
        data = vectors(20)
        write(cache, data)
        queued: list[str] = []
        monkeypatch.setattr(partitions._refresher, "submit", lambda store, part: queued.append(part.prefix))
        monkeypatch.setattr(partitions, "RESCAN_SECONDS", 0.0)
        for i in range(5):
            assert lookup(cache, data[i]) == key(i)
        (part,) = partitions.loaded_partitions(cache.store)
        assert part.rescans == 1  # the first build only
        assert queued == []

    def test_removed_records_leave_the_index_without_a_rescan(self) -> None:
        """Invalidation, deletion and eviction are reported by the store; the next lookup drops those vectors
        (they would otherwise stay in the index for good); a rewritten record stays."""
        cache = Cache("memory://?max_entries=60")
        data = vectors(60)
        write(cache, data[:20], tags=("t",))
        write(cache, data[20:40], start=20)
        assert lookup(cache, data[0]) == key(0)
        (part,) = partitions.loaded_partitions(cache.store)
        cache.invalidate(tags=["t"])  # 0-19
        cache.store.delete_many([key(20), key(21)])
        write(cache, data[30:31], start=30)  # replaced in place: reported removed, but it is back
        assert lookup(cache, data[30]) == key(30)
        assert set(part.meta) == {key(i) for i in range(22, 40)}
        assert part.rescans == 1

    def test_tiered_store_is_not_taken_for_a_local_one(self) -> None:
        """Only a store whose data is a `MemoryBackend` counts as local (a tier's L1 is a copy of shared data)."""
        from agentcache.backends.memory import MemoryBackend
        from agentcache.backends.tiered import TieredBackend

        shared = MemoryBackend()
        assert partitions._local_store(shared) is shared
        tier = TieredBackend.__new__(TieredBackend)
        tier.l1, tier.l2 = MemoryBackend(), object()  # type: ignore[assignment]
        assert partitions._local_store(tier) is None


@needs_usearch
class TestSaveWithoutStalls:
    def test_lookups_and_inserts_go_on_while_the_graph_is_saved(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """While `save_partition` writes the graph (held here on an event), a lookup and an insert complete;
        the insert is in the graph after the save, and the saved files hold the graph as it was frozen."""
        from agentcache.semantic.usearch_index import USearchIndex

        monkeypatch.setattr(partitions, "ANN_SWITCH_AT", 50)
        cache = Cache(f"sqlite://{tmp_path / 'cache.db'}")
        data = vectors(90)
        write(cache, data[:80])
        part = refresh(cache.store, NS, PREFIX, DIM)
        assert part.index.settle(timeout=60)
        assert isinstance(part.index.inner, USearchIndex)
        saving, done = threading.Event(), threading.Event()
        real_save = USearchIndex.save_graph

        def slow_save(self: USearchIndex, path: Any, /) -> tuple[dict[str, int], int]:
            saving.set()
            assert done.wait(60)
            return real_save(self, path)

        monkeypatch.setattr(USearchIndex, "save_graph", slow_save)
        saver = threading.Thread(target=persist.save_partition, args=(cache.store, part))
        saver.start()
        assert saving.wait(60)
        part.add(key(85), "e85", "question 85", data[85].tolist())  # would wait for the save before
        part.drop([key(3)])
        assert part.search(data[85].tolist(), 1)[0][0] == key(85)
        assert part.search(data[3].tolist(), 1)[0][0] != key(3)
        assert key(85) in part.index and key(3) not in part.index
        done.set()
        saver.join(60)
        assert part.search(data[85].tolist(), 1)[0][0] == key(85)
        assert part.index.inner.search(data[85], 1)[0][0] == key(85)  # replayed on the graph itself
        assert key(3) not in part.index.inner
        partitions.forget_partitions()
        loaded = persist.load_partition(cache.store, PREFIX, DIM)
        assert loaded is not None
        assert set(loaded[1]) == {key(i) for i in range(80)}  # the frozen graph and its metadata agree
        cache.close()


class TestFreeze:
    def test_writes_while_frozen_are_searched_then_replayed(self) -> None:
        """Frozen: adds, replacements and removes are answered from the side index, never from the stale
        inner copy; after `thaw` the inner index holds them all."""
        data = vectors(60, seed=5)
        auto = AutoIndex(DIM, switch_at=10_000)
        auto.add([str(i) for i in range(40)], data[:40])
        inner = auto.freeze()
        assert inner is not None
        auto.add(["41"], data[41:42])
        auto.add(["5"], data[50:51])  # "5" now holds another vector
        assert auto.remove(["7", "41", "99"]) == 2
        assert len(inner) == 40  # untouched while frozen
        assert auto.search(data[50], 1)[0][0] == "5"
        assert auto.search(data[5], 1)[0][0] != "5"
        assert auto.search(data[7], 1)[0][0] != "7"
        assert "7" not in auto and "41" not in auto and "5" in auto
        assert len(auto) == 39
        for i in range(42, 42 + AutoIndex._REPLAY_INLINE + 3):  # a backlog longer than one inline replay
            auto.add([f"x{i}"], data[i % 60 : i % 60 + 1])
        auto.thaw()
        assert auto.search(data[50], 1)[0][0] == "5"
        assert "7" not in inner and "41" not in inner and f"x{42}" in inner
        assert len(auto) == len(inner) == 39 + AutoIndex._REPLAY_INLINE + 3


class TestLifecycle:
    def test_forgotten_memory_state_stops_collecting_removals(self) -> None:
        """After `forget_partitions` the store no longer reports removals to a queue nobody drains."""
        cache = Cache("memory://")
        write(cache, vectors(3))
        refresh(cache.store, NS, PREFIX, DIM)
        memory: Any = cache.store
        assert memory.on_remove is not None
        partitions.forget_partitions()
        assert memory.on_remove is None
        refresh(cache.store, NS, PREFIX, DIM)  # a new state hooks in again
        assert memory.on_remove is not None

    def test_a_forked_child_starts_with_free_locks_and_no_queue(self, sqlite_cache: Cache) -> None:
        """What the parent's background thread held at the fork (a partition's refresh lock, its queued mark)
        is released in the child, whose own thread then takes new work."""
        write(sqlite_cache, vectors(5))
        part = refresh(sqlite_cache.store, NS, PREFIX, DIM)
        part.queued = True
        assert part.refreshing.acquire(blocking=False)
        partitions._after_fork_in_child()  # what `os.register_at_fork` runs in the child
        assert not part.queued
        assert part.refreshing.acquire(blocking=False)
        part.refreshing.release()
        partitions._refresher.submit(sqlite_cache.store, part)
        assert partitions.settle(timeout=60)
        assert part.rescans == 2
