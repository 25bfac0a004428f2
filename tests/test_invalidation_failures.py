"""A failed invalidation is never lost quietly: it reaches the store whatever the breaker's state, or it raises
`InvalidationError` and stays pending (fenced: not served, not stored, in this process) until it lands.

Real faults only: the test's own redis-server stopped with SIGSTOP, and an SQLite file whose write lock another
connection holds (`BEGIN IMMEDIATE`). Every test counts old values served: the goal is 0.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from support.redis_server import RedisServer

import agentcache
from agentcache import InvalidationError
from agentcache.backends import Item
from agentcache.backends.redis import RedisBackend
from agentcache.backends.sqlite import SQLiteBackend
from agentcache.engine.cache import Cache, cache_for

N = 20


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll `predicate` until it holds (a deadline for a background retry, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


class Source:
    """The data behind a cached function: `version` changes when the data changes."""

    def __init__(self) -> None:
        self.version = 1

    def value(self, x: int) -> int:
        return self.version * 1000 + x

    def stale(self, values: list[int]) -> int:
        return sum(v // 1000 != self.version for v in values)


def tagged(url: str, source: Source, name: str = "inv.f") -> Any:
    @agentcache.tool_cached(backend=url, tags=["docs"], name=name)
    def f(x: int) -> int:
        return source.value(x)

    return f


@contextmanager
def paused(server: RedisServer) -> Iterator[None]:
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)


@contextmanager
def write_locked(path: Path) -> Iterator[None]:
    """Another connection holds the file's write lock."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def left_in_redis(url: str, keys: list[str]) -> int:
    """Entries still stored, as another process sees them."""
    other = RedisBackend(url)
    try:
        return sum(v is not None for v in other.get_many(keys))
    finally:
        other.close()


@pytest.mark.redis
def test_invalidation_reaches_the_store_while_the_breaker_is_open(own_server: RedisServer) -> None:
    """The breaker opened during a pause; Redis is back but the breaker is still open (5 s cooldown):
    `invalidate()` still goes to Redis (before: it returned 0 without trying, 20/20 entries left)."""
    source = Source()
    f = tagged(own_server.url, source)
    assert [f(i) for i in range(N)] == [source.value(i) for i in range(N)]
    with paused(own_server):
        f(N)  # times out: the breaker opens
    assert cache_for(own_server.url).store.state == "open"  # type: ignore[attr-defined]
    assert agentcache.invalidate(tags=["docs"]) == N
    source.version = 2
    assert left_in_redis(own_server.url, [f.cache_key(i) for i in range(N)]) == 0
    assert source.stale([f(i) for i in range(N)]) == 0


@pytest.mark.redis
def test_invalidation_during_a_pause_raises_then_lands(own_server: RedisServer) -> None:
    """Redis stopped while `invalidate()` runs: it raises `InvalidationError` (before: returned 0 and 20/20
    old values were served after Redis was back); no old value is served here meanwhile, and the pending
    invalidation lands by itself once Redis is back (0 old entries left for other processes)."""
    source = Source()
    f = tagged(own_server.url, source)
    keys = [f.cache_key(i) for i in range(N)]
    for i in range(N):
        f(i)
    cache = cache_for(own_server.url)
    with paused(own_server):
        with pytest.raises(InvalidationError) as raised:
            agentcache.invalidate(tags=["docs"])
        source.version = 2
        assert raised.value.pending and cache.pending_invalidations == 1
        assert source.stale([f(i) for i in range(N)]) == 0
    assert source.stale([f(i) for i in range(N)]) == 0
    wait_until(lambda: cache.pending_invalidations == 0)
    assert left_in_redis(own_server.url, keys) == 0
    assert source.stale([f(i) for i in range(N)]) == 0


def test_pending_invalidation_is_fenced_until_it_lands(tmp_path: Path) -> None:
    """SQLite locked by another writer: `invalidate()` raises after its `timeout`; while the lock is held the
    old entries are still in the file (WAL readers see them) but this process serves none of them and stores
    no result they cover; once the lock is released the invalidation lands and caching resumes."""
    path = tmp_path / "c.db"
    url = f"sqlite://{path}?timeout=0.2"
    source = Source()
    f = tagged(url, source)
    keys = [f.cache_key(i) for i in range(N)]
    for i in range(N):
        f(i)
    cache = cache_for(url)
    with write_locked(path):
        with pytest.raises(InvalidationError, match="did not reach"):
            agentcache.invalidate(tags=["docs"])
        source.version = 2
        assert sum(v is not None for v in SQLiteBackend(path).get_many(keys)) == N  # still in the file
        assert source.stale([f(i) for i in range(N)]) == 0
        assert cache.pending_invalidations == 1
        cache.store.set_many([Item("ac:v1:x:tool:other:1", b"x")])  # refused as busy (as a stats flush may be):
        # writes pause, and the invalidation landing below must resume them
    wait_until(lambda: cache.pending_invalidations == 0)
    assert sum(v is not None for v in SQLiteBackend(path).get_many(keys)) == 0
    assert source.stale([f(i) for i in range(N)]) == 0
    hits = f.cache_info().hits
    assert source.stale([f(i) for i in range(N)]) == 0
    assert f.cache_info().hits == hits + N  # stored again after the fence lifted


def test_fence_drops_stores_it_covers_and_keeps_others(tmp_path: Path) -> None:
    """While a tag invalidation is pending, results carrying the tag are not stored; others are."""
    path = tmp_path / "c.db"
    url = f"sqlite://{path}?timeout=0.2"
    source = Source()
    f = tagged(url, source)
    f(0)
    cache = cache_for(url)
    with write_locked(path), pytest.raises(InvalidationError):
        cache.invalidate(tags=["docs"])
    store = cache.store
    store.set_many([Item("ac:v1:x:tool:g:1", b"a", None, ("other",)), Item("ac:v1:x:tool:g:2", b"b", None, ("docs",))])
    stored = SQLiteBackend(path).get_many(["ac:v1:x:tool:g:1", "ac:v1:x:tool:g:2"])
    assert stored == [b"a", None]


def test_every_invalidation_entry_point_raises(tmp_path: Path) -> None:
    """`emit()` (after running its handlers), `fn.cache_invalidate()`, `fn.cache_clear()` and a `Cache`'s own
    `invalidate()` / `clear()` raise `InvalidationError` when the store is unreachable (before: 0 / False /
    None, as if nothing matched)."""
    path = tmp_path / "c.db"
    url = f"sqlite://{path}?timeout=0.1"
    source = Source()
    f = tagged(url, source)
    f(1)
    handled: list[str] = []
    agentcache.on("docs.changed", tags=["docs"], handler=handled.append)
    cache = cache_for(url)
    strict = Cache(SQLiteBackend(path, timeout=0.1), fail_open=False)
    strict.invalidate(keys=["k"])  # opened (and the event rule recorded) before the lock is taken
    with write_locked(path):
        with pytest.raises(InvalidationError):
            agentcache.emit("docs.changed")
        assert handled == ["docs.changed"]
        with pytest.raises(InvalidationError):
            f.cache_invalidate(1)
        with pytest.raises(InvalidationError):
            f.cache_clear()
        with pytest.raises(InvalidationError):
            cache.clear()
        with pytest.raises(InvalidationError):
            strict.invalidate(keys=["k"])
        source.version = 2
        assert source.stale([f(1)]) == 0
    wait_until(lambda: cache.pending_invalidations == 0)
    assert source.stale([f(1)]) == 0


async def test_async_entry_points_raise(tmp_path: Path) -> None:
    """`ainvalidate()`, `aemit()` and an async function's `cache_invalidate()` raise the same way."""
    path = tmp_path / "c.db"
    url = f"sqlite://{path}?timeout=0.1"
    source = Source()

    @agentcache.tool_cached(backend=url, tags=["docs"], name="inv.af")
    async def af(x: int) -> int:
        return source.value(x)

    await af(1)
    agentcache.on("docs.async", tags=["docs"])
    with write_locked(path):
        with pytest.raises(InvalidationError):
            await agentcache.ainvalidate(tags=["docs"])
        with pytest.raises(InvalidationError):
            await agentcache.aemit("docs.async")
        with pytest.raises(InvalidationError):
            await af.acache_invalidate(1)
        source.version = 2
        assert source.stale([await af(1)]) == 0
    cache = cache_for(url)
    wait_until(lambda: cache.pending_invalidations == 0)
    assert source.stale([await af(1)]) == 0


def test_invalidation_lands_while_a_full_disk_holds_the_breaker_open(tmp_path: Path) -> None:
    """A full file (a real SQLITE_FULL via `max_page_count`) made stores fail until the breaker opened; an
    invalidation still goes to the file (deletes need no new pages) and, once space is freed, no old value
    is served (before: `invalidate()` returned 0 without trying and 20/20 old values were served)."""
    agentcache.configure(failure_threshold=1)
    path = tmp_path / "c.db"
    url = f"sqlite://{path}"
    source = Source()

    @agentcache.tool_cached(backend=url, tags=["docs"], name="inv.big")
    def big(x: int) -> str:
        return f"{source.value(x)}:" + "x" * 8000

    def version(v: str) -> int:
        return int(v.split(":")[0]) // 1000

    for i in range(N):
        big(i)
    store: Any = cache_for(url).store
    conn = store.inner._conn()
    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
    big(N)  # its store fails: the file is full
    assert store.state == "open"
    assert agentcache.invalidate(tags=["docs"]) == N
    assert SQLiteBackend(path).get_many([big.cache_key(i) for i in range(N)]) == [None] * N
    source.version = 2
    conn.execute("PRAGMA max_page_count = 1000000")  # space freed
    assert [version(big(i)) for i in range(N)] == [2] * N
