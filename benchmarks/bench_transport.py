"""A cache hit through `OpenAI(http_client=agentcache.http_client())` vs a bare SDK call and vs `agentcache.wrap()`,
against a local zero-latency fake server.

Writes `benchmarks/results/transport.md`. Run: `.venv/bin/python benchmarks/bench_transport.py [iterations]`.
A transport hit still pays for the SDK building the request and parsing the response (the wrap() hit skips
both), so it is expected to be slower than a wrap() hit and much faster than a round trip.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from typing import Any

from anthropic import Anthropic
from bench_sdk import RESULTS as SDK_RESULTS
from bench_sdk import measure, row
from openai import OpenAI

import agentcache
from agentcache.testing.simulator import SimulatedLLM

RESULTS = SDK_RESULTS.parent / "transport.md"
MSGS = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    with SimulatedLLM() as sim, tempfile.TemporaryDirectory() as tmp:
        bare = OpenAI(base_url=sim.openai_base_url, api_key="sk-bench", max_retries=0)
        wrapped = agentcache.wrap(bare, backend="memory://")

        def client(library: str, backend: str) -> Any:
            http = agentcache.http_client(library=library, backend=backend)  # type: ignore[arg-type]
            return OpenAI(base_url=sim.openai_base_url, api_key="sk-bench", max_retries=0, http_client=http)

        mem2 = client("httpx2", "memory://")
        mem1 = client("httpx", "memory://")
        sqlite = client("httpx2", f"sqlite://{tmp}/bench.db")
        call: dict[str, Any] = {"model": "gpt-4o-mini", "messages": MSGS}
        stream_call = {**call, "stream": True}
        for c in (wrapped, mem2, mem1, sqlite):
            c.chat.completions.create(**call)
            list(c.chat.completions.create(**stream_call))
        before = sim.calls["chat.completions"]
        base = measure(lambda: bare.chat.completions.create(**call), n)
        hit_wrap = measure(lambda: wrapped.chat.completions.create(**call), n)
        hit_mem2 = measure(lambda: mem2.chat.completions.create(**call), n)
        hit_mem1 = measure(lambda: mem1.chat.completions.create(**call), n)
        hit_sqlite = measure(lambda: sqlite.chat.completions.create(**call), n)
        base_stream = measure(lambda: list(bare.chat.completions.create(**stream_call)), n)
        hit_stream_wrap = measure(lambda: list(wrapped.chat.completions.create(**stream_call)), n)
        hit_stream = measure(lambda: list(mem2.chat.completions.create(**stream_call)), n)
        bare_calls = 2 * (n + 20)
        assert sim.calls["chat.completions"] - before == bare_calls, "a measured hit reached the server"

        claude_bare = Anthropic(base_url=sim.anthropic_base_url, api_key="sk-bench", max_retries=0)
        claude = Anthropic(
            base_url=sim.anthropic_base_url,
            api_key="sk-bench",
            max_retries=0,
            http_client=agentcache.http_client(backend="memory://"),
        )
        msg: dict[str, Any] = {"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": MSGS}
        claude.messages.create(**msg)
        base_msg = measure(lambda: claude_bare.messages.create(**msg), n)
        hit_msg = measure(lambda: claude.messages.create(**msg), n)

        b, bs, bm = statistics.median(base), statistics.median(base_stream), statistics.median(base_msg)
        lines = [
            "# HTTP transport: cache hit vs bare SDK call (local zero-latency fake server)",
            "",
            f"{n} calls each after warm-up; microseconds per call; speed-up = bare median / row median.",
            f"Python {sys.version.split()[0]}; server: `agentcache.testing.simulator` on 127.0.0.1. Every",
            "measured hit was checked not to reach the server.",
            "",
            "| call | median µs | p90 µs | p99 µs | speed-up |",
            "| --- | ---: | ---: | ---: | ---: |",
            row("bare `OpenAI().chat.completions.create`", base, b),
            row("`agentcache.wrap()` hit, memory (for comparison)", hit_wrap, b),
            row("`http_client()` hit, httpx2, memory", hit_mem2, b),
            row('`http_client(library="httpx")` hit, memory', hit_mem1, b),
            row("`http_client()` hit, httpx2, SQLite", hit_sqlite, b),
            row("bare streamed create (iterate all chunks)", base_stream, bs),
            row("`agentcache.wrap()` streamed hit, memory", hit_stream_wrap, bs),
            row("`http_client()` streamed hit, memory (SDK parses the replayed SSE)", hit_stream, bs),
            row("bare `Anthropic().messages.create`", base_msg, bm),
            row("`http_client()` `messages.create` hit, memory", hit_msg, bm),
            "",
        ]
        for c in (bare, mem2, mem1, sqlite, claude_bare, claude):
            c.close()
        agentcache.reset()  # close the stores (and their stats flusher) before the temporary directory goes
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
