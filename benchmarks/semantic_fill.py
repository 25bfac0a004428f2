"""Index maintenance during a fill: N x 384 inserts, each after a lookup, on `memory://` and SQLite.

Usage: `python benchmarks/semantic_fill.py [--size 100000] [--stores memory sqlite] [--before]`.
Writes `benchmarks/results/semantic_fill.md`.

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
import shutil
import statistics
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
from semantic_cold_start import DIM, NAMESPACE, PREFIX, dataset, quiesce, record_key  # noqa: E402

from agentcache.backends.base import Item  # noqa: E402
from agentcache.engine.cache import Cache  # noqa: E402
from agentcache.semantic import partitions  # noqa: E402
from agentcache.semantic.partitions import encode_record, refresh  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "semantic_fill.md"
PACKAGES = ("agentcache-py", "usearch", "numpy")
LIMIT_MS = 50.0


def fill(cache: Cache, data: np.ndarray, queries: np.ndarray, targets: np.ndarray) -> dict[str, list[float]]:
    store = cache.store
    times: dict[str, list[float]] = {"lookup": [], "index insert": [], "store write (not index work)": []}
    clock = time.perf_counter_ns
    for i in range(len(data)):
        t = clock()
        part = refresh(store, NAMESPACE, PREFIX, DIM)
        part.search(queries[targets[i] if i else 0], 4)
        times["lookup"].append((clock() - t) / 1e6)
        key = record_key(i)
        query = f"how do I configure option number {i} of the deployment pipeline?"
        entry = f"ac:v1:{NAMESPACE}:semantic:f:{i:032x}"
        t = clock()
        store.set_many([Item(key, encode_record(key, query, entry, "m", data[i]), 3600, ())])
        times["store write (not index work)"].append((clock() - t) / 1e6)
        t = clock()
        part.add(key, entry, query, data[i])
        times["index insert"].append((clock() - t) / 1e6)
    return times


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
        try:
            quiesce()
            if mode != "now":
                inline_rescans()
            cache = Cache(f"memory://?max_entries={2 * n}" if kind == "memory" else f"sqlite://{tmp / 'cache.db'}")
            start = time.perf_counter()
            times = fill(cache, data, queries, targets)
            spent = time.perf_counter() - start
            (part,) = partitions.loaded_partitions(cache.store)
            print(f"{kind} ({mode}): {spent:.0f} s, {part.rescans} reconciles, index {type(part.index.inner).__name__}")
            for what, samples in times.items():
                slowest = sorted(range(len(samples)), key=samples.__getitem__)[-3:]
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
                        ", ".join(f"#{i:,}" for i in reversed(slowest)),
                    ]
                )
                print(rows[-1], flush=True)
            quiesce()
            cache.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    sections = [
        f"{n:,} x {DIM}: one lookup (refresh + search of 4) and one insert per entry. Regenerate with "
        "`python benchmarks/semantic_fill.py --before`.",
        "## Per call during the fill (ms)\n\n"
        + markdown_table(
            ["store", "code", "call", "median", "p99", "p99.9", "max", f"> {LIMIT_MS:.0f} ms", "slowest at entry"],
            rows,
            "lllrrrrrl",
        ),
    ]
    write_report(RESULTS, "Semantic index maintenance during a fill", sections, info)
    print("\n\n".join(sections))


if __name__ == "__main__":
    main()
