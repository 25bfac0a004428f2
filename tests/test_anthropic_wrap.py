"""`agentcache.wrap(Anthropic())` against a local fake server: cached messages, streams and prompt caching."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from support.fake_llm_server import SimulatedLLM, anthropic_client

from agentcache.decorators import prompt as pc
from agentcache.integrations import is_cache_hit, wrap

MODEL = "claude-sonnet-4-6"
LONG_SYSTEM = "You are a meticulous assistant. " * 400  # ~3200 tokens: above the 1024 minimum
TOOLS = [{"name": "search", "description": "web search", "input_schema": {"type": "object"}}]


def ask(text: str) -> list[dict[str, Any]]:
    """One user turn."""
    return [{"role": "user", "content": text}]


@pytest.fixture(name="client")
def _client(server: SimulatedLLM, url: str) -> Iterator[Any]:
    client = wrap(anthropic_client(server), backend=url)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def _fresh_ledger() -> None:
    pc.ledger.reset()


class TestMessages:
    def test_second_call_is_a_hit(self, client: Any, server: SimulatedLLM) -> None:
        """The same request twice reaches the server once; the hit is an equal `Message` with its tool_use."""
        first = client.messages.create(model=MODEL, max_tokens=64, tools=TOOLS, messages=ask("hi"))
        second = client.messages.create(model=MODEL, max_tokens=64, tools=TOOLS, messages=ask("hi"))
        assert server.calls["messages"] == 1
        assert isinstance(second, anthropic.types.Message)
        assert second == first
        assert second.content[1].type == "tool_use"
        assert second.stop_reason == "tool_use"
        assert is_cache_hit(second)

    def test_stream_is_replayed_as_an_sdk_stream(self, client: Any, server: SimulatedLLM) -> None:
        """A streamed call is replayed event for event through `anthropic.Stream`."""
        with client.messages.create(model=MODEL, max_tokens=64, messages=ask("s"), stream=True) as live:
            recorded = list(live)
        replay = client.messages.create(model=MODEL, max_tokens=64, messages=ask("s"), stream=True)
        assert isinstance(replay, anthropic.Stream)
        assert list(replay) == recorded
        assert server.calls["messages"] == 1

    def test_replayed_events_equal_live_events_field_by_field(self, client: Any) -> None:
        """Replayed events (text and tool_use `input_json_delta`) have the live classes, set fields and values."""
        kwargs: dict[str, Any] = {
            "model": MODEL,
            "max_tokens": 64,
            "tools": TOOLS,
            "messages": ask("f"),
            "stream": True,
        }
        live = list(client.messages.create(**kwargs))
        replayed = list(client.messages.create(**kwargs))
        assert "input_json_delta" in [getattr(getattr(e, "delta", None), "type", None) for e in live]
        assert [type(e) for e in replayed] == [type(e) for e in live]
        assert [e.model_dump(mode="json", exclude_unset=True) for e in replayed] == [
            e.model_dump(mode="json", exclude_unset=True) for e in live
        ]

    def test_one_entry_serves_both_forms(self, client: Any, server: SimulatedLLM) -> None:
        """A stored message answers a streamed call and a recorded stream answers a plain call."""
        message = client.messages.create(model=MODEL, max_tokens=64, messages=ask("a"))
        events = list(client.messages.create(model=MODEL, max_tokens=64, messages=ask("a"), stream=True))
        text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
        assert text == message.content[0].text
        list(client.messages.create(model=MODEL, max_tokens=64, messages=ask("b"), stream=True))
        plain = client.messages.create(model=MODEL, max_tokens=64, messages=ask("b"))
        assert is_cache_hit(plain)
        assert plain.content[0].text.endswith("b")
        assert server.calls["messages"] == 2

    def test_errors_are_never_cached(self, client: Any, server: SimulatedLLM) -> None:
        """A 529/500 propagates as the SDK's error and is not stored."""
        server.fail_next(500)
        with pytest.raises(anthropic.InternalServerError):
            client.messages.create(model=MODEL, max_tokens=64, messages=ask("e"))
        client.messages.create(model=MODEL, max_tokens=64, messages=ask("e"))
        assert server.calls["messages"] == 2

    async def test_async_client(self, server: SimulatedLLM, url: str) -> None:
        """`AsyncAnthropic` hits return equal messages and replay streams as `anthropic.AsyncStream`."""
        client = wrap(anthropic_client(server, is_async=True), backend=url)
        first = await client.messages.create(model=MODEL, max_tokens=64, messages=ask("x"))
        second = await client.messages.create(model=MODEL, max_tokens=64, messages=ask("x"))
        assert second == first
        replay = await client.messages.create(model=MODEL, max_tokens=64, messages=ask("x"), stream=True)
        assert isinstance(replay, anthropic.AsyncStream)
        assert [e.type async for e in replay][-1] == "message_stop"
        assert server.calls["messages"] == 1
        await client.close()


class TestPromptCache:
    def test_breakpoints_are_sent_and_accounted(self, server: SimulatedLLM, url: str) -> None:
        """`prompt_cache=True` sends a system breakpoint; the 2nd turn reads it and the ledger shows net savings."""
        client = wrap(anthropic_client(server), backend=url, prompt_cache=True)
        first = client.messages.create(model=MODEL, max_tokens=64, system=LONG_SYSTEM, messages=ask("one"))
        second = client.messages.create(model=MODEL, max_tokens=64, system=LONG_SYSTEM, messages=ask("two"))
        client.close()
        sent = server.requests[0][1]
        assert sent["system"][-1]["cache_control"] == {"type": "ephemeral"}
        assert first.usage.cache_creation_input_tokens > 1024
        assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
        stats = pc.ledger.snapshot()
        assert stats.calls == 2
        assert stats.cache_write_tokens == first.usage.cache_creation_input_tokens
        assert stats.cache_read_tokens == second.usage.cache_read_input_tokens
        # one write at 1.25x and one read at 0.1x beat two full-price reads of the prefix
        assert stats.net_saved_usd > 0

    def test_one_hour_ttl_is_split_out(self, server: SimulatedLLM, url: str) -> None:
        """`prompt_cache="1h"` writes 1-hour breakpoints, reported in the 1h column and priced at 2x."""
        client = wrap(anthropic_client(server), backend=url, prompt_cache="1h")
        message = client.messages.create(model=MODEL, max_tokens=64, system=LONG_SYSTEM, messages=ask("one"))
        client.close()
        assert server.requests[0][1]["system"][-1]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
        usage = message.model_dump()["usage"]  # older SDKs keep `cache_creation` as an untyped dict
        assert usage["cache_creation"]["ephemeral_1h_input_tokens"] == usage["cache_creation_input_tokens"]
        stats = pc.ledger.snapshot()
        assert stats.cache_write_1h_tokens == message.usage.cache_creation_input_tokens
        assert stats.net_saved_usd < 0  # a write alone costs the premium

    def test_changed_prefix_warns(self, server: SimulatedLLM, url: str) -> None:
        """A system prompt that changes between turns (a timestamp) is written again, with a warning."""
        client = wrap(anthropic_client(server), backend=url, prompt_cache=True)
        client.messages.create(model=MODEL, max_tokens=64, system=LONG_SYSTEM + "t=1", messages=ask("one"))
        client.messages.create(model=MODEL, max_tokens=64, system=LONG_SYSTEM + "t=1", messages=ask("two"))
        with pytest.warns(pc.PromptCacheWarning, match="changed"):
            client.messages.create(model=MODEL, max_tokens=64, system=LONG_SYSTEM + "t=2", messages=ask("three"))
        client.close()
        assert pc.ledger.snapshot().busted_prefixes == 1


class TestStreamHelper:
    def test_stream_helper_is_cached(self, client: Any, server: SimulatedLLM) -> None:
        """`messages.stream()` works on a hit: the SDK's MessageStream accumulates the replayed events."""
        with client.messages.stream(model=MODEL, max_tokens=64, tools=TOOLS, messages=ask("h")) as live:
            first = live.get_final_message()
        with client.messages.stream(model=MODEL, max_tokens=64, tools=TOOLS, messages=ask("h")) as replay:
            text = "".join(replay.text_stream)
            second = replay.get_final_message()
        assert server.calls["messages"] == 1
        assert text == first.content[0].text
        assert second.model_dump() == first.model_dump()

    async def test_async_stream_helper_is_cached(self, server: SimulatedLLM, url: str) -> None:
        """The async `messages.stream()` helper replays too."""
        client = wrap(anthropic_client(server, is_async=True), backend=url)
        for _ in range(2):
            async with client.messages.stream(model=MODEL, max_tokens=64, messages=ask("ah")) as s:
                message = await s.get_final_message()
        await client.close()
        assert message.content[0].text.endswith("ah")
        assert server.calls["messages"] == 1


def test_prompt_cache_hints_do_not_change_the_key(server: SimulatedLLM, url: str) -> None:
    """A client with `prompt_cache=True` and one without share entries: breakpoints never change the answer."""
    plain = wrap(anthropic_client(server), backend=url)
    hinted = wrap(anthropic_client(server), backend=url, prompt_cache=True)
    plain.messages.create(model=MODEL, max_tokens=64, system=LONG_SYSTEM, messages=ask("k"))
    again = hinted.messages.create(model=MODEL, max_tokens=64, system=LONG_SYSTEM, messages=ask("k"))
    plain.close()
    hinted.close()
    assert is_cache_hit(again)
    assert server.calls["messages"] == 1
