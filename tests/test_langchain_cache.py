"""`set_llm_cache(LLMCache(...))` and `SemanticLLMCache`: LangChain's own standard suites on every backend kind,
tool-call generations round-tripping, `llm_string`s kept apart, and the real `ChatOpenAI` against the local fake
server with its upstream calls counted (#11.3, #11.9)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.caches import BaseCache
from langchain_core.globals import set_llm_cache
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, Generation
from langchain_openai import ChatOpenAI
from langchain_tests.integration_tests.cache import AsyncCacheTestSuite, SyncCacheTestSuite

import agentcache
from agentcache.integrations.langchain import LLMCache, SemanticLLMCache

SUITE_KINDS = ["memory", "sqlite", "redis"]


@pytest.fixture(params=SUITE_KINDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    """The backend kinds the issue names (the tiered kind is Redis under a memory tier)."""
    return str(request.param)


@pytest.fixture
def _no_global_cache() -> Iterator[None]:
    yield
    set_llm_cache(None)


class TestLLMCacheSync(SyncCacheTestSuite):
    """LangChain's `SyncCacheTestSuite` on memory, sqlite and redis."""

    @pytest.fixture
    def cache(self, backend_url: str) -> BaseCache:
        return LLMCache(backend=backend_url)


class TestLLMCacheAsync(AsyncCacheTestSuite):
    """LangChain's `AsyncCacheTestSuite` on memory, sqlite and redis."""

    @pytest.fixture
    async def cache(self, backend_url: str) -> BaseCache:
        return LLMCache(backend=backend_url)


class TestSemanticLLMCacheSync(SyncCacheTestSuite):
    """The semantic variant passes the same suite (the sample prompts are unrelated sentences)."""

    @pytest.fixture
    def cache(self, backend_url: str) -> BaseCache:
        return SemanticLLMCache(backend=backend_url)


class TestSemanticLLMCacheAsync(AsyncCacheTestSuite):
    """The semantic variant, async faces."""

    @pytest.fixture
    async def cache(self, backend_url: str) -> BaseCache:
        return SemanticLLMCache(backend=backend_url)


def _tool_call_generation() -> ChatGeneration:
    message = AIMessage(
        content="",
        tool_calls=[{"name": "search", "args": {"query": "llm caching", "k": 3}, "id": "call_1", "type": "tool_call"}],
        usage_metadata={"input_tokens": 12, "output_tokens": 7, "total_tokens": 19},
        response_metadata={"finish_reason": "tool_calls", "model_name": "gpt-4o-mini"},
        additional_kwargs={"tool_calls": [{"id": "call_1", "type": "function"}]},
    )
    return ChatGeneration(message=message, generation_info={"finish_reason": "tool_calls"})


def test_tool_call_generations_round_trip(backend_url: str) -> None:
    """A chat generation carrying tool calls comes back equal, through the sync and the async faces."""
    cache = LLMCache(backend=backend_url)
    generation = _tool_call_generation()
    cache.update("prompt", "llm", [generation])
    (hit,) = cache.lookup("prompt", "llm") or []
    assert isinstance(hit, ChatGeneration)
    assert isinstance(hit.message, AIMessage)
    assert hit.message.tool_calls == generation.message.tool_calls  # type: ignore[attr-defined]
    assert hit.message.usage_metadata == generation.message.usage_metadata  # type: ignore[attr-defined]
    assert hit == generation
    (ahit,) = asyncio.run(cache.alookup("prompt", "llm")) or []
    assert ahit == generation


def test_llm_strings_never_share_entries(backend_url: str) -> None:
    """Same prompt, different model configuration: separate entries; and a prompt that is a prefix of another, or
    the two strings shifted at their border, never collide."""
    cache = LLMCache(backend=backend_url)
    cache.update("prompt", "model=a temperature=0", [Generation(text="A")])
    cache.update("prompt", "model=b temperature=0", [Generation(text="B")])
    assert cache.lookup("prompt", "model=a temperature=0") == [Generation(text="A")]
    assert cache.lookup("prompt", "model=b temperature=0") == [Generation(text="B")]
    assert cache.lookup("prompt", "model=a temperature=1") is None
    assert cache.lookup("promptmodel=a", " temperature=0") is None
    assert cache.lookup("prompt", "model=a temperature=0 ") is None


def test_clear_leaves_other_caches_alone(tmp_path: Any) -> None:
    """`clear()` removes this cache's entries, not another namespace's nor a decorator's in the same store."""
    url = f"sqlite://{tmp_path / 'shared.db'}"
    mine, theirs = LLMCache(backend=url, namespace="a"), LLMCache(backend=url, namespace="b")
    mine.update("p", "l", [Generation(text="a")])
    theirs.update("p", "l", [Generation(text="b")])

    @agentcache.tool_cached(backend=url)
    def tool(x: int) -> int:
        return x

    tool(1)
    mine.clear()
    assert mine.lookup("p", "l") is None
    assert theirs.lookup("p", "l") == [Generation(text="b")]
    tool(1)
    assert tool.cache_info().hits == 1


def test_refusals_are_not_stored(url: str) -> None:
    cache = LLMCache(backend=url)
    refusal = AIMessage(content="", additional_kwargs={"refusal": "I can't help with that."})
    cache.update("p", "l", [ChatGeneration(message=refusal)])
    assert cache.lookup("p", "l") is None


def test_an_undecodable_entry_is_a_miss(url: str) -> None:
    cache = LLMCache(backend=url)
    cache.layer.set(("p", "l"), [{"kind": "Pickled", "text": "x"}])
    assert cache.lookup("p", "l") is None


def test_options_reach_the_layer(url: str) -> None:
    """namespace=, ttl=, tags= are the decorators' options: tags invalidate, the namespace partitions."""
    cache = LLMCache(backend=url, namespace="team-a", ttl="1h", tags=["llm"])
    cache.update("p", "l", [Generation(text="x")])
    assert LLMCache(backend=url, namespace="team-b").lookup("p", "l") is None
    assert cache.lookup("p", "l") == [Generation(text="x")]
    cache.layer.invalidate(tags=["llm"])
    assert cache.lookup("p", "l") is None


# -- the real ChatOpenAI against the local fake server -------------------------------------------------------


def chat_openai(server: Any, **kwargs: Any) -> ChatOpenAI:
    options = {"model": "gpt-4o-mini", "api_key": "sk-test", "base_url": server.openai_base_url, "max_retries": 0}
    return ChatOpenAI(**{**options, **kwargs})


@pytest.mark.usefixtures("_no_global_cache")
def test_chat_openai_invoke_and_ainvoke(server: Any, url: str) -> None:
    """invoke twice + ainvoke once: one request upstream; the hit is the same message."""
    set_llm_cache(LLMCache(backend=url))
    llm = chat_openai(server)
    first = llm.invoke("What is the capital of France?")
    second = llm.invoke("What is the capital of France?")
    third = asyncio.run(llm.ainvoke("What is the capital of France?"))
    assert server.calls["chat.completions"] == 1
    assert first.content == second.content == third.content != ""
    llm.invoke("And of Spain?")
    assert server.calls["chat.completions"] == 2


@pytest.mark.usefixtures("_no_global_cache")
def test_chat_openai_parameters_partition(server: Any, url: str) -> None:
    """A different temperature or model is a different `llm_string`: a new request."""
    set_llm_cache(LLMCache(backend=url))
    chat_openai(server, temperature=0).invoke("hi")
    chat_openai(server, temperature=0).invoke("hi")
    chat_openai(server, temperature=1).invoke("hi")
    chat_openai(server, model="gpt-4o").invoke("hi")
    assert server.calls["chat.completions"] == 3


@pytest.mark.usefixtures("_no_global_cache")
def test_chat_openai_tool_call_turn(server: Any, url: str) -> None:
    """A model bound to tools answers with a tool call; the cached answer has the same tool call."""
    set_llm_cache(LLMCache(backend=url))

    def search(query: str) -> str:
        """Search the web."""
        return query

    llm = chat_openai(server).bind_tools([search])
    messages = [SystemMessage("You search."), HumanMessage("llm caching")]
    first, second = llm.invoke(messages), llm.invoke(messages)
    assert server.calls["chat.completions"] == 1
    assert first.tool_calls == second.tool_calls != []  # type: ignore[attr-defined]


@pytest.mark.usefixtures("_no_global_cache")
def test_chat_openai_streaming_callbacks_are_cached(server: Any, url: str) -> None:
    """`streaming=True` (and `astream_events`) go through LangChain's cache: the second call is a hit."""
    set_llm_cache(LLMCache(backend=url))
    llm = chat_openai(server, streaming=True)
    assert llm.invoke("Tell me a story").content == llm.invoke("Tell me a story").content != ""
    assert server.calls["chat.completions"] == 1


@pytest.mark.usefixtures("_no_global_cache")
@pytest.mark.usefixtures("_no_global_cache")
def test_direct_stream_does_not_consult_the_cache(server: Any, url: str) -> None:
    """LangChain's `.stream()`, `astream()` and `astream_events()` bypass `BaseCache` by design: what the docs'
    table says, measured."""
    set_llm_cache(LLMCache(backend=url))
    llm = chat_openai(server)
    for _ in range(2):
        assert "".join(str(c.content) for c in llm.stream("hello")) != ""
    assert server.calls["chat.completions"] == 2

    async def events() -> None:
        for _ in range(2):
            assert [e async for e in llm.astream_events("hey", version="v2")] != []
        assert server.calls["chat.completions"] == 4
        for _ in range(2):
            assert [c async for c in llm.astream("hey there")] != []

    asyncio.run(events())
    assert server.calls["chat.completions"] == 6


@pytest.mark.usefixtures("_no_global_cache")
def test_semantic_cache_with_chat_openai(server: Any, url: str) -> None:
    """A paraphrase of the question is served; another question or another system prompt is not."""
    set_llm_cache(SemanticLLMCache(backend=url))
    llm = chat_openai(server)
    first = llm.invoke([SystemMessage("Be brief."), HumanMessage("What is the capital of France?")])
    again = llm.invoke([SystemMessage("Be brief."), HumanMessage("What's the capital of France?")])
    assert server.calls["chat.completions"] == 1
    assert again.content == first.content
    llm.invoke([SystemMessage("Be verbose."), HumanMessage("What's the capital of France?")])
    llm.invoke([SystemMessage("Be brief."), HumanMessage("What is the population of Berlin?")])
    assert server.calls["chat.completions"] == 3


def test_semantic_refresh_keeps_the_vector(url: str) -> None:
    """An answer stored in ``mode("write")`` (what `update` does, and `agentcache.refresh()`) keeps its vector
    record, so a paraphrase finds it afterwards (before, a refreshed answer was reachable by its exact key only)."""

    @agentcache.semantic_cached(backend=url, query="query")
    def answer(query: str) -> str:
        return f"answer to {query}"

    with agentcache.refresh():
        answer("What is the capital of France?")
    assert answer("What's the capital of France?") == "answer to What is the capital of France?"
    hit = agentcache.last_semantic_hit()
    assert hit is not None
    assert hit.similarity < 1.0


def test_semantic_lookups_count_misses_not_errors(url: str) -> None:
    """A lookup that finds nothing is a miss in the stats, never an error; an update then a paraphrase: a hit."""
    cache = SemanticLLMCache(backend=url)
    assert cache.lookup("What is the capital of France?", "llm") is None
    cache.update("What is the capital of France?", "llm", [Generation(text="Paris")])
    assert cache.lookup("What's the capital of France?", "llm") == [Generation(text="Paris")]
    layer = agentcache.stats().by_layer["semantic"]
    assert (layer.hits, layer.errors) == (1, 0)
    assert layer.misses >= 1


def test_malformed_tool_calls_are_not_stored(url: str) -> None:
    cache = LLMCache(backend=url, single_flight=False)
    malformed = AIMessage(
        content="", invalid_tool_calls=[{"name": "search", "args": "{not json", "id": "c1", "error": "bad json"}]
    )
    cache.update("p", "l", [ChatGeneration(message=malformed)])
    assert cache.lookup("p", "l") is None


@pytest.mark.usefixtures("_no_global_cache")
def test_batch_and_a_completion_llm(server: Any, url: str) -> None:
    """`batch` of a chat model goes through the cache; so does a completion model (`BaseLLM`: LangChain looks up
    every prompt of a call before generating the missing ones, here twice the same prompt in one call)."""
    from langchain_core.language_models import FakeListLLM

    set_llm_cache(LLMCache(backend=url))
    llm = chat_openai(server)
    first = llm.batch(["one", "two"])
    again = llm.batch(["one", "two"])
    assert server.calls["chat.completions"] == 2
    assert [m.content for m in first] == [m.content for m in again]
    completion = FakeListLLM(responses=["a", "b", "c", "d"])
    assert completion.batch(["p", "p", "q"]) != []
    calls = completion.i
    assert completion.invoke("p") in ("a", "b") and completion.invoke("q") == "c"
    assert completion.i == calls  # served from the cache
