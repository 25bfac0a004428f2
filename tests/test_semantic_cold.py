"""Cold starts without copies or stalls: the adopted matrix, the mapped saved graph, rescans off the lookup."""

from __future__ import annotations

import importlib.util
import threading
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

PART = VectorPartition("c")
DIM, NS, PREFIX = PART.dim, PART.ns, PART.prefix
vectors, key, write, lookup = PART.vectors, PART.key, PART.write, PART.lookup
# Not importorskip: importing usearch before onnxruntime crashes the process (see usearch_index._usearch).
needs_usearch = pytest.mark.skipif(importlib.util.find_spec("usearch") is None, reason="usearch is not installed")


class TestSharedRows:
    def test_a_view_handed_out_never_changes(self) -> None:
        """`rows_view` (what a background HNSW build reads) stays as it was while the index replaces, removes
        and adds rows; the index itself answers with the new rows."""
        data = vectors(30)
        index = NumpyIndex(DIM)
        assert index.adopt([str(i) for i in range(20)], data[:20].copy())
        ids, view = index.rows_view()
        before = view.copy()
        index.add(["3"], data[25:26])  # replaces row 3 in place
        index.remove(["0"])  # moves the last row into row 0
        index.add(["new"], data[26:27])
        assert np.array_equal(view, before) and ids == [str(i) for i in range(20)]
        assert index.search(data[25], 1)[0][0] == "3"
        assert index.search(data[26], 1)[0][0] == "new"
        assert "0" not in index and index.search(data[0], 1)[0][0] != "0"

    def test_adopt_refuses_a_non_empty_index_or_repeated_ids(self) -> None:
        index = NumpyIndex(DIM)
        assert not index.adopt(["a", "a"], vectors(2))
        index.add(["x"], vectors(1))
        assert not index.adopt(["b"], vectors(1))
        assert len(index) == 1


@needs_usearch
class TestMappedGraph:
    def saved(self, tmp_path: Path, n: int) -> tuple[Cache, Any]:
        """A SQLite store whose partition of `n` records has a saved HNSW graph, and a restart's index state."""
        cache = Cache(f"sqlite://{tmp_path / 'cache.db'}")
        data = vectors(n + 40)
        write(cache, data[:n])
        part = refresh(cache.store, NS, PREFIX, DIM)
        assert part.index.settle(timeout=60)
        assert persist.save_partition(cache.store, part)
        partitions.forget_partitions()
        return cache, data

    def test_writes_before_the_writable_graph_are_answered_then_replayed(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A restart answers from the mapped graph; adds, replacements and removes made meanwhile are searched
        in the side index (a removed id is never returned); past `FINISH_AFTER` writes the writable graph is
        built in the background and holds them all."""
        from agentcache.semantic.usearch_index import USearchIndex

        monkeypatch.setattr(partitions, "ANN_SWITCH_AT", 50)
        monkeypatch.setattr(AutoIndex, "FINISH_AFTER", 6)
        cache, data = self.saved(tmp_path, 100)
        assert lookup(cache, data[7]) == key(7)
        assert partitions.settle(timeout=60)  # its reconcile with the store (nothing new)
        (part,) = partitions.loaded_partitions(cache.store)
        assert part.origin == "file" and not part.index.wants_finishing
        viewed = part.index.inner
        write(cache, data[100:101], start=100)
        cache.store.set_many([Item(key(5), encode_record(key(5), "q5", "e5", "m", data[101]))])
        part.add(key(100), "e100", "q100", data[100].tolist())
        part.add(key(5), "e5", "q5", data[101].tolist())  # key 5 now holds another vector
        cache.store.delete_many([key(9), key(10)])
        part.drop([key(9), key(10)])
        assert part.search(data[100].tolist(), 1)[0][0] == key(100)
        assert part.search(data[101].tolist(), 1)[0][0] == key(5)
        assert all(hit[0] not in (key(9), key(10)) for hit in part.search(data[9].tolist(), 4))
        assert part.index.inner is viewed and not part.index.wants_finishing
        assert persist.save_partition(cache.store, part) is False  # nothing to save until the graph is writable
        write(cache, data[102:105], start=102)
        for i in range(102, 105):
            part.add(key(i), f"e{i}", f"q{i}", data[i].tolist())
        assert part.index.wants_finishing
        assert lookup(cache, data[103]) == key(103)  # queues the build, off this thread
        assert partitions.settle(timeout=60) and part.index.settle(timeout=60)
        inner = part.index.inner
        assert isinstance(inner, USearchIndex) and inner is not viewed
        assert key(9) not in inner and key(10) not in inner and key(104) in inner
        assert inner.search(data[101], 1)[0][0] == key(5)
        assert len(part.index) == 100 + 4 - 2
        assert persist.save_partition(cache.store, part)
        cache.close()

    def test_a_partition_loaded_and_left_alone_is_never_copied(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A restart that only reads keeps the mapped graph: no rebuild (usearch holds the GIL while it copies
        or loads a graph: 0.7 s at 100k, stalling every thread)."""
        monkeypatch.setattr(partitions, "ANN_SWITCH_AT", 50)
        cache, data = self.saved(tmp_path, 80)
        started: list[str] = []
        real = AutoIndex.finish_loading
        monkeypatch.setattr(AutoIndex, "finish_loading", lambda self: started.append("x") or real(self))
        for i in range(20):
            assert lookup(cache, data[i]) == key(i)
        assert partitions.settle(timeout=60)
        (part,) = partitions.loaded_partitions(cache.store)
        assert part.index.settle(timeout=60)
        assert started == [] and part.index.wants_finishing is False
        cache.close()


class TestRescansOffTheLookupThread:
    @pytest.mark.parametrize("url", ["memory://", "sqlite"])
    def test_rescans_counted_by_thread(self, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Lookups that always find the partition due: the lookup thread reconciles once (the first build), a
        `memory://` store never again on any thread, SQLite only on the refresher thread."""
        cache = Cache(url if url == "memory://" else f"sqlite://{tmp_path / 'cache.db'}")
        data = vectors(30)
        write(cache, data)
        calls: list[str] = []
        real = partitions._reconcile

        def counting(store: Any, part: partitions.Partition) -> None:
            calls.append(threading.current_thread().name)
            real(store, part)

        monkeypatch.setattr(partitions, "_reconcile", counting)
        monkeypatch.setattr(partitions, "RESCAN_SECONDS", 0.0)
        for i in range(30):
            assert lookup(cache, data[i]) == key(i)
            if i % 10 == 9:
                assert partitions.settle(timeout=60)  # let the background catch up, so more are queued
        assert partitions.settle(timeout=60)
        on_lookup = calls.count(threading.current_thread().name)
        assert on_lookup == 1
        if url == "memory://":
            assert calls == [threading.current_thread().name]
        else:
            assert len(calls) > 1 and set(calls[1:]) == {"agentcache-semantic-refresh"}
        cache.close()


class TestChecks:
    def test_a_shared_store_refuses_a_damaged_record(self, tmp_path: Path) -> None:
        """On SQLite a record with a flipped byte is refused by the one-pass decode and removed (`memory://`:
        tests/test_integrity.py)."""
        cache = Cache(f"sqlite://{tmp_path / 'cache.db'}")
        data = vectors(6)
        write(cache, data[:5])
        damaged = bytearray(encode_record(key(5), "q5", "e5", "m", data[5]))
        damaged[-3] ^= 0x40
        cache.store.set_many([Item(key(5), bytes(damaged))])
        part = refresh(cache.store, NS, PREFIX, DIM)
        assert set(part.meta) == {key(i) for i in range(5)}
        assert cache.store.get(key(5)) is None
        cache.close()


class TestReplay:
    def test_journal_replayed_in_batches_with_the_same_result(self) -> None:
        """Consecutive adds of distinct ids become one insert call; a repeated id or a remove starts a new one,
        so the result is the one-by-one result (a replaced vector wins, a removed id is gone)."""
        data = vectors(10)
        journal: list[tuple[Any, Any]] = [
            (["a"], data[0:1]),
            (["b"], data[1:2]),
            (["c"], data[2:3]),
            (["a"], data[3:4]),  # replaces a: a new batch
            (["b"], None),  # removes b
            (["d", "e"], data[4:6]),
            (["f", "f"], data[6:8]),  # repeats an id within one write: applied alone (the last wins)
        ]
        calls: list[int] = []

        class Counting(NumpyIndex):
            def add(self, ids: Any, vectors: Any, /) -> None:
                calls.append(len(ids))
                super().add(ids, vectors)

        batched, one_by_one = Counting(DIM), NumpyIndex(DIM)
        AutoIndex._replay(batched, journal)
        for ids, rows in journal:
            one_by_one.add(ids, rows) if rows is not None else one_by_one.remove(ids)
        assert calls == [3, 1, 2, 2]
        assert sorted(batched.ids()) == sorted(one_by_one.ids()) == ["a", "c", "d", "e", "f"]
        for i, row in enumerate(data[:8]):
            assert batched.search(row, 1) == one_by_one.search(row, 1), i
