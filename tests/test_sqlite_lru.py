"""SQLite LRU tracking and eviction: reads never write, access times still order eviction, eviction is batched."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from agentcache.backends import Item
from agentcache.backends.sqlite import SQLiteBackend


def _stats(path: Path) -> tuple[int, int]:
    raw = sqlite3.connect(path)
    try:
        count, size = raw.execute("SELECT count, size FROM stats").fetchone()
    finally:
        raw.close()
    return int(count), int(size)


def _accessed(path: Path, key: str) -> tuple[float, float]:
    raw = sqlite3.connect(path)
    try:
        created, accessed = raw.execute("SELECT created, accessed FROM entries WHERE key = ?", (key,)).fetchone()
    finally:
        raw.close()
    return float(created), float(accessed)


def test_reads_only_select_on_the_callers_connection(tmp_path: Path) -> None:
    """Hits of more keys than the access-time buffer holds issue only SELECTs on the reading thread, sync and
    async: the buffered access times are written by another thread, so a reader never waits for the write
    lock. (Before: the 512th buffered key made that `get` flush in a write transaction on the read path.)"""
    b = SQLiteBackend(tmp_path / "c.db")
    b.set_many([Item(f"k{i}", b"v") for i in range(1500)])
    statements: list[str] = []
    b._conn().set_trace_callback(statements.append)
    try:
        assert all(b.get(f"k{i}") == b"v" for i in range(600))
        assert b.get_many([f"k{i}" for i in range(600, 1200)]) == [b"v"] * 600

        async def reads() -> None:
            for i in range(1200, 1500):
                assert await b.aget(f"k{i}") == b"v"

        asyncio.run(reads())
    finally:
        b._conn().set_trace_callback(None)
    assert statements
    assert [s for s in statements if not s.lstrip().upper().startswith("SELECT")] == []
    b.close()


def test_access_times_reach_the_file_without_writes_or_close(tmp_path: Path) -> None:
    """With only reads, buffered access times still reach the file (the background flusher writes them)."""
    path = tmp_path / "c.db"
    b = SQLiteBackend(path)
    b.set_many([Item("a", b"v"), Item("b", b"v")])
    created, _ = _accessed(path, "a")
    while time.time() <= created:  # a read's time must differ from the write's
        time.sleep(0.001)
    assert b.get("a") == b"v"
    deadline = time.monotonic() + 60  # generous: the flusher runs about once a second
    while _accessed(path, "a")[1] <= created and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _accessed(path, "a")[1] > created
    assert _accessed(path, "b")[1] == created  # not read: untouched
    b.close()


def test_close_ends_the_flusher_and_writes_what_is_buffered(tmp_path: Path) -> None:
    """`close()` writes the buffer itself and the flusher thread of that backend ends."""
    path = tmp_path / "c.db"
    b = SQLiteBackend(path)
    b.set_many([Item("a", b"v")])
    created, _ = _accessed(path, "a")
    while time.time() <= created:
        time.sleep(0.001)
    before = set(threading.enumerate())
    assert b.get("a") == b"v"
    started = [t for t in threading.enumerate() if t not in before and t.name == "agentcache-sqlite-flush"]
    assert len(started) == 1
    b.close()
    assert _accessed(path, "a")[1] > created
    started[0].join(timeout=60)
    assert not started[0].is_alive()


def test_eviction_keeps_recently_read_entries(tmp_path: Path) -> None:
    """Entries read since they were written (access times still buffered, not yet on file) survive eviction;
    the evicted ones are the never-read entries, oldest first."""
    path = tmp_path / "c.db"
    b = SQLiteBackend(path, max_entries=64)
    b.set_many([Item(f"k{i:02d}", b"v") for i in range(64)])  # one write time: ties go by insertion order
    created, _ = _accessed(path, "k00")
    while time.time() <= created:
        time.sleep(0.001)
    hot = [f"k{i:02d}" for i in range(0, 64, 2)]  # includes the oldest rows, which LRU ties would evict first
    assert all(b.get(k) == b"v" for k in hot)
    for i in range(8):
        b.set_many([Item(f"new{i}", b"v")])
    assert b.get_many(hot) == [b"v"] * len(hot)
    cold = [f"k{i:02d}" for i in range(1, 64, 2)]
    present = [k for k, v in zip(cold, b.get_many(cold), strict=True) if v is not None]
    assert present == cold[len(cold) - len(present) :]  # the oldest cold entries went first
    assert _stats(path)[0] <= 64
    b.close()


def test_max_entries_evicts_a_batch_then_nothing_until_the_limit(tmp_path: Path) -> None:
    """Crossing `max_entries` evicts down to 1/32 below it in one write, so the next writes evict nothing.
    (Before: every write at the limit evicted exactly one entry.)"""
    path = tmp_path / "c.db"
    b = SQLiteBackend(path, max_entries=64)
    for i in range(64):
        b.set_many([Item(f"k{i:02d}", b"v")])
    assert _stats(path)[0] == 64
    b.set_many([Item("x0", b"v")])
    assert _stats(path)[0] == 62
    b.set_many([Item("x1", b"v")])
    b.set_many([Item("x2", b"v")])
    assert _stats(path)[0] == 64
    assert b.get_many(["k00", "k01", "k02", "k03", "x0", "x1", "x2"]) == [None, None, None, b"v", b"v", b"v", b"v"]
    b.close()


def test_max_bytes_evicts_a_batch_then_nothing_until_the_limit(tmp_path: Path) -> None:
    """Crossing `max_bytes` evicts down to 1/32 below it (size counts key + value) in one write."""
    path = tmp_path / "c.db"
    b = SQLiteBackend(path, max_bytes=6400)
    value = b"v" * 97  # 3-character keys: 100 bytes an entry
    for i in range(64):
        b.set_many([Item(f"k{i:02d}", value)])
    assert _stats(path) == (64, 6400)
    b.set_many([Item("x00", value)])
    assert _stats(path) == (62, 6200)
    b.set_many([Item("x01", value)])
    b.set_many([Item("x02", value)])
    assert _stats(path) == (64, 6400)
    assert b.get_many(["k00", "k02", "k03", "x00", "x02"]) == [None, None, value, value, value]
    b.close()


def test_reads_buffered_while_the_lock_is_held_still_order_eviction(tmp_path: Path) -> None:
    """A flush of access times that cannot get the write lock (another process writes) keeps them, so the next
    evicting write still counts those reads. (Before: the batch was dropped and the hot entries evicted.)"""
    path = tmp_path / "c.db"
    b = SQLiteBackend(path, max_entries=64, write_timeout=0.2)
    b.set_many([Item(f"k{i:02d}", b"v") for i in range(64)])
    created, _ = _accessed(path, "k00")
    while time.time() <= created:
        time.sleep(0.001)
    hot = [f"k{i:02d}" for i in range(8)]  # the oldest rows: first to go unless their reads count
    assert b.get_many(hot) == [b"v"] * 8
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock past the flush's patience
    try:
        b._flush_best_effort()  # what the flusher thread runs each second
    finally:
        other.execute("ROLLBACK")
        other.close()
    for i in range(4):
        b.set_many([Item(f"new{i}", b"v")])
    assert b.get_many(hot) == [b"v"] * 8
    b.close()


def test_close_while_the_flusher_writes_is_safe(tmp_path: Path) -> None:
    """`close()` right after enough reads to wake the flusher (so it is often mid-flush) never closes the
    flusher's connection under it: the process neither crashes nor raises, and no access time is lost. Runs in a
    child process so that a crash is reported as a failure."""
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from agentcache.backends import Item
        from agentcache.backends.sqlite import SQLiteBackend
        import random
        b = SQLiteBackend(Path({str(tmp_path / "c.db")!r}))
        for start in range(0, 100_000, 10_000):
            b.set_many([Item(f"k{{i}}", b"v" * 100) for i in range(start, start + 10_000)])
        rng = random.Random(7)
        for r in range(40):  # random keys of a large file: each flush takes a while, so close() often lands in one
            assert all(b.get(f"k{{rng.randrange(100_000)}}") is not None for i in range(700))
            b.close()
        print("done")
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert (out.returncode, out.stdout.strip()) == (0, "done"), out.stderr[-2000:]
    raw = sqlite3.connect(tmp_path / "c.db")
    try:
        (read,) = raw.execute("SELECT COUNT(*) FROM entries WHERE accessed > created").fetchone()
    finally:
        raw.close()
    assert read > 20_000  # 28,000 reads of random keys (~24,500 distinct): close() writes what the flusher had not
