"""The real LangChain chat models over wrapped SDK clients, against the local fake server.

`ChatOpenAI` calls `chat.completions.with_raw_response.create(...)` and `ChatAnthropic` calls
`messages.with_raw_response.create(...)` (streamed or not): before `wrap()` covered the response forms, every
one of these calls reached the server.
"""

from __future__ import annotations

from typing import Any

from langchain_anthropic import ChatAnthropic
from langchain_openai import ChatOpenAI
from support.fake_llm_server import SimulatedLLM, anthropic_client, openai_client

from agentcache.integrations import wrap


def chat_openai(server: SimulatedLLM, url: str) -> Any:
    """`ChatOpenAI` over wrapped sync and async clients (its documented `client=` / `root_client=` fields)."""
    sync = wrap(openai_client(server), backend=url)
    asynchronous = wrap(openai_client(server, is_async=True), backend=url)
    return ChatOpenAI(
        model="gpt-4o-mini",
        api_key="sk-test",  # type: ignore[arg-type]
        client=sync.chat.completions,
        root_client=sync,
        async_client=asynchronous.chat.completions,
        root_async_client=asynchronous,
    )


def chat_anthropic(server: SimulatedLLM, url: str) -> Any:
    """`ChatAnthropic` over wrapped clients: it builds its clients in cached properties, set here up front."""
    llm = ChatAnthropic(  # type: ignore[call-arg]
        model="claude-sonnet-4-5", max_tokens=1024, api_key="sk-ant-test", base_url=server.anthropic_base_url
    )
    llm.__dict__["_client"] = wrap(anthropic_client(server), backend=url)
    llm.__dict__["_async_client"] = wrap(anthropic_client(server, is_async=True), backend=url)
    return llm


def test_chat_openai_invoke_and_ainvoke_are_cached(server: SimulatedLLM, url: str) -> None:
    """`invoke` twice and `ainvoke` once: one request upstream, the same answer each time."""
    import asyncio

    llm = chat_openai(server, url)
    first = llm.invoke("What is the capital of France?")
    second = llm.invoke("What is the capital of France?")
    third = asyncio.run(llm.ainvoke("What is the capital of France?"))
    assert server.calls["chat.completions"] == 1
    assert first.content == second.content == third.content != ""


def test_chat_openai_stream_is_cached(server: SimulatedLLM, url: str) -> None:
    """`stream` replays the recorded chunks on the second call."""
    llm = chat_openai(server, url)
    texts = ["".join(str(c.content) for c in llm.stream("Tell me a story")) for _ in range(2)]
    assert server.calls["chat.completions"] == 1
    assert texts[0] == texts[1] != ""


def test_chat_anthropic_invoke_stream_and_async(server: SimulatedLLM, url: str) -> None:
    """`invoke`, `stream` and `ainvoke` of `ChatAnthropic`: one request per distinct call."""
    import asyncio

    llm = chat_anthropic(server, url)
    answers = [llm.invoke("hi").content for _ in range(2)]
    answers.append(asyncio.run(llm.ainvoke("hi")).content)
    streamed = ["".join(str(c.content) for c in llm.stream("hey")) for _ in range(2)]
    assert server.calls["messages"] == 2  # "hi" once (stored as a message), "hey" once (recorded as a stream)
    assert answers[0] == answers[1] == answers[2] != ""
    assert streamed[0] == streamed[1] != ""


def test_chat_anthropic_public_route_is_langchains_cache(server: SimulatedLLM, url: str) -> None:
    """`ChatAnthropic` takes no SDK client nor `http_client` (langchain-anthropic 1.7: it builds both in cached
    properties), so the public way to cache it is LangChain's own cache: `cache=LLMCache(...)` on the model (or
    `set_llm_cache`). `invoke` twice and `ainvoke` once: one request; 8 concurrent `invoke`s of a new question:
    one more (single flight)."""
    import asyncio
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from agentcache.integrations.langchain import LLMCache

    cache = LLMCache(backend=url)
    llm = ChatAnthropic(  # type: ignore[call-arg]
        model="claude-sonnet-4-5",
        max_tokens=1024,
        api_key="sk-ant-test",
        base_url=server.anthropic_base_url,
        max_retries=0,
        cache=cache,
    )
    answers = [llm.invoke("hi").content, llm.invoke("hi").content, asyncio.run(llm.ainvoke("hi")).content]
    assert server.calls["messages"] == 1
    assert answers[0] == answers[1] == answers[2] != ""
    started, lock = [0], threading.Lock()
    server.hold = threading.Event()  # answers wait until the 8 callers started (each would miss without single flight)

    def ask() -> Any:
        with lock:
            started[0] += 1
            if started[0] == 8:
                server.hold.set()  # type: ignore[union-attr]
        return llm.invoke("a new question").response_metadata["id"]

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: ask(), range(8)))
    assert server.calls["messages"] == 2
    assert len(set(ids)) == 1
