"""SQLite store tails and lifecycle: hit p99.9 at 1e5-1e6 entries, writes at the eviction limit, process start.

Every section measures agentcache and its floor or peer in the same run, interleaved in rounds, and prints
median / p99 / p99.9 in µs (ms for process start) with the ratio to the reference row. Writes
`benchmarks/results/sqlite.md`.

    .venv/bin/python benchmarks/bench_sqlite.py            # ~3-5 minutes (fills a 1e6-entry file)
    .venv/bin/python benchmarks/bench_sqlite.py --quick    # a smoke run, ~20 s

Sections:
- hits: `SQLiteBackend.get` of uniformly random keys (so the access-time buffer fills with distinct keys, the
  worst case for LRU tracking) in a file of N entries (~150-byte values), against the floor, the same
  `SELECT value, expires FROM entries WHERE key = ?` on a plain `sqlite3` connection to the same file, and
  (N <= 1e5 by default) diskcache `Cache.get` on a cache holding the same N items (its default policy,
  least-recently-stored, which writes nothing on a read).
- eviction: `set_many` of one new 1 KB item into a store kept at `max_entries` (and, separately, `max_bytes`),
  against diskcache `Cache.set` at its `size_limit` (it culls at most 10 items per set), and the unbounded
  agentcache write as the floor.
- start: a fresh interpreter runs `import agentcache` + one hit of a `@tool_cached` function on an existing
  SQLite store, against `import diskcache` + one hit of a `Cache.memoize()` function; wall time measured inside
  the child from before the import to after the hit (the interpreter's own start is the same for both).
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import fmt, machine_info, markdown_table, percentile, write_report  # noqa: E402

from agentcache.backends.base import Item  # noqa: E402
from agentcache.backends.sqlite import SQLiteBackend  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "sqlite.md"
PACKAGES = ("agentcache-py", "diskcache")
HEADERS = ["case", "median", "p99", "p99.9", "max", "p99.9 / ref"]
VALUE = b"v" * 150


def _key(i: int) -> str:
    return f"tool:search:{i:012d}"


def _time(fn: Callable[[], object], n: int) -> list[float]:
    out = [0.0] * n
    clock = time.perf_counter_ns
    for i in range(n):
        t = clock()
        fn()
        out[i] = (clock() - t) / 1000
    return out


def _interleave(cases: dict[str, Callable[[], object]], rounds: int, per_round: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            samples[name].extend(_time(cases[name], per_round))
    return samples


def _rows(samples: dict[str, list[float]], ref: str, unit: str = "µs") -> list[list[str]]:
    scale = 1000.0 if unit == "ms" else 1.0
    base = percentile(samples[ref], 99.9)
    rows = []
    for name, s in samples.items():
        p999 = percentile(s, 99.9)
        ratio = f"{p999 / base:.2f}x" if name != ref else "(ref)"
        cells = [sorted(s)[len(s) // 2], percentile(s, 99), p999, max(s)]
        rows.append([name, *(fmt(c / scale) for c in cells), ratio])
    return rows


def _fill_sqlite(path: Path, n: int) -> None:
    """A store of `n` entries written through the raw connection (the backend creates the schema first)."""
    schema = SQLiteBackend(path)
    schema.get("-")
    schema.close()
    now = time.time()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    batch = 50_000
    for start in range(0, n, batch):
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO entries (key, size, created, expires, accessed, value) VALUES (?, ?, ?, NULL, ?, ?)",
            (
                (_key(i), len(_key(i)) + len(VALUE), now, now - n + i, VALUE)
                for i in range(start, min(n, start + batch))
            ),
        )
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _hit_section(workdir: Path, n: int, with_diskcache: bool, rounds: int, per_round: int) -> str:
    import diskcache

    path = workdir / f"hits-{n}.db"
    t0 = time.perf_counter()
    _fill_sqlite(path, n)
    print(f"  filled {n:,} entries in {time.perf_counter() - t0:.1f} s", flush=True)
    backend = SQLiteBackend(path)
    raw = sqlite3.connect(path, isolation_level=None)
    rng = random.Random(n)
    cases: dict[str, Callable[[], object]] = {
        "raw SELECT (floor)": lambda: raw.execute(
            "SELECT value, expires FROM entries WHERE key = ?", (_key(rng.randrange(n)),)
        ).fetchone(),
        "agentcache SQLiteBackend.get": lambda: backend.get(_key(rng.randrange(n))),
    }
    dc = None
    if with_diskcache:
        dc = diskcache.Cache(str(workdir / f"dc-{n}"))
        with dc.transact():
            for i in range(n):
                dc.set(_key(i), VALUE)
        cases["diskcache Cache.get"] = lambda: dc.get(_key(rng.randrange(n)))
    for fn in cases.values():  # warm the page cache and the connections
        _time(fn, 2000)
    samples = _interleave(cases, rounds, per_round)
    backend.close()
    raw.close()
    if dc is not None:
        dc.close()
    return f"### {n:,} entries ({rounds * per_round:,} hits per row, µs)\n\n" + markdown_table(
        HEADERS, _rows(samples, "raw SELECT (floor)"), "lrrrrr"
    )


def bench_hits(workdir: Path, sizes: list[int], diskcache_upto: int, rounds: int, per_round: int) -> str:
    sections = []
    for n in sizes:
        sections.append(_hit_section(workdir, n, n <= diskcache_upto, rounds, per_round))
        print(sections[-1], flush=True)
    return "## Hits\n\n" + "\n\n".join(sections)


def bench_eviction(workdir: Path, limit: int, writes: int, rounds: int) -> str:
    import diskcache

    value = b"w" * 1024
    size = len(_key(0)) + len(value)
    counter = iter(range(10**9))
    stores = {
        "agentcache unbounded (floor)": SQLiteBackend(workdir / "ev-free.db"),
        "agentcache max_entries": SQLiteBackend(workdir / "ev-entries.db", max_entries=limit),
        "agentcache max_bytes": SQLiteBackend(workdir / "ev-bytes.db", max_bytes=limit * size),
    }
    for store in stores.values():
        for start in range(0, limit, 1000):
            store.set_many([Item(_key(i), value) for i in range(start, start + 1000)])
    dc = diskcache.Cache(str(workdir / "ev-dc"), size_limit=limit * len(value))
    with dc.transact():
        for i in range(limit):
            dc.set(_key(i), value)
    cases: dict[str, Callable[[], object]] = {
        name: (lambda s=store: s.set_many([Item(_key(limit + next(counter)), value)])) for name, store in stores.items()
    }
    cases["diskcache Cache.set at size_limit"] = lambda: dc.set(_key(limit + next(counter)), value)
    for fn in cases.values():
        _time(fn, 200)
    samples = _interleave(cases, rounds, writes // rounds)
    for store in stores.values():
        store.close()
    dc.close()
    rows = _rows(samples, "diskcache Cache.set at size_limit")
    floor = percentile(samples["agentcache unbounded (floor)"], 50)
    for row, s in zip(rows, samples.values(), strict=True):
        row.append(f"{percentile(s, 50) / floor:.2f}x")
        row.append(f"{percentile(s, 99) / percentile(samples['diskcache Cache.set at size_limit'], 99):.2f}x")
    headers = [*HEADERS[:-1], "p99.9 / diskcache", "median / unbounded", "p99 / diskcache"]
    return (
        f"## Writes at the eviction limit ({limit:,} entries of 1 KB, {writes:,} writes per row, µs)\n\n"
        + markdown_table(headers, rows, "lrrrrrrr")
    )


_AGENTCACHE_START = """
import sys, time
t = time.perf_counter()
import agentcache
@agentcache.tool_cached(backend=sys.argv[1])
def search(q: str) -> str:
    return q * 10
search("hello")
print((time.perf_counter() - t) * 1e6)
"""

_DISKCACHE_START = """
import sys, time
t = time.perf_counter()
import diskcache
cache = diskcache.Cache(sys.argv[1])
@cache.memoize()
def search(q: str) -> str:
    return q * 10
search("hello")
print((time.perf_counter() - t) * 1e6)
"""


def bench_start(workdir: Path, runs: int) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCACHE_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")  # from bytecode, as an installed package runs
    run_dir = workdir / "start"
    run_dir.mkdir()
    scripts = {
        "diskcache import + first hit": (_DISKCACHE_START, str(workdir / "start-dc")),
        "agentcache import + first hit": (_AGENTCACHE_START, f"sqlite:///{workdir / 'start.db'}"),
    }

    def once(code: str, arg: str) -> float:
        out = subprocess.run(
            [sys.executable, "-c", code, arg], capture_output=True, text=True, check=True, env=env, cwd=run_dir
        )
        return float(out.stdout.strip().splitlines()[-1])

    for code, arg in scripts.values():  # create the stores and the bytecode
        once(code, arg)
        once(code, arg)
    samples: dict[str, list[float]] = {name: [] for name in scripts}
    for _ in range(runs):
        for name, (code, arg) in scripts.items():
            samples[name].append(once(code, arg))
    rows = []
    base = sorted(samples["diskcache import + first hit"])[runs // 2]
    for name, s in samples.items():
        median = sorted(s)[runs // 2]
        rows.append([name, fmt(median / 1000), fmt(min(s) / 1000), fmt(max(s) / 1000), f"{median / base:.2f}x"])
    return f"## Process start ({runs} fresh interpreters each, interleaved; ms)\n\n" + markdown_table(
        ["case", "median", "min", "max", "median / diskcache"], rows, "lrrrr"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few samples (smoke run)")
    parser.add_argument("--sizes", type=int, nargs="+", help="store sizes of the hits section")
    parser.add_argument("--only", choices=("hits", "eviction", "start"), action="append", help="run these only")
    args = parser.parse_args()
    only = set(args.only or ("hits", "eviction", "start"))
    sizes = args.sizes or ([10_000] if args.quick else [100_000, 1_000_000])
    info = machine_info(PACKAGES)
    sections = []
    with tempfile.TemporaryDirectory(prefix="agentcache-bench-sqlite-") as tmp:
        workdir = Path(tmp)
        if "hits" in only:
            print("hits ...", flush=True)
            sections.append(bench_hits(workdir, sizes, 100_000, 4 if args.quick else 6, 1000 if args.quick else 5000))
        if "eviction" in only:
            print("eviction ...", flush=True)
            sections.append(bench_eviction(workdir, 2000 if args.quick else 10_000, 600 if args.quick else 6000, 6))
            print(sections[-1], flush=True)
        if "start" in only:
            print("start ...", flush=True)
            sections.append(bench_start(workdir, 5 if args.quick else 21))
            print(sections[-1], flush=True)
    title = "SQLite store: hit tails, writes at the eviction limit, process start"
    write_report(RESULTS, title, sections, info)
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
