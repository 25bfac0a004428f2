"""Redis faults: a server killed and restarted mid-run, and a server that accepts but never answers."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from redis import exceptions as redis_errors
from support.redis_server import REDIS_SERVER, RedisServer, silent_server

from agentcache.backends.base import Item
from agentcache.backends.redis import RedisBackend, open_redis
from agentcache.backends.resilient import ResilientBackend
from agentcache.backends.tiered import TieredBackend
from agentcache.errors import BackendUnavailable

pytestmark = pytest.mark.redis

pytest.importorskip("redis")


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A redis-server private to this test, so it can be killed and restarted."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not on PATH")
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose listener accepts connections and never answers."""
    with silent_server() as port:
        yield port


def test_kill_and_restart_raises_unavailable_fast_then_recovers(own_server: RedisServer) -> None:
    """While the server is down every call raises BackendUnavailable quickly; after a restart calls work."""
    b = RedisBackend(own_server.url)
    outcomes = []
    for i in range(60):
        if i == 20:
            own_server.kill()
        if i == 40:
            own_server.restart()
        try:
            b.set_many([Item(f"k{i}", b"v")])
            outcomes.append(("ok", b.get(f"k{i}")))
        except BackendUnavailable as exc:  # refused at once: no timeout to wait for (attempts: test_failure_bounds)
            outcomes.append(("down", type(exc.__cause__).__name__))
    assert outcomes[:20] == [("ok", b"v")] * 20
    assert outcomes[20:40] == [("down", "ConnectionError")] * 20
    assert outcomes[40:] == [("ok", b"v")] * 20
    b.close()


def test_resilient_wrapper_turns_an_outage_into_misses(own_server: RedisServer) -> None:
    """Wrapped in ResilientBackend, a killed server reads as misses (no exception) and recovers after restart."""
    b = ResilientBackend(RedisBackend(own_server.url), cooldown=0.05)
    b.set_many([Item("k", b"v")])
    assert b.get("k") == b"v"
    own_server.kill()
    assert b.get("k") is None
    assert b.state == "open"  # the first refused connection opens the breaker: later calls skip the store
    for _ in range(19):
        assert b.get("k") is None
        b.set_many([Item("k", b"w")])
    own_server.restart()
    deadline = time.monotonic() + 5
    while b.get("k") is None:
        b.set_many([Item("k", b"x")])
        assert time.monotonic() < deadline, "never recovered after the restart"
        time.sleep(0.06)
    assert b.get("k") == b"x"
    b.close()


def test_silent_server_fails_within_the_timeout(silent_port: int) -> None:
    """A server that never answers makes each call fail with BackendUnavailable within the socket timeout."""
    b = RedisBackend(f"redis://127.0.0.1:{silent_port}/0", socket_timeout=0.2)
    for _ in range(3):
        with pytest.raises(BackendUnavailable) as raised:  # one attempt per call: test_failure_bounds counts them
            b.get("k")
        assert isinstance(raised.value.__cause__, redis_errors.TimeoutError)  # the socket timeout ended it
    b.close()


async def test_silent_server_fails_fast_async(silent_port: int) -> None:
    """The async face fails as fast against a silent server."""
    b = RedisBackend(f"redis://127.0.0.1:{silent_port}/0", socket_timeout=0.2)
    with pytest.raises(BackendUnavailable) as raised:
        await b.aget("k")
    assert isinstance(raised.value.__cause__, redis_errors.TimeoutError)
    await b.aclose()


def _wait(predicate: object, timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


@pytest.mark.slow
def test_tier_bypasses_l1_while_down_and_flushes_on_reconnect(own_server: RedisServer) -> None:
    """The L1 subscriber notices a restart, L1 is bypassed meanwhile and emptied when it reconnects."""
    b = open_redis(own_server.url + "?l1=100")
    assert isinstance(b, TieredBackend)
    b.get("warm")
    _wait(b._connected.is_set)
    b.set_many([Item("k", b"v")])
    assert b.get("k") == b"v"
    assert b.l1.get("k") == b"v"
    own_server.kill()
    _wait(lambda: not b._connected.is_set())
    with pytest.raises(BackendUnavailable):
        b.get("k")  # L1 is not trusted while invalidations may be missed
    own_server.restart()
    _wait(b._connected.is_set)
    assert b.l1.get("k") is None
    assert b.get("k") is None  # the restarted server kept nothing (--save "")
    b.close()
