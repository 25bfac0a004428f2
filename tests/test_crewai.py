"""CrewAI with agentcache: the real framework talking HTTP to the local fake server (#11).

CrewAI pins openai < 3 and mcp < 2, so it cannot share the main environment: `make test-compat` (part of
`make test`) runs this file in `.venv-compat`; the main environment skips it. The LLM's SDK clients are private
attributes (`_client`, `_async_client`), replaced as docs/frameworks.md shows. Every test counts the requests
that reached the server and the tool runs, so it fails if caching silently stopped.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from support.network import outbound

import agentcache
from agentcache.testing.simulator import SimulatedLLM

if importlib.util.find_spec("crewai") is None:
    pytest.skip("CrewAI needs openai < 3: it is tested in .venv-compat (make test-compat)", allow_module_level=True)

pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore::PendingDeprecationWarning", "ignore::ImportWarning"
)


@pytest.fixture(scope="module")
def crewai(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The `crewai` package, imported with nothing reaching past this machine (telemetry is off: conftest).
    HOME is a private directory while these tests run: CrewAI writes a key to ~/.local/share/crewai whatever
    XDG_DATA_HOME says."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
        with outbound() as seen:
            import crewai
        assert seen == []
        yield crewai


@pytest.fixture
def sim(_server: SimulatedLLM) -> Iterator[SimulatedLLM]:
    """The fake server with fresh counters; the test must not reach anything else."""
    _server.reset()
    with outbound() as seen:
        yield _server
    assert seen == []


def make_llm(crewai: Any, sim: SimulatedLLM, how: str, **options: Any) -> Any:
    """A CrewAI `LLM` whose SDK clients cache: through the HTTP transport or `agentcache.wrap()`."""
    from openai import AsyncOpenAI, OpenAI

    llm = crewai.LLM(model="gpt-4o-mini", api_key="sk-x", base_url=sim.openai_base_url, **options)
    if how == "http_client":
        base = {"api_key": "sk-x", "base_url": sim.openai_base_url}
        llm._client = OpenAI(**base, http_client=agentcache.http_client(library="httpx"))
        llm._async_client = AsyncOpenAI(**base, http_client=agentcache.async_http_client(library="httpx"))
    else:
        llm._client = agentcache.wrap(llm._client)
        llm._async_client = agentcache.wrap(llm._async_client)
    return llm


@pytest.fixture
def llms(crewai: Any, sim: SimulatedLLM) -> Iterator[Any]:
    """`make_llm(how, **options)`; the sync clients are closed after the test (a test closes an async client in
    the event loop that used it)."""
    made: list[Any] = []

    def make(how: str = "http_client", **options: Any) -> Any:
        made.append(make_llm(crewai, sim, how, **options))
        return made[-1]

    yield make
    for llm in made:
        llm._client.close()


@pytest.mark.parametrize("how", ["http_client", "wrap"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_llm_call_and_acall(llms: Any, sim: SimulatedLLM, how: str, stream: bool) -> None:
    """`LLM.call` twice and `LLM.acall` twice: one request each, streamed or not."""
    llm = llms(how, stream=stream)
    assert [llm.call("hello") for _ in range(2)] == ["Simulated reply to: hello"] * 2

    async def twice() -> list[Any]:
        try:
            return [await llm.acall("async hello") for _ in range(2)]
        finally:
            await llm._async_client.close()

    assert asyncio.run(twice()) == ["Simulated reply to: async hello"] * 2
    assert sim.calls["chat.completions"] == 2
    assert [bool(body.get("stream")) for _, body in sim.requests] == [stream, stream]


@pytest.mark.parametrize("how", ["http_client", "wrap"])
def test_structured_output(llms: Any, sim: SimulatedLLM, how: str) -> None:
    """`LLM.call(response_model=...)` (CrewAI sends it through `beta.chat.completions.with_raw_response.parse`)."""
    from pydantic import BaseModel

    class City(BaseModel):
        name: str

    llm = llms(how)
    answers = [llm.call("capital of France?", response_model=City) for _ in range(2)]
    assert answers[0] == answers[1] and isinstance(answers[0], City)
    assert sim.calls["chat.completions"] == 1


def search_tool(crewai: Any, runs: Counter[str]) -> Any:
    """A CrewAI `@tool` over `@tool_cached`."""
    from crewai.tools import tool

    @tool("search")
    @agentcache.tool_cached()
    def search(query: str) -> str:
        """Search the knowledge base."""
        runs["search"] += 1
        return f"result for {query}"

    return search


def make_crew(crewai: Any, llm: Any, tools: list[Any], **options: Any) -> Any:
    agent = crewai.Agent(role="researcher", goal="answer", backstory="terse", llm=llm, tools=tools, max_iter=3)
    task = crewai.Task(description="Find the capital of France", expected_output="a city", agent=agent)
    return crewai.Crew(agents=[agent], tasks=[task], **options)


def test_crew_kickoff_with_a_cached_tool(crewai: Any, llms: Any, sim: SimulatedLLM) -> None:
    """A crew whose agent calls a cached tool, kicked off twice: the first run makes two model requests (the
    tool call, then the answer) and runs the tool once; the second run is served whole from the cache."""
    runs: Counter[str] = Counter()
    search = search_tool(crewai, runs)
    assert set(search.args_schema.model_json_schema()["properties"]) == {"query"}
    llm = llms()
    outputs = [make_crew(crewai, llm, [search]).kickoff().raw for _ in range(2)]
    assert outputs[0] == outputs[1]
    assert sim.calls["chat.completions"] == 2 and runs["search"] == 1
    tool = sim.requests[0][1]["tools"][0]["function"]
    assert tool["name"] == "search" and tool["parameters"]["required"] == ["query"]


def test_crew_akickoff_and_streamed_kickoff(crewai: Any, llms: Any, sim: SimulatedLLM) -> None:
    """Native async `Crew.akickoff` twice: one request; a streamed crew (`Crew(stream=True)`) twice: one
    streamed request, and the second run's chunks come from the recorded stream."""
    llm = llms()

    async def twice() -> list[str]:
        try:
            return [(await make_crew(crewai, llm, []).akickoff()).raw for _ in range(2)]
        finally:
            await llm._async_client.close()

    first, second = asyncio.run(twice())
    assert first == second and first.startswith("Simulated reply to:")
    assert sim.calls["chat.completions"] == 1

    texts = []
    for _ in range(2):
        streaming = make_crew(crewai, llm, [], stream=True).kickoff()
        chunks = [chunk.content for chunk in streaming]
        texts.append("".join(chunks))
        assert streaming.result.raw == first
    assert texts[0] == texts[1] == first
    assert sim.calls["chat.completions"] == 2 and sim.requests[-1][1]["stream"] is True
