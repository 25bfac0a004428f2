"""Framework-injected context arguments are left out of keys automatically, in the real frameworks (#11.6).

Before: MCP's `Context` was refused (its state is private), LangChain's `ToolRuntime`, Pydantic AI's `RunContext`
and the Agents SDK's `RunContextWrapper` raised `KeyEncodingError` (which the Agents SDK turned into a tool error
the model saw, so the tool never ran). Each test runs the framework's own tool machinery twice and counts how often
the tool body ran. MCP's `Context` is tested in tests/test_mcp.py, which runs against mcp 1.x and 2.x.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from agents import RunContextWrapper, function_tool
from agents.tool_context import ToolContext
from langchain.tools import ToolRuntime
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from pydantic_ai import Agent, RunContext
from pydantic_ai.models.test import TestModel

import agentcache
from agentcache.errors import KeyEncodingError

# The frameworks resolve the tools' annotations in this module's globals: the imports are at module level.


def test_pydantic_ai_run_context(url: str) -> None:
    """`@agent.tool` over `@tool_cached` with `ctx: RunContext[str]`: the second run is served from the cache."""

    runs: list[str] = []
    agent = Agent(TestModel(), deps_type=str)

    @agent.tool
    @agentcache.tool_cached(backend=url)
    def lookup(ctx: RunContext[str], city: str) -> str:
        """Look a city up."""
        runs.append(city)
        return f"{city}: sunny"

    # `asyncio.run`, not `run_sync`: that one leaves its event loop open (a ResourceWarning at exit)
    outputs = [asyncio.run(agent.run("weather?", deps=user)).output for user in ("alice", "bob")]
    assert runs == ["a"]  # TestModel calls each tool once with generated arguments
    assert outputs[0] == outputs[1]
    assert "sunny" in outputs[0]


def test_agents_sdk_run_context_wrapper(url: str) -> None:
    """`@function_tool` over `@tool_cached` with `ctx: RunContextWrapper`: the tool runs (once), no error text."""

    runs: list[str] = []

    @function_tool
    @agentcache.tool_cached(backend=url)
    async def search(ctx: RunContextWrapper[Any], query: str) -> str:
        """Search the web."""
        runs.append(query)
        return f"results for {query}"

    async def call(call_id: str) -> Any:
        args = json.dumps({"query": "llm caching"})
        context = ToolContext(context=None, tool_name="search", tool_call_id=call_id, tool_arguments=args)
        return await search.on_invoke_tool(context, args)

    first, second = asyncio.run(call("c1")), asyncio.run(call("c2"))
    assert first == second == "results for llm caching"
    assert runs == ["llm caching"]


def test_langchain_tool_runtime(url: str) -> None:
    """A LangChain `@tool` taking `runtime: ToolRuntime`, run by LangGraph's `ToolNode` (which injects it)."""

    runs: list[str] = []

    @tool
    @agentcache.tool_cached(backend=url)
    def lookup(city: str, runtime: ToolRuntime) -> str:
        """Look a city up."""
        runs.append(city)
        return f"{city}: sunny"

    assert "runtime" not in lookup.tool_call_schema.model_json_schema()["properties"]
    graph = StateGraph(MessagesState)
    graph.add_node("tools", ToolNode([lookup]))
    graph.add_edge(START, "tools")
    app = graph.compile()
    outs = []
    for call_id in ("c1", "c2"):
        call = {"name": "lookup", "args": {"city": "Paris"}, "id": call_id, "type": "tool_call"}
        outs.append(app.invoke({"messages": [AIMessage("", tool_calls=[call])]}))
    messages = [out["messages"][-1] for out in outs]
    assert [m.content for m in messages] == ["Paris: sunny", "Paris: sunny"]
    assert [m.tool_call_id for m in messages] == ["c1", "c2"]
    assert runs == ["Paris"]


def test_found_by_value_without_an_annotation(url: str) -> None:
    """No annotation: the first call's value shows the parameter is a context, and it is left out from then on."""

    runs: list[int] = []

    @agentcache.tool_cached(backend=url)
    def double(ctx, n: int) -> int:  # type: ignore[no-untyped-def]
        runs.append(n)
        return 2 * n

    assert double(RunContextWrapper(context="a"), 2) == double(RunContextWrapper(context="b"), 2) == 4
    assert double(ctx=RunContextWrapper(context="c"), n=2) == 4
    assert runs == [2]
    explained = agentcache.explain_key(double, RunContextWrapper(context="a"), 2)
    assert explained.excluded == {"ctx": "a framework's injected context"}
    assert set(explained.included) == {"n"}


def test_string_annotations_are_recognised() -> None:
    """`from __future__ import annotations` turns annotations into strings: they are resolved by name."""
    from agentcache.keys.injected import injected_parameters

    namespace: dict[str, Any] = {}
    exec(  # a module of its own, whose globals hold the imported names
        "from __future__ import annotations\n"
        "import pydantic_ai\n"
        "from typing import Optional\n"
        "from pydantic_ai import RunContext\n"
        "from agents import RunContextWrapper as Wrapper\n"
        "def f(a: RunContext[int], b: 'Wrapper[None] | None', c: Optional[RunContext[str]],\n"
        "      d: pydantic_ai.RunContext, e: str, f: Unknown, g: list[RunContext[int]]): ...\n",
        namespace,
    )
    assert injected_parameters(namespace["f"]) == {"a", "b", "c", "d"}


def test_context_nested_in_another_value_is_refused(url: str) -> None:
    """Only a parameter is left out: a context inside a list is refused, never encoded."""

    @agentcache.tool_cached(backend=url)
    def count(items: list[Any]) -> int:
        return len(items)

    with pytest.raises(KeyEncodingError, match=r"'items\[0\]' is a framework's context object"):
        count([RunContextWrapper(context=None)])
