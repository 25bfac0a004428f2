"""Full semantic lookup latency with the pair judge on: a `@semantic_cached` call from arguments to answer.

Usage: `python benchmarks/semantic_lookup_speed.py [--sizes 1000 100000] [--lookups 200] [--no-notes]`.

Each lookup is a paraphrase (`benchmarks/data/semantic_pairs.jsonl`) of one of ~150 cached questions, asked
through `@semantic_cached` defaults on a memory store (cosine >= 0.80, guards, pair judge at `max_wrong=0.05`).
Timed: the whole call, so the exact-key read, the query's MiniLM embedding (one thread, on the calling
thread), the index search, the guards, the judge (with the judge notes stored next to the candidate) and the
candidate's decode. One partition per size, padded to N entries with synthetic vector records: text-like
vectors (mixtures of MiniLM vectors of the pairs' texts, plus noise) kept below cosine 0.75 to every real
text, so they cost index time but are never candidates (pure random vectors would be unrealistic for HNSW:
nearly orthogonal to everything, they leave the graph no path to the real entries). Past ~10k entries the
partition's index is HNSW (usearch); timing starts once its graph is built.

Every lookup is *cold*: MiniLM's in-process memory of token states (the last 512 texts it read) is emptied
before each call, as for an entry stored long ago or by another process, so the judge reads the cached
question's word states from the notes stored with the entry, never from memory. (With the notes the judge
never runs the model on the cached question, so a warm lookup costs the same.) `--no-notes` adds rows with
the notes deleted (entries stored by a version before the notes): the judge then runs MiniLM on the cached
question too.

Each size is asked through a sync and an async function sharing the partition (the async face embeds in a
worker thread, and judges on the event loop when the judge needs no model run). The sizes and faces are
interleaved (each question is asked of every one in turn, alternating the order) and the query embedding
alone is timed between them, so every row meets the same machine load; the lookups run in
`mode("read")`, so a miss stores nothing and every size and pass sees the same cache. Wall time depends on
what else the machine runs: the CPU time of the process during the call is given too, and the time its
threads spent runnable but waiting for a core (`/proc/self/task/*/schedstat`), with the load average. Wall
time minus that wait is what the call took on its cores: CPU time plus stalls that are not the scheduler's.
Writes `benchmarks/results/semantic_lookup_speed.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import agentcache
from agentcache.backends.base import Item
from agentcache.decorators.semantic import SemanticHit, last_semantic_hit, semantic_cached
from agentcache.engine.cache import Cache
from agentcache.semantic import _minilm
from agentcache.semantic.embedders import LocalEmbedder
from agentcache.semantic.partitions import encode_record, forget_partitions, loaded_partitions, partition_of

PAIRS = Path(__file__).parent / "data" / "semantic_pairs.jsonl"
RESULTS = Path(__file__).parent / "results"
MODEL = "all-MiniLM-L6-v2-int8"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def pool_vectors(rows: list[dict[str, Any]]) -> np.ndarray:
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


def forget_token_states() -> None:
    """Empty MiniLM's in-process memory of token states (a cold lookup)."""
    model = _minilm.get_model()
    with model._states_lock:
        model._states.clear()


def partitions(store: Any) -> set[str]:
    """The vector-record key prefixes of the partitions in `store`."""
    return {partition_of(e.key) for e in store.scan("") if ":semvec:" in e.key}


def partition(cache: Cache, size: int, bases: list[str], pool: np.ndarray) -> dict[str, Callable[[str], Any]]:
    """A sync and an async `@semantic_cached` function sharing one partition (same name and version) that holds
    `bases` plus padding records up to `size`."""

    @semantic_cached(backend=cache, name=f"bench.lookup{size}", ttl=3600, version=1)
    def answer(question: str) -> str:
        return f"answer to {question}"

    @semantic_cached(backend=cache, name=f"bench.lookup{size}", ttl=3600, version=1)
    async def aanswer(question: str) -> str:
        return f"answer to {question}"

    store = cache.store
    before = partitions(store)
    for base in bases:
        answer(base)
    (prefix,) = partitions(store) - before
    rng = np.random.default_rng(size)
    pad = size - len(bases)
    for start in range(0, pad, 5000):
        keys = [f"{prefix}pad{i}" for i in range(start, min(pad, start + 5000))]
        vectors = padding(pool, len(keys), rng).tolist()
        store.set_many(
            [
                Item(key, encode_record(key, f"padding {i}", "ac:v1:none", MODEL, v), 3600, ())
                for i, (key, v) in enumerate(zip(keys, vectors, strict=True))
            ]
        )
    return {"sync": answer, "async": aanswer}


def run_queue_ns() -> int:
    """Nanoseconds this process's threads have spent runnable but waiting for a core (Linux schedstat)."""
    total = 0
    for path in Path("/proc/self/task").glob("*/schedstat"):
        try:
            total += int(path.read_text().split()[1])
        except (OSError, IndexError, ValueError):  # a thread that ended meanwhile
            continue
    return total


def timed(f: Callable[[], object]) -> tuple[float, float, float]:
    """`(wall, CPU of the process, waiting for a core)` in ms of one call of `f`, token-state memory emptied."""
    forget_token_states()
    start_wait, start_ns, start_cpu = run_queue_ns(), time.perf_counter_ns(), time.process_time_ns()
    f()
    cpu, wall = time.process_time_ns() - start_cpu, time.perf_counter_ns() - start_ns
    return wall / 1e6, cpu / 1e6, (run_queue_ns() - start_wait) / 1e6


def asked_sync(f: Callable[[str], Any], q: str, seen: list[SemanticHit | None]) -> None:
    """Call `f(q)` and note its `last_semantic_hit`."""
    f(q)
    seen.append(last_semantic_hit())


async def asked(f: Callable[[str], Any], q: str, seen: list[SemanticHit | None]) -> None:
    """Await `f(q)` and note its `last_semantic_hit` (the task's own context holds it)."""
    await f(q)
    seen.append(last_semantic_hit())


def measure(
    answers: dict[int, dict[str, Callable[[str], Any]]], queries: list[str], loop: asyncio.AbstractEventLoop
) -> dict[str, dict[str, list[float]]]:
    """Ask every question of every size and face (interleaved, order alternating) and embed it alone once."""
    embedder = LocalEmbedder()
    kinds = [(size, face) for size in answers for face in ("sync", "async")]
    out: dict[str, dict[str, list[float]]] = {
        k: {"wall": [], "cpu": [], "wait": [], "hit": []} for k in [*(f"{s} {f}" for s, f in kinds), "embedding"]
    }
    with agentcache.mode("read"):  # a miss stores nothing: every size and pass sees the same cache
        for n, q in enumerate(queries):
            for size, face in kinds if n % 2 == 0 else kinds[::-1]:
                f = answers[size][face]
                seen: list[SemanticHit | None] = []
                if face == "async":
                    times = timed(lambda f=f, q=q, seen=seen: loop.run_until_complete(asked(f, q, seen)))
                else:
                    times = timed(lambda f=f, q=q, seen=seen: asked_sync(f, q, seen))
                for name, value in zip(("wall", "cpu", "wait"), times, strict=True):
                    out[f"{size} {face}"][name].append(value)
                hit = seen[0]
                out[f"{size} {face}"]["hit"].append(float(hit is not None and hit.similarity < 1.0))
            for name, value in zip(("wall", "cpu", "wait"), timed(lambda q=q: embedder.embed([q])), strict=True):
                out["embedding"][name].append(value)
    return out


def row(
    label: str, size: str, r: dict[str, list[float]], load: tuple[float, float], floor: dict[str, list[float]]
) -> str:
    wall, cpu = r["wall"], r["cpu"]
    hits = [w for w, h in zip(wall, r["hit"], strict=True) if h]
    own = [w - q for w, q in zip(wall, r["wait"], strict=True)]  # the wall time minus waiting for a core
    # the async face's threads wait at overlapping times, so their sum is no part of its wall time: not shown
    waits = (
        f"{statistics.median(r['wait']):.1f} | {statistics.median(own):.1f} | {percentile(own, 99):.1f}"
        if label.endswith("sync") and not label.endswith("async")
        else "- | - | -"
    )
    return (
        f"| {size} | {label} | {len(wall)} | {statistics.mean(r['hit']):.0%} | "
        f"{statistics.median(wall):.1f} | {percentile(wall, 99):.1f} | "
        f"{f'{statistics.median(hits):.1f}' if hits else '-'} | "
        f"{statistics.median(cpu):.1f} | {percentile(cpu, 99):.1f} | "
        f"{waits} | "
        f"{statistics.median(floor['wall']):.1f} / {statistics.median(floor['cpu']):.1f} | "
        f"{load[0]:.1f} / {load[1]:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100000])
    parser.add_argument("--lookups", type=int, default=200)
    parser.add_argument("--no-notes", action="store_true", help="also time lookups with the judge notes deleted")
    args = parser.parse_args()
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]
    bases = sorted({r["cached"] for r in rows})
    queries = [r["query"] for r in rows if r["same_answer"]][: args.lookups]
    cache = Cache(f"memory://?max_entries={2 * sum(args.sizes) + 10_000}")  # room for every record: no eviction
    pool = pool_vectors(rows)
    answers = {size: partition(cache, size, bases, pool) for size in args.sizes}
    forget_partitions()
    loop = asyncio.new_event_loop()
    for faces in answers.values():  # the first lookup builds the partition's index (not timed) ...
        faces["sync"]("warm up the index and the model")
        loop.run_until_complete(faces["async"]("warm up the async face"))
    for part in loaded_partitions():  # ... and, past ~10k entries, its HNSW graph on a background thread
        part.index.settle()
    lines = [
        "# Semantic lookup latency with the pair judge on",
        "",
        f"Python {platform.python_version()}, {os.cpu_count()} cores shared with other jobs (load average: see "
        "the last column), memory store, MiniLM int8 on one thread, the index at 100k entries is HNSW. Each row: "
        "paraphrases of cached questions through `@semantic_cached` defaults; the whole call (exact read, query "
        "embedding, index search, guards, judge, decode). Cold: the model's token-state memory emptied before "
        'every call; the judge reads the notes stored with the entry ("no notes": deleted first, so the judge '
        "runs the model on the cached question too). sync: a plain function; async: an `async def` one awaited on "
        "an event loop (the embedding runs in a worker thread). Sizes, faces and the embedding alone are "
        "interleaved per question, so a table's rows met the same load. CPU = CPU time of the process during the "
        "call; waiting for a core = the time its threads were runnable but not running (Linux schedstat), which "
        "the other jobs cause. Regenerate with "
        "`python benchmarks/semantic_lookup_speed.py`.",
        "",
        "| entries | judge, face | lookups | semantic hits | p50 ms | p99 ms | hits: p50 ms | CPU p50 ms | CPU p99 ms "
        "| waiting for a core: p50 ms | wall minus waiting: p50 ms | p99 ms "
        "| query embedding alone: p50 ms, wall / CPU | load average before / after |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    passes = ["notes", "no notes"] if args.no_notes else ["notes"]
    for label in passes:
        if label == "no notes":
            store = cache.store
            store.delete_many([e.key for e in store.scan("") if ":semjudge:" in e.key])  # type: ignore[attr-defined]
        before = os.getloadavg()[0]
        result = measure(answers, queries, loop)
        load = (before, os.getloadavg()[0])
        for size in args.sizes:
            for face in ("sync", "async"):
                line = row(f"{label}, {face}", f"{size:,}", result[f"{size} {face}"], load, result["embedding"])
                print(line, flush=True)
                lines.append(line)
    loop.close()
    cache.close()
    agentcache.reset()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "semantic_lookup_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
