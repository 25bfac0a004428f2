"""Concurrent identical streamed requests through `agentcache.http_client()`: what single flight costs the
followers' first token, and what it saves upstream.

N callers start the same streamed chat completion at once (threads), against the local fake server sending its
SSE events `DELAY` seconds apart (a model generating tokens). Bare: each caller streams its own answer. Through
the transport: one request; the other callers wait for its recording and replay it, so their first chunk comes
when the leading stream ends. Each round uses a new prompt (a miss).

Writes `benchmarks/results/stream_flight.md`. Run: `.venv/bin/python benchmarks/bench_stream_flight.py [rounds]`.
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from openai import OpenAI

import agentcache
from agentcache.testing.simulator import SimulatedLLM

RESULTS = Path(__file__).parent / "results" / "stream_flight.md"
N = 8
DELAY = 0.02


def round_of(client: Any, prompt: str) -> list[tuple[float, float]]:
    """`N` concurrent streams of `prompt`: (seconds to the first chunk, seconds to the end) per caller."""
    barrier = threading.Barrier(N)
    out: list[tuple[float, float]] = []
    lock = threading.Lock()

    def one() -> None:
        barrier.wait()
        start = time.perf_counter()
        first = None
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], stream=True
        )
        for _ in stream:
            if first is None:
                first = time.perf_counter() - start
        total = time.perf_counter() - start
        with lock:
            out.append((first or total, total))

    threads = [threading.Thread(target=one) for _ in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(out)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    load = os.getloadavg()
    rows = []
    with SimulatedLLM(chunk_delay=DELAY) as sim:
        bare = OpenAI(base_url=sim.openai_base_url, api_key="sk-bench", max_retries=0)
        cached = OpenAI(
            base_url=sim.openai_base_url,
            api_key="sk-bench",
            max_retries=0,
            http_client=agentcache.http_client(backend="memory://"),
        )
        for name, client in (("bare (no cache)", bare), ("`http_client()`, memory", cached)):
            before = sim.calls["chat.completions"]
            results = [round_of(client, f"Tell me story number {name} {i}") for i in range(rounds)]
            sent = (sim.calls["chat.completions"] - before) / rounds
            first = [r[0][0] for r in results]  # the fastest first chunk of a round: the leader's
            rest = [x[0] for r in results for x in r[1:]]
            totals = [x[1] for r in results for x in r]
            rows.append(
                f"| {name} | {sent:.1f} | {statistics.median(first) * 1000:.0f} | "
                f"{statistics.median(rest) * 1000:.0f} | {statistics.median(totals) * 1000:.0f} |"
            )
        bare.close()
        cached.close()
        agentcache.reset()
    lines = [
        "# Concurrent identical streamed requests: single flight in the HTTP transport",
        "",
        f"{N} callers start the same streamed chat completion at once (threads), {rounds} rounds, a new prompt each",
        f"round (a miss). Local fake server (`agentcache.testing.simulator`), SSE events {DELAY * 1000:.0f} ms apart.",
        f"Python {sys.version.split()[0]}; load average at start {load[0]:.1f} on {os.cpu_count()} CPUs.",
        "Medians in milliseconds; first chunk: time from the call to the first chunk the SDK yields.",
        "",
        "| client | requests upstream per round | first chunk, fastest caller | first chunk, the others | "
        "whole stream, every caller |",
        "| --- | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        "The others' first chunk arrives when the leading stream ends (they replay its recording), about the",
        "time their own stream would have taken to finish; their whole stream takes about as long as streaming it.",
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
