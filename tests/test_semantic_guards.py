"""Guards: look-alike questions are rejected, paraphrases pass, and the threshold floor holds."""

from __future__ import annotations

import pytest

from agentcache.errors import ConfigurationError
from agentcache.semantic import guards
from agentcache.semantic.checks import HitChecks
from agentcache.semantic.guards import (
    DEFAULT_GUARDS,
    DEFAULT_THRESHOLD,
    GUARDS_WITHOUT_JUDGE,
    NEGATION_OVERLAP,
    added_detail_guard,
    antonym_guard,
    check_guards,
    date_guard,
    effective_threshold,
    entity_guard,
    entity_swap_guard,
    minimal_negation_guard,
    negation_guard,
    number_guard,
    role_swap_guard,
)
from agentcache.semantic.pairjudge import word_overlap

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
    (antonym_guard, "How do I turn on dark mode?", "How do I turn off dark mode?"),
    (antonym_guard, "Are weekends included in the delivery estimate?", "Are weekends excluded from the estimate?"),
    (antonym_guard, "Who won the 2016 final?", "Who lost the 2016 final?"),
    (antonym_guard, "Which items are allowed in carry-on bags?", "Which items are forbidden in carry-on bags?"),
    (antonym_guard, "Does the price go up next year?", "Does the price go down next year?"),
    (role_swap_guard, "Translate this from French to Italian", "Translate this from Italian to French"),
    (role_swap_guard, "Convert 100 dollars to euros", "Convert 100 euros to dollars"),
    (number_guard, "Set an alarm for 7 am", "Set an alarm for 7 pm"),
    (number_guard, "Who won Super Bowl XII?", "Who won the 14th Super Bowl?"),
    (number_guard, "Who was the second president?", "Who was the third president?"),
    (entity_swap_guard, "What is the VAT rate in Germany?", "What is the VAT rate in Portugal?"),
    (entity_guard, "Flights from Oslo", "Flights from Oslo Gardermoen"),
    (number_guard, "Book the room for 3 pm", "Book the room for 4 pm"),
    (number_guard, "Wake me at 6:30 am", "Wake me at 7:30 am"),
    (number_guard, "Move the call to 15:00", "Move the call to 17:00"),
    (number_guard, "Is thirty-five too old to start coding?", "Is 36 too old to start coding?"),
    (number_guard, "Is 38,5 C a fever?", "Is 39,5 C a fever?"),
    (date_guard, "Any concerts this weekend?", "Any concerts next weekend?"),
    (date_guard, "Flights to Rome in Dec", "Flights to Rome in November"),
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
    # The same value written differently: ordinal, Roman numeral, cardinal, "3 pm" / "3pm".
    (number_guard, "What was the exchange rate on March 3rd?", "Exchange rate for March 3?"),
    (number_guard, "When did World War II end?", "When did the Second World War end?"),
    (number_guard, "When did World War II end?", "When did World War 2 end?"),
    (number_guard, "Schedule a meeting at 3pm.", "Set up a meeting at 3 pm."),
    (number_guard, "Set an alarm for 7 am.", "Can you set my alarm for seven a.m.?"),
    (number_guard, "How do I enable two-factor authentication?", "How can I turn on 2FA?"),
    (number_guard, "What are the early signs of type 2 diabetes?", "What are the first symptoms of type 2 diabetes?"),
    (role_swap_guard, "How do I add a user to the admin group?", "What's the way to put a user in the admin group?"),
    # A number or date on one side only is added context, left to the pair judge.
    (number_guard, "How do I run a backup every night?", "How do I run my backup at 2 am every night?"),
    (date_guard, "How do I get rid of a sore throat?", "My throat has hurt since yesterday. What helps?"),
    # One word changing its preposition is not two words trading roles.
    (role_swap_guard, "How do I SSH into an EC2 instance?", "connect to ec2 instance via ssh"),
    (role_swap_guard, "How do I copy a file from a Docker container to my host?", "docker cp from container to host"),
    (entity_swap_guard, "When did World War II end?", "What year did WWII end?"),
    # Clock times, compound number words, decimal commas and the 401(k) plan, written two ways.
    (number_guard, "Schedule the meeting for 3 pm tomorrow", "Schedule the meeting for tomorrow at 15:00"),
    (number_guard, "Set an alarm for 7 am", "Please set an alarm at 7 in the morning"),
    (number_guard, "alarm 6:30 tomorrow", "Set an alarm for 6:30 am tomorrow"),
    (number_guard, "At thirty-five, am I too old to learn to code?", "Is 35 too old to learn to code?"),
    (number_guard, "Is 38.5 C a fever?", "Does 38,5 C count as a fever?"),
    (number_guard, "Penalty for an early 401(k) withdrawal?", "early 401k withdrawal penalty"),
    # Dates: a month's abbreviation, "this Saturday" / "Saturday", "tonight" / "this evening".
    (date_guard, "Is the DMV open on December 26?", "DMV hours on Dec 26th?"),
    (date_guard, "Is the post office open on Saturday?", "Is the post office open this Saturday?"),
    (date_guard, "What films are on tonight?", "What films are on this evening?"),
    (date_guard, "Show my AWS bill for the previous month", "AWS costs for last month"),
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


@pytest.mark.parametrize(
    ("cached", "query"),
    [
        ("When did World War II end?", "What year did WWII end?"),
        ("How does a bill become law in the United States?", "Steps for a bill to become a US law?"),
        ("Best pizza in New York City?", "Where is the best pizza in NYC?"),
    ],
)
def test_an_acronym_matches_the_words_it_abbreviates(cached: str, query: str) -> None:
    """An all-caps acronym and the capitalized words it abbreviates are one entity, not a swap."""
    assert entity_swap_guard(cached, query) is None
    assert entity_swap_guard(query, cached) is None
    assert entity_swap_guard("Best pizza in New York City?", "Best pizza in LA?")


@pytest.mark.parametrize(
    ("cached", "query"),
    [
        ("How do I run a backup every night?", "How do I run my backup at 2 am every night?"),
        ("Book a table for dinner", "Book a table for dinner on Friday"),
    ],
)
def test_a_detail_on_one_side_only_is_left_to_the_judge(cached: str, query: str) -> None:
    """The default guards (used before the pair judge) let a one-sided number or date through; without the
    judge, `GUARDS_WITHOUT_JUDGE` vetoes it."""
    assert check_guards(DEFAULT_GUARDS, cached, query) is None
    assert added_detail_guard(cached, query) and added_detail_guard(query, cached)
    assert check_guards(GUARDS_WITHOUT_JUDGE, cached, query)


@pytest.mark.parametrize(
    ("cached", "query"),
    [
        ("Is ibuprofen ok on an empty stomach?", "can I take ibuprofen without eating anything first"),
        ("How do I get my toddler to sleep through the night?", "tips so my toddler doesn't wake up at night"),
    ],
)
def test_a_negation_inside_a_rewording_is_left_to_the_judge(cached: str, query: str) -> None:
    """With the judge on, a negation difference vetoes only a minimal pair; a reworded question whose negation is
    part of the rewording reaches the judge. Without the judge every negation difference is vetoed."""
    assert negation_guard(cached, query)
    assert minimal_negation_guard(cached, query) is None
    assert check_guards(DEFAULT_GUARDS, cached, query) is None
    assert check_guards(GUARDS_WITHOUT_JUDGE, cached, query) == "negation differs"


@pytest.mark.parametrize(
    ("cached", "query"),
    [
        ("Which plans include phone support?", "Which plans don't include phone support?"),
        ("Can I cancel my order after it ships?", "Can I not cancel my order after it ships?"),
        ("Is the API rate limited?", "Is the API never rate limited?"),
    ],
)
def test_a_negated_minimal_pair_is_vetoed_with_or_without_the_judge(cached: str, query: str) -> None:
    assert word_overlap(cached, query) >= NEGATION_OVERLAP
    assert check_guards(DEFAULT_GUARDS, cached, query) == "negation differs"
    assert check_guards(GUARDS_WITHOUT_JUDGE, cached, query) == "negation differs"


@pytest.mark.parametrize(
    ("cached", "query"),
    [
        ("How do I turn on dark mode?", "Steps to switch off dark mode"),
        ("Which foods raise blood pressure?", "what should I eat to lower my blood pressure"),
        ("How can I increase my credit score quickly?", "Things that lower your credit score fast"),
        ("Best pizza places in Chicago?", "Where can I find great pizza in New York?"),
        ("How do I enable two-factor login?", "How do I disable two-factor login?"),
        ("What is the VAT rate in Germany?", "What is the VAT rate in Portugal?"),
    ],
)
def test_opposite_words_or_other_names_are_vetoed_even_inside_a_rewording(cached: str, query: str) -> None:
    """Unlike a negation, opposite words and swapped names object with or without the judge, reworded or not: the
    judge scored such rewordings ("turn on" / "switch off dark mode") as paraphrases, though not as near-certain
    ones (`GUARD_OVERRIDE`), so a lookup refuses them."""
    assert check_guards(DEFAULT_GUARDS, cached, query)
    assert check_guards(DEFAULT_GUARDS, query, cached)
    assert check_guards(GUARDS_WITHOUT_JUDGE, cached, query)
    assert HitChecks("guards").decide(DEFAULT_GUARDS, cached, query, 0.0) == -1.0
