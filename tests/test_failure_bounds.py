"""The worst case of a cached call on a dead or hung store is bounded, with real faults.

Each test counts what bounds the time (DNS look-ups, connections, commands sent, lock waits) and checks the
configured timeouts, instead of timing calls: the bound is `docs/redis.md`'s "When Redis fails" formula.
Wall-clock figures are in `benchmarks/bench_failures.py` (`benchmarks/results/failures.md`).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from support.redis_server import RedisServer

import agentcache
from agentcache.backends.redis import RedisBackend
from agentcache.engine.cache import cache_for
from agentcache.errors import ConfigurationError

UNRESOLVABLE = "agentcache-test.invalid"  # the reserved TLD: never resolves


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many DNS look-ups of `UNRESOLVABLE` (`socket.getaddrinfo` calls) this process made in the test
    (other threads' look-ups of other hosts are not counted)."""
    real = socket.getaddrinfo
    count = [0]

    def counting(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == UNRESOLVABLE:
            count[0] += 1
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    return count


@contextmanager
def black_hole() -> Iterator[tuple[int, socket.socket]]:
    """A listener that completes TCP handshakes (the kernel's backlog) and never reads nor answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield int(listener.getsockname()[1]), listener
    finally:
        listener.close()


def connections_made(listener: socket.socket) -> int:
    """Accept (and close) every connection waiting in the backlog; return how many there were."""
    listener.setblocking(False)
    n = 0
    while True:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return n
        conn.close()
        n += 1


def cached(url: str) -> Any:
    @agentcache.tool_cached(backend=url, name="bounds.f")
    def f(x: int) -> int:
        return x

    return f


def test_timeouts_are_configured_and_validated() -> None:
    """Connect and socket timeouts default to 0.25 s / 0.5 s, are settable by URL (`connect_timeout` too),
    and nonsense is refused at once."""
    b = agentcache.backends.open_backend("redis://127.0.0.1:1/0?socket_timeout=0.2&connect_timeout=0.1")
    assert isinstance(b, RedisBackend)
    assert b._kwargs == {"socket_timeout": 0.2, "socket_connect_timeout": 0.1}
    assert RedisBackend("redis://h/0")._kwargs == {"socket_timeout": 0.5, "socket_connect_timeout": 0.25}
    for bad in ("socket_timeout=0", "socket_timeout=-1", "connect_timeout=inf", "socket_timeout=abc", "retries=x"):
        with pytest.raises(ConfigurationError, match=bad.split("=")[0]):
            agentcache.backends.open_backend(f"redis://127.0.0.1:1/0?{bad}")
    s = agentcache.backends.open_backend("sqlite:///tmp/x.db?timeout=3&write_timeout=0.1")
    assert (s.timeout, s.write_timeout) == (3.0, 0.1)  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError, match="write_timeout"):
        agentcache.backends.open_backend("sqlite:///tmp/x.db?write_timeout=0")


@pytest.mark.redis
def test_unresolvable_host_is_looked_up_once(lookups: list[int]) -> None:
    """A host that does not resolve costs one DNS look-up for the first call and none while the breaker is
    open (before: 28 look-ups in the first call, each one as slow as the resolver)."""
    pytest.importorskip("redis")
    f = cached(f"redis://{UNRESOLVABLE}:6379/0")
    assert f(1) == 1
    assert lookups[0] == 1
    for i in range(10):
        assert f(i) == i
    assert lookups[0] == 1
    assert agentcache.stats().total.backend_errors == 1


@pytest.mark.redis
async def test_unresolvable_host_is_looked_up_once_async(lookups: list[int]) -> None:
    """The async face too (before: 15 look-ups; its look-up also runs inside the connect timeout)."""
    pytest.importorskip("redis")

    @agentcache.tool_cached(backend=f"redis://{UNRESOLVABLE}:6379/0", name="bounds.af")
    async def f(x: int) -> int:
        return x

    assert await f(1) == 1
    for i in range(5):
        assert await f(i) == i
    assert lookups[0] == 1


@pytest.mark.redis
def test_black_hole_costs_one_connection_then_none() -> None:
    """A listener that accepts and never answers costs one connection (one connect, one socket timeout) for
    the first call, and none while the breaker is open (before: 15 connections, 5.0 s)."""
    pytest.importorskip("redis")
    with black_hole() as (port, listener):
        f = cached(f"redis://127.0.0.1:{port}/0?socket_timeout=0.2")
        assert f(1) == 1
        assert connections_made(listener) == 1
        for i in range(10):
            assert f(i) == i
        assert connections_made(listener) == 0
        assert agentcache.stats().total.backend_errors == 1


@pytest.mark.redis
def test_paused_redis_costs_one_command_then_none(own_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis stopped with SIGSTOP: the first miss sends one command (which times out once, never retried)
    and the rest of the miss and the next calls send nothing (before: 10 commands, 5.0 s)."""
    f = cached(own_server.url)
    assert f(0) == 0  # connected, stored
    real = socket.socket.sendall
    count = [0]

    def sendall(sock: socket.socket, *args: Any) -> Any:
        try:
            to_server = sock.getpeername()[1] == own_server.port
        except OSError:
            to_server = False
        count[0] += to_server
        return real(sock, *args)

    monkeypatch.setattr(socket.socket, "sendall", sendall)
    assert own_server.proc is not None
    os.kill(own_server.proc.pid, signal.SIGSTOP)
    assert f(1) == 1
    assert count[0] == 1
    for i in range(10):
        assert f(i) == i
    assert count[0] == 1
    assert agentcache.stats().total.backend_errors == 1


def test_locked_sqlite_waits_write_timeout_once_and_still_serves_hits(tmp_path: Path) -> None:
    """Another connection holds the write lock: the first miss waits for it once, for `write_timeout`
    (0.5 s), and returns its result unstored; further misses do not wait; hits are still served (WAL
    readers never wait). Before: two 10 s waits per miss."""
    path = tmp_path / "c.db"
    calls: list[int] = []

    @agentcache.tool_cached(backend=f"sqlite://{path}", name="bounds.s")
    def f(x: int) -> int:
        calls.append(x)
        return x

    assert f(1) == 1
    conn = cache_for(f"sqlite://{path}").store.inner._conn()  # type: ignore[attr-defined]
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 500
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        assert f(2) == 2
        assert [s for s in statements if s.startswith("BEGIN")] == ["BEGIN IMMEDIATE"]
        for i in range(3, 8):
            assert f(i) == i
        assert f(1) == 1  # a hit
        assert [s for s in statements if s.startswith("BEGIN")] == ["BEGIN IMMEDIATE"]
        assert calls == [1, 2, 3, 4, 5, 6, 7]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        conn.set_trace_callback(None)


def test_sqlite_disk_full_logs_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A file that cannot grow (a real SQLITE_FULL via `max_page_count`) while reads work is one outage:
    one warning for 50 failed stores (before: one per store, 199 for 200), one info line once it can grow."""
    path = tmp_path / "c.db"

    @agentcache.tool_cached(backend=f"sqlite://{path}", name="bounds.full")
    def big(x: int) -> str:
        return str(x) * 4000

    big(0)
    conn = cache_for(f"sqlite://{path}").store.inner._conn()  # type: ignore[attr-defined]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    with caplog.at_level(logging.INFO, logger="agentcache"):
        for i in range(1, 51):
            big(i)
        conn.execute("PRAGMA max_page_count = 1000000")
        big(100)
        assert big.cache_info().hits == 0
        big(100)
        assert big.cache_info().hits == 1  # stored again
    records = [r for r in caplog.records if r.name == "agentcache"]
    assert [r.levelno for r in records] == [logging.WARNING, logging.INFO]
    assert "full" in records[0].getMessage()


def test_only_a_dropped_connection_is_reconnected() -> None:
    """redis-py may retry an error on an established connection (reset, closed by a restart), never a failed
    connect (look-up, refused, unreachable)."""
    rx = pytest.importorskip("redis.exceptions")
    from agentcache.backends.redis import _dropped_connection

    def raised(cause: OSError | None) -> Exception:
        """The error as redis-py raises it: inside the `except` of the socket error, which becomes its context."""
        try:
            if cause is None:
                raise rx.ConnectionError("Connection closed by server.")
            try:
                raise cause
            except OSError:
                raise rx.ConnectionError("Error while talking to the server") from None
        except rx.ConnectionError as exc:
            return exc

    assert _dropped_connection(raised(None))
    assert _dropped_connection(raised(ConnectionResetError(104, "reset")))
    assert _dropped_connection(raised(BrokenPipeError(32, "pipe")))
    assert not _dropped_connection(raised(socket.gaierror(-2, "Name or service not known")))
    assert not _dropped_connection(raised(ConnectionRefusedError(111, "refused")))
    assert not _dropped_connection(raised(OSError(113, "No route to host")))
