"""Process bodies for the end-to-end Redis tests (spawned processes import them from here).

Every decorated function counts its real executions with an `INCR` on a Redis key outside the cache's
layout, so the parent can check how many upstream calls happened across all processes.

The functions here and their twins in the tests have different bodies; the ones meant to share entries across
processes set one `version=`, which replaces the code hash in their keys (a `name=` alone no longer shares).
"""

from __future__ import annotations

import time
from typing import Any


def calls_key(ns: str, key: str) -> str:
    """The Redis key counting real executions of `key` in namespace `ns`."""
    return f"e2e-calls:{ns}:{key}"


def single_flight_worker(url: str, ns: str, keys: list[str], barrier: Any, results: Any, compute: float) -> None:
    """After `barrier`, call the shared slow function on every key; put `(pid, values)` on `results`."""
    import os

    import redis

    import agentcache

    counter = redis.Redis.from_url(url.split("?", 1)[0])

    @agentcache.tool_cached(backend=url, namespace=ns, name="e2e.slow", ttl=600)
    def slow(key: str) -> str:
        counter.incr(calls_key(ns, key))
        time.sleep(compute)
        return f"value-of-{key}"

    barrier.wait(30)
    results.put((os.getpid(), [slow(k) for k in keys]))
    counter.close()


def crashing_owner(url: str, ns: str, key: str, started: Any, lock_ttl: float) -> None:
    """Take the single-flight lock of `key` by starting the computation, signal `started`, then hang (killed)."""
    import redis

    import agentcache

    counter = redis.Redis.from_url(url.split("?", 1)[0])

    @agentcache.tool_cached(backend=url, namespace=ns, name="e2e.crash", version=1, ttl=600, lock_ttl=lock_ttl)
    def slow(key: str) -> str:
        counter.incr(calls_key(ns, key))
        started.set()
        time.sleep(3600)
        return "never"

    slow(key)


def tiered_reader(url: str, ns: str, ready: Any, seen_at: Any) -> None:
    """Cache a value in this process's L1, then poll it until it changes; record when the change was seen.

    `seen_at` receives the wall-clock time of the first call that returned the new value (-1 on timeout).
    """
    import redis

    import agentcache

    version = redis.Redis.from_url(url.split("?", 1)[0])
    version_key = f"e2e-version:{ns}"

    @agentcache.tool_cached(backend=url, namespace=ns, name="e2e.doc", version=1, tags=["doc"], ttl=600)
    def doc(key: str) -> str:
        return f"{key}@{int(version.get(version_key) or 0)}"

    from agentcache.engine.cache import cache_for

    first = doc("readme")
    tier: Any = cache_for(url).store.inner  # the TieredBackend behind the fail-open wrapper
    deadline = time.monotonic() + 10
    while not tier._connected.is_set() or tier.l1.get(doc.cache_key("readme")) is None:
        doc("readme")
        assert time.monotonic() < deadline, "L1 never filled"
        time.sleep(0.005)
    ready.set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if doc("readme") != first:
            seen_at.value = time.time()
            break
        time.sleep(0.001)
    else:
        seen_at.value = -1.0
    version.close()


def wrapped_client_worker(redis_url: str, base_url: str, ns: str, barrier: Any, results: Any) -> None:
    """After `barrier`, ask a `wrap()`ed OpenAI client (Redis store) one question; put the answer on `results`."""
    import openai

    import agentcache

    client = agentcache.wrap(
        openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0), backend=redis_url, namespace=ns
    )
    barrier.wait(30)
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    results.put((answer.choices[0].message.content, agentcache.stats().total.backend_errors))
