"""Full semantic lookup latency with the pair judge on: a `@semantic_cached` call from arguments to answer.

Usage: `python benchmarks/semantic_lookup_speed.py [--sizes 1000 100000] [--lookups 200] [--modes warm cold]`.

Each call below is a paraphrase (`benchmarks/data/semantic_pairs.jsonl`) of one of ~110 cached questions,
asked through `@semantic_cached` on a memory store with default settings (cosine >= 0.80, guards, pair
judge at `max_wrong=0.05`). Timed: the whole call, so the exact-key read, the query's MiniLM embedding (one
thread), the index search, the guards, the judge and the candidate's re-read. The partition is padded to N
entries with synthetic vector records: text-like vectors (mixtures of MiniLM vectors of the pairs' texts,
plus noise) kept below cosine 0.75 to every real text, so they cost index time but are never candidates.
(Pure random vectors would be unrealistic for HNSW: nearly orthogonal to everything, they leave the graph
no path to the real entries.) "cold" empties MiniLM's token-state memory before every call, as for an entry
stored long ago or by another process: the judge reads the cached question's word states from the notes
stored with the entry; "cold, no notes" deletes those notes first (entries stored by an older version), so
the judge runs the model on the cached question too; "warm" keeps the memory (the entry was stored or looked
up recently in this process). Wall time depends on what else the machine runs, so the CPU time of the calling
thread is given too (onnxruntime runs a one-thread session on the calling thread).
Timing starts once the partition's index is settled: past ~10k entries its HNSW graph is built on a background
thread while the exact index answers (that build is the cold-start helper's subject, not measured here).
Writes `benchmarks/results/semantic_lookup_speed.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

import agentcache
from agentcache.backends.base import Item
from agentcache.decorators.semantic import last_semantic_hit, semantic_cached
from agentcache.engine.cache import Cache
from agentcache.semantic import _minilm
from agentcache.semantic.embedders import LocalEmbedder
from agentcache.semantic.partitions import encode_record, forget_partitions, loaded_partitions, partition_of

PAIRS = Path(__file__).parent / "data" / "semantic_pairs.jsonl"
RESULTS = Path(__file__).parent / "results"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def pool_vectors(rows: list[dict[str, object]]) -> np.ndarray:
    """MiniLM vectors of every text in the pairs file: the padding is built in their neighbourhood."""
    texts = sorted({str(r[k]) for r in rows for k in ("cached", "query")})
    return LocalEmbedder().embed_array(texts)


def padding(pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` text-like unit vectors: random mixtures of three pool vectors plus noise, kept below cosine 0.75
    to every pool vector (so they cost index work but never become candidates of a >= 0.80 lookup)."""
    out = np.empty((0, pool.shape[1]), dtype=np.float32)
    while len(out) < n:
        idx = rng.integers(0, len(pool), size=(n, 3))
        weights = rng.dirichlet([1.0, 1.0, 1.0], size=n)[:, :, None]
        mix = (pool[idx] * weights).sum(axis=1) + rng.standard_normal((n, pool.shape[1])) * 0.04
        mix /= np.linalg.norm(mix, axis=1, keepdims=True)
        keep = (mix @ pool.T).max(axis=1) < 0.75
        out = np.concatenate([out, mix[keep].astype(np.float32)])
    return out[:n]


def run(size: int, lookups: int, mode: str) -> dict[str, float]:
    cold = mode != "warm"
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]
    bases = sorted({r["cached"] for r in rows})
    queries = [r["query"] for r in rows if r["same_answer"]][:lookups]
    cache = Cache(f"memory://?max_entries={2 * size + 10_000}")  # room for every record: no LRU eviction

    @semantic_cached(backend=cache, name="bench.lookup", ttl=3600)
    def answer(question: str) -> str:
        return f"answer to {question}"

    for base in bases:
        answer(base)
    store = cache.store
    record = next(e.key for e in store.scan("") if ":semvec:" in e.key)  # type: ignore[attr-defined]
    prefix = partition_of(record)
    rng = np.random.default_rng(0)
    pad = size - len(bases)
    model = "all-MiniLM-L6-v2-int8"
    pool = pool_vectors(rows)
    for start in range(0, pad, 5000):
        n = min(5000, pad - start)
        vectors = padding(pool, n, rng)
        store.set_many(
            [
                Item(
                    f"{prefix}pad{start + i}",
                    encode_record(f"{prefix}pad{start + i}", f"padding {start + i}", "ac:v1:none", model, v),
                    3600,
                    (),
                )
                for i, v in enumerate(vectors.tolist())
            ]
        )
    if mode == "cold, no notes":
        store.delete_many([e.key for e in store.scan("") if ":semjudge:" in e.key])  # type: ignore[attr-defined]
    forget_partitions()
    answer("warm up the index and the model")  # the first lookup builds the partition's index (not timed)
    for part in loaded_partitions():  # ... and, past ~10k entries, its HNSW graph on a background thread
        part.index.settle()
    times: list[float] = []
    cpu: list[float] = []
    hits = 0
    for q in queries:
        if cold:
            with _minilm.get_model()._states_lock:
                _minilm.get_model()._states.clear()
        start_ns, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
        answer(q)
        cpu.append((time.thread_time_ns() - start_cpu) / 1e6)
        times.append((time.perf_counter_ns() - start_ns) / 1e6)
        hit = last_semantic_hit()
        hits += hit is not None and hit.similarity < 1.0
    embed_times: list[float] = []  # the same queries' embedding alone, as a floor measured under the same load
    embedder = LocalEmbedder()
    for q in queries:
        with _minilm.get_model()._states_lock:
            _minilm.get_model()._states.clear()
        start_ns = time.perf_counter_ns()
        embedder.embed([q])
        embed_times.append((time.perf_counter_ns() - start_ns) / 1e6)
    load = os.getloadavg()[0]
    cache.close()
    agentcache.reset()
    return {
        "embed_p50": statistics.median(embed_times),
        "p50": statistics.median(times),
        "p90": percentile(times, 90),
        "p99": percentile(times, 99),
        "cpu_p50": statistics.median(cpu),
        "cpu_p99": percentile(cpu, 99),
        "load": load,
        "hits": hits / len(queries),
        "n": len(queries),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100000])
    parser.add_argument("--lookups", type=int, default=200)
    parser.add_argument("--modes", nargs="+", default=["warm", "cold", "cold, no notes"])
    args = parser.parse_args()
    lines = [
        "# Semantic lookup latency with the pair judge on",
        "",
        f"Python {platform.python_version()}, {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f} at the "
        "start; other jobs may share the machine: see the last column), memory store, MiniLM int8 on one thread. "
        "Each row: paraphrases of cached questions through `@semantic_cached` defaults (whole call: exact read, "
        'query embedding, index search, guards, judge, re-read), index settled before timing. "cold": the '
        "model's token-state memory emptied before every call (the judge reads the notes stored with the entry); "
        '"cold, no notes": the notes deleted first (the judge runs the model on the cached question). '
        "CPU = CPU time of the calling thread. Regenerate with `python benchmarks/semantic_lookup_speed.py`.",
        "",
        "| entries | judge | lookups | semantic hits | p50 ms | p90 ms | p99 ms | CPU p50 ms | CPU p99 ms "
        "| query embedding alone: p50 ms | load average after |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for size in args.sizes:
        for mode in args.modes:
            r = run(size, args.lookups, mode)
            row = (
                f"| {size:,} | {mode} | {r['n']} | {r['hits']:.0%} | "
                f"{r['p50']:.1f} | {r['p90']:.1f} | {r['p99']:.1f} | {r['cpu_p50']:.1f} | {r['cpu_p99']:.1f} | "
                f"{r['embed_p50']:.1f} | {r['load']:.1f} |"
            )
            print(row, flush=True)
            lines.append(row)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "semantic_lookup_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
