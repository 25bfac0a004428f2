"""`create_agent(..., middleware=[CacheMiddleware(...)])`: LangChain v1 agents with their model and tool calls
cached, tool-call turns included; the real `ChatOpenAI` against the local fake server, upstream calls and tool
runs counted (#11.3, #11.9)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from agentcache.integrations.langchain import CacheMiddleware

QUESTION = {"messages": [{"role": "user", "content": "llm caching"}]}


@pytest.fixture(params=["memory", "sqlite", "redis"])
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_agent(server: Any, url: str, runs: list[str], **options: Any) -> Any:
    @tool
    def search(query: str) -> str:
        """Search the web."""
        runs.append(query)
        return f"3 results for {query}"

    model = ChatOpenAI(model="gpt-4o-mini", api_key="sk-test", base_url=server.openai_base_url, max_retries=0)  # type: ignore[arg-type]
    return create_agent(model, tools=[search], middleware=[CacheMiddleware(backend=url, **options)])


def final_text(result: dict[str, Any]) -> str:
    last = result["messages"][-1]
    assert isinstance(last, AIMessage)
    return str(last.content)


def test_second_run_is_served_entirely_from_the_cache(server: Any, backend_url: str) -> None:
    """Run 1: a tool-call turn, the tool, a text turn (2 requests, 1 tool run). Run 2: nothing upstream."""
    runs: list[str] = []
    agent = make_agent(server, backend_url, runs)
    first = agent.invoke(QUESTION)
    assert server.calls["chat.completions"] == 2
    assert runs == ["llm caching"]
    second = agent.invoke(QUESTION)
    assert server.calls["chat.completions"] == 2
    assert runs == ["llm caching"]
    assert final_text(first) == final_text(second) != ""
    kinds = [type(m).__name__ for m in second["messages"]]
    assert kinds == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    call_id = second["messages"][1].tool_calls[0]["id"]
    assert second["messages"][2].tool_call_id == call_id  # the replayed tool message answers this run's call


def test_async_agent(server: Any, backend_url: str) -> None:
    """`ainvoke` goes through `awrap_model_call` / `awrap_tool_call`; a sync run then hits what it stored."""
    runs: list[str] = []
    agent = make_agent(server, backend_url, runs)
    first = asyncio.run(agent.ainvoke(QUESTION))
    second = asyncio.run(agent.ainvoke(QUESTION))
    third = agent.invoke(QUESTION)
    assert server.calls["chat.completions"] == 2
    assert runs == ["llm caching"]
    assert final_text(first) == final_text(second) == final_text(third)


def test_another_question_is_a_miss(server: Any, url: str) -> None:
    runs: list[str] = []
    agent = make_agent(server, url, runs)
    agent.invoke(QUESTION)
    agent.invoke({"messages": [{"role": "user", "content": "semantic caching"}]})
    assert server.calls["chat.completions"] == 4
    assert runs == ["llm caching", "semantic caching"]


def test_tools_only(server: Any, url: str) -> None:
    """`models=False`: every model call goes upstream, the tool runs once for the same arguments."""
    runs: list[str] = []
    agent = make_agent(server, url, runs, models=False)
    agent.invoke(QUESTION)
    agent.invoke(QUESTION)
    assert server.calls["chat.completions"] == 4
    assert runs == ["llm caching"]


def test_tools_by_name(server: Any, url: str) -> None:
    """`tools=[...]` names the tools to cache; others always run."""
    runs: list[str] = []
    agent = make_agent(server, url, runs, models=False, tools=["other"])
    agent.invoke(QUESTION)
    agent.invoke(QUESTION)
    assert runs == ["llm caching", "llm caching"]


def test_streamed_run(server: Any, url: str) -> None:
    """`stream(stream_mode="updates")` of a second run: the same updates, nothing upstream."""
    runs: list[str] = []
    agent = make_agent(server, url, runs)
    first = list(agent.stream(QUESTION, stream_mode="updates"))
    second = list(agent.stream(QUESTION, stream_mode="updates"))
    assert server.calls["chat.completions"] == 2
    assert runs == ["llm caching"]
    assert [list(u) for u in first] == [list(u) for u in second]


def test_streamed_messages_of_a_cached_run(server: Any, url: str) -> None:
    """`stream_mode="messages"`: the first run streams token chunks; the cached run yields each answer whole."""
    agent = make_agent(server, url, [])
    first = [type(m).__name__ for m, _ in agent.stream(QUESTION, stream_mode="messages")]
    second = [type(m).__name__ for m, _ in agent.stream(QUESTION, stream_mode="messages")]
    assert server.calls["chat.completions"] == 2
    assert "AIMessageChunk" in first
    assert second == ["AIMessage", "ToolMessage", "AIMessage"]


def test_error_tool_results_are_not_stored(server: Any, url: str) -> None:
    """A tool that fails (LangChain turns the error into a `status="error"` message) runs again next time."""
    runs: list[str] = []

    @tool
    def search(query: str) -> str:
        """Search the web."""
        runs.append(query)
        raise ValueError("backend down")

    model = ChatOpenAI(model="gpt-4o-mini", api_key="sk-test", base_url=server.openai_base_url, max_retries=0)  # type: ignore[arg-type]
    agent = create_agent(model, tools=[search], middleware=[CacheMiddleware(backend=url, models=False)])
    for _ in range(2):
        try:
            result = agent.invoke(QUESTION)
        except ValueError:
            continue
        message = result["messages"][2]
        assert isinstance(message, ToolMessage)
        assert message.status == "error"
    assert runs == ["llm caching", "llm caching"]


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_middleware_stats(server: Any, tmp_path: Any, kind: str) -> None:
    """The model and tool layers report their hits in `agentcache.stats()`."""
    import agentcache

    url = "memory://" if kind == "memory" else f"sqlite://{tmp_path / 'c.db'}"
    agent = make_agent(server, url, [])
    agent.invoke(QUESTION)
    agent.invoke(QUESTION)
    report = agentcache.stats()
    assert report.by_layer["langchain"].hits == 2
    assert report.by_layer["tool"].hits == 1


def test_a_request_without_a_key_passes_through(server: Any, url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Model settings that cannot be encoded: the call is made uncached (one warning), never an error; a
    `KeyEncodingError` raised by the call itself still propagates."""
    from langchain.agents.middleware import ModelRequest, ModelResponse
    from langchain_core.messages import HumanMessage

    from agentcache.errors import KeyEncodingError

    middleware = CacheMiddleware(backend=url)
    model = ChatOpenAI(model="gpt-4o-mini", api_key="sk-test", base_url=server.openai_base_url)  # type: ignore[arg-type]
    request = ModelRequest(model=model, messages=[HumanMessage("hi")], model_settings={"hook": object()})
    calls: list[int] = []

    def handler(_: Any) -> ModelResponse[Any]:
        calls.append(1)
        return ModelResponse(result=[AIMessage("hello")])

    for _ in range(2):
        assert middleware.wrap_model_call(request, handler).result[0].content == "hello"
    assert calls == [1, 1]
    assert "passes a model call through uncached" in caplog.text

    def failing(_: Any) -> ModelResponse[Any]:
        raise KeyEncodingError("inner")

    plain = ModelRequest(model=model, messages=[HumanMessage("hi")])
    with pytest.raises(KeyEncodingError, match="inner"):
        middleware.wrap_model_call(plain, failing)


def test_concurrent_identical_runs_share_each_call(server: Any, url: str) -> None:
    """8 identical runs at once (threads), the server holding its answers until all started: each model call
    and the tool run once for all of them (the middleware's calls go through the layer's single flight)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    runs: list[str] = []
    agent = make_agent(server, url, runs)
    started, lock = [0], threading.Lock()
    server.hold = threading.Event()

    def run() -> str:
        with lock:
            started[0] += 1
            if started[0] == 8:
                server.hold.set()
        return final_text(agent.invoke(QUESTION))

    with ThreadPoolExecutor(8) as pool:
        texts = [f.result(timeout=120) for f in [pool.submit(run) for _ in range(8)]]
    assert server.calls["chat.completions"] == 2
    assert runs == ["llm caching"]
    assert len(set(texts)) == 1


def test_what_the_middleware_never_stores(server: Any, url: str) -> None:
    """Through the hooks LangChain calls: model errors, refusals, malformed tool calls, structured-output calls and
    `Command` tool results are passed on and never stored (each call runs again); a plain answer is stored."""
    from langchain.agents.middleware import ModelRequest, ModelResponse
    from langchain.agents.structured_output import ToolStrategy
    from langchain_core.messages import HumanMessage
    from langgraph.prebuilt.tool_node import ToolCallRequest
    from langgraph.types import Command
    from pydantic import BaseModel

    class Answer(BaseModel):
        text: str

    middleware = CacheMiddleware(backend=url)
    model = ChatOpenAI(model="gpt-4o-mini", api_key="sk-test", base_url=server.openai_base_url)  # type: ignore[arg-type]
    answers: dict[str, Any] = {
        "error": RuntimeError("upstream down"),
        "refusal": AIMessage("", additional_kwargs={"refusal": "I can't help with that."}),
        "malformed": AIMessage("", invalid_tool_calls=[{"name": "s", "args": "{x", "id": "c1", "error": "bad"}]),
        "structured": AIMessage("{}"),
        "plain": AIMessage("hello"),
    }
    calls: list[str] = []
    for name, answer in answers.items():
        fmt = ToolStrategy(Answer) if name == "structured" else None
        request = ModelRequest(model=model, messages=[HumanMessage(name)], response_format=fmt)

        def handler(_: Any, name: str = name, answer: Any = answer) -> ModelResponse[Any]:
            calls.append(name)
            if isinstance(answer, Exception):
                raise answer
            return ModelResponse(result=[answer])

        for _ in range(2):
            try:
                middleware.wrap_model_call(request, handler)
            except RuntimeError:
                pass
    twice = ["error", "refusal", "malformed", "structured"]
    assert calls == [name for name in twice for _ in range(2)] + ["plain"]

    runs: list[int] = []

    def command_tool(_: Any) -> Command[Any]:
        runs.append(1)
        return Command(update={"messages": [ToolMessage("done", tool_call_id="c2")]})

    call = {"name": "search", "args": {"query": "q"}, "id": "c2", "type": "tool_call"}
    tool_request = ToolCallRequest(tool_call=call, tool=None, state={}, runtime=None)  # type: ignore[arg-type]
    for _ in range(2):
        assert isinstance(middleware.wrap_tool_call(tool_request, command_tool), Command)
    assert runs == [1, 1]
