"""Hit latency of the Redis backend against raw redis-py, cashews and LangChain, in one run.

Starts its own redis-server on a free port (never the machine's 6379), stores one 2 KB payload, and times
N hits per row (median and p99 in microseconds). Each row names a baseline row; the table shows the ratio.
Writes `benchmarks/results/redis.md` and prints the same table.

Add a row: append `Row(name, fn, baseline=...)` in `rows()` (`fn` is a sync callable or a coroutine function).
"""

from __future__ import annotations

import asyncio
import inspect
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from support.redis_server import RedisServer  # noqa: E402

N = 3000
WARMUP = 300
PAYLOAD = (b"0123456789abcdef" * 128)[:2048]
KEY = "ac:v1:bench:tool:search:0123456789abcdef"
LOOP = asyncio.new_event_loop()  # one loop for every async client (they are bound to the loop they start on)


@dataclass
class Row:
    """One measured call; `baseline` names the row its ratio is taken against."""

    name: str
    fn: Callable[[], Any]
    baseline: str | None = None


def _measure(fn: Callable[[], Any]) -> list[float]:
    if inspect.iscoroutinefunction(fn):

        async def run() -> list[float]:
            out = []
            for i in range(WARMUP + N):
                t = time.perf_counter_ns()
                await fn()
                if i >= WARMUP:
                    out.append((time.perf_counter_ns() - t) / 1000)
            return out

        return LOOP.run_until_complete(run())
    out = []
    for i in range(WARMUP + N):
        t = time.perf_counter_ns()
        fn()
        if i >= WARMUP:
            out.append((time.perf_counter_ns() - t) / 1000)
    return out


def rows(url: str) -> tuple[list[Row], Callable[[], None]]:
    """Build every row against the server at `url`; return them and a cleanup function."""
    import redis
    import redis.asyncio

    from agentcache.backends.base import Item
    from agentcache.backends.memory import MemoryBackend
    from agentcache.backends.redis import RedisBackend, open_redis

    closers: list[Callable[[], Any]] = []
    raw = redis.Redis.from_url(url)
    backend = RedisBackend(url)
    backend.set_many([Item(KEY, PAYLOAD)])
    raw.set("raw:" + KEY, PAYLOAD)
    tiered = open_redis(url + "?l1=1000")
    tiered.get(KEY)
    time.sleep(0.2)  # the subscriber connects; L1 is used from then on
    tiered.get(KEY)
    memory = MemoryBackend()
    memory.set_many([Item(KEY, PAYLOAD)])
    closers += [raw.close, backend.close, tiered.close]

    araw: Any = None
    abackend = RedisBackend(url)

    async def raw_aget() -> Any:
        nonlocal araw
        if araw is None:
            araw = redis.asyncio.Redis.from_url(url)
        return await araw.get("raw:" + KEY)

    async def backend_aget() -> Any:
        return await abackend.aget(KEY)

    out = [
        Row("redis-py GET (raw, sync)", lambda: raw.get("raw:" + KEY)),
        Row("RedisBackend.get hit", lambda: backend.get(KEY), "redis-py GET (raw, sync)"),
        Row("redis.asyncio GET (raw)", raw_aget),
        Row("RedisBackend.aget hit", backend_aget, "redis.asyncio GET (raw)"),
        Row("MemoryBackend.get hit", lambda: memory.get(KEY)),
        Row("TieredBackend.get L1 hit", lambda: tiered.get(KEY), "MemoryBackend.get hit"),
    ]

    try:
        from cashews import Cache

        cashews = Cache()
        cashews.setup(url, client_side=False)
        LOOP.run_until_complete(cashews.set("cashews:" + KEY, PAYLOAD))

        async def cashews_get() -> Any:
            return await cashews.get("cashews:" + KEY)

        out.append(Row("cashews redis:// get", cashews_get, "redis.asyncio GET (raw)"))
    except ImportError:
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from langchain_community.cache import RedisCache
            from langchain_core.outputs import Generation

        lc = RedisCache(redis_=raw)
        lc.update("prompt", "llm", [Generation(text=PAYLOAD.decode())])
        out.append(Row("LangChain RedisCache.lookup", lambda: lc.lookup("prompt", "llm"), "redis-py GET (raw, sync)"))
    except ImportError:
        pass
    try:
        import agentcache

        calls = 0

        @agentcache.tool_cached(backend=url, ttl=3600)
        def search(query: str) -> str:
            nonlocal calls
            calls += 1
            return PAYLOAD.decode()

        search("weather in Paris")
        out.append(Row("@tool_cached hit (redis://)", lambda: search("weather in Paris"), "RedisBackend.get hit"))
    except (ImportError, AttributeError, TypeError) as exc:
        print(f"skipping the decorator row: {exc!r}")

    def cleanup() -> None:
        for close in closers:
            close()
        LOOP.run_until_complete(abackend.aclose())
        if araw is not None:
            LOOP.run_until_complete(araw.aclose())

    return out, cleanup


def main() -> None:
    """Run every row and write the markdown table."""
    server = RedisServer().start()
    try:
        table, cleanup = rows(server.url)
        results: dict[str, tuple[float, float]] = {}
        for row in table:
            samples = sorted(_measure(row.fn))
            results[row.name] = (statistics.median(samples), samples[int(len(samples) * 0.99) - 1])
        cleanup()
    finally:
        server.cleanup()
    lines = [
        f"# Redis hit latency ({N} hits of a 2 KB value, loopback, {platform.python_version()}, {platform.machine()})",
        "",
        "| call | median µs | p99 µs | vs | median ratio |",
        "| --- | ---: | ---: | --- | ---: |",
    ]
    for row in table:
        med, p99 = results[row.name]
        ratio = f"{med / results[row.baseline][0]:.2f}x" if row.baseline else ""
        lines.append(f"| {row.name} | {med:.1f} | {p99:.1f} | {row.baseline or ''} | {ratio} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "benchmarks" / "results" / "redis.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
