"""What `LLMCache`'s single flight adds to every LangChain model call of the process: the callback handler it
registers (once) so a failed call releases the lookups waiting for it (LangChain's ``on_llm_error``).

Measured on the cheapest LangChain call there is, a `ChatOpenAI.invoke` answered by LangChain's own
`InMemoryCache`, in two fresh processes: one that never built an `LLMCache` (no handler) and one that did.

Writes `benchmarks/results/langchain_errors.md`. Run: `.venv/bin/python benchmarks/bench_langchain_errors.py [n]`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "langchain_errors.md"

CHILD = """
import json, statistics, sys, time
from langchain_core.caches import InMemoryCache
from langchain_core.globals import set_llm_cache
from langchain_openai import ChatOpenAI
from agentcache.testing.simulator import SimulatedLLM

n, register = int(sys.argv[1]), sys.argv[2] == "1"
if register:
    from agentcache.integrations.langchain import LLMCache
    LLMCache(backend="memory://")
with SimulatedLLM() as sim:
    llm = ChatOpenAI(model="gpt-4o-mini", api_key="sk-bench", base_url=sim.openai_base_url, max_retries=0)
    set_llm_cache(InMemoryCache())
    llm.invoke("q")
    wall, cpu = [], []
    for _ in range(n):
        w, c = time.perf_counter(), time.process_time()
        llm.invoke("q")
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    print(json.dumps([statistics.median(wall) * 1e6, sum(cpu) / n * 1e6]))
"""


def run(n: int, register: bool) -> list[float]:
    args = [sys.executable, "-c", CHILD, str(n), "1" if register else "0"]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    result: list[float] = json.loads(out.stdout)
    return result


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    load = os.getloadavg()
    rounds = [(run(n, False), run(n, True)) for _ in range(3)]
    rows = [
        f"| {i + 1} | {a[0]:.0f} | {b[0]:.0f} | {b[0] - a[0]:+.0f} | {a[1]:.0f} | {b[1]:.0f} | {b[1] - a[1]:+.0f} |"
        for i, (a, b) in enumerate(rounds)
    ]
    lines = [
        "# LangChain calls with and without `LLMCache`'s error handler registered",
        "",
        f"`ChatOpenAI.invoke` hits of LangChain's `InMemoryCache`, {n} per process after a warm-up; a fresh process",
        "per column and round. Microseconds: median wall time, mean CPU time (`process_time`) per call.",
        f"Python {sys.version.split()[0]}; load average at start {load[0]:.1f} on {os.cpu_count()} CPUs.",
        "",
        "| round | wall, no handler | wall, handler | difference | CPU, no handler | CPU, handler | difference |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows,
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
