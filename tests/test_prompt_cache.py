"""Breakpoint placement, OpenAI cache keys and the net-savings ledger of `agentcache.decorators.prompt`."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from agentcache.decorators import prompt as pc
from agentcache.usage import Usage

BIG = "lorem ipsum dolor sit amet " * 300  # ~2000 tokens
SMALL = "Be brief."


def request(**extra: Any) -> dict[str, Any]:
    """A Sonnet request with a big system prompt and a two-turn conversation."""
    base: dict[str, Any] = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 100,
        "system": BIG,
        "messages": [
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": "second question"},
        ],
    }
    base.update(extra)
    return base


class TestMinimums:
    @pytest.mark.parametrize(
        ("model", "minimum"),
        [
            ("claude-sonnet-4-6", 1024),
            ("claude-opus-4-1", 1024),
            ("claude-3-5-haiku-latest", 2048),
            ("claude-haiku-4-5", 4096),
            ("claude-opus-4-5-20251101", 4096),
        ],
    )
    def test_per_model_minimum(self, model: str, minimum: int) -> None:
        """Each model family has its documented minimum cacheable prefix."""
        assert pc.min_cacheable_tokens(model) == minimum

    def test_token_approximation(self) -> None:
        """Tokens are approximated at four characters each."""
        assert pc.approx_tokens("abcd" * 10) == 10
        assert pc.approx_tokens("abcde") == 2


class TestAnthropicPlacement:
    def test_system_and_conversation_get_breakpoints(self) -> None:
        """The system prompt and the turn before the newest get breakpoints; the caller's dict is untouched."""
        original = request()
        before = copy.deepcopy(original)
        out, report = pc.place_anthropic_breakpoints(original)
        assert original == before
        assert out["system"][-1]["cache_control"] == {"type": "ephemeral"}
        assert out["messages"][1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
        assert "cache_control" not in out["messages"][2]["content"][-1]
        assert [label for label, _ in report.placed] == ["system", "message[1]"]

    def test_tools_get_a_breakpoint_on_the_last_tool(self) -> None:
        """Tools form the head of the prefix: the last tool carries the breakpoint."""
        tools = [{"name": f"t{i}", "input_schema": {"type": "object", "description": BIG}} for i in range(2)]
        out, report = pc.place_anthropic_breakpoints(request(tools=tools))
        assert "cache_control" in out["tools"][-1]
        assert "cache_control" not in out["tools"][0]
        assert report.placed[0][0] == "tools"

    def test_short_prefix_is_reported_not_placed(self) -> None:
        """A candidate below the minimum gets no breakpoint and a PromptCacheWarning names it."""
        with pytest.warns(pc.PromptCacheWarning, match="system"):
            out, report = pc.place_anthropic_breakpoints(request(system=SMALL))
        assert "cache_control" not in out["system"][-1]
        assert report.too_short[0][0] == "system"

    def test_haiku_needs_a_longer_prefix(self) -> None:
        """A 2000-token prefix is cacheable on Sonnet but below Haiku 4.5's 4096 minimum."""
        with pytest.warns(pc.PromptCacheWarning):
            _, report = pc.place_anthropic_breakpoints(request(model="claude-haiku-4-5"))
        assert report.placed == ()
        assert report.minimum == 4096

    def test_at_most_four_breakpoints(self) -> None:
        """Existing breakpoints count against the limit of four."""
        control = {"type": "ephemeral"}
        messages = [
            {"role": "user", "content": [{"type": "text", "text": BIG, "cache_control": control}]},
            {"role": "assistant", "content": [{"type": "text", "text": BIG, "cache_control": control}]},
            {"role": "user", "content": [{"type": "text", "text": BIG, "cache_control": control}]},
            {"role": "assistant", "content": [{"type": "text", "text": BIG}]},
            {"role": "user", "content": "now?"},
        ]
        out, report = pc.place_anthropic_breakpoints(request(messages=messages))
        total = sum("cache_control" in b for m in out["messages"] for b in m["content"])
        total += sum("cache_control" in b for b in out["system"])
        assert total == pc.MAX_BREAKPOINTS
        assert len(report.placed) == 1

    def test_long_document_in_the_newest_turn(self) -> None:
        """A long document followed by a question in the newest turn gets its own breakpoint."""
        doc = [{"type": "text", "text": BIG}, {"type": "text", "text": "Summarize it."}]
        out, _ = pc.place_anthropic_breakpoints(request(system=None, messages=[{"role": "user", "content": doc}]))
        assert "cache_control" in out["messages"][0]["content"][0]
        assert "cache_control" not in out["messages"][0]["content"][1]

    def test_one_hour_ttl(self) -> None:
        """`ttl="1h"` writes 1-hour breakpoints."""
        out, _ = pc.place_anthropic_breakpoints(request(), ttl="1h")
        assert out["system"][-1]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}


class TestOpenAI:
    def test_prompt_cache_key_follows_the_stable_prefix(self) -> None:
        """Requests sharing system prompt and tools share a key; a different system prompt does not."""
        a = pc.prepare_openai_request(
            {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "1"}]}
        )
        b = pc.prepare_openai_request(
            {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "2"}]}
        )
        c = pc.prepare_openai_request(
            {"messages": [{"role": "system", "content": "T"}, {"role": "user", "content": "1"}]}
        )
        assert a["prompt_cache_key"] == b["prompt_cache_key"] != c["prompt_cache_key"]

    def test_explicit_key_is_kept(self) -> None:
        """A caller's own `prompt_cache_key` wins."""
        assert pc.prepare_openai_request({"prompt_cache_key": "mine"})["prompt_cache_key"] == "mine"


class TestLedger:
    def test_write_costs_a_premium_and_reads_save(self) -> None:
        """A 5m write costs 25% more than plain input; a read costs 10%: net savings follow the price table."""
        ledger = pc.PromptCacheLedger()
        model = "claude-sonnet-4-6"  # $3 / M input
        ledger.record(Usage(input_tokens=0, cache_write_tokens=1_000_000, model=model))
        assert ledger.snapshot().net_saved_usd == pytest.approx(-0.75)
        ledger.record(Usage(input_tokens=0, cache_read_tokens=1_000_000, model=model))
        assert ledger.snapshot().net_saved_usd == pytest.approx(-0.75 + 2.7)
        assert ledger.snapshot().hit_ratio == pytest.approx(0.5)

    def test_one_hour_writes_cost_double(self) -> None:
        """1-hour writes are priced at 2x input."""
        ledger = pc.PromptCacheLedger()
        usage = Usage(cache_write_tokens=1_000_000, cache_write_1h_tokens=1_000_000, model="claude-sonnet-4-6")
        ledger.record(usage)
        assert ledger.snapshot().cost_usd == pytest.approx(6.0)

    def test_busted_prefix_warns(self) -> None:
        """A prefix that was read and is suddenly written again raises a PromptCacheWarning."""
        ledger = pc.PromptCacheLedger()
        ledger.record(Usage(cache_write_tokens=2000, model="m"), stream="s", digest="a")
        ledger.record(Usage(cache_read_tokens=2000, model="m"), stream="s", digest="a")
        with pytest.warns(pc.PromptCacheWarning, match="changed"):
            ledger.record(Usage(cache_write_tokens=2000, model="m"), stream="s", digest="b")
        assert ledger.snapshot().busted_prefixes == 1


class TestDecorator:
    def test_prompt_cached_rewrites_arguments_and_records_usage(self) -> None:
        """`@prompt_cached` hands the function breakpointed arguments and books the result's usage."""
        seen: dict[str, Any] = {}
        ledger_before = pc.ledger.snapshot().calls

        @pc.prompt_cached(ttl="1h")
        def ask(system: str, messages: list[dict[str, Any]], model: str = "claude-sonnet-4-6") -> dict[str, Any]:
            seen.update(system=system, messages=messages)
            usage = {"input_tokens": 5, "output_tokens": 1, "cache_creation_input_tokens": 2000}
            return {"model": model, "usage": usage}

        ask(BIG, [{"role": "user", "content": "q"}])
        assert seen["system"][-1]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
        assert pc.ledger.snapshot().calls == ledger_before + 1

    async def test_prompt_cached_async(self) -> None:
        """The async form rewrites the same way."""

        @pc.prompt_cached
        async def ask(system: str, messages: list[dict[str, Any]], model: str = "claude-sonnet-4-6") -> Any:
            return system

        system = await ask(BIG, [{"role": "user", "content": "q"}])
        assert system[-1]["cache_control"] == {"type": "ephemeral"}
