"""The pair judge, the wrong-answer budget, conversation context and shadow verification (real MiniLM)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.embedders import SameVector

import agentcache
from agentcache.backends.base import Item
from agentcache.decorators.semantic import last_semantic_hit, semantic_cached
from agentcache.engine.cache import Cache
from agentcache.errors import ConfigurationError, SerializationError
from agentcache.semantic import _minilm
from agentcache.semantic.budget import GUARD_OVERRIDE, MIN_CHECKS, RELATED, operating_point
from agentcache.semantic.checks import answers_match, notes_key
from agentcache.semantic.conversation import contexts_agree, pack, split_messages, unpack
from agentcache.semantic.guards import DEFAULT_GUARDS, check_guards
from agentcache.semantic.interaction import PARAMETERS, load_head, save_head
from agentcache.semantic.invalidation import invalidate_similar
from agentcache.semantic.pairjudge import FEATURES, decode_notes, encode_notes, get_judge, plain_text, word_weight
from agentcache.stats.counters import wilson


@pytest.fixture
def cache() -> Iterator[Cache]:
    c = Cache("memory://")
    yield c
    c.close()


def counting(cache: Cache, **options: Any) -> tuple[Any, list[str]]:
    calls: list[str] = []

    @semantic_cached(backend=cache, **options)
    def answer(question: str) -> str:
        calls.append(question)
        return f"answer to {question}"

    return answer, calls


class TestJudgeStage:
    def test_one_word_traps_are_computed_and_paraphrases_served(self, cache: Cache) -> None:
        """One-word traps that cosine + guards served (cosine >= 0.80) miss; a paraphrase still hits."""
        answer, calls = counting(cache)
        answer("What is the minimum age to rent a car?")
        trap = "What is the minimum age to buy a car?"  # cosine 0.87: served by cosine + guards alone
        assert answer(trap) == f"answer to {trap}"
        assert answer("How old do I have to be to rent a car?") == "answer to What is the minimum age to rent a car?"
        hit = last_semantic_hit()
        assert hit is not None and hit.cached_query == "What is the minimum age to rent a car?"
        assert len(calls) == 2

    def test_the_issues_trap_misses_at_defaults(self, cache: Cache) -> None:
        """ "deactivate" after "delete" (cosine 0.82) is computed at the default budget; "remove" is served."""
        answer, calls = counting(cache)
        answer("How do I delete my account?")
        assert answer("How do I deactivate my account?") == "answer to How do I deactivate my account?"
        assert answer("How can I remove my account?") == "answer to How do I delete my account?"
        assert len(calls) == 2

    def test_a_swapped_word_finds_no_counterpart_and_rare_words_weigh_more(self) -> None:
        """The measurements behind a rejection: the trap's differing word has no close counterpart in context
        (a synonym has one), and word weights follow vocabulary rank, not a word list."""
        judge = get_judge()
        best = FEATURES.index("unmatched_best")
        trap = judge.measure("How do I delete my account?", "How do I deactivate my account?")
        synonym = judge.measure("How do I restart the server?", "How do I reboot the server?")
        assert trap[best] < synonym[best]
        assert word_weight("the") < word_weight("how") < word_weight("account") < word_weight("deactivate") == 1.0
        needed = operating_point(0.05, judge.model.calibration).min_score
        assert judge.score("How do I restart the server?", "How do I reboot the server?") >= needed
        assert judge.score("How do I delete my account?", "How do I deactivate my account?") < needed

    def test_the_issues_trap_misses_under_a_two_percent_budget(self, cache: Cache) -> None:
        """ "deactivate" after "delete" (cosine 0.82, served before the judge) misses at max_wrong=0.02."""
        answer, calls = counting(cache, max_wrong=0.02)
        answer("How do I delete my account?")
        assert answer("How do I deactivate my account?") == "answer to How do I deactivate my account?"
        assert len(calls) == 2

    def test_judge_false_is_cosine_and_guards_only(self, cache: Cache) -> None:
        """`judge=False` restores the earlier behaviour (the trap is served at cosine 0.82 >= 0.80)."""
        answer, calls = counting(cache, judge=False)
        answer("How do I delete my account?")
        assert answer("How do I deactivate my account?") == "answer to How do I delete my account?"
        assert calls == ["How do I delete my account?"]

    @pytest.mark.parametrize(
        ("cached", "query"),
        [
            ("Can I drive in Canada with my US license?", "Is an American driving licence valid in Canada?"),
            ("Is it cheaper to fly on a Wednesday?", "are wednesday flights less expensive"),
        ],
    )
    def test_a_near_certain_judge_outweighs_a_built_in_guard_never_your_own(
        self, cache: Cache, cached: str, query: str
    ) -> None:
        """A built-in guard misreads some rewordings ("US" / "American" as two names, "cheaper" / "less expensive"
        as opposites): its objection raises the score needed to `GUARD_OVERRIDE` instead of refusing. The same
        check passed as your own guard refuses whatever the judge says."""
        assert check_guards(DEFAULT_GUARDS, cached, query) is not None
        assert get_judge().score(cached, query) >= GUARD_OVERRIDE
        answer, calls = counting(cache)
        answer(cached)
        assert answer(query) == f"answer to {cached}"
        assert calls == [cached]

        def mine(a: str, b: str) -> str | None:
            return check_guards(DEFAULT_GUARDS, a, b)

        strict, strict_calls = counting(cache, guards=(mine,), name="strict")
        strict(cached)
        assert strict(query) == f"answer to {query}"
        assert strict_calls == [cached, query]

    def test_a_guard_of_your_own_may_be_an_unhashable_callable(self, cache: Cache) -> None:
        """An instance of a dataclass with `__eq__` (so no `__hash__`) works as a guard: it vetoes what it objects
        to, and lets the rest through to the judge."""

        @dataclass
        class Banned:
            word: str

            def __call__(self, cached: str, query: str) -> str | None:
                return "banned" if self.word in query else None

        answer, calls = counting(cache, guards=(Banned("rent"),))
        answer("What is the minimum age to rent a car?")
        assert answer("How old do I have to be to rent a car?") == "answer to How old do I have to be to rent a car?"
        assert answer("How old must I be to hire a car?") == "answer to What is the minimum age to rent a car?"
        assert len(calls) == 2

    def test_without_the_judge_a_detail_on_one_side_only_is_vetoed(self, cache: Cache) -> None:
        """With `judge=False` the default guards are `GUARDS_WITHOUT_JUDGE`: a number or date that only the new
        question names is vetoed even when the vectors are identical; a user's own `guards=` are used as given."""
        answer, calls = counting(cache, judge=False, embedder=SameVector())
        first = "Book a table at the Italian place"
        answer(first)
        assert answer(f"{first} for Friday") == f"answer to {first} for Friday"
        assert answer(f"{first} for 2") == f"answer to {first} for 2"
        assert answer("Reserve a table at the Italian place") == f"answer to {first}"
        assert len(calls) == 3
        mine, mine_calls = counting(cache, judge=False, embedder=SameVector(), guards=DEFAULT_GUARDS, name="mine")
        mine(first)
        assert mine(f"{first} for 2") == f"answer to {first}"
        assert len(mine_calls) == 1

    @pytest.mark.asyncio
    async def test_an_async_verify_hook_runs_after_the_judge(self, cache: Cache) -> None:
        """A user `verify=` stays an extra stage: it sees only candidates the judge accepted."""
        seen: list[tuple[str, str]] = []

        async def verify(cached: str, query: str, similarity: float) -> bool:
            seen.append((cached, query))
            return False

        @semantic_cached(backend=cache, verify=verify)
        async def answer(question: str) -> str:
            return question

        await answer("What is the minimum age to rent a car?")
        await answer("What is the minimum age to buy a car?")  # the judge rejects it: verify never sees it
        assert seen == []
        paraphrase = "How old do I have to be to rent a car?"
        assert await answer(paraphrase) == paraphrase
        assert ("What is the minimum age to rent a car?", paraphrase) in seen


def _forget_model_memory() -> None:
    model = _minilm.get_model()
    with model._states_lock:
        model._states.clear()


def _read_by_model(text: str) -> bool:
    """Whether MiniLM ran on `text` since its memory was last emptied."""
    model = _minilm.get_model()
    with model._states_lock:
        return text in model._states


class TestJudgeNotes:
    CACHED = "How do I delete my account?"
    QUERY = "How can I delete my account?"

    def test_a_cold_lookup_reads_the_notes_instead_of_running_the_model_again(self, cache: Cache) -> None:
        """An entry stored with notes is judged from them: MiniLM reads only the new query."""
        answer, calls = counting(cache)
        answer(self.CACHED)
        notes = [e.key for e in cache.store.scan("") if ":semjudge:" in e.key]  # type: ignore[attr-defined]
        assert len(notes) == 1
        _forget_model_memory()
        assert answer(self.QUERY) == f"answer to {self.CACHED}"
        assert _read_by_model(self.QUERY) and not _read_by_model(self.CACHED)
        assert len(calls) == 1

    def test_without_notes_the_judge_runs_the_model_and_decides_the_same(self, cache: Cache) -> None:
        """Entries stored before notes existed (or whose notes are gone or damaged) still get judged."""
        answer, calls = counting(cache)
        answer(self.CACHED)
        (key,) = [e.key for e in cache.store.scan("") if ":semjudge:" in e.key]  # type: ignore[attr-defined]
        raw = cache.store.get(key)
        assert raw is not None
        cache.store.set_many([Item(key, raw[:-1] + bytes([raw[-1] ^ 1]), None, ())])  # one flipped bit
        _forget_model_memory()
        assert answer(self.QUERY) == f"answer to {self.CACHED}"
        assert _read_by_model(self.CACHED)
        cache.store.delete_many([key])
        _forget_model_memory()
        assert answer("How do I delete my account?!") == f"answer to {self.CACHED}"
        assert _read_by_model(self.CACHED)
        assert answer("How do I deactivate my account?") == "answer to How do I deactivate my account?"
        assert len(calls) == 2

    def test_notes_round_trip_within_int8_precision(self) -> None:
        """Decoded notes give the same features as the model's own states (to int8 rounding)."""
        judge = get_judge()
        texts = [self.CACHED, "Earlier turns: I'm on the Pro plan."]
        words = judge.words(texts)
        decoded = decode_notes("k", encode_notes("k", words))
        assert list(decoded) == texts
        for original in words:
            again = decoded[original.text]
            assert again.norm == original.norm
            assert float(abs(again.vectors - original.vectors).max()) < 0.01
        fresh = judge.measure(self.CACHED, self.QUERY)
        noted = judge.measure(self.CACHED, self.QUERY, notes=decoded)
        assert noted == pytest.approx(fresh, abs=0.01)
        with pytest.raises(SerializationError):
            decode_notes("another key", encode_notes("k", words))

    def test_invalidate_similar_and_cache_clear_delete_the_notes_too(self, cache: Cache) -> None:
        """Notes share the entry's TTL and tags and go with it: nothing of the entry is left behind."""
        answer, _ = counting(cache)
        answer(self.CACHED)
        assert invalidate_similar(self.CACHED, backend=cache) == 1
        assert [e.key for e in cache.store.scan("")] == []  # type: ignore[attr-defined]
        answer(self.CACHED)
        answer.cache_clear()
        assert [e.key for e in cache.store.scan("") if ":stats:" not in e.key] == []  # type: ignore[attr-defined]

    def test_notes_key_sits_outside_the_vector_records(self) -> None:
        """Notes must never be read as vector records (a partition lists its records by key prefix)."""
        record = "ac:v1:default:semvec:abc:0123"
        assert notes_key(record) == "ac:v1:default:semjudge:abc:0123"


class TestBudget:
    def test_a_smaller_budget_needs_a_higher_score_and_serves_less(self) -> None:
        """The operating point moves monotonically with `max_wrong` on the shipped calibration pairs."""
        calibration = get_judge().model.calibration
        points = [operating_point(b, calibration) for b in (0.2, 0.1, 0.05, 0.02)]
        scores = [p.min_score for p in points]
        served = [p.served_rate for p in points]
        assert scores == sorted(scores)
        assert served == sorted(served, reverse=True)
        assert all(p.wrong_rate <= p.max_wrong for p in points)

    def test_related_questions_are_budgeted_apart_from_traps(self) -> None:
        """`related` rows (another question on the same topic) and one-detail traps are each held to the
        budget: many easy related rows do not dilute the traps' rate, and high-scoring related rows raise the
        threshold even when every trap scores low."""
        paraphrases = [(0.9, 0.9, True, "paraphrase")] * 20
        one_trap_high = [(0.95, 0.9, False, "scope")] + [(0.1, 0.9, False, "scope")] * 18
        easy_related = [(0.0, 0.9, False, RELATED)] * 200
        assert operating_point(0.05, paraphrases + one_trap_high + easy_related).served_rate == 0.0
        pooled = [(s, c, y, "scope") for s, c, y, _ in paraphrases + one_trap_high + easy_related]
        assert operating_point(0.05, pooled).served_rate == 1.0
        low_traps = [(0.1, 0.9, False, "scope")] * 19
        assert operating_point(0.05, paraphrases + low_traps).served_rate == 1.0
        high_related = [(0.95, 0.9, False, RELATED)] * 50
        assert operating_point(0.05, paraphrases + low_traps + high_related).served_rate == 0.0

    def test_budget_is_validated(self, cache: Cache) -> None:
        with pytest.raises(ConfigurationError, match="max_wrong"):
            counting(cache, max_wrong=0.0)
        with pytest.raises(ConfigurationError, match="verify_sample"):
            counting(cache, verify_sample=2.0)

    def test_a_strict_budget_refuses_a_borderline_paraphrase(self, cache: Cache) -> None:
        """A paraphrase scored between two operating points hits under the loose budget only."""
        calibration = get_judge().model.calibration
        loose = operating_point(0.2, calibration)
        strict = operating_point(0.01, calibration)
        paraphrases = [  # the first scored between the two points is used (a refit moves the scores)
            ("What is the capital of France?", "What's the capital city of France?"),
            ("How tall is Mount Everest?", "How high is Mount Everest?"),
            ("How do I clean a leather sofa?", "How should I clean a leather couch?"),
        ]
        borderline = [p for p in paraphrases if loose.min_score <= get_judge().score(*p) < strict.min_score]
        assert borderline
        cached, query = borderline[0]
        for budget, expected in ((0.2, 1), (0.01, 2)):
            answer, calls = counting(Cache("memory://"), max_wrong=budget)
            answer(cached)
            answer(query)
            assert len(calls) == expected

    def test_wilson_interval(self) -> None:
        low, high = wilson(5, 100)
        assert 0.02 < low < 0.05 < high < 0.12
        assert wilson(0, 0) == (0.0, 1.0)


class TestShadowVerification:
    def test_sampled_hits_run_for_real_and_are_counted(self, cache: Cache, caplog: pytest.LogCaptureFixture) -> None:
        """With verify_sample=1 every semantic hit is checked; wrong answers show in stats with an interval,
        and the partition's budget is tightened once, logged once."""
        calls: list[str] = []

        @semantic_cached(backend=cache, embedder=SameVector(), guards=(), judge=False, verify_sample=1.0, name="shadow")
        def answer(question: str) -> str:
            calls.append(question)
            return f"answer to {question}"

        answer("q0")
        with caplog.at_level(logging.WARNING, logger="agentcache"):
            results = [answer(f"q{i}") for i in range(1, MIN_CHECKS + 5)]
        assert results == [f"answer to q{i}" for i in range(1, MIN_CHECKS + 5)]  # the real answers
        info = agentcache.stats().by_function["shadow"]
        assert info.shadow_checks == MIN_CHECKS + 4
        assert info.shadow_wrong == MIN_CHECKS + 4
        assert "shadow-checked semantic hits: 100.0% (95% CI" in str(agentcache.stats())
        tightened = [r for r in caplog.records if "shadow checks measured more wrong answers" in r.getMessage()]
        assert len(tightened) == 1

    def test_an_entry_caught_wrong_needs_a_higher_score(self, cache: Cache) -> None:
        """Per-entry evidence: once a shadow check finds an entry's answer wrong for a paraphrase at score s,
        that entry needs s + 0.05, so the same paraphrase is computed instead of served again."""
        calls: list[str] = []

        @semantic_cached(backend=cache, verify_sample=1.0, name="entry")
        def answer(question: str) -> str:
            calls.append(question)
            return f"answer {len(calls)}"

        answer("How do I delete my account?")
        answer("How can I delete my account?")  # a hit, shadow-checked: the answers differ
        answer("How can I delete my account?")  # the entry's own floor now refuses it: computed, not checked
        info = agentcache.stats().by_function["entry"]
        assert (info.shadow_checks, info.shadow_wrong) == (1, 1)
        assert len(calls) == 3

    def test_matching_answers_count_as_correct(self, cache: Cache) -> None:
        @semantic_cached(backend=cache, embedder=SameVector(), guards=(), judge=False, verify_sample=1.0, name="same")
        def answer(question: str) -> str:
            return "The answer is 42."

        answer("first")
        answer("second")
        info = agentcache.stats().by_function["same"]
        assert (info.shadow_checks, info.shadow_wrong) == (1, 0)

    def test_the_cli_shows_the_measured_rate(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Shadow counts travel in the stats snapshot: `agentcache stats` prints the rate and its interval."""
        from agentcache.cli.main import main

        url = f"sqlite://{tmp_path / 'shadow.db'}"

        @semantic_cached(backend=url, embedder=SameVector(), guards=(), judge=False, verify_sample=1.0, name="cli")
        def answer(question: str) -> str:
            return f"answer to {question}"

        answer("one")
        answer("two")
        agentcache.flush_stats()
        assert main(["--url", url, "stats"]) == 0
        assert "cli: 1 wrong of 1 shadow-checked semantic hits: 100.0% (95% CI" in capsys.readouterr().out
        assert main(["--url", url, "stats", "--json"]) == 0
        shadow = json.loads(capsys.readouterr().out)["stats"]["shadow"]["cli"]
        assert (shadow["checks"], shadow["wrong"]) == (1, 1) and 0.0 < shadow["ci_low"] < 1.0

    def test_comparators(self) -> None:
        assert answers_match("Paris.", " paris ", "normalized")
        assert not answers_match("Paris.", "paris", "exact")
        assert answers_match({"a": "X!"}, {"a": "x"}, "normalized")
        assert answers_match(1, 2, lambda a, b: True)


class TestConversation:
    def test_tool_history_stays_exact(self) -> None:
        """A history with tool calls/results is not read for meaning: it stays in the exact partition."""
        msgs = [
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
            {"role": "tool", "content": "sunny", "tool_call_id": "1"},
            {"role": "user", "content": "and tomorrow?"},
        ]
        found = split_messages(msgs)
        assert found is not None
        query, context, partition = found
        assert (query, context) == ("and tomorrow?", [])
        assert partition[:3] == msgs[:3]

    def test_small_talk_drops_out_and_the_subject_stays(self) -> None:
        msgs = [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "hi!"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "I'm on the Pro plan."},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "How do I upgrade my plan?"},
        ]
        found = split_messages(msgs)
        assert found is not None
        assert found[1] == ["I'm on the Pro plan."]
        assert found[2] == [msgs[0], {"role": "user", "content": "$query"}]

    def test_pack_round_trips_any_text(self) -> None:
        for query, context in (("q", []), ("q", ["a", "b"]), ("\x1eodd", []), ("x\x1ey", ["\x1e"])):
            assert unpack(pack(query, context)) == (query, context)
        assert pack("plain", []) == "plain"

    def test_a_different_detail_earlier_misses(self, cache: Cache) -> None:
        """Same last message, different plan named earlier: computed again; same plan reworded: served."""
        calls: list[str] = []

        @semantic_cached(backend=cache)
        def chat(messages: list[dict[str, str]]) -> str:
            calls.append(" / ".join(m["content"] for m in messages))
            return f"answer {len(calls)}"

        def ask(detail: str, question: str) -> str:
            turns = [{"role": "user", "content": detail}, {"role": "assistant", "content": "Noted."}]
            return chat([*turns, {"role": "user", "content": question}])

        first = ask("I'm on the Pro plan.", "How do I upgrade my plan?")
        assert ask("I'm on the Free plan.", "How do I upgrade my plan?") != first
        assert ask("I am on the Pro plan.", "How can I upgrade my plan?") == first
        assert len(calls) == 2

    @staticmethod
    def _chat(cache: Cache) -> tuple[Any, list[str]]:
        calls: list[str] = []

        @semantic_cached(backend=cache)
        def chat(messages: list[dict[str, str]]) -> str:
            calls.append(messages[-1]["content"])
            return f"answer {len(calls)}"

        return chat, calls

    @staticmethod
    def _turns(*contents: str) -> list[dict[str, str]]:
        return [{"role": ("user", "assistant")[i % 2], "content": c} for i, c in enumerate(contents)]

    def test_a_subject_set_earlier_counts_without_a_pronoun(self, cache: Cache) -> None:
        """The same self-contained last message about another subject is computed again: the earlier turns
        are read whatever the query's wording (before, a query with no pronoun dropped them)."""
        chat, calls = self._chat(cache)
        reply = "A good choice: it is fast."
        chat(self._turns("Tell me about the Rust language.", reply, "What's the best way to get started?"))
        chat(self._turns("Tell me about the Go language.", reply, "What's the best way to get started?"))
        assert len(calls) == 2

    def test_a_reworded_follow_up_hits_with_or_without_its_pronoun(self, cache: Cache) -> None:
        """A follow-up reworded in the same chat is served, whether it says "it" or names the subject (the
        lookup searches with the query alone and read with the turn before it)."""
        chat, calls = self._chat(cache)
        history = ("Tell me about the Eiffel Tower.", "A wrought-iron tower in Paris, finished in 1889.")
        first = chat(self._turns(*history, "How tall is it?"))
        assert chat(self._turns(*history, "What is its height?")) == first
        assert chat(self._turns(*history, "what's the height of the eiffel tower?")) == first
        assert len(calls) == 1

    def test_the_same_question_after_unrelated_turns_hits(self, cache: Cache) -> None:
        """Small talk, or an unrelated turn that does not bear on the question, does not stop a hit."""
        chat, calls = self._chat(cache)
        first = chat(self._turns("What's the capital of France?"))
        assert chat(self._turns("Nice weather today.", "It is lovely out.", "What's the capital of France?")) == first
        assert chat(self._turns("hi there!", "Hello! How can I help?", "What is the capital city of France?")) == first
        assert len(calls) == 1

    def test_contexts_agree_pairs_turns_and_tolerates_only_unrelated_extra_ones(self) -> None:
        """A turn replaced on both sides never agrees; an extra turn agrees unless it bears on the query."""
        differ = lambda a, b: False  # noqa: E731
        assert contexts_agree(("q?", ["Tell me about Rust."]), ("q?", ["tell me about rust"]), differ)
        assert not contexts_agree(
            ("How do I install it?", ["Rust."]), ("How do I install it?", ["Go."]), lambda a, b: a == b
        )
        assert contexts_agree(
            ("What is the capital of France?", []), ("What is the capital of France?", ["Nice weather today."]), differ
        )
        assert not contexts_agree(
            ("How do I upgrade my plan?", []), ("How do I upgrade my plan?", ["I'm on the Pro plan."]), differ
        )
        assert not contexts_agree(
            ("How do I install it?", []), ("How do I install it?", ["Tell me about Rust."]), differ
        )


@settings(max_examples=50, deadline=None)
@given(a=st.text(max_size=60), b=st.text(max_size=60))
def test_the_judge_scores_any_text_pair(a: str, b: str) -> None:
    """Any two strings (empty, control characters, emoji) get a score in [0, 1]; identical strings get 1."""
    judge = get_judge()
    assert 0.0 <= judge.score(a, b) <= 1.0
    assert judge.score(a, a) == 1.0


class TestInteractionModel:
    """The judge's second model, which reads both texts' words against each other (shipped as float32 arrays)."""

    def test_the_shipped_arrays_round_trip_without_pickle(self, tmp_path: Path) -> None:
        head = load_head()
        path = tmp_path / "head.npz"
        save_head(head, path)
        again = load_head(path)
        assert len(again.members) == len(head.members) >= 2
        for member, loaded in zip(head.members, again.members, strict=True):
            for name in PARAMETERS:
                assert np.array_equal(np.asarray(getattr(member, name)), np.asarray(getattr(loaded, name)))
        with np.load(path, allow_pickle=False) as data:
            assert {data[name].dtype for name in PARAMETERS} == {np.dtype(np.float32)}

    def test_the_score_is_the_members_mean(self) -> None:
        """The shipped model averages interaction models fitted from different seeds; they differ."""
        judge = get_judge()
        a, b = judge.read("What is the capital of France?", "What's the capital city of France?")
        row = [0.0] * len(FEATURES)
        weights = [np.ones(len(w.norm), dtype=np.float32) for w in (a, b)]
        scores = [m.score(a.vectors, weights[0], b.vectors, weights[1], row) for m in judge.model.head.members]
        assert len(set(scores)) == len(scores)
        assert judge.model.head.score(a.vectors, weights[0], b.vectors, weights[1], row) == pytest.approx(
            sum(scores) / len(scores)
        )

    def test_a_missing_or_damaged_file_is_a_clear_error(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigurationError, match="interaction model"):
            load_head(tmp_path / "absent.npz")
        (tmp_path / "junk.npz").write_bytes(b"not a zip")
        with pytest.raises(ConfigurationError, match="interaction model"):
            load_head(tmp_path / "junk.npz")
        np.savez(tmp_path / "partial.npz", proj_w=np.zeros((2, 2), dtype=np.float32))
        with pytest.raises(ConfigurationError, match="interaction model"):
            load_head(tmp_path / "partial.npz")
        arrays = {name: np.zeros((2, 1), dtype=np.float32) for name in PARAMETERS} | {"tau": np.zeros(3)}
        np.savez(tmp_path / "uneven.npz", **arrays)
        with pytest.raises(ConfigurationError, match="one row per member"):
            load_head(tmp_path / "uneven.npz")

    def test_it_reads_the_words_not_only_the_measurements(self) -> None:
        """Same measurements, different words: the interaction model's score moves (it is not a constant of the
        features), and the judge's score is the mean of both models."""
        judge = get_judge()
        a, b = judge.read("How do I delete my account?", "How do I deactivate my account?")
        _, c = judge.read("How do I delete my account?", "How can I remove my account?")
        model = judge.model
        row = [0.0] * len(FEATURES)
        weights = [np.ones(len(w.norm), dtype=np.float32) for w in (a, b, c)]
        trap = model.head.score(a.vectors, weights[0], b.vectors, weights[1], row)
        synonym = model.head.score(a.vectors, weights[0], c.vectors, weights[2], row)
        assert trap != pytest.approx(synonym, abs=1e-3)
        assert model.score(a, c) > model.score(a, b)

    def test_an_empty_side_scores_zero(self) -> None:
        head = load_head()
        empty = np.zeros((0, 384), dtype=np.float32)
        word = np.ones((1, 384), dtype=np.float32) / np.sqrt(384)
        one = np.ones(1, dtype=np.float32)
        assert head.score(empty, one[:0], word, one, [0.0] * len(FEATURES)) == 0.0

    def test_a_pair_below_the_floor_is_not_scored(self) -> None:
        """Turn pairing asks for the cosine first: a pair too far apart gets -1 without running the models."""
        judge = get_judge()
        cosine, score = judge.rate("How do I delete my account?", "What is the capital of France?")
        assert cosine < 0.5 and 0.0 <= score <= 1.0
        assert judge.rate("How do I delete my account?", "What is the capital of France?", floor=0.5) == (cosine, -1.0)


def test_the_same_text_but_for_case_spacing_or_the_closing_mark_scores_one() -> None:
    """The models never saw a pair of one text written twice; such a pair is scored 1 without them. Any other
    character difference ("==" / "!=") still goes to the models."""
    judge = get_judge()
    assert plain_text("  What is the capital  of France? ") == "what is the capital of france"
    a, b = judge.read("What is the capital of France?", "what is the capital of france")
    assert judge.model.score(a, b) == 1.0
    a, b = judge.read("What does == mean in JavaScript?", "What does != mean in JavaScript?")
    assert judge.model.score(a, b) < 1.0
