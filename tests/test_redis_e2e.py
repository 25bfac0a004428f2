"""Issue 3, acceptance 4-6 through the decorators: cross-process single-flight, fail-open, tiered coherence."""

from __future__ import annotations

import logging
import multiprocessing
import statistics
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from support.redis_server import REDIS_SERVER, RedisServer, free_port, silent_server
from support.redis_workers import calls_key, crashing_owner, single_flight_worker, tiered_reader

import agentcache

pytestmark = pytest.mark.redis

redis = pytest.importorskip("redis")

SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def ns() -> str:
    """A namespace private to this test."""
    return f"e2e{uuid.uuid4().hex[:10]}"


@pytest.fixture
def counter(redis_server: str) -> Iterator[redis.Redis]:
    """A plain client reading the upstream-call counters the workers INCR."""
    client = redis.Redis.from_url(redis_server)
    yield client
    client.close()


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A redis-server private to this test, so it can be killed and restarted on the same port."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not on PATH")
    server = RedisServer().start()
    yield server
    server.cleanup()


def _outage_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "agentcache" and r.levelno == logging.WARNING]


# -- acceptance 4: cross-process single-flight --------------------------------------------------------------


@pytest.mark.slow
def test_four_processes_one_upstream_call_per_key(redis_server: str, ns: str, counter: redis.Redis) -> None:
    """Four spawned processes asking for the same missing keys at once cause one call per key; all get values."""
    keys = [f"k{i}" for i in range(4)]
    barrier = SPAWN.Barrier(4)
    results = SPAWN.Queue()
    procs = [
        SPAWN.Process(target=single_flight_worker, args=(redis_server, ns, keys, barrier, results, 0.3))
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    try:
        outputs = [results.get(timeout=60) for _ in procs]
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    assert all(p.exitcode == 0 for p in procs)
    assert [values for _, values in outputs] == [[f"value-of-{k}" for k in keys]] * 4
    assert [int(counter.get(calls_key(ns, k)) or 0) for k in keys] == [1, 1, 1, 1]


@pytest.mark.slow
def test_a_killed_lock_owner_blocks_others_only_until_the_lock_ttl(
    redis_server: str, ns: str, counter: redis.Redis
) -> None:
    """A process killed while computing (holding the lock) delays another caller by at most about lock_ttl."""
    lock_ttl = 1.0
    started = SPAWN.Event()
    owner = SPAWN.Process(target=crashing_owner, args=(redis_server, ns, "k", started, lock_ttl))
    owner.start()
    try:
        assert started.wait(30), "the owner never started computing"
        t0 = time.monotonic()
        owner.kill()
        owner.join(10)

        @agentcache.tool_cached(
            backend=redis_server, namespace=ns, name="e2e.crash", version=1, ttl=600, lock_ttl=lock_ttl
        )
        def slow(key: str) -> str:
            counter.incr(calls_key(ns, key))
            return "computed-here"

        assert slow("k") == "computed-here"
        waited = time.monotonic() - t0
    finally:
        if owner.is_alive():
            owner.kill()
            owner.join(10)
    assert int(counter.get(calls_key(ns, "k")) or 0) == 2  # the dead owner's start, then ours
    assert 0.3 < waited < lock_ttl + 0.5, waited
    assert slow("k") == "computed-here" and int(counter.get(calls_key(ns, "k")) or 0) == 2


# -- acceptance 5: fail-open ------------------------------------------------------------------------------


def _counting() -> tuple[list[int], Callable[[int], int]]:
    calls = [0]

    def double(x: int) -> int:
        calls[0] += 1
        return 2 * x

    return calls, double


def test_redis_absent_at_start_up(caplog: pytest.LogCaptureFixture) -> None:
    """With no Redis at all, every call returns the real result, one warning is logged, errors are counted."""
    agentcache.configure(failure_threshold=3, cooldown=60)
    calls, fn = _counting()
    double = agentcache.tool_cached(backend=f"redis://127.0.0.1:{free_port()}/0")(fn)
    with caplog.at_level(logging.WARNING, logger="agentcache"):
        assert [double(i % 3) for i in range(30)] == [2 * (i % 3) for i in range(30)]
    assert calls[0] == 30
    assert len(_outage_warnings(caplog)) == 1
    assert agentcache.stats().total.backend_errors >= 1


async def test_redis_absent_at_start_up_async(caplog: pytest.LogCaptureFixture) -> None:
    """The async face fails open the same way."""
    agentcache.configure(failure_threshold=3, cooldown=60)
    calls = [0]

    @agentcache.tool_cached(backend=f"redis://127.0.0.1:{free_port()}/0")
    async def double(x: int) -> int:
        calls[0] += 1
        return 2 * x

    with caplog.at_level(logging.WARNING, logger="agentcache"):
        assert [await double(i % 3) for i in range(20)] == [2 * (i % 3) for i in range(20)]
    assert calls[0] == 20
    assert len(_outage_warnings(caplog)) == 1
    assert agentcache.stats().total.backend_errors >= 1


@pytest.mark.slow
def test_killed_mid_run_then_restarted(own_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    """Killing Redis mid-run costs only caching; one warning per outage; caching resumes after a restart."""
    agentcache.configure(failure_threshold=3, cooldown=0.2)
    calls, fn = _counting()
    double = agentcache.tool_cached(backend=own_server.url, ttl=600)(fn)
    with caplog.at_level(logging.WARNING, logger="agentcache"):
        assert [double(i % 5) for i in range(20)] == [2 * (i % 5) for i in range(20)]
        assert calls[0] == 5  # 5 misses, 15 hits
        own_server.kill()
        latencies = []
        for i in range(40):
            started = time.perf_counter()
            assert double(i % 5) == 2 * (i % 5)
            latencies.append(time.perf_counter() - started)
        assert calls[0] == 45  # nothing is served from a dead cache, nothing raises
        assert len(_outage_warnings(caplog)) == 1
        assert agentcache.stats().total.backend_errors >= 1
        own_server.restart()
        deadline = time.monotonic() + 10
        while True:
            double(100)
            before = calls[0]
            if double(100) == 200 and calls[0] == before:
                break  # a hit: caching resumed by itself
            assert time.monotonic() < deadline, "caching never resumed after the restart"
            time.sleep(0.05)
    assert len(_outage_warnings(caplog)) == 1
    assert statistics.median(latencies) < 0.01


@pytest.mark.slow
def test_a_server_that_never_answers(caplog: pytest.LogCaptureFixture) -> None:
    """A hung server: calls return real results; once the breaker opens they stop paying the timeout."""
    agentcache.configure(failure_threshold=3, cooldown=60, retries=1)
    calls, fn = _counting()
    with silent_server() as port:
        double = agentcache.tool_cached(backend=f"redis://127.0.0.1:{port}/0?socket_timeout=0.2")(fn)
        latencies = []
        with caplog.at_level(logging.WARNING, logger="agentcache"):
            for i in range(30):
                started = time.perf_counter()
                assert double(i) == 2 * i
                latencies.append(time.perf_counter() - started)
    assert calls[0] == 30
    assert len(_outage_warnings(caplog)) == 1
    assert agentcache.stats().total.backend_errors >= 1
    open_latencies = latencies[5:]
    print(f"per-call latency while the breaker is open: median {statistics.median(open_latencies) * 1e6:.0f} µs")
    assert max(open_latencies) < 0.01, open_latencies
    assert max(latencies[:2]) >= 0.15  # the first calls did wait for the timeout: the server really is silent


# -- acceptance 3/6: tiered coherence across processes -------------------------------------------------------


@pytest.mark.slow
def test_invalidate_in_one_process_reaches_another_l1_within_100ms(
    redis_server: str, ns: str, counter: redis.Redis
) -> None:
    """`agentcache.invalidate(tags=...)` here drops another process's L1 copy within 100 ms."""
    url = f"{redis_server}?l1=100&prefix=e2e{ns}:"
    version_key = f"e2e-version:{ns}"

    @agentcache.tool_cached(backend=url, namespace=ns, name="e2e.doc", version=1, tags=["doc"], ttl=600)
    def doc(key: str) -> str:
        return f"{key}@{int(counter.get(version_key) or 0)}"

    assert doc("readme") == "readme@0"
    ready = SPAWN.Event()
    seen_at = SPAWN.Value("d", 0.0)
    reader = SPAWN.Process(target=tiered_reader, args=(url, ns, ready, seen_at))
    reader.start()
    try:
        assert ready.wait(30), "the other process never cached the value in its L1"
        time.sleep(0.1)
        counter.incr(version_key)
        assert agentcache.invalidate(tags=["doc"]) >= 1
        done_at = time.time()
        reader.join(10)
    finally:
        if reader.is_alive():
            reader.kill()
            reader.join(10)
    assert reader.exitcode == 0
    assert seen_at.value > 0, "the invalidation never reached the other process"
    latency = seen_at.value - done_at
    print(f"cross-process invalidation latency through the decorators: {latency * 1000:.1f} ms")
    assert latency < 0.1
