"""Semantic cold start on every store: from a process with no index to the first lookup answered.

Usage: `python benchmarks/semantic_cold_start.py [--size 100000] [--repeat 3] [--stores memory sqlite redis]`.
Writes `benchmarks/results/semantic_cold_start.md`.

One partition of N synthetic vector records (384-d unit vectors around 2,000 topic centres, as in
`semantic_speed.py`; each record ~1.7 KB with its query text and entry key) is written to each store: a
`memory://` store, an SQLite file, and a redis-server this script starts on a free port. Then, per store and
repeat, the local indexes are forgotten (`forget_partitions`, what a restart does) and the clock runs from
there to the first lookup's answer (`partitions.refresh` + `Partition.search` of a stored vector, checked to
come back first):

- "from the store": no saved index; the partition's records are listed, read in one `get_many`, decoded and
  indexed in one batch; the exact index answers while the HNSW graph builds on a background thread.
- "from the saved index" (SQLite, Redis): the HNSW graph saved by an earlier process is read back; the
  reconcile with the store's listing (entries added or removed meanwhile) runs on the background thread.

"CPU" is the CPU time of the thread that looked up (`time.thread_time`): what the cold start costs without
the other processes of a shared machine (the wall-clock figures count their time slices too). Floors,
measured in the same run: the store's `get_many` of every record alone (what the first way cannot go
below), and reading the saved files' bytes alone (the second). "lookups meanwhile" times 200 searches right
after the cold start, while the background work (HNSW build, reconcile) runs: median / p99 / max in ms.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
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

from agentcache.backends.base import Item  # noqa: E402
from agentcache.engine.cache import Cache  # noqa: E402
from agentcache.keys.encoding import make_key  # noqa: E402
from agentcache.semantic import partitions, persist  # noqa: E402
from agentcache.semantic.index import AutoIndex  # noqa: E402
from agentcache.semantic.partitions import Partition, encode_record, forget_partitions, refresh  # noqa: E402
from agentcache.semantic.usearch_index import USearchIndex  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "semantic_cold_start.md"
PACKAGES = ("agentcache-py", "usearch", "numpy", "redis")
DIM = 384
NAMESPACE = "default"
PREFIX = make_key(NAMESPACE, partitions.VECTOR_LAYER, "f" * 32, "")
LOOKUPS = 200


def dataset(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2000, dim)).astype(np.float32)
    data = centres[rng.integers(0, 2000, n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    return data


def record_key(i: int) -> str:
    return f"{PREFIX}{i:032x}"


def fill(cache: Cache, data: np.ndarray) -> None:
    store = cache.store
    for start in range(0, len(data), 1000):  # 5,000 per call timed out on Redis on a loaded machine
        items = []
        for i in range(start, min(len(data), start + 1000)):
            key = record_key(i)
            query = f"how do I configure option number {i} of the deployment pipeline?"
            items.append(Item(key, encode_record(key, query, f"ac:v1:{NAMESPACE}:semantic:f:{i:032x}", "m", data[i])))
        store.set_many(items)


def quiesce() -> None:
    """Forget every index and wait for their background work to stop (the next run starts from nothing)."""
    parts = partitions.loaded_partitions()
    forget_partitions()
    for part in parts:
        part.index.settle(timeout=120)
    partitions.settle(timeout=120)


def cold_start(cache: Cache, data: np.ndarray) -> tuple[float, float, float, list[float], str]:
    """(seconds to the first answer, CPU seconds the looking-up thread spent on it, seconds until the
    background reconcile is done, lookups meanwhile in ms, where the index came from)."""
    quiesce()
    probe = len(data) // 3
    t0 = time.perf_counter()
    c0 = time.thread_time()
    part = refresh(cache.store, NAMESPACE, PREFIX, DIM)
    best = part.search(data[probe].tolist(), 1)
    first = time.perf_counter() - t0
    cpu = time.thread_time() - c0
    assert best, "no answer"
    assert best[0][0] == record_key(probe), best
    lookups = []
    for i in range(LOOKUPS):
        t = time.perf_counter_ns()
        refresh(cache.store, NAMESPACE, PREFIX, DIM).search(data[(i * 7919) % len(data)].tolist(), 4)
        lookups.append((time.perf_counter_ns() - t) / 1e6)
    partitions.settle(timeout=600)
    reconciled = time.perf_counter() - t0
    assert len(part.meta) == len(data), len(part.meta)
    return first, cpu, reconciled, lookups, part.origin


def floor_get_many(cache: Cache, n: int) -> float:
    keys = [record_key(i) for i in range(n)]
    t = time.perf_counter()
    values = cache.store.get_many(keys)
    spent = time.perf_counter() - t
    assert all(v is not None for v in values)
    return spent


def floor_files(cache: Cache) -> float:
    directory = persist.index_dir(cache.store)
    assert directory is not None
    t = time.perf_counter()
    total = sum(len(f.read_bytes()) for f in directory.iterdir() if f.is_file())
    spent = time.perf_counter() - t
    assert total
    return spent


def save_graph(cache: Cache, graph: USearchIndex) -> None:
    """Save the built graph as the partition's persisted index of `cache`'s store (what an earlier process
    leaves behind at exit)."""
    meta = {record_key(i): (f"ac:v1:{NAMESPACE}:semantic:f:{i:032x}", f"q{i}") for i in range(len(graph))}
    part = Partition(PREFIX, NAMESPACE, AutoIndex.from_index(graph), meta)
    assert persist.save_partition(cache.store, part)


def built_graph(data: np.ndarray) -> USearchIndex:
    """The HNSW graph of `data` (minutes to build at 100k on 2 cores: kept in the temp dir between runs)."""
    cached = Path(tempfile.gettempdir()) / f"agentcache-bench-cold-{len(data)}-{DIM}.usearch"
    if cached.exists() and Path(f"{cached}.ids.json").exists():
        graph = USearchIndex.load(cached)
        if len(graph) == len(data):
            return graph
    print(f"building the {len(data):,}-entry HNSW graph to save (once, kept as {cached})...", flush=True)
    graph = USearchIndex(DIM)
    graph.add([record_key(i) for i in range(len(data))], data)
    graph.save(cached)
    return graph


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A redis-server of our own on a free port (never the machine's 6379), without persistence, and its URL."""
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    return server, f"redis://127.0.0.1:{port}/0"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stores", nargs="+", default=["memory", "sqlite", "redis"])
    parser.add_argument("--out", type=Path, default=RESULTS, help="the report to write")
    args = parser.parse_args()
    info = machine_info(PACKAGES)
    n = args.size
    data = dataset(n, DIM)
    tmp = Path(tempfile.mkdtemp(prefix="ac-cold-"))
    os.environ["AGENTCACHE_DIR"] = str(tmp / "dir")  # where a Redis store's saved indexes go
    server = None
    graph: USearchIndex | None = None
    rows: list[list[str]] = []
    lookup_rows: list[list[str]] = []
    try:
        for kind in args.stores:
            if kind == "memory":
                url = f"memory://?max_entries={2 * n}"
            elif kind == "sqlite":
                url = f"sqlite://{tmp / 'cache.db'}"
            else:
                server, url = start_redis(tmp)
            cache = Cache(url)
            fill(cache, data)
            ways = ["from the store"] if kind == "memory" else ["from the store", "from the saved index"]
            for way in ways:
                if way == "from the saved index":
                    if graph is None:
                        graph = built_graph(data)
                    save_graph(cache, graph)
                    floor = floor_files(cache)
                    floor_name = "read the saved files"
                else:
                    floor = floor_get_many(cache, n)
                    floor_name = "`get_many` of every record"
                runs = [cold_start(cache, data) for _ in range(args.repeat)]
                firsts = [r[0] for r in runs]
                first = statistics.median(firsts)
                reconciled = statistics.median(r[2] for r in runs)
                want = "file" if way == "from the saved index" else "scan"
                assert all(r[4] == want for r in runs), [r[4] for r in runs]
                rows.append(
                    [
                        kind,
                        way,
                        ms(first),
                        ms(max(firsts)),
                        ms(statistics.median(r[1] for r in runs)),
                        ms(floor),
                        floor_name,
                        f"{first / floor:.1f}x",
                        ms(reconciled) if way == "from the saved index" else "-",
                    ]
                )
                print(rows[-1], flush=True)
                lookups = [x for r in runs for x in r[3]]
                lookup_rows.append(
                    [
                        kind,
                        way,
                        f"{statistics.median(lookups):.2f}",
                        f"{percentile(lookups, 99):.2f}",
                        f"{max(lookups):.2f}",
                    ]
                )
            quiesce()
            cache.close()
            if server is not None:
                server.kill()
                server.wait()
                server = None
    finally:
        quiesce()
        if server is not None:
            server.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    sections = [
        f"{n:,} vector records x {DIM}-d in one partition; median of {args.repeat} cold starts (max next to it). "
        "Regenerate with `python benchmarks/semantic_cold_start.py`.",
        f"## Time to the first lookup answered ({n:,} x {DIM}; ms)\n\n"
        + markdown_table(
            [
                "store",
                "index from",
                "median",
                "max",
                "CPU of the lookup's thread",
                "floor",
                "floor is",
                "median / floor",
                "reconciled after",
            ],
            rows,
            "llrrrrlrr",
        ),
        f"## The next {LOOKUPS} lookups, while the background work runs (refresh + search of 4; ms)\n\n"
        + markdown_table(["store", "index from", "median", "p99", "max"], lookup_rows, "llrrr"),
    ]
    write_report(args.out, "Semantic cold start", sections, info)
    print("\n\n".join(sections))


if __name__ == "__main__":
    main()
