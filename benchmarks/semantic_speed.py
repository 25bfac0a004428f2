"""Semantic lookup speed, excluding the embedding: our indexes vs a Redis scan and GPTCache.

Usage: `python benchmarks/semantic_speed.py [--quick] [--full]`. For N in 1k, 10k, 100k and dim 384 / 1536:
insert cost, lookup p50/p90/p99, memory per entry, and recall@1 of true hits against exact brute force.
`--full` adds HNSW at 100k x 1536 (several minutes of build). Writes `benchmarks/results/semantic_speed.md`.

Vectors are synthetic: unit vectors drawn around 2,000 topic centres (so neighbourhoods look like
embedding clusters), and each query is a stored vector plus noise at cosine ~0.9, i.e. a true hit that
must be found. The "Redis scan" row is the popular tutorial design: vectors in Redis hashes, every lookup
fetches them all and computes cosine in Python; it runs against a redis-server started here on a free port.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime  # noqa: F401  # before usearch/faiss: the other import order crashes onnxruntime

from agentcache.semantic.index import NumpyIndex
from agentcache.semantic.usearch_index import USearchIndex

RESULTS = Path(__file__).parent / "results"
QUERIES = 300


def dataset(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2000, dim)).astype(np.float32)
    data = centres[rng.integers(0, 2000, n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    targets = rng.integers(0, n, QUERIES)
    noise = rng.standard_normal((QUERIES, dim)).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    queries = data[targets] + 0.48 * noise
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return data, queries, targets


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    a = np.array(samples) * 1000
    return float(np.percentile(a, 50)), float(np.percentile(a, 90)), float(np.percentile(a, 99))


def time_lookups(
    search: Callable[[np.ndarray], str], queries: np.ndarray, exact: list[str]
) -> tuple[list[float], float]:
    times, correct = [], 0
    for q, want in zip(queries, exact, strict=True):
        t0 = time.perf_counter()
        got = search(q)
        times.append(time.perf_counter() - t0)
        correct += got == want
    return times, correct / len(queries)


def row(name: str, n: int, dim: int, insert_s: float, per_entry: float, times: list[float], recall: float) -> str:
    p50, p90, p99 = percentiles(times)
    return (
        f"| {name} | {n:,} | {dim} | {1e6 * insert_s / n:.1f} | {per_entry:,.0f} | "
        f"{p50:.3f} | {p90:.3f} | {p99:.3f} | {recall:.3f} |"
    )


def bench_ours(kind: str, data: np.ndarray, queries: np.ndarray, exact: list[str], ids: list[str]) -> str:
    n, dim = data.shape
    t0 = time.perf_counter()
    index = NumpyIndex(dim) if kind == "numpy" else USearchIndex(dim)
    index.add(ids, data)
    insert_s = time.perf_counter() - t0
    # NumpyIndex: the float32 row plus its id slot and dict entry (ids here are ~6-char strs).
    per_entry = usearch_memory(index) / n if isinstance(index, USearchIndex) else dim * 4 + 60
    for q in queries[:20]:
        index.search(q, 1)  # warm-up
    times, recall = time_lookups(lambda q: index.search(q, 1)[0][0], queries, exact)
    return row(f"agentcache {type(index).__name__}", n, dim, insert_s, per_entry, times, recall)


def usearch_memory(index: USearchIndex) -> int:
    return int(index._index.memory_usage) + 120 * len(index)  # graph + the str<->label maps


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_redis_scan(data: np.ndarray, queries: np.ndarray, exact: list[str], ids: list[str], lookups: int) -> str:
    import redis

    port = free_port()
    tmp = tempfile.mkdtemp()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", tmp],
        stdout=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        n, dim = data.shape
        t0 = time.perf_counter()
        pipe = client.pipeline(transaction=False)
        for i, (id_, vec) in enumerate(zip(ids, data, strict=True)):
            pipe.hset(f"cache:{id_}", mapping={"embedding": vec.astype(np.float32).tobytes(), "response": "x"})
            if i % 1000 == 999:
                pipe.execute()
        pipe.execute()
        insert_s = time.perf_counter() - t0
        per_entry = int(client.info("memory")["used_memory"]) / n

        def search(q: np.ndarray) -> str:
            best, best_id = -2.0, ""
            for key in client.scan_iter("cache:*", count=1000):
                vec = np.frombuffer(client.hget(key, "embedding"), dtype=np.float32)  # type: ignore[arg-type]
                score = float(vec @ q / (np.linalg.norm(vec) * np.linalg.norm(q)))
                if score > best:
                    best, best_id = score, key.decode()[len("cache:") :]
            return best_id

        times, recall = time_lookups(search, queries[:lookups], exact[:lookups])
        return row("tutorial Redis scan", n, dim, insert_s, per_entry, times, recall)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def bench_gptcache(data: np.ndarray, queries: np.ndarray, exact: list[str], ids: list[str]) -> str:
    try:
        from gptcache.manager import CacheBase, VectorBase, get_data_manager
    except ImportError:
        return "| GPTCache (sqlite + faiss) | not installed | | | | | | | |"
    n, dim = data.shape
    tmp = tempfile.mkdtemp()
    try:
        manager = get_data_manager(
            CacheBase("sqlite", sql_url=f"sqlite:///{tmp}/gptcache.db"),
            VectorBase("faiss", dimension=dim, index_path=f"{tmp}/faiss.index"),
            max_size=n + 1,  # the default (1000) evicts while importing
        )
        t0 = time.perf_counter()
        manager.import_data(ids, ["answer"] * n, list(data), [None] * n)
        insert_s = time.perf_counter() - t0
        per_entry = (manager.v._index.ntotal * dim * 4 + Path(f"{tmp}/gptcache.db").stat().st_size) / n

        def search(q: np.ndarray) -> str:
            (score_id,) = manager.search(q, top_k=1)
            hit = manager.get_scalar_data(score_id)
            return str(hit.question) if hit is not None else ""

        times, recall = time_lookups(search, queries, exact)
        return row("GPTCache (sqlite + faiss flat)", n, dim, insert_s, per_entry, times, recall)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="1k and 10k only")
    parser.add_argument("--full", action="store_true", help="also HNSW at 100k x 1536")
    args = parser.parse_args()
    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    lines = [
        "# Semantic lookup speed (excluding the embedding)",
        "",
        f"{QUERIES} true-hit queries per row (a stored vector plus noise, cosine ~0.9); lookup = top-1 search. "
        "Insert = bulk add, per entry. Recall@1 is against exact brute force. Regenerate with "
        "`python benchmarks/semantic_speed.py`. Machine: 2 cores.",
        "",
        "| design | N | dim | insert µs/entry | bytes/entry | lookup p50 ms | p90 ms | p99 ms | recall@1 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for dim in (384, 1536):
        for n in sizes:
            data, queries, targets = dataset(n, dim)
            ids = [f"e{i}" for i in range(n)]
            exact = [ids[int(np.argmax(data @ q))] for q in queries]
            agree = np.mean([e == ids[t] for e, t in zip(exact, targets, strict=True)])
            print(f"N={n} dim={dim}: exact top-1 is the perturbed vector in {agree:.3f} of queries")
            lines.append(bench_ours("numpy", data, queries, exact, ids))
            print(lines[-1], flush=True)
            if not (n == 100_000 and dim == 1536 and not args.full):
                lines.append(bench_ours("usearch", data, queries, exact, ids))
                print(lines[-1], flush=True)
            if n <= 10_000:
                lines.append(bench_redis_scan(data, queries, exact, ids, lookups=30 if n <= 1000 else 5))
                print(lines[-1], flush=True)
            if n <= 10_000 or dim == 384:
                lines.append(bench_gptcache(data, queries, exact, ids))
                print(lines[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "semantic_speed.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
