"""Redis hits through agentcache against raw redis-py, cashews and LangChain, all in one run.

Starts its own redis-server on a free port (never the machine's 6379) and stores one 2 KB payload under every
contender's key. Latency rows are timed with `_harness.measure` (interleaved rounds, per-call samples); each
row names the row its ratio is taken against. The throughput table runs the same hit loop in 2 spawned
processes at once for a fixed time and sums their calls per second.

    .venv/bin/python benchmarks/bench_redis.py            # writes benchmarks/results/redis.md
    .venv/bin/python benchmarks/bench_redis.py --quick --out /tmp/redis.md
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from _harness import Case, fmt, machine_info, markdown_table, measure, ratio, write_report  # noqa: E402
from support.redis_server import RedisServer  # noqa: E402

PAYLOAD = (b"0123456789abcdef" * 128)[:2048]
TEXT = PAYLOAD.decode()
KEY = "ac:v1:bench:tool:search:0123456789abcdef"
QUERY = "weather in Paris"
RAW_SYNC = "redis-py GET (raw, sync)"
RAW_ASYNC = "redis.asyncio GET (raw)"
DECORATOR = "@tool_cached hit (redis://)"


def _decorated(url: str) -> Callable[[str], str]:
    import agentcache

    @agentcache.tool_cached(backend=url, ttl=3600, name="bench.search")
    def search(query: str) -> str:
        return TEXT

    return search


def cases(url: str, loop: asyncio.AbstractEventLoop) -> tuple[list[Case], Callable[[], None]]:
    """Build every latency row against the server at `url`; return them and a cleanup function."""
    import redis
    import redis.asyncio

    import agentcache
    from agentcache.backends.base import Item
    from agentcache.backends.memory import MemoryBackend
    from agentcache.backends.redis import RedisBackend, open_redis

    raw = redis.Redis.from_url(url)
    raw.set("raw:" + KEY, PAYLOAD)
    araw = redis.asyncio.Redis.from_url(url)
    backend = RedisBackend(url)
    backend.set_many([Item(KEY, PAYLOAD)])
    tiered = open_redis(url + "?l1=1000")
    tiered.get(KEY)
    time.sleep(0.3)  # the subscriber connects; L1 is used from then on
    tiered.get(KEY)
    memory = MemoryBackend()
    memory.set_many([Item(KEY, PAYLOAD)])

    search = _decorated(url)
    search(QUERY)

    @agentcache.tool_cached(backend=url, ttl=3600, name="bench.asearch")
    async def asearch(query: str) -> str:
        return TEXT

    loop.run_until_complete(asearch(QUERY))

    @agentcache.tool_cached(backend="memory://", ttl=3600, name="bench.msearch")
    def msearch(query: str) -> str:
        return TEXT

    msearch(QUERY)

    @agentcache.tool_cached(backend=url + "?l1=1000", ttl=3600, name="bench.tsearch")
    def tsearch(query: str) -> str:
        return TEXT

    tsearch(QUERY)
    time.sleep(0.3)
    tsearch(QUERY)

    async def raw_aget() -> Any:
        return await araw.get("raw:" + KEY)

    async def backend_aget() -> Any:
        return await backend.aget(KEY)

    async def decorated_aget() -> Any:
        return await asearch(QUERY)

    out = [
        Case(RAW_SYNC, lambda: raw.get("raw:" + KEY)),
        Case("RedisBackend.get hit", lambda: backend.get(KEY), RAW_SYNC),
        Case(DECORATOR, lambda: search(QUERY), RAW_SYNC),
        Case(RAW_ASYNC, raw_aget),
        Case("RedisBackend.aget hit", backend_aget, RAW_ASYNC),
        Case("@tool_cached async hit (redis://)", decorated_aget, RAW_ASYNC),
        Case("MemoryBackend.get hit", lambda: memory.get(KEY)),
        Case("TieredBackend.get L1 hit", lambda: tiered.get(KEY), "MemoryBackend.get hit"),
        Case("@tool_cached hit (memory://)", lambda: msearch(QUERY)),
        Case("@tool_cached L1 hit (redis://?l1=)", lambda: tsearch(QUERY), "@tool_cached hit (memory://)"),
    ]
    closers: list[Callable[[], Any]] = [raw.close, backend.close, tiered.close]
    try:
        from cashews import Cache

        cashews = Cache()
        cashews.setup(url, client_side=False)

        @cashews(ttl="1h")
        async def cashews_search(query: str) -> str:
            return TEXT

        loop.run_until_complete(cashews_search(QUERY))

        async def cashews_hit() -> Any:
            return await cashews_search(QUERY)

        out.append(Case("cashews @cache hit (redis://)", cashews_hit, RAW_ASYNC))
        closers.append(lambda: loop.run_until_complete(cashews.close()))
    except ImportError:
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from langchain_community.cache import RedisCache
            from langchain_core.outputs import Generation

        lc = RedisCache(redis_=raw)
        lc.update("prompt", "llm", [Generation(text=TEXT)])
        out.append(Case("LangChain RedisCache.lookup hit", lambda: lc.lookup("prompt", "llm"), RAW_SYNC))
    except ImportError:
        pass

    def cleanup() -> None:
        for close in closers:
            close()
        loop.run_until_complete(araw.aclose())
        loop.run_until_complete(backend.aclose())
        agentcache.reset()

    return out, cleanup


def _throughput_worker(url: str, kind: str, start_at: float, seconds: float, out: Any) -> None:
    """Spin on one kind of hit from `start_at` for `seconds`; put the number of calls on `out`."""
    import redis

    if kind == "raw":
        client = redis.Redis.from_url(url)

        def hit() -> Any:
            return client.get("raw:" + KEY)
    else:
        search = _decorated(url)

        def hit() -> Any:
            return search(QUERY)

    for _ in range(200):
        hit()
    while time.time() < start_at:
        time.sleep(0.001)
    n, end = 0, start_at + seconds
    while time.time() < end:
        for _ in range(50):
            hit()
        n += 50
    out.put(n)


def throughput(url: str, kind: str, processes: int, seconds: float) -> float:
    """Total calls per second of `processes` spawned processes running `kind` hits at once."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 3.0  # time for every process to start and warm up
    procs = [ctx.Process(target=_throughput_worker, args=(url, kind, start_at, seconds, out)) for _ in range(processes)]
    for p in procs:
        p.start()
    total = sum(out.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(30)
    return total / seconds


def main() -> None:
    """Run every row and write the markdown report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "redis.md")
    args = parser.parse_args()
    rounds, seconds = (3, 1.0) if args.quick else (15, 2.0)
    server = RedisServer().start()
    loop = asyncio.new_event_loop()
    try:
        url = server.url
        table, cleanup = cases(url, loop)
        results = measure(table, rounds=rounds, loop=loop, progress=lambda m: print(m, file=sys.stderr))
        cleanup()
        # Repeated and interleaved, median kept: other processes on a shared machine skew single runs.
        runs: dict[tuple[str, int], list[float]] = {}
        for _ in range(1 if args.quick else 3):
            for kind in ("raw", "decorator"):
                for n in (1, 2):
                    runs.setdefault((kind, n), []).append(throughput(url, kind, n, seconds))
        tput = {k: statistics.median(v) for k, v in runs.items()}
    finally:
        loop.close()
        server.cleanup()
    by_name = {r.name: r for r in results}
    rows = [
        [
            r.name,
            fmt(r.median),
            fmt(r.p99),
            r.case.ref or "",
            ratio(r.median, by_name[r.case.ref].median if r.case.ref else None),
        ]
        for r in results
    ]
    latency = markdown_table(
        ["call (2 KB value, loopback)", "median µs", "p99 µs", "vs", "median ratio"], rows, "lrrlr"
    )
    trows = [
        [
            label,
            str(n),
            f"{tput[kind, n]:,.0f}",
            ratio(tput[kind, n], tput[kind, 1]),
            ratio(tput[kind, n], tput["raw", n]),
        ]
        for kind, label in (("raw", RAW_SYNC), ("decorator", DECORATOR))
        for n in (1, 2)
    ]
    tput_table = markdown_table(
        ["hit loop", "processes", "calls/s (all processes)", "vs 1 process", "vs raw GET"], trows, "lrrrr"
    )
    target = by_name[DECORATOR].median / by_name[RAW_SYNC].median
    sections = [
        "## Hit latency\n\n" + latency,
        f"Decorator hit vs raw redis-py GET of the same bytes: **{target:.2f}x** (target <= 1.3x).",
        "## Throughput (sync hits, each process on its own connection)\n\n" + tput_table,
    ]
    info = machine_info(["redis", "cashews", "langchain-community"])
    info["redis-server"] = "started by the script on a free port, `--save '' --appendonly no`"
    write_report(args.out, "Redis hits: agentcache vs raw redis-py, cashews and LangChain", sections, info)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
