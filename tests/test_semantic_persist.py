"""Persisted ANN indexes: a restart reloads the saved HNSW graph and reconciles it with the backend."""

from __future__ import annotations

import hashlib
import importlib.util
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from agentcache.decorators.semantic import last_semantic_hit, semantic_cached
from agentcache.engine.cache import Cache
from agentcache.semantic import partitions, persist
from agentcache.semantic.usearch_index import USearchIndex

# Not importorskip: importing usearch before onnxruntime crashes the process (see usearch_index._usearch).
pytestmark = pytest.mark.skipif(importlib.util.find_spec("usearch") is None, reason="usearch is not installed")


class HashEmbedder:
    """Each text (ignoring a trailing '?') gets its own random unit vector: only a re-asked text is close."""

    model = "hash-16"
    dim = 16

    def embed(self, texts: Sequence[str], /) -> list[list[float]]:
        out = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.rstrip("?").encode()).digest()[:8], "little")
            rng = random.Random(seed)
            out.append([rng.gauss(0.0, 1.0) for _ in range(self.dim)])
        return out

    async def aembed(self, texts: Sequence[str], /) -> list[list[float]]:
        return self.embed(texts)


def make(cache: Cache, calls: list[str]) -> Any:
    """The cached function every "process" of these tests runs (one tag per question number)."""

    @semantic_cached(
        backend=cache,
        name="persist.answer",
        embedder=HashEmbedder(),
        guards=(),
        judge=False,
        tags=lambda question: [f"q{question.rstrip('?').split()[-1]}"],
    )
    def answer(question: str) -> str:
        calls.append(question)
        return f"answer {question}"

    return answer


@pytest.fixture(autouse=True)
def _small_crossover(monkeypatch: pytest.MonkeyPatch) -> None:
    """Move partitions to HNSW past 50 entries, so a small test exercises the persisted graph."""
    monkeypatch.setattr(partitions, "ANN_SWITCH_AT", 50)


def _part(cache: Cache) -> partitions.Partition:
    (part,) = partitions.loaded_partitions(cache.store)
    return part


class TestRestart:
    def test_restart_loads_the_saved_graph_and_reconciles_changes_made_meanwhile(self, tmp_path: Path) -> None:
        """Entries removed or added while a process was away are reflected after it reloads its saved index."""
        url = f"sqlite://{tmp_path / 'cache.db'}"
        calls: list[str] = []
        first = Cache(url)
        answer = make(first, calls)
        for i in range(120):
            answer(f"question {i}")
        assert isinstance(_part(first).index.inner, USearchIndex)
        assert persist.save_indexes() == 1
        assert list((tmp_path / "cache.db.semantic").glob("*.usearch"))
        first.invalidate(tags=["q3"])  # removed while the next process is away
        answer("question 500")  # added while it is away
        first.close()

        second = Cache(url)
        again = make(second, calls)
        before = len(calls)
        assert again("question 7?") == "answer question 7"
        assert partitions.settle(timeout=60)  # the loaded index is reconciled on a background thread
        part = _part(second)
        assert part.origin == "file" and isinstance(part.index.inner, USearchIndex)
        listed = {e.key for e in second.store.inner.scan(part.prefix)}  # type: ignore[attr-defined]
        assert set(part.meta) == listed and len(listed) == 120  # 120 - "question 3" + "question 500"
        assert again("question 500?") == "answer question 500"
        hit = last_semantic_hit()
        assert hit is not None and hit.cached_query == "question 500"
        again("question 3?")
        assert calls[before:] == ["question 3?"]
        second.close()

    def test_unusable_saved_graph_is_rebuilt_from_the_backend(self, tmp_path: Path) -> None:
        """A damaged index file costs a rebuild from the backend, never a failed or wrong lookup."""
        url = f"sqlite://{tmp_path / 'cache.db'}"
        calls: list[str] = []
        first = Cache(url)
        answer = make(first, calls)
        for i in range(60):
            answer(f"question {i}")
        assert persist.save_indexes() == 1
        first.close()
        for graph in (tmp_path / "cache.db.semantic").glob("*.usearch"):
            graph.write_bytes(b"not a graph")

        second = Cache(url)
        assert make(second, calls)("question 5?") == "answer question 5"
        part = _part(second)
        assert part.origin == "scan" and len(part.meta) == 60
        second.close()

    def test_memory_store_indexes_are_not_persisted(self) -> None:
        """A memory store does not survive a restart, so its indexes are never written to disk."""
        cache = Cache("memory://")
        answer = make(cache, [])
        for i in range(60):
            answer(f"question {i}")
        assert persist.index_dir(cache.store) is None
        assert persist.save_indexes() == 0
