"""Usage extraction across providers (dicts and SDK objects) and pricing."""

from __future__ import annotations

from typing import Any

import pytest

import agentcache
from agentcache.usage import PRICES, Price, Usage, extract_usage, price_for

OPENAI_CHAT: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop", "logprobs": None}
    ],
    "usage": {
        "prompt_tokens": 1200,
        "completion_tokens": 300,
        "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 1024},
    },
}
ANTHROPIC_MESSAGE: dict[str, Any] = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "hi"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 50,
        "output_tokens": 100,
        "cache_creation_input_tokens": 2000,
        "cache_read_input_tokens": 3000,
        "cache_creation": {"ephemeral_5m_input_tokens": 500, "ephemeral_1h_input_tokens": 1500},
    },
}
RESPONSES: dict[str, Any] = {
    "model": "gpt-4.1",
    "usage": {"input_tokens": 400, "output_tokens": 20, "input_tokens_details": {"cached_tokens": 100}},
}


class TestExtract:
    def test_openai_chat_dict(self) -> None:
        """prompt_tokens includes cached_tokens: uncached input is the difference."""
        assert extract_usage(OPENAI_CHAT) == Usage(176, 300, 1024, model="gpt-4o-2024-08-06")

    def test_anthropic_dict(self) -> None:
        """input_tokens already excludes cache reads and writes; the 1 h writes are split out."""
        u = extract_usage(ANTHROPIC_MESSAGE)
        assert u == Usage(50, 100, 3000, 2000, 1500, model="claude-sonnet-4-5-20250929")
        assert u is not None and u.total_tokens == 5150

    def test_responses_api(self) -> None:
        """The Responses API's input_tokens includes cached tokens like chat's prompt_tokens."""
        assert extract_usage(RESPONSES) == Usage(300, 20, 100, model="gpt-4.1")

    def test_sdk_objects(self) -> None:
        """Real SDK objects give the same record as their dicts."""
        from anthropic.types import Message
        from openai.types.chat import ChatCompletion

        assert extract_usage(ChatCompletion.model_validate(OPENAI_CHAT)) == extract_usage(OPENAI_CHAT)
        assert extract_usage(Message.model_validate(ANTHROPIC_MESSAGE)) == extract_usage(ANTHROPIC_MESSAGE)

    @pytest.mark.parametrize("value", [None, "text", {"usage": None}, {"usage": {"foo": 1}}, {"no": "usage"}])
    def test_no_usage(self, value: Any) -> None:
        """Results without a recognizable usage block give None."""
        assert extract_usage(value) is None


class TestPrices:
    def test_snapshots_match_their_family(self) -> None:
        """Dated and router-prefixed model names find the longest matching table entry."""
        assert price_for("gpt-4o-mini-2024-07-18") is PRICES["gpt-4o-mini"]
        assert price_for("openai/gpt-4o") is PRICES["gpt-4o"]
        assert price_for("claude-sonnet-4-5-20250929") is PRICES["claude-sonnet-4-5"]
        assert price_for("unknown-model") is None

    def test_cost_with_cache_premiums(self) -> None:
        """Writes cost 1.25x (5 min) or 2x (1 h) input; reads the table's cached price."""
        u = Usage(1_000_000, 1_000_000, 1_000_000, 2_000_000, 1_000_000, model="claude-sonnet-4-5")
        assert u.cost() == pytest.approx(3.0 + 15.0 + 0.3 + 3.0 * 1.25 + 3.0 * 2.0)

    def test_override(self) -> None:
        """set_prices adds models and replaces prices; stats use the prices in force when read."""

        @agentcache.response_cached(backend="memory://")
        def ask(q: str) -> dict[str, Any]:
            return {"model": "my-finetune", "usage": {"prompt_tokens": 1_000_000, "completion_tokens": 0}}

        ask("q")
        ask("q")
        assert ask.cache_info().usd_saved == 0.0
        agentcache.set_prices({"my-finetune": (2.0, 8.0)})
        assert ask.cache_info().usd_saved == pytest.approx(2.0)
        agentcache.set_prices({"my-finetune": Price(4.0, 8.0)})
        assert agentcache.stats().usd_saved == pytest.approx(4.0)
        assert ask.cache_info().tokens_saved == 1_000_000
        del PRICES["my-finetune"]
        agentcache.set_prices({})
