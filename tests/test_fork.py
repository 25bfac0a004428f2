"""Fork safety (gunicorn-style pre-fork workers): forked while threads use the cache, every worker can use it,
and invalidations made by the parent reach every worker (issue #14.4: 6/6 deadlocked children on SQLite and on
Redis with redis-py 8.1, and 100/100 stale L1 reads in forked workers, before)."""

from __future__ import annotations

import faulthandler
import os
import select
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import pytest

import agentcache
import agentcache.engine.shared_stats
from agentcache.engine.cache import cache_for

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")]

WORKERS = 4
DEADLINE = 60.0  # seconds for every worker to finish; a deadlocked worker is killed and fails the test


def _worker(f: Any, url: str, to_parent: int, from_parent: int) -> None:
    """The body of a forked worker; reports lines on `to_parent`, reads orders from `from_parent`."""
    faulthandler.dump_traceback_later(DEADLINE / 2, exit=True)  # a deadlocked worker shows where, and ends
    with os.fdopen(to_parent, "w", buffering=1) as out, os.fdopen(from_parent) as orders:
        for i in range(100):  # bounded use under the inherited state: misses, hits, invalidations
            f(f"w{os.getpid()}-{i % 10}")
            if i % 25 == 0:
                agentcache.invalidate(tags=["noise"])
        store = cache_for(url).store
        key = f.cache_key("shared")
        deadline = time.monotonic() + 30
        while f("shared") is None or store.get(key) is None:  # the entry is readable here (in L1 on ?l1=)
            assert time.monotonic() < deadline
        inner = getattr(store, "inner", store)
        if hasattr(inner, "l1"):
            while inner.l1.get(key) is None:
                store.get(key)
                assert time.monotonic() < deadline, "L1 never filled"
        out.write("filled\n")
        assert orders.readline().strip() == "go"
        out.write(("stale" if store.get(key) is not None else "fresh") + "\n")


def test_prefork_workers_under_load(backend_url: str, backend_kind: str) -> None:
    @agentcache.tool_cached(backend=backend_url, tags=["doc"], name="fork.f", ttl=600)
    def f(q: str) -> str:
        return f"{q}@{os.getpid()}"

    f("shared")
    # The app has used its stores before it forks (as a server does once it is up): a fork racing the very
    # first import of a store's module deadlocks on CPython's per-module import lock, outside agentcache.
    agentcache.invalidate(tags=["noise"])
    agentcache.flush_stats()
    stop = threading.Event()

    def hammer(n: int) -> None:
        i = 0
        while not stop.is_set():
            f(f"h{n}-{i % 50}")
            if i % 10 == 0:
                agentcache.invalidate(tags=["noise"])
                f.cache_invalidate(f"h{n}-{i % 50}")
            i += 1

    threads = [threading.Thread(target=hammer, args=(n,), daemon=True) for n in range(4)]
    for t in threads:
        t.start()
    workers: dict[int, tuple[Any, Any]] = {}
    try:
        for _ in range(WORKERS):
            time.sleep(0.01)  # let the threads be inside the cache at fork time
            up_r, up_w = os.pipe()
            down_r, down_w = os.pipe()
            pid = os.fork()
            if pid == 0:  # the worker: never returns into pytest
                code = 0
                try:
                    os.close(up_r)
                    os.close(down_w)
                    _worker(f, backend_url, up_w, down_r)
                except BaseException:
                    traceback.print_exc()
                    code = 1
                finally:
                    os._exit(code)
            os.close(up_w)
            os.close(down_r)
            workers[pid] = (os.fdopen(up_r), os.fdopen(down_w, "w", buffering=1))
        stop.set()
        for t in threads:
            t.join(30)
        deadline = time.monotonic() + DEADLINE
        lines = {pid: _line(up, deadline) for pid, (up, _) in workers.items()}
        assert all(line == "filled" for line in lines.values()), f"workers stuck or failed: {lines}"
        f.cache_invalidate("shared")  # the parent invalidates; every worker must see it on its next read
        for _, down in workers.values():
            down.write("go\n")
        results = {pid: _line(up, deadline) for pid, (up, _) in workers.items()}
        shared = backend_kind != "memory"  # an in-process store is each worker's own copy
        assert set(results.values()) == ({"fresh"} if shared else {"stale"}), results
    finally:
        stop.set()
        codes = {}
        for pid, (up, down) in workers.items():  # every worker is reaped (killed if stuck) before asserting
            codes[pid] = _reap(pid, time.monotonic() + 10)
            up.close()
            down.close()
        assert set(codes.values()) <= {0}, f"workers exited with {codes}"


def _line(stream: Any, deadline: float) -> str:
    """One line from a worker, or "timeout" (a deadlocked worker) once `deadline` passed."""
    ready, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
    return stream.readline().strip() if ready else "timeout"


def _reap(pid: int, deadline: float) -> int:
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return -9


def _holder(path: Path, start: int, length: int) -> int | None:
    """The pid of another process holding a POSIX read lock on bytes [start, start+length) of `path` (Linux)."""
    import fcntl
    import struct

    with open(path, "rb") as file:
        query = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, start, length, 0)
        l_type, _, _, _, pid = struct.unpack("hhqqi4x", fcntl.fcntl(file.fileno(), fcntl.F_GETLK, query))
    return None if l_type == fcntl.F_UNLCK else int(pid)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads POSIX lock state with F_GETLK (Linux layout)")
def test_forked_child_holds_its_own_sqlite_locks(tmp_path: Path) -> None:
    """A child's connection takes real file locks, not ones SQLite's per-process bookkeeping inherited from the
    parent: a connection the parent had open at fork time (idle, in no transaction) made the child's new
    connection skip the SHARED lock on the database file and the shared lock on the ``-shm`` file, so a third
    process closing its last connection would checkpoint and delete the WAL under the child (found for #14.4:
    workers stuck in `BEGIN IMMEDIATE` on a store the parent's threads used at fork time)."""
    from agentcache.backends.sqlite import SQLiteBackend

    path = tmp_path / "c.db"
    store = SQLiteBackend(path)
    store.set_many([agentcache.backends.Item("k", b"v")])  # the parent has a connection open at fork time
    up_r, up_w = os.pipe()
    down_r, down_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(up_r)
            os.close(down_w)
            code = 0 if store.get("k") == b"v" else 2  # the child's own connection
            os.write(up_w, b"open\n")
            os.read(down_r, 1)  # stays open until the parent looked
        finally:
            os._exit(code)
    os.close(up_w)
    os.close(down_r)
    try:
        assert select.select([up_r], [], [], DEADLINE)[0] and os.read(up_r, 16) == b"open\n"
        shared = _holder(path, 0x40000000 + 2, 510)  # SQLite's SHARED range of a database file
        dms = _holder(Path(f"{path}-shm"), 120 + 8, 1)  # the -shm "dead man switch" byte every process holds
    finally:
        os.write(down_w, b"x")
        _, status = os.waitpid(pid, 0)
        os.close(up_r)
        os.close(down_w)
    assert os.waitstatus_to_exitcode(status) == 0
    assert (shared, dms) == (pid, pid)


def test_fork_gate_holds_back_a_thread_first_entering_sqlite_during_a_fork(tmp_path: Path) -> None:
    """A thread whose first SQLite call comes while a fork is in progress waits for the fork to finish; it got in
    before (its lock was not registered yet when the fork took the others), so a child could inherit SQLite's
    global mutexes held and hang in `sqlite3.connect` (seen as workers stuck in #14.4's test)."""
    from agentcache.backends.sqlite import SQLiteBackend, _gate

    store = SQLiteBackend(tmp_path / "c.db")
    entered = threading.Event()

    def first_call() -> None:
        store.get("k")
        entered.set()

    thread = threading.Thread(target=first_call, daemon=True)
    _gate.before_fork()  # what `os.fork()` runs first
    try:
        thread.start()
        assert not entered.wait(0.5), "a thread entered SQLite while a fork was in progress"
    finally:
        _gate.after_fork_in_parent()
    thread.join(30)
    assert entered.is_set()
