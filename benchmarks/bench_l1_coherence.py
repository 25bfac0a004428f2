"""L1 coherence of `?l1=` across processes: A invalidates, then signals B; is B's next read stale?

Process A (this one) writes a key, waits until process B holds it in its L1, deletes it (alternately by key and
by tag) and, once the delete has returned, signals B over a pipe with the time it returned. B reads the key
once: a hit is a stale read; B then reads until the change shows, and the time from A's return to that read is
the staleness window. Run idle, and busy (CPU burners, one per core plus one, competing with both processes).
Also reports the cost of an L1 hit (`TieredBackend.get`), since every hit first checks the invalidation socket.

    .venv/bin/python benchmarks/bench_l1_coherence.py                   # writes benchmarks/results/l1_coherence.md
    .venv/bin/python benchmarks/bench_l1_coherence.py --rounds 50 --out /tmp/l1.md
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from _harness import machine_info, markdown_table, write_report  # noqa: E402
from support.redis_server import RedisServer  # noqa: E402


def reader(url: str, pipe: Any) -> None:
    """Process B: fill L1 on ("fill", key); on ("read", key, t_returned) report (stale?, window seconds)."""
    from agentcache.backends.redis import open_redis

    tier: Any = open_redis(url)
    while (order := pipe.recv()) is not None:
        if order[0] == "fill":
            key = order[1]
            while tier.get(key) is None or tier.l1.get(key) is None:
                pass
            pipe.send("ready")
            continue
        _, key, returned = order
        stale = tier.get(key) is not None
        deadline = time.monotonic() + 10
        while tier.get(key) is not None and time.monotonic() < deadline:
            pass
        pipe.send((stale, time.time() - returned))
    tier.close()


def burn(stop: Any) -> None:
    """A CPU burner for the busy runs."""
    while not stop.is_set():
        sum(range(10_000))


def run(url: str, rounds: int, busy: bool) -> dict[str, Any]:
    from agentcache.backends.base import Item
    from agentcache.backends.redis import open_redis

    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    burners = [ctx.Process(target=burn, args=(stop,)) for _ in range((os.cpu_count() or 2) + 1)] if busy else []
    for p in burners:
        p.start()
    ours, theirs = ctx.Pipe()
    proc = ctx.Process(target=reader, args=(url, theirs))
    proc.start()
    tier: Any = open_redis(url)
    stale, windows = 0, []
    try:
        for r in range(rounds):
            key = f"ac:v1:bench:tool:doc:{r:05d}"
            tier.set_many([Item(key, b"old", tags=("doc",))])
            ours.send(("fill", key))
            assert ours.recv() == "ready"
            if r % 2:
                tier.delete_many([key])
            else:
                tier.delete_tags(["doc"], "ac:v1:bench:")
            ours.send(("read", key, time.time()))
            was_stale, window = ours.recv()
            if was_stale:
                stale += 1
                windows.append(window)
    finally:
        ours.send(None)
        proc.join(30)
        stop.set()
        for p in burners:
            p.join(10)
        tier.close()
    return {"stale": stale, "windows": windows}


def l1_hit_us(url: str) -> float:
    from agentcache.backends.base import Item
    from agentcache.backends.redis import open_redis

    tier: Any = open_redis(url)
    key = "ac:v1:bench:tool:hit:0"
    tier.set_many([Item(key, b"x" * 2048)])
    deadline = time.monotonic() + 10
    while (tier.get(key) is None or tier.l1.get(key) is None) and time.monotonic() < deadline:
        pass
    samples = []
    for _ in range(200):
        start = time.perf_counter()
        for _ in range(1000):
            tier.get(key)
        samples.append((time.perf_counter() - start) / 1000 * 1e6)
    tier.close()
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "l1_coherence.md")
    args = parser.parse_args()
    server = RedisServer().start()
    try:
        url = f"{server.url}?l1=1000"
        rows = []
        for busy in (False, True):
            result = run(f"{url}&prefix=b{int(busy)}:", args.rounds, busy)
            w = result["windows"]
            rows.append(
                [
                    "busy" if busy else "idle",
                    str(args.rounds),
                    f"{result['stale']} ({100 * result['stale'] / args.rounds:.1f}%)",
                    f"{statistics.median(w) * 1000:.2f}" if w else "-",
                    f"{max(w) * 1000:.2f}" if w else "-",
                ]
            )
        hit = l1_hit_us(f"{url}&prefix=h:")
    finally:
        server.cleanup()
    table = markdown_table(
        ["machine state", "rounds", "stale next reads", "window median ms", "window max ms"], rows, align="lrrrr"
    )
    intro = (
        "A invalidates a key that B holds in its L1 (by key and by tag, alternately), then signals B over a pipe; "
        "B reads the key once. A stale read is a hit on the old value; the window is the time from A's "
        "`invalidate` returning to B's first fresh read. Busy: one CPU burner per core plus one. Redis on loopback."
    )
    hit_line = f"L1 hit (`TieredBackend.get`, 2 KB value), median: {hit:.2f} µs"
    info = machine_info(["redis"])
    write_report(args.out, "`?l1=` coherence across processes", [intro, table, hit_line], info)
    print(intro, table, hit_line, sep="\n\n")


if __name__ == "__main__":
    main()
