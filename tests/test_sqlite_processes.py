"""Many processes (each with several threads) share one SQLite file at once without errors or torn entries."""

from __future__ import annotations

import multiprocessing
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agentcache.backends import Item, SQLiteBackend

WRITERS = 4
THREADS = 2
DURATION = 2.0
KEYS = [f"ac:v1:p:{i}" for i in range(40)]
MAX_ENTRIES = 30


def make_value(writer: str, seq: int) -> bytes:
    """A value that proves itself whole: a header repeated a length that depends on the header."""
    header = f"{writer}:{seq}|".encode()
    return header * (20 + seq % 200)


def check_value(value: bytes) -> str | None:
    """Return why `value` is not a whole value some writer wrote, or None when it is."""
    head, sep, _ = value.partition(b"|")
    if not sep:
        return f"no header in {value[:40]!r}"
    writer, _, seq = head.decode().rpartition(":")
    expected = make_value(writer, int(seq))
    return None if value == expected else f"torn value for {head!r} ({len(value)} bytes)"


def worker(path: str, wid: int, start: Any, done: Any, results: Any) -> None:
    """Hammer the shared file from `THREADS` threads for `DURATION` s; report counts and problems."""
    # Integrity under contention, not the lock-wait bound: every write may wait as long as it needs (tight loops in
    # 8 threads starve a writer past the default 0.5 s write_timeout on a loaded machine; then it would be skipped).
    backend = SQLiteBackend(path, max_entries=MAX_ENTRIES, write_timeout=30.0)
    problems: list[str] = []
    counts = {"writes": 0, "reads": 0, "hits": 0}
    lock = threading.Lock()
    start.wait()
    deadline = time.monotonic() + DURATION

    def run(tid: int) -> None:
        rng = random.Random(wid * 100 + tid)
        seq = 0
        writer = f"w{wid}.{tid}"
        while time.monotonic() < deadline:
            try:
                roll = rng.random()
                if roll < 0.4:
                    seq += 1
                    key = rng.choice(KEYS)
                    backend.set_many([Item(key, make_value(writer, seq), ttl=30, tags=(f"tag{seq % 5}",))])
                    with lock:
                        counts["writes"] += 1
                elif roll < 0.95:
                    keys = rng.sample(KEYS, 3)
                    values = [backend.get(keys[0]), *backend.get_many(keys[1:])]
                    for value in values:
                        if value is not None:
                            reason = check_value(value)
                            if reason:
                                problems.append(reason)
                    with lock:
                        counts["reads"] += 3
                        counts["hits"] += sum(v is not None for v in values)
                elif roll < 0.98:
                    backend.delete_many([rng.choice(KEYS)])
                else:
                    backend.delete_tags([f"tag{rng.randrange(5)}"], "ac:v1:p:")
            except Exception as exc:
                problems.append(f"{type(exc).__name__}: {exc}")

    def final(tid: int) -> None:
        writer = f"w{wid}.{tid}"
        try:
            backend.set_many([Item(f"ac:v1:final:{writer}", make_value(writer, 0))])
        except Exception as exc:
            problems.append(f"final {type(exc).__name__}: {exc}")

    for target in (run, final):
        threads = [threading.Thread(target=target, args=(tid,)) for tid in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if target is run:
            done.wait(timeout=30)  # finals are written together, after all traffic (LRU would evict them)
    backend.close()
    results.put((wid, counts, problems[:20]))


@pytest.mark.slow
def test_processes_share_one_file(tmp_path: Path) -> None:
    """4 spawned processes x 2 threads read and write one file for ~2 s: no error, no torn or lost entry."""
    path = tmp_path / "shared" / "cache.db"
    path.parent.mkdir()  # an explicit store's directory must exist (only the default one is created)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    done = ctx.Barrier(WRITERS)
    results = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(str(path), wid, start, done, results)) for wid in range(WRITERS)]
    for p in procs:
        p.start()
    start.set()
    reports = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    for wid, counts, problems in reports:
        assert problems == [], f"worker {wid}: {problems}"
        assert counts["writes"] > 20 and counts["hits"] > 20, counts

    backend = SQLiteBackend(path)
    finals = [f"ac:v1:final:w{wid}.{tid}" for wid in range(WRITERS) for tid in range(THREADS)]
    assert all(v is not None and check_value(v) is None for v in backend.get_many(finals))
    for entry in backend.scan("ac:v1:p:"):
        value = backend.get(entry.key)
        assert value is not None and check_value(value) is None
    backend.close()
    with sqlite3.connect(path) as raw:
        stats = raw.execute("SELECT count, size FROM stats").fetchone()
        actual = raw.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM entries").fetchone()
        orphans = raw.execute("SELECT COUNT(*) FROM tags WHERE key NOT IN (SELECT key FROM entries)").fetchone()
    raw.close()
    assert stats == actual
    assert orphans == (0,)
    assert actual[0] <= MAX_ENTRIES
