"""Index maintenance during a fill: N x 384 inserts, each after a lookup, on `memory://`, SQLite and Redis.

Usage: `python benchmarks/semantic_fill.py [--size 100000] [--stores memory sqlite redis] [--before] [--out PATH]`.
Writes `benchmarks/results/semantic_fill.md` (`--out` for another file). `redis` starts its own redis-server on
a free port (never the machine's 6379).

Entry i of a synthetic data set (384-d unit vectors around 2,000 topic centres, as in `semantic_speed.py`) is
looked up, then inserted, the way `@semantic_cached` does on a miss: the lookup is `partitions.refresh` (what
keeps the index in step with the store) plus `Partition.search` of 4 candidates, for a noisy copy of an entry
stored earlier; the insert is the vector record's store write (timed apart, it is not index maintenance) then
`Partition.add`. Everything the index does on its own happens in there: the exact -> HNSW switch past 10.4k
entries (built on a background thread), the rescans of the SQLite store every `RESCAN_SECONDS` (on a
background thread), the saves of its HNSW graph after those rescans, the matrix and graph growth.

`--before` adds a run on SQLite with rescans inline on the lookup that finds them due, as they were before
(the background thread's job run in the caller), for the ratio. Each row: median, p99, p99.9 and max in ms,
and how many calls took over 50 ms.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime  # noqa: F401  # before usearch: the other import order crashes onnxruntime

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import machine_info, markdown_table, percentile, write_report  # noqa: E402
from semantic_cold_start import DIM, NAMESPACE, PREFIX, dataset, quiesce, record_key, start_redis  # noqa: E402

from agentcache.backends.base import Item  # noqa: E402
from agentcache.engine.cache import Cache  # noqa: E402
from agentcache.semantic import partitions  # noqa: E402
from agentcache.semantic.partitions import encode_record, refresh  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "semantic_fill.md"
PACKAGES = ("agentcache-py", "usearch", "numpy")
LIMIT_MS = 50.0


CALLS = ("lookup", "index insert", "store write (not index work)")


def fill(
    cache: Cache, data: np.ndarray, queries: np.ndarray, targets: np.ndarray
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per call kind: wall-clock ms of each call, and CPU ms of the calling thread for each."""
    store = cache.store
    times: dict[str, list[float]] = {c: [] for c in CALLS}
    cpu: dict[str, list[float]] = {c: [] for c in CALLS}
    clock, thread_clock = time.perf_counter_ns, time.thread_time_ns
    for i in range(len(data)):
        if i % 10_000 == 0:
            print(f"  {i:,} entries", flush=True)
        t, c = clock(), thread_clock()
        part = refresh(store, NAMESPACE, PREFIX, DIM)
        part.search(queries[targets[i] if i else 0], 4)
        times["lookup"].append((clock() - t) / 1e6)
        cpu["lookup"].append((thread_clock() - c) / 1e6)
        key = record_key(i)
        query = f"how do I configure option number {i} of the deployment pipeline?"
        entry = f"ac:v1:{NAMESPACE}:semantic:f:{i:032x}"
        t, c = clock(), thread_clock()
        store.set_many([Item(key, encode_record(key, query, entry, "m", data[i]), 3600, ())])
        times["store write (not index work)"].append((clock() - t) / 1e6)
        cpu["store write (not index work)"].append((thread_clock() - c) / 1e6)
        t, c = clock(), thread_clock()
        part.add(key, entry, query, data[i])
        times["index insert"].append((clock() - t) / 1e6)
        cpu["index insert"].append((thread_clock() - c) / 1e6)
    return times, cpu


def inline_rescans() -> None:
    """Run each queued reconcile in the caller, as `refresh` did before the background thread."""

    def submit(store: object, part: partitions.Partition) -> None:
        with part.refreshing:
            partitions._reconcile(store, part)  # type: ignore[arg-type]

    partitions._refresher.submit = submit  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--stores", nargs="+", default=["memory", "sqlite"])
    parser.add_argument("--before", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the report to write")
    args = parser.parse_args()
    info = machine_info(PACKAGES)
    n = args.size
    data = dataset(n, DIM)
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((n, DIM)).astype(np.float32)
    queries = data + 0.3 * noise / np.linalg.norm(noise, axis=1, keepdims=True)
    targets = np.array([0] + [int(rng.integers(0, i)) for i in range(1, n)])
    runs = [(kind, "now") for kind in args.stores] + ([("sqlite", "before: rescans inline")] if args.before else [])
    rows: list[list[str]] = []
    for kind, mode in runs:
        tmp = Path(tempfile.mkdtemp(prefix="ac-fill-"))
        server: subprocess.Popen[bytes] | None = None
        try:
            quiesce()
            if mode != "now":
                inline_rescans()
            if kind == "redis":
                os.environ["AGENTCACHE_DIR"] = str(tmp / "dir")  # where a Redis store's saved index goes
                server, url = start_redis(tmp)
            else:
                url = f"memory://?max_entries={2 * n}" if kind == "memory" else f"sqlite://{tmp / 'cache.db'}"
            cache = Cache(url)
            start = time.perf_counter()
            times, cpu = fill(cache, data, queries, targets)
            spent = time.perf_counter() - start
            (part,) = partitions.loaded_partitions(cache.store)
            print(f"{kind} ({mode}): {spent:.0f} s, {part.rescans} reconciles, index {type(part.index.inner).__name__}")
            for what, samples in times.items():
                order = sorted(range(len(samples)), key=samples.__getitem__)
                slowest, worst = order[-3:], order[-max(1, len(order) // 1000) :]  # the 0.1% above p99.9
                worst_cpu = [cpu[what][i] for i in worst]
                rows.append(
                    [
                        kind,
                        mode,
                        what,
                        f"{statistics.median(samples):.3f}",
                        f"{percentile(samples, 99):.2f}",
                        f"{percentile(samples, 99.9):.2f}",
                        f"{max(samples):.1f}",
                        str(sum(x > LIMIT_MS for x in samples)),
                        f"{statistics.median(worst_cpu):.2f} / {max(worst_cpu):.1f}",
                        f"{percentile(cpu[what], 99.9):.2f}",
                        ", ".join(f"#{i:,}" for i in reversed(slowest)),
                    ]
                )
                print(rows[-1], flush=True)
            quiesce()
            cache.close()
        finally:
            if server is not None:
                server.terminate()
                server.wait()
            shutil.rmtree(tmp, ignore_errors=True)
    sections = [
        f"{n:,} x {DIM}: one lookup (refresh + search of 4) and one insert per entry. Regenerate with "
        "`python benchmarks/semantic_fill.py --before`. Wall-clock ms per call; the CPU columns are the CPU time "
        "of the calling thread (`time.thread_time`) for the 0.1% slowest calls and its own p99.9: a slow call with "
        "little CPU waited (for a lock, the GIL, or a core of the loaded machine), one with much CPU did work.",
        "## Per call during the fill (ms)\n\n"
        + markdown_table(
            [
                "store",
                "code",
                "call",
                "median",
                "p99",
                "p99.9",
                "max",
                f"> {LIMIT_MS:.0f} ms",
                "CPU of the slowest 0.1% (median / max)",
                "CPU p99.9",
                "slowest at entry",
            ],
            rows,
            "lllrrrrrrrl",
        ),
    ]
    write_report(args.out, "Semantic index maintenance during a fill", sections, info)
    print("\n\n".join(sections))


if __name__ == "__main__":
    main()
