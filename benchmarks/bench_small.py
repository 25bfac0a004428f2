"""Small costs on common paths (issue #13's small rows), each against its floor in the same run.

    .venv/bin/python benchmarks/bench_small.py           # ~1 minute
    .venv/bin/python benchmarks/bench_small.py --quick   # a smoke run

Sections (writes `benchmarks/results/small.md`):
- miss: a `@tool_cached` miss on `memory://` (new argument each call), and what the per-miss check "does this
  store take cross-process locks" costs against the `isinstance` on the runtime-checkable Protocol it replaces.
- stream replay: turning the ~40 recorded SSE events of a streamed chat completion into SDK objects (what a
  streamed `wrap()` hit does), with stdlib `json` against orjson parsing each event.
- decoded-entry memo: the heap (tracemalloc) held by entries kept decoded, against the `decoded_bytes` budget,
  after hits on more distinct ~2.6 KB entries than fit (each hit reads new bytes, as from SQLite or Redis).
- exit: `flush_stats()` (what runs at exit) with one store whose circuit breaker opened (a hung Redis: a local
  socket that accepts connections and never answers; default timeouts) and whose cooldown is over, against the
  same flush with no such store.
- blas: the exact (brute-force) vector search at 10k x 384 with one other busy process, with OpenBLAS on one
  thread (what `NumpyIndex.search` does now) against the threads as configured (all cores by default).
- switch: add and lookup latency while an `AutoIndex` fills past its exact -> HNSW threshold, with the graph
  built inline by the add that crossed it (before) against built in the background (now).
- cold: a process's first lookup in a partition of 100k x 384 vector records (what a `memory://` restart or a
  store without a saved index does): indexing the records one at a time (before, on 15k) against in one batch.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Case, fmt, machine_info, markdown_table, measure, percentile, write_report  # noqa: E402

import agentcache  # noqa: E402
from agentcache.codec import entries as serialization  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "small.md"
PACKAGES = ("agentcache-py", "orjson")


def _table(results: list[Any], ref: str | None = None) -> str:
    base = next((r.median for r in results if r.name == ref), None)
    rows = []
    for r in results:
        ratio = "-" if base is None else f"{r.median / base:.2f}x"
        rows.append([r.name, fmt(r.median), fmt(r.p99), fmt(percentile(r.samples, 99.9)), ratio])
    return markdown_table(["case", "median µs", "p99 µs", "p99.9 µs", "median / ref"], rows, "lrrrr")


def bench_miss(quick: bool) -> str:
    from agentcache.backends.base import SupportsLocking
    from agentcache.backends.memory import MemoryBackend
    from agentcache.engine.layer import _supports_locking

    agentcache.configure(url="memory://")
    counter = iter(range(10**9))

    @agentcache.tool_cached(backend="memory://")
    def tool(x: int) -> int:
        return x

    store = MemoryBackend()
    cases = [
        Case("undecorated call (floor)", lambda: tool.__wrapped__(next(counter))),  # type: ignore[attr-defined]
        Case("@tool_cached miss, memory://", lambda: tool(next(counter)), ref="undecorated call (floor)"),
        Case("isinstance(store, SupportsLocking)", lambda: isinstance(store, SupportsLocking)),
        Case("_supports_locking(store) (per miss)", lambda: _supports_locking(store)),
    ]
    results = measure(cases, rounds=3 if quick else 7)
    return "## Miss path\n\n" + _table(results, "isinstance(store, SupportsLocking)")


def _chat_events(n: int = 40) -> list[list[Any]]:
    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
    events: list[list[Any]] = []
    for i in range(n):
        delta = {"role": "assistant", "content": ""} if i == 0 else {"content": f" word{i}"}
        chunk = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None, "logprobs": None}]}
        events.append([None, json.dumps(chunk)])
    events.append([None, "[DONE]"])
    return events


def bench_stream(quick: bool) -> str:
    from openai.types.chat import ChatCompletionChunk

    from agentcache.integrations import _streams

    events = _chat_events()

    def build(loads: Callable[[str], Any]) -> list[Any]:
        return [ChatCompletionChunk.model_validate(loads(d)) for _, d in events if not d.startswith("[DONE]")]

    cases = [
        Case("parse events, stdlib json.loads", lambda: [json.loads(d) for _, d in events[:-1]]),
        Case("parse events, orjson.loads", lambda: [orjson.loads(d) for _, d in events[:-1]]),
        Case(
            "build_items (what a streamed hit runs)",
            lambda: _streams.build_items(None, ChatCompletionChunk, events, None),
        ),
        Case("model_validate after json.loads", lambda: build(json.loads)),
        Case("model_validate after orjson.loads", lambda: build(orjson.loads)),
    ]
    results = measure(cases, rounds=3 if quick else 7)
    return f"## Streamed hit: {len(events) - 1} chat chunks to SDK objects\n\n" + _table(
        results, "parse events, stdlib json.loads"
    )


def _completion(i: int) -> dict[str, Any]:
    words = " ".join(f"w{i}-{j}" for j in range(220))
    return {
        "id": f"chatcmpl-{i}",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": words}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 500, "completion_tokens": 220, "total_tokens": 720},
        "tags": [f"t{j}" for j in range(20)],
        "meta": {f"k{j}": j for j in range(20)},
    }


def bench_memo(quick: bool) -> str:
    budget = (1 << 20) if quick else (8 << 20)
    agentcache.configure(url="memory://", decoded_bytes=budget)
    entries = []
    for i in range(4000 if quick else 12_000):
        key = f"bench:memo:{i}"
        entries.append((key, serialization.encode_entry(_completion(i), key=key)))
    size = statistics.median(len(raw) for _, raw in entries)
    serialization.forget_decoded()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for key, raw in entries:
        serialization.decode_hit(key, bytes(bytearray(raw)))  # new bytes, as read from SQLite or Redis
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    count, accounted = serialization.decoded_footprint()
    serialization.forget_decoded()
    rows = [
        ["budget (`decoded_bytes`)", f"{budget / 2**20:.1f} MiB", "1.00x"],
        ["accounted by the memo", f"{accounted / 2**20:.1f} MiB", f"{accounted / budget:.2f}x"],
        ["heap held (tracemalloc)", f"{held / 2**20:.1f} MiB", f"{held / budget:.2f}x"],
        ["entries kept decoded", str(count), "-"],
    ]
    return (
        f"## Decoded-entry memo: {len(entries):,} distinct entries of {size:.0f} bytes hit once each\n\n"
        + markdown_table(["what", "value", "/ budget"], rows, "lrr")
    )


def bench_exit(quick: bool) -> str:
    from agentcache.engine.shared_stats import flush_stats

    def run(url: str | None) -> float:
        agentcache.configure(url="memory://", retries=0, failure_threshold=1, cooldown=0.05)
        stores: list[Any] = []

        @agentcache.tool_cached(backend="memory://")
        def local(x: int) -> int:
            return x

        local(1)
        if url is not None:

            @agentcache.tool_cached(backend=url)
            def remote(x: int) -> int:
                return x

            stores.append(remote)
            remote(1)  # fails, opens the breaker; the call itself falls through to the function
            time.sleep(0.1)  # the cooldown is over: the next call would probe the store
        t = time.perf_counter()
        flush_stats()
        return (time.perf_counter() - t) * 1e3

    import socket

    silent = socket.socket()  # accepts connections (the kernel does) and never answers: a hung server
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    hung = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
    n = 2 if quick else 5
    alive = [run(None) for _ in range(n)]
    broken = [run(hung) for _ in range(n)]
    silent.close()
    rows = [
        ["flush_stats(), memory store only (floor)", fmt(statistics.median(alive)), "1.00x"],
        ["flush_stats(), + a hung Redis store (breaker open, cooldown over)", fmt(statistics.median(broken)), ""],
    ]
    rows[1][2] = f"{statistics.median(broken) / max(statistics.median(alive), 1e-3):.0f}x"
    return "## Exit stats flush (ms, median of fresh configurations)\n\n" + markdown_table(
        ["case", "median ms", "/ floor"], rows, "lrr"
    )


def bench_blas(quick: bool) -> str:
    import contextlib
    import subprocess

    import numpy as np

    from agentcache.semantic import _blas
    from agentcache.semantic import index as index_module

    functions = _blas._functions()
    threads = "no OpenBLAS found" if functions is None else f"OpenBLAS threads: {functions[0]()}"
    n = 2_000 if quick else 10_000
    index = index_module.NumpyIndex(384)
    vectors = np.random.default_rng(3).standard_normal((n, 384)).astype(np.float32)
    index.add([f"v{i}" for i in range(n)], vectors)
    query = vectors[n // 2]
    pinned = index_module.single_thread
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # one other busy process
    try:

        def unpinned() -> object:
            index_module.single_thread = contextlib.nullcontext  # type: ignore[assignment]
            try:
                return index.search(query)
            finally:
                index_module.single_thread = pinned

        cases = [
            Case("NumpyIndex.search, BLAS threads as configured", unpinned),
            Case("NumpyIndex.search, one BLAS thread (default now)", lambda: index.search(query)),
        ]
        results = measure(cases, rounds=3 if quick else 7, max_iters=2000)
    finally:
        busy.kill()
        busy.wait()
    rows = []
    base = results[0]
    for r in results:
        p90 = percentile(r.samples, 90)
        rows.append([r.name, fmt(r.median), fmt(p90), fmt(r.p99), f"{r.p99 / base.p99:.2f}x"])
    return f"## Brute-force search, {n:,} x 384, with one other busy process ({threads}, µs)\n\n" + markdown_table(
        ["case", "median", "p90", "p99", "p99 / as configured"], rows, "lrrrr"
    )


def bench_switch(quick: bool) -> str:
    import numpy as np

    from agentcache.semantic.index import AutoIndex

    n, dim = (3_000, 384) if quick else (12_000, 384)
    switch_at = 2_000 if quick else None  # None: the measured crossover (10.4k at 384-d)
    vectors = np.random.default_rng(5).standard_normal((n, dim)).astype(np.float32)
    rows = []
    for background in (False, True):
        auto = AutoIndex(dim, switch_at=switch_at, background=background)
        adds, lookups = [], []
        for i in range(n):
            t = time.perf_counter_ns()
            auto.add([f"v{i}"], vectors[i : i + 1])
            adds.append((time.perf_counter_ns() - t) / 1e3)
            t = time.perf_counter_ns()
            auto.search(vectors[i // 2])
            lookups.append((time.perf_counter_ns() - t) / 1e3)
        auto.settle()
        name = "background build (default now)" if background else "inline build (before)"
        for what, samples in (("add", adds), ("lookup", lookups)):
            rows.append([f"{name}: {what}", fmt(statistics.median(samples)), fmt(percentile(samples, 99.9))])
            rows[-1].append(fmt(max(samples) / 1000))
    return (
        f"## Exact -> HNSW switch during a fill of {n:,} x {dim} (one add and one lookup per entry; µs, max in ms)\n\n"
        + markdown_table(["case", "median", "p99.9", "max ms"], rows, "lrrr")
    )


def bench_cold(quick: bool) -> str:
    import numpy as np

    from agentcache.semantic.index import AutoIndex
    from agentcache.semantic.partitions import Partition, decode_record, encode_record

    dim = 384
    big, small = (20_000, 12_000) if quick else (100_000, 15_000)
    vectors = np.random.default_rng(11).standard_normal((big, dim)).astype(np.float32)
    records = []
    for i in range(big):
        key = f"ac:sem:default:p:{i:08d}"
        records.append((key, encode_record(key, f"question {i}", f"ac:e:{i}", "m", vectors[i].tolist())))

    def one_at_a_time(part: Partition, recs: list[tuple[str, bytes]]) -> None:  # what `add_records` did before
        for key, raw in recs:
            query, entry_key, _, vector = decode_record(key, raw)
            part.index.add([key], [vector])
            part.meta[key] = (entry_key, query)

    rows = []
    for name, n, load in (
        ("one record at a time (before)", small, one_at_a_time),
        ("one batch (now)", small, Partition.add_records),
        ("one batch (now)", big, Partition.add_records),
    ):
        part = Partition("ac:sem:default:p:", "default", AutoIndex(dim))
        t = time.perf_counter()
        load(part, records[:n])
        loaded = time.perf_counter() - t
        hit = part.search(vectors[n // 3].tolist(), 1)
        first = time.perf_counter() - t
        assert hit
        assert hit[0][0] == records[n // 3][0]
        t = time.perf_counter()
        settled = n <= small and part.index.settle()  # 100k: minutes of background build, not waited for
        rows.append([name, f"{n:,}", fmt(loaded), fmt(first), fmt(time.perf_counter() - t) if settled else "-"])
    return (
        f"## Semantic cold start on `memory://`: indexing the partition's vector records ({dim}-d; s)\n\n"
        + markdown_table(["how", "records", "index built", "+ first lookup", "background HNSW after"], rows, "lrrrr")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=("miss", "stream", "memo", "exit", "blas", "switch", "cold"), action="append")
    args = parser.parse_args()
    only = args.only or ["miss", "stream", "memo", "exit", "blas", "switch", "cold"]
    info = machine_info(PACKAGES)
    sections = []
    benches = (("miss", bench_miss), ("stream", bench_stream), ("memo", bench_memo), ("exit", bench_exit))
    for name, fn in (*benches, ("blas", bench_blas), ("switch", bench_switch), ("cold", bench_cold)):
        if name in only:
            sections.append(fn(args.quick))
            print(sections[-1], flush=True)
    write_report(RESULTS, "Small costs on common paths", sections, info)
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
