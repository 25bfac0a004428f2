"""Chat lookups with conversation keys: what the earlier turns add to a `@semantic_cached` call.

Usage: `python benchmarks/semantic_chat_speed.py [--lookups 60]`. Writes `benchmarks/results/semantic_chat_speed.md`.

One chat is cached (four earlier user turns with assistant answers, then a question). Timed, through the
default `@semantic_cached` on a memory store, in `mode("read")` (a miss stores nothing, so every lookup meets
the same cache), each one cold (MiniLM's in-process memory of token states emptied first):

* **single question**: the same question with no earlier turns (the floor: one embedding, the judge);
* **same chat, reworded**: the same four turns, the question reworded (a hit: two embeddings, the question
  read alone and with the turn before it; identical turns are paired without the model);
* **other chat, same question**: four different earlier turns (another month, group, budget): the judge reads
  the new turns (one batched model run) and the lookup misses;
* **the same, in a live chat**: as above, but the new chat's earlier turns were read moments before, as the
  lookups of its own earlier turns read them in this process (MiniLM's memory of token states holds them), so
  only the question is new to the model.

Wall-clock and CPU milliseconds (the process's CPU time during the call), medians and p99.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import machine_info, markdown_table, percentile, write_report  # noqa: E402

import agentcache  # noqa: E402
from agentcache.decorators.semantic import semantic_cached  # noqa: E402
from agentcache.engine.cache import Cache  # noqa: E402
from agentcache.semantic import _minilm  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "semantic_chat_speed.md"
PACKAGES = ("agentcache-py", "onnxruntime", "numpy")
REPLY = "Sure, here is what I know about that."
TURNS = (
    "I'm planning a trip to Japan in April.",
    "We are two adults and a toddler.",
    "Our budget is about 4,000 dollars.",
    "We like food and temples more than nightlife.",
)
QUESTION = "What should our itinerary look like for ten days?"
REWORDED = (
    "What should our itinerary be for ten days?",
    "what should our ten-day itinerary look like?",
    "What should the itinerary look like for 10 days?",
)


def conversation(turns: tuple[str, ...] | list[str], question: str) -> list[dict[str, str]]:
    messages: list[dict[str, str]] = []
    for turn in turns:
        messages += [{"role": "user", "content": turn}, {"role": "assistant", "content": REPLY}]
    return [*messages, {"role": "user", "content": question}]


def other_turns(i: int) -> list[str]:
    month = ("May", "June", "July", "October")[i % 4]
    return [
        f"I'm planning a trip to Japan in {month}.",
        f"We are {i % 5 + 3} adults.",
        f"Our budget is {2000 + i * 50}.",
        "We like hiking.",
    ]


def timed(fn: Any, messages: list[dict[str, str]], warm: bool = False) -> tuple[float, float, bool]:
    model = _minilm.get_model()
    with model._states_lock:  # cold: as for a chat cached long ago or by another process
        model._states.clear()
    if warm:  # a live chat: its earlier user turns were read by the lookups of those turns
        model.token_states([m["content"] for m in messages[:-1] if m["role"] == "user"])
    before = agentcache.stats().total.hits
    wall, cpu = time.perf_counter(), time.process_time()
    with agentcache.mode("read"):
        fn(messages)
    return (
        (time.perf_counter() - wall) * 1000,
        (time.process_time() - cpu) * 1000,
        agentcache.stats().total.hits > before,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lookups", type=int, default=60)
    args = parser.parse_args()
    info = machine_info(PACKAGES)
    cache = Cache("memory://")

    @semantic_cached(backend=cache, name="chat")
    def chat(messages: list[dict[str, str]]) -> str:
        return "an itinerary"

    chat(conversation([], QUESTION))
    chat(conversation(TURNS, QUESTION))
    live = "the same, in a live chat (its earlier turns already read)"
    cases = {
        "single question, reworded (no earlier turns)": lambda i: conversation([], REWORDED[i % len(REWORDED)]),
        "same chat (4 earlier turns), question reworded": lambda i: conversation(TURNS, REWORDED[i % len(REWORDED)]),
        "other chat (4 different earlier turns), same question": lambda i: conversation(other_turns(i), QUESTION),
        live: lambda i: conversation(other_turns(i), QUESTION),
    }
    samples: dict[str, list[tuple[float, float, bool]]] = {name: [] for name in cases}
    for i in range(args.lookups):
        for name, make in cases.items():  # interleaved: every case meets the same machine load
            samples[name].append(timed(chat, make(i), warm=name == live))
    rows = []
    for name, got in samples.items():
        wall, cpu = [w for w, _, _ in got], [c for _, c, _ in got]
        rows.append(
            [
                name,
                str(len(got)),
                f"{sum(hit for _, _, hit in got) / len(got):.0%}",
                f"{statistics.median(wall):.1f}",
                f"{percentile(wall, 99):.1f}",
                f"{statistics.median(cpu):.1f}",
                f"{percentile(cpu, 99):.1f}",
            ]
        )
    table = markdown_table(["lookup", "calls", "hits", "p50 ms", "p99 ms", "CPU p50 ms", "CPU p99 ms"], rows, "lrrrrrr")
    sections = [
        "One cached chat (four earlier user turns, then a question) and one cached single question; each lookup "
        "cold (the last row: only the question is new to the model), in `mode('read')`, through the default "
        "`@semantic_cached` on a memory store. Regenerate with "
        "`python benchmarks/semantic_chat_speed.py`.",
        table,
    ]
    write_report(RESULTS, "Chat lookups with conversation keys", sections, info)
    print("\n\n".join(sections))


if __name__ == "__main__":
    main()
