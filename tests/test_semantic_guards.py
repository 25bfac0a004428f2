"""Guards: look-alike questions are rejected, paraphrases pass, and the threshold floor holds."""

from __future__ import annotations

import pytest

from agentcache.errors import ConfigurationError
from agentcache.semantic import guards
from agentcache.semantic.guards import (
    DEFAULT_GUARDS,
    DEFAULT_THRESHOLD,
    antonym_guard,
    check_guards,
    date_guard,
    effective_threshold,
    entity_guard,
    entity_swap_guard,
    negation_guard,
    number_guard,
    role_swap_guard,
)

REJECTED = [
    (number_guard, "How do I get a refund within 30 days?", "How do I get a refund within 60 days?"),
    (number_guard, "Show me the top five restaurants", "Show me the top 3 restaurants"),
    (number_guard, "Who won Super Bowl XII?", "Who won Super Bowl XIV?"),
    (number_guard, "Summarize chapter 2", "Summarize chapter 2.5"),
    (date_guard, "Book a table for Friday evening", "Book a table for Saturday evening"),
    (date_guard, "What meetings do I have tomorrow?", "What meetings do I have next week?"),
    (negation_guard, "Which plans include phone support?", "Which plans don't include phone support?"),
    (negation_guard, "Is the API rate limited?", "Is the API never rate limited?"),
    (antonym_guard, "How do I enable two-factor login?", "How do I disable two-factor login?"),
    (antonym_guard, "Sort the orders in ascending order", "Sort the orders in descending order"),
    (role_swap_guard, "Translate this from French to Italian", "Translate this from Italian to French"),
    (entity_swap_guard, "What is the VAT rate in Germany?", "What is the VAT rate in Portugal?"),
    (entity_guard, "Flights from Oslo", "Flights from Oslo Gardermoen"),
]

ACCEPTED = [
    (number_guard, "Give me three tips for sleep", "Give me 3 tips for sleep"),
    (number_guard, "Price of 1,000 shares", "price of 1000 shares"),
    (number_guard, "How does one learn to cook?", "How do I learn to cook?"),
    (negation_guard, "Is coffee bad for you or not?", "Is coffee bad for you?"),
    (negation_guard, "Why can't my app connect?", "Why is my app not connecting?"),
    (antonym_guard, "How do I start a business?", "How can I start my own business?"),
    (role_swap_guard, "Email to my landlord about a leak", "Write an email to my landlord about a leak"),
    (entity_swap_guard, "Best museums in Vienna?", "Which museums in vienna are the best?"),
    (entity_swap_guard, "What do Canadians eat for breakfast?", "Typical breakfast of a Canadian?"),
    (entity_swap_guard, "Is Rust memory safe?", "Is the Rust language memory-safe?"),
    (entity_swap_guard, "Tell me about Hillary Clinton", "Tell me about Hilary Clinton"),
    (entity_swap_guard, "Flights from Oslo", "Flights from Oslo Gardermoen"),
]


@pytest.mark.parametrize(("guard", "cached", "query"), REJECTED)
def test_guard_rejects_look_alikes(guard: guards.Guard, cached: str, query: str) -> None:
    """Each guard rejects its kind of look-alike pair, in both directions, with a reason."""
    assert guard(cached, query)
    assert guard(query, cached)


@pytest.mark.parametrize(("guard", "cached", "query"), ACCEPTED)
def test_guard_accepts_paraphrases(guard: guards.Guard, cached: str, query: str) -> None:
    """Each guard lets a paraphrase through, in both directions."""
    assert guard(cached, query) is None
    assert guard(query, cached) is None


def test_default_guards_reject_the_capital_question() -> None:
    """The canonical failure of semantic caches (France vs Spain) is rejected by the defaults."""
    assert check_guards(DEFAULT_GUARDS, "What is the capital of France?", "What is the capital of Spain?")
    assert check_guards(DEFAULT_GUARDS, "What's the capital of France?", "capital city of France?") is None


def test_check_guards_runs_custom_guards_in_order() -> None:
    """A custom guard plugs in beside the defaults and its reason is reported."""
    calls: list[str] = []

    def no_medical(cached: str, query: str, /) -> str | None:
        calls.append(query)
        return "medical" if "dose" in query else None

    assert check_guards([no_medical], "a", "what dose of x") == "medical"
    assert check_guards([number_guard, no_medical], "1", "2") is not None
    assert calls == ["what dose of x"]


class TestThresholdFloor:
    def test_default_and_requested(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without a floor the requested threshold (or the default) is used as is."""
        monkeypatch.delenv("AGENTCACHE_SEMANTIC_FLOOR", raising=False)
        guards.set_threshold_floor(None)
        assert effective_threshold(None) == DEFAULT_THRESHOLD
        assert effective_threshold(0.5) == 0.5

    def test_floor_wins_over_lower_requests(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A deployment floor raises any lower per-call threshold, from code or the environment."""
        monkeypatch.setenv("AGENTCACHE_SEMANTIC_FLOOR", "0.9")
        guards.set_threshold_floor(None)
        assert effective_threshold(0.5) == 0.9
        assert effective_threshold(0.95) == 0.95
        guards.set_threshold_floor(0.93)
        try:
            assert effective_threshold(0.5) == 0.93
        finally:
            guards.set_threshold_floor(None)

    def test_out_of_range_values_raise(self) -> None:
        """Thresholds and floors outside [0, 1] raise ConfigurationError."""
        with pytest.raises(ConfigurationError):
            effective_threshold(1.5)
        with pytest.raises(ConfigurationError):
            guards.set_threshold_floor(-0.1)
