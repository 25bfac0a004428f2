"""A process that serves one `semantic_cached` function over a shared store, driven by commands on a pipe.

Used by the two-process tests (multiprocessing spawn): each process has its own local index and learns of
the other's entries and invalidations only through the store (and its event log).
"""

from __future__ import annotations

import time
from multiprocessing.connection import Connection
from typing import Any


def serve(url: str, conn: Connection) -> None:
    """Answer commands from `conn` until it sends `("stop",)`.

    Commands: ("ask", question) -> (answer, similarity or None, calls so far, time.time() when answered);
    ("invalidate_tags", [tags]) / ("invalidate_similar", text) -> (count, time.time() when done);
    ("ask_until_miss", question, timeout) -> (seconds until a lookup missed, lookups made);
    ("timed", question) -> (similarity or None, seconds the call took, time.time() when answered);
    ("index_size",) -> entries in this process's local indexes.
    """
    import agentcache
    from agentcache.decorators.semantic import invalidate_similar, last_semantic_hit, semantic_cached
    from agentcache.engine.cache import Cache
    from agentcache.semantic.partitions import loaded_partitions

    cache = Cache(url)
    calls: list[str] = []

    @semantic_cached(backend=cache, name="shared.answer", tags=["faq"], ttl=60)
    def answer(question: str) -> str:
        calls.append(question)
        return f"answer to {question}"

    @semantic_cached(backend=cache, name="shared.short", ttl=1.0)
    def short(question: str) -> str:
        calls.append(question)
        return f"short answer to {question}"

    def ask(fn: Any, question: str) -> tuple[str, float | None, int, float]:
        value = fn(question)
        hit = last_semantic_hit()
        return value, None if hit is None else hit.similarity, len(calls), time.time()

    # Load the embedder and the pair judge before answering: a first lookup that loads models must not race
    # the 1 s TTL of `short`.
    from agentcache.semantic.pairjudge import get_judge

    get_judge().score("warm up the model", "warm the model up")
    conn.send("ready")
    while True:
        command = conn.recv()
        kind = command[0]
        if kind == "stop":
            break
        if kind == "ask":
            conn.send(ask(answer, command[1]))
        elif kind == "timed":
            start = time.perf_counter()
            answer(command[1])
            hit = last_semantic_hit()
            conn.send((None if hit is None else hit.similarity, time.perf_counter() - start, time.time()))
        elif kind == "ask_short":
            conn.send(ask(short, command[1]))
        elif kind == "invalidate_tags":
            n = agentcache.invalidate(tags=command[1], cache=cache)
            conn.send((n, time.time()))
        elif kind == "invalidate_similar":
            n = invalidate_similar(command[1], threshold=0.8, backend=cache)
            conn.send((n, time.time()))
        elif kind == "index_size":
            conn.send(sum(len(p.meta) for p in loaded_partitions(cache.store)))
    cache.close()
    conn.close()
