"""Redis through agentcache against raw redis-py, cashews and LangChain, all in one run: hits, misses, an
in-process stampede and the wake-up of cross-process waiters.

Starts its own redis-server on a free port (never the machine's 6379) and stores one 2 KB payload under every
contender's key. Latency rows are timed with `_harness.measure` (interleaved rounds, per-call samples); each
row names the row its ratio is taken against. The throughput table runs the same hit loop in 2 spawned
processes at once for a fixed time and sums their calls per second. Commands are counted with MONITOR (what
clients send; a Lua script's inner calls are part of its EVALSHA; connection handshakes left out). The wake-up
table runs a leader and waiter processes on fresh keys: how long after the leader's call returned (its write
done) each waiter's call returned, with the release waking the waiters against the back-off polling the flow
falls back to without wake-ups (what every Redis waiter did before issue 13).

    .venv/bin/python benchmarks/bench_redis.py            # writes benchmarks/results/redis.md
    .venv/bin/python benchmarks/bench_redis.py --quick --out /tmp/redis.md
    .venv/bin/python benchmarks/bench_redis.py --only misses,stampede,wake --out /tmp/redis.md
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing
import os
import statistics
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from _harness import Case, fmt, machine_info, markdown_table, measure, percentile, ratio, write_report  # noqa: E402
from support.redis_monitor import CommandLog  # noqa: E402
from support.redis_server import RedisServer  # noqa: E402

from agentcache.backends.redis import RedisBackend  # noqa: E402

PAYLOAD = (b"0123456789abcdef" * 128)[:2048]
TEXT = PAYLOAD.decode()
KEY = "ac:v1:bench:tool:search:0123456789abcdef"
QUERY = "weather in Paris"
RAW_SYNC = "redis-py GET (raw, sync)"
RAW_ASYNC = "redis.asyncio GET (raw)"
DECORATOR = "@tool_cached hit (redis://)"
RAW_MISS = "redis-py GET + SET (raw, sync)"
RAW_AMISS = "redis.asyncio GET + SET (raw)"
HANDSHAKE = {"HELLO", "CLIENT"}  # sent once per new connection
LEAD_SECONDS = 0.05  # the leader's computation in the wake-up rounds


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


# -- misses ---------------------------------------------------------------------------------------------------


def miss_cases(url: str, loop: asyncio.AbstractEventLoop) -> tuple[list[Case], dict[str, int], Callable[[], None]]:
    """Miss rows (every call a new 16-character-ish query, the 2 KB value computed at once), the commands one
    miss sends per row, and a cleanup function."""
    import redis
    import redis.asyncio

    import agentcache

    raw = redis.Redis.from_url(url)
    araw = redis.asyncio.Redis.from_url(url)
    n = itertools.count()

    @agentcache.tool_cached(backend=url, ttl=3600, name="bench.miss")
    def search(query: str) -> str:
        return TEXT

    @agentcache.tool_cached(backend=url, ttl=3600, name="bench.amiss")
    async def asearch(query: str) -> str:
        return TEXT

    def raw_miss() -> Any:
        key = f"rawmiss:{next(n)}"
        if raw.get(key) is None:
            raw.set(key, PAYLOAD, ex=3600)

    async def raw_amiss() -> Any:
        key = f"rawmiss:{next(n)}"
        if await araw.get(key) is None:
            await araw.set(key, PAYLOAD, ex=3600)

    async def decorated_amiss() -> Any:
        return await asearch(f"miss query {next(n)}")

    out = [
        Case(RAW_MISS, raw_miss),
        Case("@tool_cached miss (redis://)", lambda: search(f"miss query {next(n)}"), RAW_MISS),
        Case(RAW_AMISS, raw_amiss),
        Case("@tool_cached async miss (redis://)", decorated_amiss, RAW_AMISS),
    ]
    closers: list[Callable[[], Any]] = [raw.close, lambda: loop.run_until_complete(araw.aclose())]
    try:
        from cashews import Cache

        cashews = Cache()
        cashews.setup(url, client_side=False)

        @cashews(ttl="1h")
        async def cashews_search(query: str) -> str:
            return TEXT

        async def cashews_miss() -> Any:
            return await cashews_search(f"miss query {next(n)}")

        out.append(Case("cashews @cache miss (redis://)", cashews_miss, RAW_AMISS))
        closers.append(lambda: loop.run_until_complete(cashews.close()))
    except ImportError:
        pass
    commands: dict[str, int] = {}
    for case in out:
        _run_once(case, loop)  # a first call opens connections and loads scripts
        log = CommandLog(url).start()
        _run_once(case, loop)
        commands[case.name] = sum(1 for c in log.stop() if c.name not in HANDSHAKE)

    def cleanup() -> None:
        for close in closers:
            close()
        agentcache.reset()

    return out, commands, cleanup


def _run_once(case: Case, loop: asyncio.AbstractEventLoop) -> None:
    result = case.fn()
    if asyncio.iscoroutine(result):
        loop.run_until_complete(result)


# -- in-process stampede ------------------------------------------------------------------------------------------


def stampede(url: str, loop: asyncio.AbstractEventLoop, callers: int = 64) -> list[list[str]]:
    """Commands sent while `callers` threads / tasks ask for one missing key at once (the computation takes
    50 ms), per contender; rows for the report."""
    import agentcache

    rows: list[list[str]] = []
    barrier = threading.Barrier(callers)
    calls: list[int] = []

    @agentcache.tool_cached(backend=url, ttl=3600, name="bench.stampede")
    def slow(query: str) -> str:
        calls.append(1)
        time.sleep(0.05)
        return TEXT

    @agentcache.tool_cached(backend=url, ttl=3600, name="bench.astampede")
    async def aslow(query: str) -> str:
        calls.append(1)
        await asyncio.sleep(0.05)
        return TEXT

    slow("warm-up")
    loop.run_until_complete(aslow("warm-up"))

    def worker() -> None:
        barrier.wait()
        slow("stampede")

    calls.clear()
    log = CommandLog(url).start()
    threads = [threading.Thread(target=worker) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows.append(_stampede_row(f"@tool_cached, {callers} threads", log.stop(), len(calls)))

    async def gather(fn: Callable[[str], Any]) -> None:
        await asyncio.gather(*(fn("stampede") for _ in range(callers)))

    calls.clear()
    log = CommandLog(url).start()
    loop.run_until_complete(gather(aslow))
    rows.append(_stampede_row(f"@tool_cached async, {callers} tasks", log.stop(), len(calls)))
    try:
        from cashews import Cache
    except ImportError:
        return rows
    for lock in (False, True):
        cashews = Cache()
        cashews.setup(url, client_side=False)

        @cashews(ttl="1h", lock=lock, prefix=f"lock{lock}")
        async def cashews_slow(query: str) -> str:
            calls.append(1)
            await asyncio.sleep(0.05)
            return TEXT

        loop.run_until_complete(cashews_slow("warm-up"))
        calls.clear()
        log = CommandLog(url).start()
        loop.run_until_complete(gather(cashews_slow))
        name = f"cashews @cache({'lock=True' if lock else 'no lock'}), {callers} tasks"
        rows.append(_stampede_row(name, log.stop(), len(calls)))
        loop.run_until_complete(cashews.close())
    agentcache.reset()
    return rows


def _stampede_row(name: str, sent: list[Any], computed: int) -> list[str]:
    names = [c.name for c in sent if c.name not in HANDSHAKE]
    counts = ", ".join(f"{k} {v}" for k, v in sorted(Counter(names).items()))
    return [name, str(len(names)), str(computed), counts]


# -- cross-process wake-up --------------------------------------------------------------------------------------


class PollingRedis(RedisBackend):
    """A Redis store without the fused miss steps, as before issue 13: a waiter sleeps with back-off (5 ms
    doubling to 100 ms) between its rechecks (GET + SET NX)."""

    lock_get = None  # type: ignore[assignment]
    alock_get = None  # type: ignore[assignment]
    store_unlock = None  # type: ignore[assignment]
    astore_unlock = None  # type: ignore[assignment]


def _wake_worker(url: str, mode: str, role: str, rounds: int, barrier: Any, locked: Any, go: Any, out: Any) -> None:
    """Run `rounds` rounds as the leader (computes for LEAD_SECONDS) or a waiter (calls once the leader holds
    the lock); put `[(round, seconds when the call returned (monotonic), whether it computed)]` on `out`."""
    import agentcache

    store_cls = PollingRedis if mode == "polling" and role != "leader" else RedisBackend
    computed: list[int] = []
    current = [0]

    @agentcache.tool_cached(backend=store_cls(url, prefix="wake:"), ttl=3600, name="bench.wake", version=mode)
    def compute(query: str) -> str:
        computed.append(current[0])
        if role == "leader":
            locked.value = current[0]
            time.sleep(LEAD_SECONDS)
        return TEXT

    compute(f"warm-up {role} {os.getpid()}")
    out.put(("ready", []))
    go.wait(60)
    done: list[tuple[int, float, bool]] = []
    for r in range(1, rounds + 1):
        current[0] = r
        barrier.wait()
        if role != "leader":
            while locked.value != r:
                time.sleep(0.0005)
        compute(f"{mode} round {r}")
        done.append((r, time.monotonic(), r in computed))
    out.put((role, done))


def wake(url: str, mode: str, rounds: int, waiters: int) -> tuple[list[float], float, int]:
    """Wake-up delays (ms, waiter return - leader return) over every round and waiter, commands per waiter per
    round, and how many waiters computed themselves (0 when single-flight held)."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(waiters + 1)
    locked = ctx.Value("i", 0)
    go = ctx.Event()
    out = ctx.Queue()
    roles = ["leader", *(f"waiter{i}" for i in range(waiters))]
    args = (rounds, barrier, locked, go, out)
    procs = [ctx.Process(target=_wake_worker, args=(url, mode, role, *args)) for role in roles]
    for p in procs:
        p.start()
    for _ in procs:
        out.get(timeout=120)  # warmed up: connections open, scripts loaded
    log = CommandLog(url).start()
    go.set()
    results = dict(out.get(timeout=120) for _ in procs)
    sent = log.stop()
    for p in procs:
        p.join(30)
    leader = {r: t for r, t, _ in results.pop("leader")}
    delays, computed = [], 0
    for done in results.values():
        for r, t, did in done:
            delays.append((t - leader[r]) * 1000)
            computed += did
    commands = [c for c in sent if c.name not in HANDSHAKE]
    per_waiter = (len(commands) - 3 * rounds) / (waiters * rounds)  # the leader sends 3 per round
    return delays, per_waiter, computed


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


SECTIONS = ("hits", "misses", "stampede", "wake")


def main() -> None:
    """Run every row and write the markdown report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {SECTIONS}")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "redis.md")
    args = parser.parse_args()
    only = set(args.only.split(","))
    rounds, seconds = (3, 1.0) if args.quick else (15, 2.0)
    wake_rounds, waiters = (10, 3) if args.quick else (60, 3)
    server = RedisServer().start()
    loop = asyncio.new_event_loop()
    sections: list[str] = []
    progress = lambda m: print(m, file=sys.stderr)  # noqa: E731
    try:
        url = server.url
        if "hits" in only:
            sections += hit_sections(url, loop, rounds, seconds, args.quick)
        if "misses" in only:
            table, commands, cleanup = miss_cases(url, loop)
            results = measure(table, rounds=rounds, loop=loop, progress=progress)
            cleanup()
            sections.append(miss_section(results, commands))
        if "stampede" in only:
            rows = stampede(url, loop)
            headers = ["64 callers, one missing key (50 ms computation)", "commands", "computed", "which"]
            sections.append(
                "## In-process stampede: commands sent\n\n"
                + markdown_table(headers, rows, "lrrl")
                + "\n\nBefore issue 13: 78 commands for 64 threads (every caller read before joining the flight)."
            )
        if "wake" in only:
            sections.append(wake_section(url, wake_rounds, waiters))
    finally:
        loop.close()
        server.cleanup()
    info = machine_info(["redis", "cashews", "langchain-community"])
    info["redis-server"] = "started by the script on a free port, `--save '' --appendonly no`"
    write_report(args.out, "Redis: agentcache vs raw redis-py, cashews and LangChain", sections, info)
    print(args.out.read_text())


def hit_sections(url: str, loop: asyncio.AbstractEventLoop, rounds: int, seconds: float, quick: bool) -> list[str]:
    """The hit latency and throughput sections."""
    table, cleanup = cases(url, loop)
    results = measure(table, rounds=rounds, loop=loop, progress=lambda m: print(m, file=sys.stderr))
    cleanup()
    # Repeated and interleaved, median kept: other processes on a shared machine skew single runs.
    runs: dict[tuple[str, int], list[float]] = {}
    for _ in range(1 if quick else 3):
        for kind in ("raw", "decorator"):
            for n in (1, 2):
                runs.setdefault((kind, n), []).append(throughput(url, kind, n, seconds))
    tput = {k: statistics.median(v) for k, v in runs.items()}
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
    return [
        "## Hit latency\n\n" + latency,
        f"Decorator hit vs raw redis-py GET of the same bytes: **{target:.2f}x** (target <= 1.3x).",
        "## Throughput (sync hits, each process on its own connection)\n\n" + tput_table,
    ]


def miss_section(results: list[Any], commands: dict[str, int]) -> str:
    """The miss latency table (with the commands one miss sends)."""
    by_name = {r.name: r for r in results}
    rows = [
        [
            r.name,
            str(commands.get(r.name, "-")),
            fmt(r.median),
            fmt(r.p99),
            r.case.ref or "",
            ratio(r.median, by_name[r.case.ref].median if r.case.ref else None),
        ]
        for r in results
    ]
    headers = ["miss (2 KB value computed at once, loopback)", "commands", "median µs", "p99 µs", "vs", "ratio"]
    return (
        "## Miss latency\n\n"
        + markdown_table(headers, rows, "lrrrlr")
        + "\n\nA decorator miss: the read, the recheck + lock + fence (one Lua call), the write + release (one Lua"
        " call). Before issue 13: 5 round trips, 982 µs (cashews 772 µs)."
    )


def wake_section(url: str, rounds: int, waiters: int) -> str:
    """The cross-process wake-up table: both modes, one leader and `waiters` waiter processes."""
    rows = []
    for mode in ("wake-up", "polling"):
        delays, per_waiter, computed = wake(url, mode, rounds, waiters)
        label = "release wakes waiters (XREAD BLOCK)" if mode == "wake-up" else "back-off polling 5-100 ms (before #13)"
        rows.append(
            [
                label,
                str(len(delays)),
                fmt(statistics.median(delays)),
                fmt(percentile(delays, 99)),
                fmt(max(delays)),
                f"{per_waiter:.1f}",
                str(computed),
            ]
        )
    headers = [
        "waiters in other processes",
        "samples",
        "median ms",
        "p99 ms",
        "max ms",
        "commands / waiter / miss",
        "waiters that computed",
    ]
    return (
        f"## Cross-process waiters: delay from the leader's return to each waiter's\n\n1 leader + {waiters} waiter"
        f" processes, {rounds} fresh keys, the leader computes {LEAD_SECONDS * 1000:.0f} ms; a waiter calls once the"
        " leader holds the lock.\n\n" + markdown_table(headers, rows, "lrrrrrr")
    )


if __name__ == "__main__":
    main()
