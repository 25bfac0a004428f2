"""Single-flight for @semantic_cached: concurrent identical calls share one lookup and one computation."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

from agentcache.decorators.semantic import last_semantic_hit, semantic_cached
from agentcache.engine.cache import Cache


class Letters:
    """A tiny embedder: a text's vector counts its letters a-e (cheap, deterministic)."""

    model = "letters"
    dim = 5

    def embed(self, texts: Sequence[str], /) -> list[list[float]]:
        return [[float(t.count(c)) + 0.01 for c in "abcde"] for t in texts]

    async def aembed(self, texts: Sequence[str], /) -> list[list[float]]:
        return self.embed(texts)


def _run_threads(n: int, target: object) -> None:
    threads = [threading.Thread(target=target) for _ in range(n)]  # type: ignore[arg-type]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)


class TestThreads:
    def test_concurrent_identical_calls_compute_once(self) -> None:
        """Eight threads asking the same question at once make one call and all get its answer."""
        calls: list[str] = []
        results: list[str] = []

        @semantic_cached(backend=Cache("memory://"), embedder=Letters(), guards=(), judge=False)
        def answer(question: str) -> str:
            calls.append(question)
            time.sleep(0.2)
            return f"answer {len(calls)}"

        _run_threads(8, lambda: results.append(answer("what is a cache?")))
        assert calls == ["what is a cache?"]
        assert results == ["answer 1"] * 8
        assert answer.cache_info().hits == 7

    def test_single_flight_can_be_turned_off(self) -> None:
        """With single_flight=False every concurrent miss computes."""
        calls: list[str] = []

        @semantic_cached(backend=Cache("memory://"), embedder=Letters(), guards=(), judge=False, single_flight=False)
        def answer(question: str) -> str:
            calls.append(question)
            time.sleep(0.2)
            return "answer"

        _run_threads(4, lambda: answer("what is a cache?"))
        assert len(calls) == 4

    def test_an_error_reaches_every_waiting_caller_and_is_not_cached(self) -> None:
        """When the shared computation raises, each concurrent caller gets the error and nothing is stored."""
        calls: list[str] = []
        errors: list[BaseException] = []

        @semantic_cached(backend=Cache("memory://"), embedder=Letters(), guards=(), judge=False)
        def answer(question: str) -> str:
            calls.append(question)
            time.sleep(0.2)
            raise RuntimeError("llm down")

        def ask() -> None:
            try:
                answer("what is a cache?")
            except RuntimeError as exc:
                errors.append(exc)

        _run_threads(4, ask)
        assert len(calls) == 1 and len(errors) == 4


class TestAsyncio:
    async def test_concurrent_identical_calls_compute_once(self) -> None:
        """Concurrent tasks asking the same question make one call; a later paraphrase reports its hit."""
        calls: list[str] = []

        @semantic_cached(backend=Cache("memory://"), embedder=Letters(), guards=(), judge=False, threshold=0.95)
        async def answer(question: str) -> str:
            calls.append(question)
            await asyncio.sleep(0.2)
            return f"answer to {question}"

        results = await asyncio.gather(*(answer("what is a cache?") for _ in range(8)))
        assert calls == ["what is a cache?"]
        assert set(results) == {"answer to what is a cache?"}
        assert await answer("What is a cache") == "answer to what is a cache?"
        hit = last_semantic_hit()
        assert hit is not None and hit.cached_query == "what is a cache?" and hit.query == "What is a cache"
