"""Issue 13, goal 4: what a Redis miss, an in-process stampede and a cross-process wait send to the server.

Counts, never timings: every test runs its own redis-server and records what clients send with MONITOR
(`support.redis_monitor.CommandLog`; the commands a Lua script runs are part of its one EVALSHA). The wake-up
latency is measured in benchmarks/bench_redis.py.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.redis_monitor import CommandLog, Sent
from support.redis_server import REDIS_SERVER, RedisServer

import agentcache
from agentcache.backends.base import Item

pytestmark = pytest.mark.redis

redis = pytest.importorskip("redis")


@pytest.fixture(autouse=True)
def _no_stats_snapshots(monkeypatch: pytest.MonkeyPatch) -> None:
    """The periodic stats snapshot (written by a background thread after a miss) would land in a command log
    window now and then: these tests count the commands of the calls they make, so snapshots wait."""
    from agentcache.engine import shared_stats

    monkeypatch.setattr(shared_stats, "FLUSH_INTERVAL", float("inf"))


@pytest.fixture
def server() -> Iterator[RedisServer]:
    """A redis-server private to this test: nothing else talks to it while commands are counted."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not on PATH")
    own = RedisServer().start()
    yield own
    own.cleanup()


def _backend(server: RedisServer, name: str = "") -> Any:
    from agentcache.backends.redis import RedisBackend

    url = server.url + (f"?client_name={name}" if name else "")
    return RedisBackend(url, prefix="rt:")


def _cached(backend: Any, func: Callable[..., Any]) -> Any:
    """`func` cached on `backend` under a fixed identity, so two decorations share their entries (two processes)."""
    return agentcache.tool_cached(backend=backend, ttl=600, name="rt.fn", version="1")(func)


def _warm(server: RedisServer) -> None:
    """Load the miss path's scripts (a first EVALSHA answers NOSCRIPT) with a miss of another function."""
    agentcache.tool_cached(backend=_backend(server), name="rt.warm")(lambda q: q)("warm-up")


def _clients_named(server: RedisServer, name: str) -> set[str]:
    """`host:port` of every connection that set client name `name`."""
    client = redis.Redis.from_url(server.url)
    try:
        return {c["addr"] for c in client.client_list() if c.get("name") == name}
    finally:
        client.close()


_HANDSHAKE = {"HELLO", "CLIENT"}  # what redis-py sends on a new connection (protocol, name, library)


def _wait_for(log: CommandLog, predicate: Callable[[list[Sent]], bool]) -> None:
    deadline = time.monotonic() + 30
    while not predicate(list(log.sent)):
        assert time.monotonic() < deadline, "the expected command never reached the server"
        time.sleep(0.005)


# -- a miss -----------------------------------------------------------------------------------------------------


def test_sync_miss_is_three_commands_and_a_hit_one(server: RedisServer) -> None:
    """A miss sends the read, the fused recheck + lock + fence and the fused write + release: 3 commands (5 before
    issue 13); the hit that follows is one HGET."""
    calls: list[str] = []
    search = _cached(_backend(server), lambda q: calls.append(q) or {"q": q})
    search("warm-up")  # loads the scripts (a first EVALSHA answers NOSCRIPT)
    with CommandLog(server.url) as log:
        assert search("paris") == {"q": "paris"}
    assert [s.name for s in log.sent] == ["HGET", "EVALSHA", "EVALSHA"]
    with CommandLog(server.url) as log:
        assert search("paris") == {"q": "paris"}
    assert [s.name for s in log.sent] == ["HGET"]
    assert calls == ["warm-up", "paris"]


async def test_async_miss_is_three_commands(server: RedisServer) -> None:
    """The same three commands through the asyncio face."""
    calls: list[str] = []

    async def search(q: str) -> dict[str, str]:
        calls.append(q)
        return {"q": q}

    cached = _cached(_backend(server), search)
    await cached("warm-up")
    log = await asyncio.to_thread(CommandLog(server.url).start)
    assert await cached("paris") == {"q": "paris"}
    await asyncio.to_thread(log.stop)
    assert [s.name for s in log.sent] == ["HGET", "EVALSHA", "EVALSHA"]
    assert calls == ["warm-up", "paris"]


def test_miss_under_max_entries_is_three_commands(server: RedisServer) -> None:
    """With an LRU bound the read is a pipeline of HGET + ZADD; the fused scripts touch the LRU themselves."""
    from agentcache.backends.redis import RedisBackend

    search = _cached(RedisBackend(server.url, prefix="rt:", max_entries=100), lambda q: {"q": q})
    search("warm-up")
    with CommandLog(server.url) as log:
        assert search("paris") == {"q": "paris"}
    assert sorted(s.name for s in log.sent) == ["EVALSHA", "EVALSHA", "HGET", "ZADD"]


def test_unusable_entry_is_replaced_under_the_lock(server: RedisServer) -> None:
    """An entry that cannot be served (not one of ours) is recomputed and replaced, not waited on."""
    backend = _backend(server)
    calls: list[str] = []
    search = _cached(backend, lambda q: calls.append(q) or {"q": q})
    key = search.cache_key("paris")
    backend.set_many([Item(key, b"not an agentcache entry")])
    assert search("paris") == {"q": "paris"}
    assert search("paris") == {"q": "paris"}
    assert calls == ["paris"]


# -- an in-process stampede -----------------------------------------------------------------------------------


def test_stampede_of_64_threads_sends_at_most_10_commands(server: RedisServer) -> None:
    """64 threads asking for one missing key share one read and one miss (78 commands before issue 13)."""
    release = threading.Event()
    calls: list[str] = []

    def slow(q: str) -> dict[str, str]:
        calls.append(q)
        release.wait(30)
        return {"q": q}

    search = _cached(_backend(server), slow)
    _warm(server)
    barrier = threading.Barrier(64)
    results: list[Any] = []

    def worker() -> None:
        barrier.wait()
        results.append(search("paris"))

    with CommandLog(server.url) as log:
        threads = [threading.Thread(target=worker) for _ in range(64)]
        for t in threads:
            t.start()
        _wait_for(log, lambda sent: any(s.name == "EVALSHA" for s in sent))  # the leader took the lock
        release.set()
        for t in threads:
            t.join(30)
    assert results == [{"q": "paris"}] * 64
    assert len({id(r) for r in results}) == 64  # every caller gets its own copy
    assert calls == ["paris"]
    assert len(log.sent) <= 10, log.names()
    info = search.cache_info()
    assert info.misses == 1 and info.hits == 63


async def test_stampede_of_64_tasks_sends_at_most_10_commands(server: RedisServer) -> None:
    """64 asyncio tasks asking for one missing key share one read and one miss."""
    calls: list[str] = []

    async def slow(q: str) -> dict[str, str]:
        calls.append(q)
        await asyncio.sleep(0.05)
        return {"q": q}

    search = _cached(_backend(server), slow)
    await search("warm-up")
    log = await asyncio.to_thread(CommandLog(server.url).start)
    results = await asyncio.gather(*(search("paris") for _ in range(64)))
    await asyncio.to_thread(log.stop)
    assert results == [{"q": "paris"}] * 64
    assert calls == ["warm-up", "paris"]
    assert len(log.sent) <= 10, log.names()


def test_cache_layer_call_stampede_of_64_threads_sends_at_most_10_commands(server: RedisServer) -> None:
    """The same through the engine's `CacheLayer.call`."""
    release = threading.Event()
    calls: list[str] = []
    layer = agentcache.CacheLayer("rt.layer", backend=_backend(server))
    _warm(server)

    def compute() -> dict[str, str]:
        calls.append("paris")
        release.wait(30)
        return {"q": "paris"}

    barrier = threading.Barrier(64)
    results: list[Any] = []

    def worker() -> None:
        barrier.wait()
        results.append(layer.call("paris", compute))

    with CommandLog(server.url) as log:
        threads = [threading.Thread(target=worker) for _ in range(64)]
        for t in threads:
            t.start()
        _wait_for(log, lambda sent: any(s.name == "EVALSHA" for s in sent))
        release.set()
        for t in threads:
            t.join(30)
    assert results == [{"q": "paris"}] * 64
    assert calls == ["paris"]
    assert len(log.sent) <= 10, log.names()


# -- cross-process waiters --------------------------------------------------------------------------------------


class _TwoProcesses:
    """A leader and a waiter caching the same function on separate backends (own connections, own flights),
    as two processes would; the leader's computation runs until `release` is set."""

    def __init__(self, server: RedisServer, leader_result: Callable[[str], Any]) -> None:
        self.server = server
        self.release = threading.Event()
        self.calls: list[str] = []

        def leader_fn(q: str) -> Any:
            self.calls.append(f"leader:{q}")
            self.release.wait(30)
            return leader_result(q)

        def waiter_fn(q: str) -> Any:
            self.calls.append(f"waiter:{q}")
            return {"q": q, "by": "waiter"}

        self.leader = _cached(_backend(server, "leader"), leader_fn)
        self.waiter = _cached(_backend(server, "waiter"), waiter_fn)
        self.outcomes: dict[str, Any] = {}

    def run(self, log: CommandLog, q: str) -> None:
        """Start the leader, then the waiter once the leader holds the lock; let the leader finish once the
        waiter blocks on the lock's wake stream."""

        def call(name: str, fn: Any) -> None:
            try:
                self.outcomes[name] = fn(q)
            except Exception as exc:
                self.outcomes[name] = exc

        leader = threading.Thread(target=call, args=("leader", self.leader))
        leader.start()
        _wait_for(log, lambda sent: [s.name for s in sent].count("EVALSHA") >= 1)
        waiter = threading.Thread(target=call, args=("waiter", self.waiter))
        waiter.start()
        _wait_for(log, lambda sent: any(s.name == "XREAD" for s in sent))
        self.release.set()
        leader.join(30)
        waiter.join(30)

    def sent_by(self, log: list[Sent], name: str) -> list[str]:
        addrs = _clients_named(self.server, name)
        return [s.name for s in log if s.client in addrs and s.name not in _HANDSHAKE]


def test_cross_process_waiter_is_woken_by_the_release_not_polling(server: RedisServer) -> None:
    """A waiter blocks on the lock's wake stream (one XREAD) and the leader's write wakes it: it then reads the
    value with one more fused call. Before issue 13 it polled (GET + SET NX every 5-100 ms)."""
    two = _TwoProcesses(server, lambda q: {"q": q, "by": "leader"})
    _warm(server)
    with CommandLog(server.url) as log:
        two.run(log, "paris")
    assert two.outcomes == {"leader": {"q": "paris", "by": "leader"}, "waiter": {"q": "paris", "by": "leader"}}
    assert two.calls == ["leader:paris"]
    waiter = two.sent_by(log.sent, "waiter")
    # the read, the lock try, then per wait one XREAD and one recheck; a busy machine may need a second slice
    assert waiter[:3] == ["HGET", "EVALSHA", "XREAD"], waiter
    assert waiter[-1] == "EVALSHA"
    assert waiter.count("XREAD") <= 2 and len(waiter) == 2 + 2 * waiter.count("XREAD"), waiter
    assert two.sent_by(log.sent, "leader") == ["HGET", "EVALSHA", "EVALSHA"]


def test_waiter_takes_over_when_the_leader_fails(server: RedisServer) -> None:
    """A leader whose computation raises releases its lock, which wakes the waiter: it computes itself."""

    def fail(q: str) -> Any:
        raise TimeoutError("upstream timed out")

    two = _TwoProcesses(server, fail)
    _warm(server)
    with CommandLog(server.url) as log:
        two.run(log, "paris")
    assert isinstance(two.outcomes["leader"], TimeoutError)
    assert two.outcomes["waiter"] == {"q": "paris", "by": "waiter"}
    assert two.calls == ["leader:paris", "waiter:paris"]
    waiter = two.sent_by(log.sent, "waiter")
    assert waiter[:3] == ["HGET", "EVALSHA", "XREAD"] and waiter[-1] == "EVALSHA", waiter
    assert waiter.count("XREAD") <= 2, waiter


def test_wait_ends_at_its_slice_when_nobody_releases(server: RedisServer) -> None:
    """A lock whose owner died is never released: a wait ends after its slice (half the socket timeout) with the
    recheck pipelined behind it, so a waiter tries a few times a second until the lock expires, never more."""
    from agentcache.backends.redis import RedisBackend

    _warm(server)
    backend = RedisBackend(server.url, prefix="rt:", socket_timeout=0.2)
    key = f"ac:v1:default:{uuid.uuid4().hex}"
    assert backend.acquire_lock(key + ":lock", 60) is not None
    with CommandLog(server.url) as log:
        assert backend.lock_get(key, key + ":lock", 60, (), wait=30) == (None, None, None)
    assert [(s.name, s.args[:2]) for s in log.sent][:1] == [("XREAD", ("BLOCK", "100"))]
    assert [s.name for s in log.sent] == ["XREAD", "EVALSHA"]


def test_release_wakes_a_waiter_in_the_same_round_trip(server: RedisServer) -> None:
    """After a release, a waiting `lock_get` returns at once and takes the lock itself (nothing was stored)."""
    from agentcache.backends.redis import RedisBackend

    _warm(server)
    backend = RedisBackend(server.url, prefix="rt:")
    key = f"ac:v1:default:{uuid.uuid4().hex}"
    token = backend.acquire_lock(key + ":lock", 60)
    assert token is not None
    assert backend.release_lock(key + ":lock", token)
    with CommandLog(server.url) as log:
        got, raw, fence = backend.lock_get(key, key + ":lock", 60, ("t",), wait=30)
    assert got is not None and raw is None and fence is not None
    assert [s.name for s in log.sent] == ["XREAD", "EVALSHA"]
    # taking the lock emptied the wake stream: the next waiter blocks until this owner releases
    assert backend.lock_get(key, key + ":lock", 60, ("t",), wait=0.01) == (None, None, None)


# -- stores without the fused operations --------------------------------------------------------------------


class _PlainLocking:
    """A Redis store that only offers the separate operations (as a third-party locking store would)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        for name in ("get", "get_many", "set_many", "delete_many", "delete_tags", "clear", "close"):
            setattr(self, name, getattr(inner, name))
        for name in ("aget", "aget_many", "aset_many", "adelete_many", "adelete_tags", "aclear", "aclose"):
            setattr(self, name, getattr(inner, name))
        for name in ("read_fence", "set_many_fenced", "aread_fence", "aset_many_fenced"):
            setattr(self, name, getattr(inner, name))

    def acquire_lock(self, name: str, ttl: float, /) -> str | None:
        token: str | None = self._inner.acquire_lock(name, ttl)
        return token

    def release_lock(self, name: str, token: str, /) -> bool:
        released: bool = self._inner.release_lock(name, token)
        return released

    async def aacquire_lock(self, name: str, ttl: float, /) -> str | None:
        token: str | None = await self._inner.aacquire_lock(name, ttl)
        return token

    async def arelease_lock(self, name: str, token: str, /) -> bool:
        released: bool = await self._inner.arelease_lock(name, token)
        return released


def test_store_without_fused_operations_still_single_flights(server: RedisServer) -> None:
    """The flow's fused steps fall back to get / acquire_lock / get_fenced / write / release_lock, and a waiter
    sleeps with back-off instead of blocking: two "processes", one computation."""
    calls: list[str] = []
    release = threading.Event()

    def slow(q: str) -> dict[str, str]:
        calls.append(q)
        release.wait(30)
        return {"q": q}

    first = _cached(_PlainLocking(_backend(server)), slow)
    second = _cached(_PlainLocking(_backend(server)), slow)
    out: list[Any] = []
    with CommandLog(server.url) as log:
        t1 = threading.Thread(target=lambda: out.append(first("paris")))
        t1.start()
        _wait_for(log, lambda sent: any(s.name in {"EVALSHA", "EVAL"} for s in sent))
        t2 = threading.Thread(target=lambda: out.append(second("paris")))
        t2.start()
        time.sleep(0.05)
        release.set()
        t1.join(30)
        t2.join(30)
    assert out == [{"q": "paris"}] * 2
    assert calls == ["paris"]
    assert "XREAD" not in log.names()
