"""agentcache demo: an agent step that calls a (simulated) LLM and a search tool, twice.

Runs on the embedded store (SQLite) with no API key and no server. The demo keeps its entries and stats in
`.agentcache/` of this checkout, never in your user cache dir or a store your environment configures. The first
run pays for the model call; the second call in the run is a hit. Run it again: even the first call is now a hit,
read from disk.

    make demo          # or: python examples/demo.py
    python examples/demo.py --fresh   # forget what the demo cached and start over
    DEMO_LATENCY=0 python examples/demo.py   # seconds of simulated model latency (default 1)
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import agentcache

MODEL = "gpt-4o"
DEMO_DIR = Path(__file__).resolve().parent.parent / ".agentcache"  # project-local, git-ignored
LATENCY = float(os.environ.get("DEMO_LATENCY", "1.0"))


@agentcache.tool_cached(ttl="1h", tags=["search"])
def search_docs(query: str) -> list[str]:
    """A slow retrieval tool (~300 ms)."""
    time.sleep(0.3 * LATENCY)
    return [f"doc-{i}: notes about {query}" for i in range(3)]


@agentcache.response_cached(tags=["demo"])
def chat(messages: list[dict[str, Any]], model: str = MODEL, temperature: float = 0.0) -> dict[str, Any]:
    """A simulated chat completion: ~1 s of latency and OpenAI-shaped usage, like the real API."""
    time.sleep(LATENCY * random.uniform(1.0, 1.2))
    prompt_tokens = sum(len(str(m["content"])) for m in messages) // 4 + 1_200
    answer = (
        "Cache the exact request (model, messages, parameters) and key it canonically; keep tenants apart "
        "with namespaces and invalidate by tag when the underlying documents change."
    )
    return {
        "id": "chatcmpl-demo",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 350, "total_tokens": prompt_tokens + 350},
    }


def agent_step(question: str) -> tuple[str, float]:
    """One step of an agent: retrieve, then ask the model. Returns the answer and the seconds it took."""
    start = time.perf_counter()
    docs = search_docs(question)
    messages = [
        {"role": "system", "content": "You are a concise assistant. Use the documents.\n" + "\n".join(docs)},
        {"role": "user", "content": question},
    ]
    reply = chat(messages)
    return reply["choices"][0]["message"]["content"], time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fresh", action="store_true", help="forget what earlier runs of the demo cached")
    args = parser.parse_args()
    DEMO_DIR.mkdir(exist_ok=True)
    agentcache.configure(url=f"sqlite://{DEMO_DIR / 'cache.db'}", dir=DEMO_DIR)  # wins over AGENTCACHE_* and .env
    if args.fresh:
        agentcache.invalidate(tags=["demo", "search"])

    question = "How should an agent avoid paying twice for the same LLM call?"
    print(f"store: {agentcache.get_settings().backend_url}\n")

    answer, first = agent_step(question)
    first_info = chat.cache_info()
    label = "hit (from disk: an earlier run cached it)" if first_info.hits else "miss (paid the model)"
    print(f"call 1: {first * 1000:8.1f} ms   {label}")

    _, second = agent_step(question)
    print(f"call 2: {second * 1000:8.1f} ms   hit")
    print(f"\nspeed-up on a hit: {first / max(second, 1e-9):,.0f}x" if not first_info.hits else "")

    report = agentcache.stats()
    total = report.total
    print(f"answer: {answer[:90]}...\n")
    print(report)
    print(
        f"\nsaved this run: {total.time_saved:.2f} s of waiting, {total.tokens_saved:,} tokens, "
        f"${total.usd_saved:.4f} at {MODEL} list prices"
    )
    if not first_info.hits:
        print("\nRun it again: the first call will be a hit too, read from the SQLite file on disk.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
