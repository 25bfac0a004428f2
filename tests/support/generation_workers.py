"""Process bodies for the generation tests: a second process computing while the test process invalidates."""

from __future__ import annotations

from typing import Any


def computing_worker(url: str, ns: str, rounds: int, version: Any, go: Any, computed: Any, done: Any) -> None:
    """For each round number read from `go`: call the cached function on a fresh key; it reads `version`,
    reports on `computed` and returns what it read; then report the round on `done`."""
    import agentcache

    @agentcache.tool_cached(backend=url, namespace=ns, name="gen.stress", tags=["doc"], ttl=600)
    def read(q: str) -> int:
        value = int(version.value)
        computed.put(q)
        return value

    for _ in range(rounds):
        r = go.get(timeout=60)
        if r is None:
            break
        read(f"q{r}")
        done.put(r)


def l1_reader(url: str, pipe: Any) -> None:
    """Process B of the L1 coherence test: on ("fill", key) read `key` until this process's L1 holds it and
    answer "ready"; on ("read", key) answer what one read returns now; on None stop."""
    import time

    from agentcache.backends.redis import open_redis

    tier: Any = open_redis(url)
    while (order := pipe.recv()) is not None:
        what, key = order
        if what == "fill":
            deadline = time.monotonic() + 30
            while tier.get(key) is None or tier.l1.get(key) is None:
                assert time.monotonic() < deadline, "L1 never filled"
            pipe.send("ready")
        else:
            pipe.send(tier.get(key))
    tier.close()
