"""Two processes sharing one Redis-backed semantic cache: how fast does each one see the other's changes?

Starts its own redis-server on a free port and two worker processes (multiprocessing spawn, the real local
MiniLM embedder in each). Per round, with a fresh question: A stores an answer, then B asks a paraphrase
(B's index was loaded before, so the hit can only come through the event stream); then A invalidates (by
tag, or with `invalidate_similar`) and B asks again at once. Times are wall-clock from A's call returning
to B's call returning (both include the pipe round trip to the driver, ~0.1 ms, and B's embedding of the
query, ~4 ms). Writes `benchmarks/results/semantic_redis_sync.md`.
"""

from __future__ import annotations

import multiprocessing
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from support.redis_server import RedisServer  # noqa: E402
from support.semantic_worker import serve  # noqa: E402

COUNTRIES = [
    "France", "Spain", "Italy", "Germany", "Portugal", "Austria", "Poland", "Norway", "Sweden", "Finland",
    "Greece", "Ireland", "Denmark", "Belgium", "Hungary", "Romania", "Croatia", "Serbia", "Bulgaria", "Latvia",
]  # fmt: skip


class Worker:
    """A spawned `serve` process."""

    def __init__(self, url: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=serve, args=(url, child), daemon=True)
        self.proc.start()
        assert self.conn.recv() == "ready"

    def __call__(self, *command: Any) -> Any:
        self.conn.send(command)
        return self.conn.recv()

    def stop(self) -> None:
        self.conn.send(("stop",))
        self.proc.join(10)


def ms(values: list[float]) -> str:
    """Median and max in milliseconds."""
    return f"{statistics.median(values) * 1000:.1f} | {max(values) * 1000:.1f}"


def main() -> None:
    """Run the rounds and write the table."""
    server = RedisServer().start()
    a = b = None
    try:
        url = server.url + "?prefix=bench:"
        a, b = Worker(url), Worker(url)
        b("ask", "How do I reset my password?")  # loads B's model and its index of the partition
        a("ask", "How do I reset my password?")
        add, tag, similar, lookup = [], [], [], []
        stale = 0
        for i, country in enumerate(COUNTRIES):
            question, paraphrase = f"What is the capital of {country}?", f"What's the capital city of {country}?"
            stored_at = a("ask", question)[3]
            similarity, seconds, answered_at = b("timed", paraphrase)
            assert similarity is not None, f"B missed A's answer for {country}"
            add.append(answered_at - stored_at)
            lookup.append(seconds)
            if i % 2 == 0:
                _, done_at = a("invalidate_tags", ["faq"])
                bucket = tag
            else:
                _, done_at = a("invalidate_similar", question)
                bucket = similar
            similarity, _, answered_at = b("timed", paraphrase)
            stale += similarity is not None and similarity < 1.0
            bucket.append(answered_at - done_at)
            a("invalidate_tags", ["faq"])  # B's own answer to the paraphrase goes too: the next round starts clean
        rows = [
            ("A stores -> B gets a paraphrase hit (through the stream)", ms(add)),
            ("B's semantic-hit lookup itself (embedding included)", ms(lookup)),
            ("A invalidates by tag -> B's next lookup misses", ms(tag)),
            ("A `invalidate_similar` -> B's next lookup misses", ms(similar)),
        ]
        lines = [
            "# Two processes, one Redis-backed semantic cache",
            "",
            f"{len(COUNTRIES)} rounds; {platform.python_version()} on {platform.machine()}; redis-server on localhost.",
            f"Stale hits served by B after an invalidation in A: **{stale}**.",
            "",
            "| what | median ms | max ms |",
            "| --- | --- | --- |",
            *[f"| {name} | {value} |" for name, value in rows],
            "",
        ]
        text = "\n".join(lines)
        out = ROOT / "benchmarks" / "results" / "semantic_redis_sync.md"
        out.write_text(text)
        print(text)
    finally:
        for w in (a, b):
            if w is not None:
                w.stop()
        server.cleanup()


if __name__ == "__main__":
    main()
