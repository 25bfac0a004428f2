"""A damaged SQLite file is moved aside and the store starts afresh, once, with one warning, even when several
processes find it at the same time; the write-ahead log stays within the store's `max_bytes` budget."""

from __future__ import annotations

import logging
import multiprocessing
import os
import random
from pathlib import Path
from typing import Any

import pytest
from test_decorators import call, make

import agentcache
from agentcache.backends import Item, SQLiteBackend
from agentcache.backends._sqlite_files import MIN_WAL_BYTES, wal_pragmas
from agentcache.engine.cache import Cache

N = 40


def double(x: int) -> int:
    return 2 * x


def _filled(path: Path) -> None:
    """A real cache file holding `double(i)` for every i < N, closed (its log checkpointed into the file)."""
    cache = Cache(f"sqlite://{path}")
    fn = agentcache.tool_cached(backend=cache, name="double")(double)
    for i in range(N):
        fn(i)
    cache.close()


def _overwrite_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[:100] = random.Random(1).randbytes(100)
    path.write_bytes(bytes(data))


def _overwrite_middle(path: Path) -> None:
    """Random bytes over every page but the first and the last (the schema page stays readable)."""
    data = bytearray(path.read_bytes())
    assert len(data) >= 4 * 4096
    data[4096:-4096] = random.Random(2).randbytes(len(data) - 8192)
    path.write_bytes(bytes(data))


def _moved(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f"{path.name}.corrupt-"))


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


class TestRebuild:
    @pytest.mark.parametrize("damage", [_overwrite_header, _overwrite_middle], ids=["header", "middle"])
    async def test_a_damaged_file_is_moved_aside_and_the_store_starts_afresh(
        self, damage: Any, face: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The function still runs (right values), the next call hits from the fresh store, one warning, the
        damaged file kept aside; before, every call ran uncached forever."""
        path = tmp_path / "cache.db"
        _filled(path)
        damage(path)
        calls: list[int] = []

        def counted(x: int) -> int:
            calls.append(x)
            return double(x)

        cache = Cache(f"sqlite://{path}")
        fn = make(face, counted, agentcache.tool_cached(backend=cache, name="double"))
        with caplog.at_level(logging.WARNING, logger="agentcache"):
            assert [await call(fn, i) for i in range(N)] == [double(i) for i in range(N)]
            assert [await call(fn, i) for i in range(N)] == [double(i) for i in range(N)]
        assert sorted(calls) == list(range(N))  # each computed once: the second round hits the fresh store
        assert fn.cache_info().hits == N
        assert fn.cache_info().backend_errors == 0
        warnings = _warnings(caplog)
        assert len(warnings) == 1 and "is damaged" in warnings[0] and "moved it to" in warnings[0]
        assert len(_moved(path)) == 1
        cache.close()

    def test_at_most_one_rebuild_per_interval(self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        """A file damaged again right after a rebuild is not moved again (no rebuild loop): calls are misses."""
        path = tmp_path / "cache.db"
        backend = SQLiteBackend(path)
        backend.set_many([Item("k", b"v")])
        backend.close()
        _overwrite_header(path)
        with caplog.at_level(logging.WARNING, logger="agentcache"):
            assert backend.get("k") is None  # rebuilt
            backend.set_many([Item("k", b"v")])
            backend.close()
            _overwrite_header(path)
            with pytest.raises(agentcache.errors.BackendError):
                backend.get("k")
        assert len(_moved(path)) == 1 and len(_warnings(caplog)) == 1
        backend.close()

    def test_scan_of_a_damaged_file_ends_and_the_store_is_usable(self, tmp_path: Path) -> None:
        """Listing entries of a damaged file rebuilds it and lists nothing; the store then works."""
        path = tmp_path / "cache.db"
        _filled(path)
        _overwrite_header(path)
        backend = SQLiteBackend(path)
        assert list(backend.scan("")) == []
        backend.set_many([Item("k", b"v")])
        assert backend.get("k") == b"v"
        backend.close()


def test_a_process_reading_a_moved_file_reopens_the_new_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store that never touched the damaged pages, whose file another process moved aside and replaced,
    serves what the new file holds at its next check (every second; here every call), never the old file."""
    from agentcache.backends import _sqlite_files, sqlite

    monkeypatch.setattr(sqlite, "_RECHECK_INTERVAL", 0.0)
    path = tmp_path / "cache.db"
    reader = SQLiteBackend(path)
    reader.set_many([Item("k", b"old")])
    assert reader.get("k") == b"old"
    with _sqlite_files.directory_lock(path, exclusive=True):  # what the process that found the damage does
        _sqlite_files.move_aside(path)
    other = SQLiteBackend(path)
    other.set_many([Item("k", b"new")])
    assert reader.get("k") == b"new"
    other.close()
    reader.close()


def _worker(path: str, start: Any, between: Any, results: Any) -> None:
    """Call `double` for every i twice (the second round after every process finished the first)."""
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                records.append(record.getMessage())

    logging.getLogger("agentcache").addHandler(Collect())
    computed: list[list[int]] = [[], []]
    wrong: list[int] = []
    cache = Cache(f"sqlite://{path}?write_timeout=30")  # this test is about the move, not the lock-wait bound
    now: list[list[int]] = []  # the round's list of computed values

    def counted(x: int) -> int:
        now[-1].append(x)
        return double(x)

    fn = agentcache.tool_cached(backend=cache, name="double")(counted)
    start.wait(timeout=60)
    for computed_now in computed:
        now.append(computed_now)
        wrong += [i for i in range(N) if fn(i) != double(i)]
        between.wait(timeout=60)
    cache.close()
    results.put((os.getpid(), records, [len(c) for c in computed], wrong))


@pytest.mark.slow
@pytest.mark.timeout(400)  # two spawned interpreters on a loaded 2-core box: minutes, not seconds, at worst
def test_two_processes_finding_the_damaged_file_at_once(tmp_path: Path) -> None:
    """Two processes use a file whose header was overwritten, starting together: one moves it aside, the other
    reopens the fresh file; one warning in all; every value right; the second round hits in both."""
    path = tmp_path / "cache.db"
    _filled(path)
    _overwrite_header(path)
    ctx = multiprocessing.get_context("spawn")
    start, between, results = ctx.Barrier(2), ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(path), start, between, results), daemon=True) for _ in range(2)]
    for p in procs:
        p.start()
    reports = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert [wrong for *_, wrong in reports] == [[], []]
    assert sum(len(records) for _, records, _, _ in reports) == 1, reports
    assert len(_moved(path)) == 1
    assert [computed[1] for _, _, computed, _ in reports] == [0, 0]  # both read the one fresh store
    assert sum(computed[0] for _, _, computed, _ in reports) >= N


class TestWriteAheadLog:
    @pytest.mark.parametrize("max_bytes", [100_000, 1_000_000])
    def test_the_log_stays_within_half_of_max_bytes(self, tmp_path: Path, max_bytes: int) -> None:
        """1,500 writes of 2 KB under `max_bytes`: the -wal file never grows past its budget (half of
        `max_bytes`, at least 64 KiB) plus the transaction that crossed it; before, it grew to ~4 MB whatever the
        limit (SQLite's default checkpoint point)."""
        path = tmp_path / "cache.db"
        backend = SQLiteBackend(path, max_bytes=max_bytes)
        value = random.Random(3).randbytes(2000)
        wal = Path(f"{path}-wal")
        peak = 0
        for i in range(1500):
            backend.set_many([Item(f"k{i}", value)])
            peak = max(peak, wal.stat().st_size)
        backend.close()
        budget = max(max_bytes // 2, MIN_WAL_BYTES)
        assert f"PRAGMA wal_autocheckpoint = {budget // 4096 - 1}" in wal_pragmas(max_bytes)
        # the transaction that crossed the checkpoint point, with its eviction batch (1/32 of max_bytes: pages of
        # 2 KB rows are about half full, so twice as many bytes of pages)
        assert peak <= budget + 64 * 1024 + 2 * (max_bytes // 32)
