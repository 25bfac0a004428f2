"""Agent frameworks on agentcache's HTTP transport and `@tool_cached` tools, each the real framework talking HTTP to
the local fake server. Every test counts the requests that reached the server (and the tool runs), so it fails if
caching silently stopped. These are the rows of docs/frameworks.md."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.network import outbound

import agentcache
from agentcache.testing.simulator import SimulatedLLM


def sent_tool_parameters(sim: SimulatedLLM) -> dict[str, Any]:
    """The JSON schema of the first tool in the first request the server received (what the framework derived
    from the `@tool_cached` function)."""
    body = sim.requests[0][1]
    tool = body["tools"][0]
    return dict(tool.get("function", tool)["parameters"])


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::PendingDeprecationWarning")


@pytest.fixture(autouse=True)
def _offline() -> Iterator[None]:
    """No framework reaches past this machine (telemetry, a download at import) while a test runs."""
    with outbound() as seen:
        yield
    assert seen == []


@pytest.fixture
def sim(_server: SimulatedLLM) -> SimulatedLLM:
    """The fake server with fresh counters."""
    _server.reset()
    return _server


class TestOpenAIAgentsSDK:
    """`AsyncOpenAI(http_client=agentcache.async_http_client())` as the Agents SDK's client; `@function_tool` over
    `@tool_cached`."""

    async def test_llm_tool_streaming(self, sim: SimulatedLLM) -> None:
        """Two identical runs: one request per distinct model call, one tool run; streamed runs too; both the
        Chat Completions and the Responses model."""
        agents = pytest.importorskip("agents")
        from openai import AsyncOpenAI

        agents.set_tracing_disabled(True)
        runs: Counter[str] = Counter()

        @agents.function_tool
        @agentcache.tool_cached()
        def search(query: str) -> str:
            """Search the knowledge base."""
            runs["search"] += 1
            return f"result for {query}"

        client = AsyncOpenAI(base_url=sim.openai_base_url, api_key="sk-x", http_client=agentcache.async_http_client())
        chat = agents.OpenAIChatCompletionsModel("gpt-4o-mini", client)
        agent = agents.Agent(name="a", model=chat, tools=[search], tool_use_behavior="stop_on_first_tool")
        outputs = [(await agents.Runner.run(agent, "capital of France?")).final_output for _ in range(2)]
        assert outputs[0] == outputs[1] == "result for capital of France?"
        assert sim.calls["chat.completions"] == 1 and runs["search"] == 1
        assert set(sent_tool_parameters(sim)["properties"]) == {"query"}
        for model, endpoint in (
            (chat, "chat.completions"),
            (agents.OpenAIResponsesModel("gpt-4o-mini", client), "responses"),
        ):
            before = sim.calls[endpoint]
            plain = agents.Agent(name="s", model=model)
            for _ in range(2):
                streamed = agents.Runner.run_streamed(plain, "stream me")
                async for _ in streamed.stream_events():
                    pass
                assert streamed.final_output == "Simulated reply to: stream me"
            assert sim.calls[endpoint] == before + 1
        await client.close()


class TestPydanticAI:
    """`OpenAIProvider(http_client=agentcache.async_http_client())`; `@agent.tool_plain` over `@tool_cached`."""

    async def test_llm_tool_streaming(self, sim: SimulatedLLM) -> None:
        """A tool-calling run twice: 2 requests and 1 tool run in all; a streamed run twice: 1 request."""
        pytest.importorskip("pydantic_ai")
        from pydantic_ai import Agent
        from pydantic_ai.models.openai import OpenAIChatModel
        from pydantic_ai.providers.openai import OpenAIProvider

        runs: Counter[str] = Counter()
        http = agentcache.async_http_client()
        provider = OpenAIProvider(base_url=sim.openai_base_url, api_key="sk-x", http_client=http)
        agent = Agent(OpenAIChatModel("gpt-4o-mini", provider=provider))

        async def first_step_only(ctx: Any, tool_def: Any) -> Any:
            return tool_def if ctx.run_step <= 1 else None  # the fake server calls any tool it is offered

        @agent.tool_plain(prepare=first_step_only)
        @agentcache.tool_cached()
        def search(query: str) -> str:
            """Search the knowledge base."""
            runs["search"] += 1
            return f"result for {query}"

        outputs = [(await agent.run("capital?")).output for _ in range(2)]
        assert outputs[0] == outputs[1]
        assert sim.calls["chat.completions"] == 2 and runs["search"] == 1
        assert sent_tool_parameters(sim)["required"] == ["query"]
        plain = Agent(OpenAIChatModel("gpt-4o-mini", provider=provider))
        for _ in range(2):
            async with plain.run_stream("stream me") as result:
                assert await result.get_output() == "Simulated reply to: stream me"
        assert sim.calls["chat.completions"] == 3
        await http.aclose()


class TestAgno:
    """`OpenAIChat(http_client=agentcache.http_client(library="httpx"))` (Agno checks for an `httpx.Client`)."""

    def test_llm_tool_streaming_async(self, sim: SimulatedLLM) -> None:
        """Run, streamed run and async run, each twice: one request each; the tool runs once."""
        pytest.importorskip("agno")
        from agno.agent import Agent
        from agno.models.openai import OpenAIChat
        from agno.tools import tool

        runs: Counter[str] = Counter()

        @tool(stop_after_tool_call=True)
        @agentcache.tool_cached()
        def search(query: str) -> str:
            """Search the knowledge base."""
            runs["search"] += 1
            return f"result for {query}"

        def model(**http: Any) -> Any:
            return OpenAIChat(id="gpt-4o-mini", base_url=sim.openai_base_url, api_key="sk-x", **http)

        sync_http = agentcache.http_client(library="httpx")
        sync_model = model(http_client=sync_http)
        agent = Agent(model=sync_model, tools=[search])
        assert [agent.run("capital?").content for _ in range(2)] == ["result for capital?"] * 2
        assert sim.calls["chat.completions"] == 1 and runs["search"] == 1
        assert sent_tool_parameters(sim)["required"] == ["query"]
        plain = Agent(model=sync_model)
        for _ in range(2):
            text = "".join(str(e.content) for e in plain.run("stream me", stream=True) if getattr(e, "content", None))
            assert text == "Simulated reply to: stream me"
        assert sim.calls["chat.completions"] == 2

        async def twice() -> list[Any]:
            async with agentcache.async_http_client(library="httpx") as http:
                a = Agent(model=model(http_client=http))
                return [(await a.arun("async me")).content for _ in range(2)]

        assert asyncio.run(twice()) == ["Simulated reply to: async me"] * 2
        assert sim.calls["chat.completions"] == 3
        sync_http.close()


class TestLlamaIndex:
    """`llama_index.llms.openai.OpenAI(http_client=..., async_http_client=...)`; `FunctionTool` over `@tool_cached`."""

    def test_llm_tool_streaming_async(self, sim: SimulatedLLM) -> None:
        """chat, stream_chat and achat, each twice: one request each; a cached FunctionTool runs once."""
        pytest.importorskip("llama_index.llms.openai")
        from llama_index.core.llms import ChatMessage
        from llama_index.core.tools import FunctionTool
        from llama_index.llms.openai import OpenAI

        sync_http = agentcache.http_client(library="httpx")
        async_http = agentcache.async_http_client(library="httpx")
        llm = OpenAI(
            model="gpt-4o-mini",
            api_base=sim.openai_base_url,
            api_key="sk-x",
            http_client=sync_http,
            async_http_client=async_http,
        )

        def ask(text: str) -> list[ChatMessage]:
            return [ChatMessage(role="user", content=text)]

        assert llm.chat(ask("hello")).message.content == llm.chat(ask("hello")).message.content
        assert sim.calls["chat.completions"] == 1
        for _ in range(2):
            assert "".join(c.delta or "" for c in llm.stream_chat(ask("stream"))) == "Simulated reply to: stream"
        assert sim.calls["chat.completions"] == 2

        async def twice() -> list[Any]:
            try:
                return [(await llm.achat(ask("async"))).message.content for _ in range(2)]
            finally:
                await async_http.aclose()

        assert asyncio.run(twice()) == ["Simulated reply to: async"] * 2
        assert sim.calls["chat.completions"] == 3
        sync_http.close()

        runs: Counter[str] = Counter()

        @agentcache.tool_cached()
        def search(query: str) -> str:
            """Search the knowledge base."""
            runs["search"] += 1
            return f"result for {query}"

        tool = FunctionTool.from_defaults(fn=search)
        assert tool.metadata.get_parameters_dict()["required"] == ["query"]
        assert str(tool.call(query="x")) == str(tool.call(query="x")) == "result for x"
        assert runs["search"] == 1

    def test_import_stays_offline(self) -> None:
        """Importing LlamaIndex core 0.10 checks for NLTK's punkt and stopwords and downloads what is missing
        (measured: two look-ups of raw.githubusercontent.com). The run's NLTK_DATA (tests/support/offline.py) has
        both, so a fresh interpreter importing it looks nothing up."""
        pytest.importorskip("llama_index.core")
        code = "from support.network import outbound\nwith outbound() as seen:\n    import llama_index.core\n"
        code += "print(seen)"
        tests = Path(__file__).parent
        done = subprocess.run([sys.executable, "-c", code], cwd=tests, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "[]"


class TestSmolagents:
    """`OpenAIServerModel(client_kwargs={"http_client": agentcache.http_client()})`; `@tool` over `@tool_cached`."""

    def test_llm_tool_streaming(self, sim: SimulatedLLM) -> None:
        """generate and generate_stream, each twice: one request each; a cached tool runs once."""
        pytest.importorskip("smolagents")
        from smolagents import OpenAIServerModel, tool

        http = agentcache.http_client()
        model = OpenAIServerModel(
            model_id="gpt-4o-mini",
            api_base=sim.openai_base_url,
            api_key="sk-x",
            client_kwargs={"http_client": http},
        )

        def ask(text: str) -> list[dict[str, Any]]:
            return [{"role": "user", "content": [{"type": "text", "text": text}]}]

        assert model.generate(ask("hello")).content == model.generate(ask("hello")).content
        assert sim.calls["chat.completions"] == 1
        for _ in range(2):
            assert (
                "".join(d.content or "" for d in model.generate_stream(ask("stream"))) == "Simulated reply to: stream"
            )
        assert sim.calls["chat.completions"] == 2
        http.close()

        runs: Counter[str] = Counter()

        @agentcache.tool_cached()
        def search_fn(query: str) -> str:
            """Search the knowledge base.

            Args:
                query: what to search for.
            """
            runs["search"] += 1
            return f"result for {query}"

        # smolagents warns about any decorator under @tool (it matters only for its remote executors).
        with pytest.warns(UserWarning, match="decorators other than @tool"):
            search = tool(search_fn)

        assert search.inputs == {"query": {"type": "string", "description": "what to search for."}}
        assert search(query="x") == search(query="x") == "result for x"
        assert runs["search"] == 1
