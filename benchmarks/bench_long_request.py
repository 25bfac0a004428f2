"""Long agent transcripts: what the key costs a hit, and what hashing long strings once per process would save.

Agents resend the whole transcript every turn, tool results included, so a request grows to tens of KB. Issue #13
asked whether long strings should be hashed once per process (a per-process memo from string to digest, so the key
would hash a 32-byte digest instead of the text). This measures the question instead of guessing:

- the hit of `@response_cached` on `memory://` for the 2 KB request of `bench_exact.py` and for a ~50 KB transcript
  (24 turns, each with a 1.5 KB tool result);
- the key alone (canonical bytes + SHA-256), and its two halves;
- the best case of a memo: a walk that swaps every string of at least 1 KB for its digest found in a dict, then the
  canonical bytes + SHA-256 of the result. The strings are the same objects every call, so their Python hash is
  cached: the real memo could only be slower.

Writes `benchmarks/results/long_request.md`.

    .venv/bin/python benchmarks/bench_long_request.py
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_exact as be  # noqa: E402
from _harness import Case, fmt, machine_info, markdown_table, measure, write_report  # noqa: E402

import agentcache  # noqa: E402
from agentcache.keys.encoding import canonical_bytes, digest  # noqa: E402

RESULTS = HERE / "results" / "long_request.md"
LONG = 1024  # strings at least this long would be memoised


def transcript(turns: int = 24) -> dict[str, Any]:
    """A chat request the size of a long agent run: every turn resends a tool call and its 1.5 KB result."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": be.SYSTEM}]
    for i in range(turns):
        rows = [
            {"id": j, "name": f"order {i}-{j}", "status": "shipped", "note": "left at the door " * 2} for j in range(16)
        ]
        messages.append({"role": "user", "content": f"Step {i}: check the orders of customer {1000 + i}."})
        call = {"id": f"call_{i}", "type": "function", "function": {"name": "orders", "arguments": f'{{"c": {i}}}'}}
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": f"call_{i}", "content": json.dumps(rows)})
    return {**be.REQUEST, "messages": messages}


def memo_walk(memo: dict[str, str]) -> Any:
    """A key function that replaces strings of at least LONG characters by their memoised SHA-256."""

    def swap(v: Any) -> Any:
        if isinstance(v, str):
            if len(v) < LONG:
                return v
            d = memo.get(v)
            if d is None:
                d = memo[v] = hashlib.sha256(v.encode()).hexdigest()
            return {"$h": d}
        if isinstance(v, dict):
            return {k: swap(x) for k, x in v.items()}
        if isinstance(v, list):
            return [swap(x) for x in v]
        return v

    return swap


def rows_for(label: str, request: dict[str, Any]) -> list[Case]:
    """The cases for one request size."""

    @agentcache.response_cached(backend="memory://")
    def chat(messages: list[dict[str, Any]], model: str, **params: Any) -> dict[str, Any]:
        return dict(be.RESPONSE)

    chat(**request)
    raw = canonical_bytes(request)
    swap = memo_walk({})
    return [
        Case(f"{label}: hit, @response_cached memory://", lambda: chat(**request)),
        Case(f"{label}: key (canonical bytes + SHA-256)", lambda: digest(canonical_bytes(request))),
        Case(f"{label}: canonical bytes only", lambda: canonical_bytes(request)),
        Case(f"{label}: SHA-256 of the canonical bytes only", lambda: hashlib.sha256(raw).digest()),
        Case(f"{label}: key with long strings memoised (best case)", lambda: digest(canonical_bytes(swap(request)))),
    ]


def _verdict(saved_big: float, saved_small: float) -> str:
    if saved_big <= 0:
        gain = (
            f"The memo's best case is slower than hashing the text: {fmt(-saved_big)} µs more per hit on the 50 KB "
            f"transcript ({fmt(-saved_small)} µs more on the 2 KB request), because finding the long strings is a "
            "walk in Python while orjson and SHA-256 run in C at well over 500 MB/s."
        )
    else:
        gain = (
            f"A per-process memo of long strings would save at most {fmt(saved_big)} µs per hit on the 50 KB "
            f"transcript ({fmt(saved_small)} µs on the 2 KB request), against the model call of seconds that the "
            "hit replaces."
        )
    return (
        gain + " It would also change every key (a version bump: old entries read as misses) and keep a "
        "process-wide map of transcript text. Not done: these figures are the reason."
    )


def main() -> None:
    """Measure both request sizes in one run and write the table."""
    info = machine_info(["orjson"])
    small, big = be.REQUEST, transcript()
    sizes = {"2 KB": len(canonical_bytes(small)), "50 KB": len(canonical_bytes(big))}
    cases = rows_for("2 KB", small) + rows_for("50 KB", big)
    results = {r.name: r.median for r in measure(cases, rounds=7)}
    table = []
    for label in sizes:
        hit = results[f"{label}: hit, @response_cached memory://"]
        for case in cases:
            if case.name.startswith(label):
                table.append([case.name, fmt(results[case.name]), f"{results[case.name] / hit:.0%}"])
    saved = {
        label: results[f"{label}: key (canonical bytes + SHA-256)"]
        - results[f"{label}: key with long strings memoised (best case)"]
        for label in sizes
    }
    text = (
        f"Requests: `bench_exact.py`'s chat request ({sizes['2 KB']:,} canonical bytes) and a 24-turn agent "
        f"transcript with a 1.5 KB tool result per turn ({sizes['50 KB']:,} canonical bytes). Medians of 7 "
        "interleaved rounds, µs.\n\n"
        + markdown_table(["case", "median µs", "share of the hit"], table, "lrr")
        + "\n\n"
        + _verdict(saved["50 KB"], saved["2 KB"])
    )
    print(text)
    write_report(RESULTS, "Long agent transcripts: key cost and a long-string memo", [text], info)


if __name__ == "__main__":
    main()
