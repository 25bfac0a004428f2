"""What one cached call costs when its store is dead or hung, and whether a failed invalidation is lost.

Every scenario uses a real fault: an unresolvable host (the reserved `.invalid` TLD), a listener that accepts and
never answers, a redis-server of our own stopped with SIGSTOP, an SQLite file whose write lock another connection
holds (`BEGIN IMMEDIATE`), and an SQLite file that cannot grow (`PRAGMA max_page_count`, a real SQLITE_FULL).
Each cached call is a miss on a fresh argument (the worst case: a read, then the store of the result) of a
function that returns at once, so the time measured is the store's. DNS look-ups are counted by wrapping
`socket.getaddrinfo`; warnings are counted on the `agentcache` logger.

    .venv/bin/python benchmarks/bench_failures.py                 # writes benchmarks/results/failures.md
    .venv/bin/python benchmarks/bench_failures.py --out /tmp/f.md --label before
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from _harness import machine_info, markdown_table, write_report  # noqa: E402
from support.redis_server import REDIS_SERVER, RedisServer, silent_server  # noqa: E402

import agentcache  # noqa: E402

CALLS = 20  # calls after the first, within the breaker's cooldown


class _Counts(logging.Handler):
    """Counts warnings logged on the `agentcache` logger."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.warnings = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.warnings += 1


@contextlib.contextmanager
def _lookups() -> Iterator[list[int]]:
    """Count `socket.getaddrinfo` calls (the DNS look-ups redis-py makes)."""
    count = [0]
    real = socket.getaddrinfo

    def counting(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return real(*args, **kwargs)

    socket.getaddrinfo = counting  # type: ignore[assignment]
    try:
        yield count
    finally:
        socket.getaddrinfo = real  # type: ignore[assignment]


def _function(url: str) -> Callable[[int], int]:
    @agentcache.tool_cached(backend=url, name="bench.failures")
    def compute(x: int) -> int:
        return x

    return compute


def _calls(fn: Callable[[int], int], start: int) -> tuple[float, list[float]]:
    """Time the first call, then `CALLS` more (each on a fresh argument)."""
    t = time.perf_counter()
    fn(start)
    first = time.perf_counter() - t
    rest = []
    for i in range(1, CALLS + 1):
        t = time.perf_counter()
        fn(start + i)
        rest.append(time.perf_counter() - t)
    return first, rest


def _row(name: str, first: float, rest: list[float], lookups: int | None, warnings: int) -> list[str]:
    return [
        name,
        f"{first:.3f}",
        f"{max(rest):.3f}",
        f"{sum(rest):.3f}",
        "-" if lookups is None else str(lookups),
        str(warnings),
    ]


def _scenario(name: str, url: str, before: Callable[[Callable[[int], int]], None] | None = None) -> list[str]:
    agentcache.reset()
    handler = _Counts()
    logging.getLogger("agentcache").addHandler(handler)
    try:
        fn = _function(url)
        if before is not None:
            before(fn)
        with _lookups() as count:
            first, rest = _calls(fn, 1000)
        return _row(name, first, rest, count[0], handler.warnings)
    finally:
        logging.getLogger("agentcache").removeHandler(handler)
        agentcache.reset()


def unresolvable() -> list[str]:
    return _scenario("Redis, unresolvable host (`.invalid`)", "redis://agentcache-bench.invalid:6379/0")


def black_hole() -> list[str]:
    with silent_server() as port:
        return _scenario("Redis, listener that accepts and never answers", f"redis://127.0.0.1:{port}/0")


def paused() -> list[str] | None:
    if REDIS_SERVER is None:
        return None
    server = RedisServer().start()
    try:
        assert server.proc is not None
        pid = server.proc.pid

        def stop(fn: Callable[[int], int]) -> None:
            fn(1)  # connected and warm
            os.kill(pid, signal.SIGSTOP)

        try:
            return _scenario("Redis paused (SIGSTOP)", server.url, stop)
        finally:
            os.kill(pid, signal.SIGCONT)
    finally:
        server.cleanup()


def sqlite_locked(tmp: Path) -> list[str]:
    path = tmp / "locked.db"
    holder: list[sqlite3.Connection] = []

    def lock(fn: Callable[[int], int]) -> None:
        fn(1)  # the file and its schema exist
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")  # another writer holds the write lock for the whole scenario
        holder.append(conn)

    try:
        return _scenario("SQLite, write lock held by another connection", f"sqlite://{path}", lock)
    finally:
        for conn in holder:
            conn.execute("ROLLBACK")
            conn.close()


def sqlite_full(tmp: Path) -> list[str]:
    """Fill the file to its page limit, then make 200 misses with large results: count warnings."""
    path = tmp / "full.db"
    agentcache.reset()
    handler = _Counts()
    logging.getLogger("agentcache").addHandler(handler)
    try:

        @agentcache.tool_cached(backend=f"sqlite://{path}", name="bench.full")
        def big(x: int) -> str:
            return str(x) * 2000

        big(0)
        store = agentcache.engine.cache.cache_for(f"sqlite://{path}").store
        inner: Any = getattr(store, "inner", store)
        conn = inner._conn()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 2}")
        t = time.perf_counter()
        for i in range(1, 201):
            big(i)
        elapsed = time.perf_counter() - t
        return ["SQLite, disk full (200 misses)", "-", "-", f"{elapsed:.3f}", "-", str(handler.warnings)]
    finally:
        logging.getLogger("agentcache").removeHandler(handler)
        agentcache.reset()


def stale_after_pause() -> list[str] | None:
    """Redis paused 2 s while `invalidate(tags=...)` runs; count old values served 1 s after it is back."""
    if REDIS_SERVER is None:
        return None
    server = RedisServer().start()
    agentcache.reset()
    version = [1]
    try:
        assert server.proc is not None
        pid = server.proc.pid

        @agentcache.tool_cached(backend=server.url, tags=["docs"], name="bench.stale")
        def read(x: int) -> int:
            return version[0] * 1000 + x

        for i in range(50):
            read(i)
        os.kill(pid, signal.SIGSTOP)
        outcome = "returned"
        t = time.perf_counter()
        try:
            agentcache.invalidate(tags=["docs"])
        except Exception as exc:
            outcome = f"raised {type(exc).__name__}"
        took = time.perf_counter() - t
        version[0] = 2  # the data changed: the invalidation said so
        time.sleep(2.0)
        os.kill(pid, signal.SIGCONT)
        back = time.perf_counter()
        stale_here = sum(read(i) < 2000 for i in range(50))
        # Another process's view: a separate client reading the raw entries until they are gone (10 s at most).
        from agentcache.backends.redis import RedisBackend

        other = RedisBackend(server.url)
        keys = [read.cache_key(i) for i in range(50)]  # type: ignore[attr-defined]
        left = 50
        while left and time.perf_counter() - back < 10:
            left = sum(v is not None for v in other.get_many(keys))
            time.sleep(0.02)
        gone = f"{left}/50 still there 10 s later" if left else f"gone {time.perf_counter() - back:.2f} s later"
        other.close()
        return [
            "Redis paused 2 s during `invalidate(tags=...)`",
            f"{outcome} after {took:.2f} s",
            f"{stale_here}/50",
            gone,
        ]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server.proc.pid if server.proc else 0, signal.SIGCONT)
        agentcache.reset()
        server.cleanup()


def main() -> None:
    global CALLS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "failures.md")
    parser.add_argument("--label", default="", help="a label for the run (e.g. before/after)")
    parser.add_argument("--calls", type=int, default=CALLS, help="calls timed after the first one")
    args = parser.parse_args()
    CALLS = args.calls
    os.environ["AGENTCACHE_DIR"] = tempfile.mkdtemp(prefix="agentcache-bench-")  # never the user's cache dir
    logging.getLogger("agentcache").setLevel(logging.INFO)
    logging.getLogger("agentcache").propagate = False
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in (unresolvable, black_hole, paused):
            row = run()
            if row is not None:
                rows.append(row)
                print(row, flush=True)
        for run_tmp in (sqlite_locked, sqlite_full):
            row = run_tmp(Path(tmp))
            rows.append(row)
            print(row, flush=True)
        stale = stale_after_pause()
        print(stale, flush=True)
    headers = ["scenario", "first call, s", f"slowest of the next {CALLS} calls, s", f"next {CALLS} calls in all, s"]
    headers += ["DNS look-ups", "warnings"]
    sections = [
        f"Run: {args.label or 'current code'}. Each call is a miss on a fresh argument (read + store).",
        markdown_table(headers, rows, "lrrrrr"),
    ]
    if stale is not None:
        sections.append(
            markdown_table(
                ["scenario", "invalidate()", "old values served here once Redis is back", "old entries in Redis"],
                [stale],
                "lrrr",
            )
        )
    write_report(args.out, "Cost of a dead or hung store", sections, machine_info(["redis"]))


if __name__ == "__main__":
    main()
