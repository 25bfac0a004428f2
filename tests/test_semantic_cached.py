"""@semantic_cached: paraphrases hit within a partition, never across; removed entries are never served."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.embedders import SameVector

from agentcache.decorators.semantic import invalidate_similar, last_semantic_hit, semantic_cached
from agentcache.engine.cache import Cache
from agentcache.semantic import guards
from agentcache.semantic.query import split_query, split_query_context


@pytest.fixture
def sqlite_cache(tmp_path: Path) -> Iterator[Cache]:
    """A Cache on a private SQLite file."""
    c = Cache(f"sqlite://{tmp_path / 'sem.db'}")
    yield c
    c.close()


class TestRealModel:
    def test_paraphrase_hits_and_look_alike_misses(self, sqlite_cache: Cache) -> None:
        """A paraphrase is served with its similarity; the France/Spain look-alike is computed."""
        calls: list[str] = []

        @semantic_cached(backend=sqlite_cache)
        def answer(question: str) -> str:
            calls.append(question)
            return f"answer to {question}"

        first = answer("What is the capital of France?")
        assert last_semantic_hit() is None
        assert answer("Can you tell me the capital of France?") == first
        hit = last_semantic_hit()
        assert hit is not None and 0.8 <= hit.similarity < 1.0
        assert hit.cached_query == "What is the capital of France?"
        # the judge's score, at least what the default budget needs (0.62 on the shipped calibration table)
        assert hit.score is not None and 0.62 <= hit.score <= 1.0
        assert answer("What is the capital of France?") == first  # exact: no judge ran
        exact = last_semantic_hit()
        assert exact is not None and (exact.similarity, exact.score) == (1.0, None)
        answer("What is the capital of Spain?")
        answer("How do I delete a virtual environment in Python?")
        assert answer("How do I create a virtual environment in Python?") != answer(
            "How do I delete a virtual environment in Python?"
        )
        assert calls == [
            "What is the capital of France?",
            "What is the capital of Spain?",
            "How do I delete a virtual environment in Python?",
            "How do I create a virtual environment in Python?",
        ]

    def test_vectors_survive_a_restart(self, tmp_path: Path) -> None:
        """With SQLite the vectors live in the same file: a new store rebuilds its index and hits."""
        url = f"sqlite://{tmp_path / 'restart.db'}"
        calls: list[str] = []

        def make(cache: Cache) -> Any:
            @semantic_cached(backend=cache, name="restart.answer")
            def answer(question: str) -> str:
                calls.append(question)
                return question.upper()

            return answer

        first, second = Cache(url), Cache(url)
        make(first)("How do I reset my password?")
        first.close()
        assert make(second)("How can I reset my password?") == "HOW DO I RESET MY PASSWORD?"
        assert calls == ["How do I reset my password?"]
        second.close()

    def test_invalidate_similar_removes_only_close_entries(self, sqlite_cache: Cache) -> None:
        """invalidate_similar deletes entries near the text and leaves unrelated ones."""
        calls: list[str] = []

        @semantic_cached(backend=sqlite_cache)
        def answer(question: str) -> str:
            calls.append(question)
            return question

        answer("What is your refund policy?")
        answer("Which cities do you ship to?")
        assert invalidate_similar("refund policy", threshold=0.6, backend=sqlite_cache) == 1
        answer("What is your refund policy?")
        answer("Which cities do you ship to?")
        assert calls == ["What is your refund policy?", "Which cities do you ship to?", "What is your refund policy?"]


PARTITION = st.fixed_dictionaries(
    {
        "tenant": st.sampled_from(["acme", "globex"]),
        "model": st.sampled_from(["gpt-a", "gpt-b"]),
        "system": st.sampled_from(["You are terse.", "You are verbose."]),
        "tools": st.sampled_from([(), ("search",), ("search", "sql")]),
    }
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=PARTITION, b=PARTITION, q1=st.text(min_size=1, max_size=20), q2=st.text(min_size=1, max_size=20))
def test_partition_isolation(tmp_path: Path, a: dict[str, Any], b: dict[str, Any], q1: str, q2: str) -> None:
    """With identical vectors for every text, a hit happens exactly when tenant, model, prompt and tools match."""
    cache = Cache("memory://")
    calls: list[str] = []

    @semantic_cached(
        backend=cache, embedder=SameVector(), guards=(), judge=False, namespace=lambda messages, **kw: kw["tenant"]
    )
    def chat(messages: list[dict[str, str]], *, tenant: str, model: str, tools: tuple[str, ...]) -> str:
        calls.append(messages[-1]["content"])
        return f"{tenant}/{model}/{messages[0]['content']}/{tools}"

    def ask(p: dict[str, Any], q: str) -> str:
        msgs = [{"role": "system", "content": p["system"]}, {"role": "user", "content": q}]
        return chat(msgs, tenant=p["tenant"], model=p["model"], tools=p["tools"])

    first = ask(a, q1)
    second = ask(b, q2)
    if a == b:
        assert second == first
        assert len(calls) == 1
    else:
        assert len(calls) == 2
        assert second == f"{b['tenant']}/{b['model']}/{b['system']}/{b['tools']}"
    cache.close()


class TestRemoval:
    def test_expired_entries_are_never_served(self, memory_clock: Any) -> None:
        """After the TTL, a paraphrase misses and the stale vector leaves the local index."""
        cache = Cache("memory://")
        calls: list[str] = []

        @semantic_cached(backend=cache, embedder=SameVector(), guards=(), judge=False, ttl=10)
        def answer(question: str) -> str:
            calls.append(question)
            return question

        answer("one")
        memory_clock.advance(9.9)
        assert answer("two") == "one"
        memory_clock.advance(0.2)
        assert answer("two") == "two"
        assert calls == ["one", "two"]

    def test_lru_evicted_entries_are_never_served(self) -> None:
        """An entry evicted by the store's LRU is not served from its leftover vector."""
        cache = Cache("memory://?max_entries=2")
        calls: list[str] = []

        @semantic_cached(backend=cache, embedder=SameVector(), guards=(), judge=False, namespace=lambda q: q[0])
        def answer(q: str) -> str:
            calls.append(q)
            return q

        answer("a1")
        answer("b1")  # evicts a1's entry and/or vector (2 records per answer, 2 slots)
        assert answer("a2") == "a2"
        assert calls == ["a1", "b1", "a2"]

    def test_cache_invalidate_removes_the_semantic_hit(self) -> None:
        """Invalidating the original call stops its paraphrases from hitting."""
        cache = Cache("memory://")

        @semantic_cached(backend=cache, embedder=SameVector(), guards=(), judge=False)
        def answer(question: str) -> str:
            return question

        answer("original")
        assert answer("paraphrase") == "original"
        assert answer.cache_invalidate("original")
        assert answer("paraphrase") == "paraphrase"


class TestPolicy:
    def test_guards_and_threshold_floor_apply(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A guard veto and a floor above the similarity both turn a candidate into a miss."""
        cache = Cache("memory://")

        @semantic_cached(backend=cache, embedder=SameVector())
        def answer(question: str) -> str:
            return question

        answer("refund within 30 days")
        assert answer("refund within 60 days") == "refund within 60 days"  # number guard
        assert answer("refunds within 30 days") == "refund within 30 days"
        guards.set_threshold_floor(1.0)
        try:

            @semantic_cached(backend=cache, embedder=SameVector(), guards=(), judge=False, threshold=0.1)
            def strict(question: str) -> str:
                return question

            strict("x")
            assert strict("y") == "x"  # identical vectors: cosine 1.0 still meets the floor
        finally:
            guards.set_threshold_floor(None)

    async def test_async_face_with_async_verifier(self) -> None:
        """The async face runs the same flow; an async verifier can veto a hit."""
        cache = Cache("memory://")
        verdicts: list[tuple[str, str]] = []

        async def judge(cached: str, query: str, similarity: float) -> bool:
            verdicts.append((cached, query))
            return "ok" in query

        @semantic_cached(backend=cache, embedder=SameVector(), guards=(), judge=False, verify=judge)
        async def answer(question: str) -> str:
            return question

        await answer("first")
        assert await answer("ok then") == "first"
        assert await answer("nope") == "nope"
        assert verdicts[0] == ("first", "ok then")


class TestQuerySplit:
    def test_last_user_message_is_the_query(self) -> None:
        """With chat messages, the last user message is the query; the system prompt stays in the partition,
        the earlier plain turns it leans on become its context."""
        msgs = [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "Tell me about Rust."},
            {"role": "assistant", "content": "A systems language."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": [{"type": "text", "text": "what now?"}]},
        ]
        text, context, rest = split_query_context({"messages": msgs, "model": "m"})
        assert text == "what now?"
        assert context == ["Tell me about Rust."]  # the earlier user turns, small talk left out
        assert rest["model"] == "m"
        assert rest["messages"] == [msgs[0], {"role": "user", "content": "$query"}]
        assert split_query({"messages": msgs})[0] == "what now?"

    def test_named_and_inferred_queries(self) -> None:
        """query= names the argument; otherwise a conventional name or the only str argument is used."""
        assert split_query({"user_id": "u", "question": "q?"}) == ("q?", {"user_id": "u"})
        assert split_query({"a": "x", "b": "y"}, "b") == ("y", {"a": "x"})
        assert split_query({"n": 3, "body": "t"}) == ("t", {"n": 3})
        from agentcache.errors import ConfigurationError

        with pytest.raises(ConfigurationError, match="query="):
            split_query({"a": "x", "b": "y"})


class BrokenEmbedder(SameVector):
    """An embedder whose service is down."""

    def embed(self, texts: Sequence[str], /) -> list[list[float]]:
        raise ConnectionError("embedding service unreachable")


def test_embedder_outage_degrades_to_exact_caching(caplog: pytest.LogCaptureFixture) -> None:
    """A failing embedder never fails the call: results are computed and exact repeats still hit."""
    calls: list[str] = []

    @semantic_cached(backend=Cache("memory://"), embedder=BrokenEmbedder())
    def answer(question: str) -> str:
        calls.append(question)
        return question

    assert answer("q") == "q"
    assert answer("q") == "q"
    assert answer("q2") == "q2"
    assert calls == ["q", "q2"]
    assert answer.cache_info().errors >= 1
