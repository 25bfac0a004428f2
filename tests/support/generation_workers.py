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
