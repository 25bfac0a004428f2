"""Where the async face runs the pair judge: on the event loop when it needs no model run (real MiniLM)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from agentcache.decorators.semantic import last_semantic_hit, semantic_cached
from agentcache.engine.cache import Cache
from agentcache.semantic import _minilm
from agentcache.semantic.pairjudge import PairJudge, Words

CACHED = "How do I delete my account?"
QUERY = "How can I delete my account?"


class RecordingJudge(PairJudge):
    """The shipped judge, noting the thread each score ran on."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []

    def score(self, cached: str, query: str, *, notes: dict[str, Words] | None = None) -> float:
        self.threads.append(threading.get_ident())
        return super().score(cached, query, notes=notes)


@pytest.fixture
def cache() -> Iterator[Cache]:
    c = Cache("memory://")
    yield c
    c.close()


def forget_model_memory() -> None:
    model = _minilm.get_model()
    with model._states_lock:
        model._states.clear()


def judged(cache: Cache) -> tuple[Any, RecordingJudge]:
    judge = RecordingJudge()

    @semantic_cached(backend=cache, judge=judge)
    async def answer(question: str) -> str:
        return f"answer to {question}"

    return answer, judge


async def test_with_notes_the_judge_runs_on_the_event_loop(cache: Cache) -> None:
    """The cached side comes from the notes and the query's states from its own embedding: no model run, so
    no worker thread (whose two wake-ups cost more than the judge on a busy machine)."""
    answer, judge = judged(cache)
    await answer(CACHED)
    forget_model_memory()
    assert await answer(QUERY) == f"answer to {CACHED}"
    hit = last_semantic_hit()
    assert hit is not None and hit.cached_query == CACHED
    assert judge.threads == [threading.get_ident()]


async def test_without_notes_the_judge_runs_in_a_worker_thread_and_decides_the_same(cache: Cache) -> None:
    """An entry without notes needs MiniLM on the cached question: that blocking run stays off the loop."""
    answer, judge = judged(cache)
    await answer(CACHED)
    cache.store.delete_many([e.key for e in cache.store.scan("") if ":semjudge:" in e.key])  # type: ignore[attr-defined]
    forget_model_memory()
    assert await answer(QUERY) == f"answer to {CACHED}"
    assert len(judge.threads) == 1 and judge.threads[0] != threading.get_ident()
    assert await answer("How do I deactivate my account?") == "answer to How do I deactivate my account?"
