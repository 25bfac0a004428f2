"""TieredBackend: L1 hits in memory, and every process's L1 dropping what another process changed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentcache.backends.base import Item
from agentcache.backends.memory import MemoryBackend
from agentcache.backends.redis import RedisBackend, open_redis
from agentcache.backends.tiered import TieredBackend

pytestmark = pytest.mark.redis

pytest.importorskip("redis")

KEY = "ac:v1:app:tool:weather:0001"

# The other process: fills its L1, then reports how long each change made here took to reach it.
_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from agentcache.backends.redis import open_redis
    b = open_redis(sys.argv[1])
    key = sys.argv[2]
    def wait(pred):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            value = b.get(key)
            if pred(value):
                return time.time(), value
        return None, value
    wait(lambda v: v == b"v1")
    while b.l1.get(key) is None:
        b.get(key)
    for expected in (b"v2", None, "tags"):
        print("ready", flush=True)
        sys.stdin.readline()
        if expected == "tags":
            b.get(key)
            seen, value = wait(lambda v: v is None)
        else:
            seen, value = wait(lambda v: v == expected)
        print(json.dumps({"seen": seen, "l1_had": b.l1.get(key) is not None}), flush=True)
    b.close()
    """
)


@pytest.fixture
def url(redis_server: str) -> str:
    """A tiered URL with a private prefix (and so a private invalidation channel)."""
    return f"{redis_server}?prefix=t{uuid.uuid4().hex[:10]}:&l1=1000"


@pytest.fixture
def tiered(url: str) -> Iterator[TieredBackend]:
    """A tiered backend on the session server."""
    b = open_redis(url)
    assert isinstance(b, TieredBackend)
    yield b
    b.close()


def _wait_connected(b: TieredBackend) -> None:
    b.get("warm-up")
    deadline = time.monotonic() + 5
    while not b._connected.is_set():
        assert time.monotonic() < deadline, "the subscriber did not connect"
        time.sleep(0.005)


def test_url_builds_a_tier_over_redis(tiered: TieredBackend) -> None:
    """`?l1=N` gives a TieredBackend with an N-entry memory L1 over a RedisBackend."""
    assert isinstance(tiered.l1, MemoryBackend) and tiered.l1.max_entries == 1000
    assert isinstance(tiered.l2, RedisBackend)


def test_reads_fill_l1_with_ttl_and_tags(tiered: TieredBackend, memory_clock: Any) -> None:
    """A read from L2 fills L1 with the entry's remaining TTL and tags; the next read is an L1 hit."""
    _wait_connected(tiered)
    tiered.set_many([Item(KEY, b"v", ttl=30, tags=("t",))])
    assert tiered.l1.get(KEY) is None
    assert tiered.get(KEY) == b"v"
    (info,) = list(tiered.l1.scan(KEY))
    assert info.tags == ("t",)
    memory_clock.advance(30.1)  # L1's clock: past the remaining TTL it was filled with
    assert tiered.l1.get(KEY) is None


def test_local_writes_and_invalidations_drop_l1(tiered: TieredBackend) -> None:
    """Overwrite, delete, tag delete and clear in this process never leave a stale L1 value."""
    _wait_connected(tiered)
    tiered.set_many([Item(KEY, b"1", tags=("t",))])
    assert tiered.get(KEY) == b"1"
    tiered.set_many([Item(KEY, b"2", tags=("t",))])
    assert tiered.get(KEY) == b"2"
    assert tiered.delete_tags(["t"]) == 1
    assert tiered.get(KEY) is None
    tiered.set_many([Item(KEY, b"3")])
    assert tiered.get(KEY) == b"3"
    assert tiered.clear("ac:v1:app:") == 1
    assert tiered.get(KEY) is None


async def test_async_face(tiered: TieredBackend) -> None:
    """The async face reads through L1 and invalidates like the sync one."""
    _wait_connected(tiered)
    await tiered.aset_many([Item(KEY, b"a")])
    assert await tiered.aget(KEY) == b"a"
    assert tiered.l1.get(KEY) == b"a"
    assert await tiered.adelete_many([KEY]) == 1
    assert await tiered.aget(KEY) is None
    await tiered.aclose()


def test_l1_ttl_caps_the_l1_lifetime(url: str, memory_clock: Any) -> None:
    """`l1_ttl` bounds how long L1 keeps an entry, whatever the L2 TTL."""
    b = open_redis(url + "&l1_ttl=5")
    assert isinstance(b, TieredBackend)
    _wait_connected(b)
    b.set_many([Item(KEY, b"v", ttl=60)])
    b.get(KEY)
    assert b.l1.get(KEY) == b"v"
    memory_clock.advance(5.1)
    assert b.l1.get(KEY) is None
    b.close()


@pytest.mark.slow
def test_changes_reach_another_process_within_100ms(tiered: TieredBackend, url: str, tmp_path: Path) -> None:
    """An overwrite, a delete and a tag invalidation here reach another process's L1 in under 100 ms."""
    tiered.set_many([Item(KEY, b"v1", tags=("user:1",))])
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, url, KEY],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert child.stdin is not None and child.stdout is not None
    latencies = {}
    try:
        for name, change in (
            ("overwrite", lambda: tiered.set_many([Item(KEY, b"v2", tags=("user:1",))])),
            ("delete", lambda: tiered.delete_many([KEY])),
            ("tags", lambda: tiered.delete_tags(["user:1"], "ac:v1:app:")),
        ):
            assert child.stdout.readline().strip() == "ready"
            if name == "tags":
                tiered.set_many([Item(KEY, b"v3", tags=("user:1",))])
                child.stdin.write("\n")
                child.stdin.flush()
                time.sleep(0.2)  # let the child fill its L1 with v3 first
                started = time.time()
                change()
            else:
                started = time.time()
                change()
                child.stdin.write("\n")
                child.stdin.flush()
            report = json.loads(child.stdout.readline())
            assert report["seen"] is not None, f"{name} never reached the other process"
            latencies[name] = report["seen"] - started
        assert child.wait(10) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdin.close()
        child.stdout.close()
    print("cross-process invalidation latency (s):", latencies)
    assert max(latencies.values()) < 0.1, latencies


@pytest.mark.slow
def test_after_invalidate_returns_another_process_never_reads_the_old_value(tiered: TieredBackend, url: str) -> None:
    """A invalidates, then tells B; B's very next read is never the old value (issue #14.3: 9-14% before)."""
    import multiprocessing

    from support.generation_workers import l1_reader

    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    reader = ctx.Process(target=l1_reader, args=(url, theirs))
    reader.start()
    stale = []
    try:
        for r in range(100):
            key = f"ac:v1:app:tool:doc:{r:04d}"
            tiered.set_many([Item(key, b"old", tags=("doc",))])
            ours.send(("fill", key))
            assert ours.poll(60) and ours.recv() == "ready"
            if r % 2:
                tiered.delete_many([key])
            else:
                tiered.delete_tags(["doc"], "ac:v1:app:")
            ours.send(("read", key))
            assert ours.poll(60)
            if ours.recv() is not None:
                stale.append(r)
    finally:
        ours.send(None)
        reader.join(30)
        if reader.is_alive():
            reader.kill()
    assert stale == []
