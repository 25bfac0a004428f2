"""`LLMCache` single flight: concurrent identical `ChatOpenAI` calls make one request (#11.3).

LangChain's cache protocol is a lookup, then an update after the model call. The fake server holds its answers
until every caller has made its lookup (`server.hold`), so without single flight each caller misses and calls
upstream (8 requests: `test_without_single_flight_each_caller_pays`), and with it one request is made.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
from langchain_core.globals import set_llm_cache
from langchain_core.outputs import Generation
from langchain_openai import ChatOpenAI

from agentcache.integrations.langchain import LLMCache, SemanticLLMCache

N = 8
QUESTION = "What is the capital of France?"


class _Gate:
    """Sets `all_in` once `expected` lookups began (the server's answers wait for it); without single flight, once
    they returned (a lookup still reading when the first answer is stored would hit)."""

    def __init__(self, expected: int = N, **options: Any) -> None:
        super().__init__(**options)
        self.expected = expected
        self.after = options.get("single_flight") is False
        self.lookups = 0
        self.all_in = threading.Event()
        self._count_lock = threading.Lock()

    def _arrived(self) -> None:
        with self._count_lock:
            self.lookups += 1
            if self.lookups >= self.expected:
                self.all_in.set()

    def lookup(self, prompt: str, llm_string: str) -> Any:
        if not self.after:
            self._arrived()
        found = super().lookup(prompt, llm_string)  # type: ignore[misc]
        if self.after:
            self._arrived()
        return found

    async def alookup(self, prompt: str, llm_string: str) -> Any:
        if not self.after:
            self._arrived()
        found = await super().alookup(prompt, llm_string)  # type: ignore[misc]
        if self.after:
            self._arrived()
        return found


class GatedCache(_Gate, LLMCache):
    """`LLMCache` behind the gate."""


class GatedSemanticCache(_Gate, SemanticLLMCache):
    """`SemanticLLMCache` behind the gate."""


@pytest.fixture(autouse=True)
def _no_global_cache() -> Iterator[None]:
    yield
    set_llm_cache(None)


def chat_openai(server: Any) -> ChatOpenAI:
    return ChatOpenAI(model="gpt-4o-mini", api_key="sk-test", base_url=server.openai_base_url, max_retries=0)


def gated(server: Any, kind: type[_Gate] = GatedCache, **options: Any) -> Any:
    cache = kind(**options)
    set_llm_cache(cache)
    server.hold = cache.all_in
    return cache


def invoke_all(llm: ChatOpenAI, n: int = N) -> list[Any]:
    """`n` identical `invoke`s on `n` threads: their answers' ids (the server numbers them), or the exceptions
    they raised."""
    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(llm.invoke, QUESTION) for _ in range(n)]
        return [f.exception(timeout=120) or f.result().response_metadata["id"] for f in futures]


async def ainvoke_all(llm: ChatOpenAI, n: int = N) -> list[Any]:
    results = await asyncio.wait_for(
        asyncio.gather(*(llm.ainvoke(QUESTION) for _ in range(n)), return_exceptions=True), 120
    )
    return [r if isinstance(r, BaseException) else r.response_metadata["id"] for r in results]


def test_without_single_flight_each_caller_pays(server: Any, url: str) -> None:
    """The floor this file improves on: LangChain's protocol alone, 8 concurrent calls, 8 requests."""
    gated(server, backend=url, single_flight=False)
    answers = invoke_all(chat_openai(server))
    assert server.calls["chat.completions"] == N
    assert len(set(answers)) == N  # each a fresh answer


@pytest.mark.parametrize("backend_kind", ["memory", "sqlite", "redis"])
def test_concurrent_invokes_make_one_request(server: Any, backend_url: str) -> None:
    cache = gated(server, backend=backend_url)
    answers = invoke_all(chat_openai(server))
    assert server.calls["chat.completions"] == 1
    assert len(set(answers)) == 1
    info = cache.layer.info()
    assert (info.misses, info.hits, cache.layer.counters.stores) == (1, N - 1, 1)


@pytest.mark.parametrize("backend_kind", ["memory", "sqlite", "redis"])
def test_concurrent_ainvokes_make_one_request(server: Any, backend_url: str) -> None:
    cache = gated(server, backend=backend_url)
    answers = asyncio.run(ainvoke_all(chat_openai(server)))
    assert server.calls["chat.completions"] == 1
    assert len(set(answers)) == 1
    assert cache.layer.counters.stores == 1


@pytest.mark.parametrize("single_flight", [False, True])
def test_semantic_cache_concurrent_invokes(server: Any, url: str, single_flight: bool) -> None:
    """`SemanticLLMCache` coalesces identical prompts too (8 requests without single flight, 1 with it)."""
    gated(server, GatedSemanticCache, backend=url, single_flight=single_flight)
    answers = invoke_all(chat_openai(server))
    assert server.calls["chat.completions"] == (1 if single_flight else N)
    assert len(set(answers)) == (1 if single_flight else N)


@pytest.mark.parametrize("backend_kind", ["memory", "sqlite", "redis"])
def test_semantic_cache_concurrent_ainvokes_make_one_request(server: Any, backend_url: str) -> None:
    gated(server, GatedSemanticCache, backend=backend_url)
    answers = asyncio.run(ainvoke_all(chat_openai(server)))
    assert server.calls["chat.completions"] == 1
    assert len(set(answers)) == 1
    server.hold = None
    reworded = chat_openai(server).invoke("Which city is the capital of France?")  # a paraphrase: a hit
    assert (reworded.response_metadata["id"], server.calls["chat.completions"]) == (answers[0], 1)


@pytest.mark.parametrize("sync", [True, False])
def test_semantic_cache_failed_call_releases_its_waiters(server: Any, url: str, sync: bool) -> None:
    """The leading call fails: its waiters are released at once (the wait would be 10 minutes) and each calls
    the model itself; nothing is stored, so the next call is a miss."""
    gated(server, GatedSemanticCache, backend=url, lock_ttl="10m")
    server.fail_next(500, count=N)
    results = invoke_all(chat_openai(server)) if sync else asyncio.run(ainvoke_all(chat_openai(server)))
    assert all(isinstance(r, openai.InternalServerError) for r in results)
    assert server.calls["chat.completions"] == N
    server.hold = None
    chat_openai(server).invoke(QUESTION)
    assert server.calls["chat.completions"] == N + 1


def test_a_failed_call_releases_its_waiters(server: Any, url: str) -> None:
    """The leading call fails (HTTP 500, no update): the waiting callers are released at once (the wait would
    be 10 minutes here) and call upstream themselves; nothing is stored. Then a call succeeds and is cached."""
    cache = gated(server, backend=url, lock_ttl="10m")
    server.fail_next(500, count=N)
    results = invoke_all(chat_openai(server))
    assert all(isinstance(r, openai.InternalServerError) for r in results)
    assert server.calls["chat.completions"] == N
    assert cache.layer.counters.stores == 0
    server.hold = None
    llm = chat_openai(server)
    assert llm.invoke(QUESTION).content == llm.invoke(QUESTION).content
    assert server.calls["chat.completions"] == N + 1


def test_a_failed_async_call_releases_its_waiters(server: Any, url: str) -> None:
    cache = gated(server, backend=url, lock_ttl="10m")
    server.fail_next(500, count=N)
    results = asyncio.run(ainvoke_all(chat_openai(server)))
    assert all(isinstance(r, openai.InternalServerError) for r in results)
    assert server.calls["chat.completions"] == N
    assert cache.layer.counters.stores == 0


def test_waiters_of_a_failed_call_are_answered(server: Any, url: str) -> None:
    """Only the leader's request fails: it raises, and its released waiters call upstream themselves and get
    answers (one request each, or fewer when a late caller leads a new flight that others join)."""
    gated(server, backend=url, lock_ttl="10m")
    server.fail_next(500, count=1)
    results = invoke_all(chat_openai(server))
    assert sum(isinstance(r, openai.InternalServerError) for r in results) == 1
    assert all(isinstance(r, str) for r in results if not isinstance(r, openai.InternalServerError))
    assert 2 <= server.calls["chat.completions"] <= N


def test_a_lookup_without_update_is_released_by_lock_ttl(url: str) -> None:
    """Code calling `lookup` by hand that does not update: another thread's lookup of the same prompt waits for at
    most `lock_ttl`, then misses; the same thread never waits for itself; a late update is still stored."""
    cache = LLMCache(backend=url, lock_ttl=0.2)
    assert cache.lookup("p", "l") is None
    assert cache.lookup("p", "l") is None  # the same thread: no wait
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(cache.lookup, "p", "l").result(timeout=60) is None
    cache.update("p", "l", [Generation(text="late")])  # after the wait expired: stored on its own
    assert cache.lookup("p", "l") == [Generation(text="late")]


WORKER = """
import sys, threading
import redis
from langchain_core.globals import set_llm_cache
from langchain_core.outputs import Generation
from langchain_openai import ChatOpenAI
from agentcache.integrations.langchain import LLMCache

redis_url, base_url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
set_llm_cache(LLMCache(backend=redis_url))
arrivals = redis.Redis.from_url(redis_url)
llm = ChatOpenAI(model="gpt-4o-mini", api_key="sk-test", base_url=base_url, max_retries=0)
ids = []

def one():
    arrivals.incr("test:arrivals")
    ids.append(llm.invoke("What is the capital of France?").response_metadata["id"])

threads = [threading.Thread(target=one) for _ in range(n)]
for t in threads: t.start()
for t in threads: t.join()
print(" ".join(ids))
"""


def test_processes_share_one_request_on_redis(server: Any, redis_server: str, tmp_path: Any) -> None:
    """Two processes, 4 concurrent identical invokes each, one Redis store: one request upstream (the engine's
    cross-process lock); the server holds its answer until all 8 callers started."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    import redis

    url = redis_server
    arrivals = redis.Redis.from_url(url)
    arrivals.delete("test:arrivals")
    server.hold = threading.Event()
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    workers = [
        subprocess.Popen(
            [sys.executable, str(script), url, server.openai_base_url, "4"], stdout=subprocess.PIPE, text=True, env=env
        )
        for _ in range(2)
    ]
    deadline = time.monotonic() + 120
    while int(arrivals.get("test:arrivals") or 0) < 2 * 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.hold.set()
    outputs = [w.communicate(timeout=120)[0].split() for w in workers]
    assert [len(o) for o in outputs] == [4, 4]
    assert len({i for o in outputs for i in o}) == 1
    assert server.calls["chat.completions"] == 1


def test_a_failed_async_completion_call_releases_its_waiters(url: str) -> None:
    """A completion model (`BaseLLM`) looks up in the caller's task and reports its error from tasks of its own;
    the leading caller's task goes on after catching the error, yet its waiter is released at once (the wait
    would be 10 minutes) and calls the model itself."""
    from langchain_core.language_models import LLM

    arrived = asyncio.Event()
    lookups = [0]
    calls: list[str] = []

    class Cache(LLMCache):
        async def alookup(self, prompt: str, llm_string: str) -> Any:
            lookups[0] += 1
            if lookups[0] == 2:
                arrived.set()
            return await super().alookup(prompt, llm_string)

    class Down(LLM):
        @property
        def _llm_type(self) -> str:
            return "down"

        def _call(self, prompt: str, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> str:
            raise RuntimeError("down")

        async def _acall(self, prompt: str, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> str:
            calls.append(prompt)
            await asyncio.wait_for(arrived.wait(), 60)  # the second caller is waiting for this call
            raise RuntimeError("down")

    llm = Down(cache=Cache(backend=url, lock_ttl="10m"))
    leader_done = asyncio.Event()

    async def leader() -> str:
        try:
            await llm.ainvoke("q")
        except RuntimeError:
            pass
        await asyncio.wait_for(leader_done.wait(), 120)  # this task goes on: its end releases nothing in time
        return "leader"

    async def follower() -> str:
        await asyncio.sleep(0)
        try:
            await llm.ainvoke("q")
        except RuntimeError:
            return "follower failed on its own call"
        finally:
            leader_done.set()
        return "answered"

    async def main() -> list[str]:
        return list(await asyncio.wait_for(asyncio.gather(leader(), follower()), 120))

    assert asyncio.run(main()) == ["leader", "follower failed on its own call"]
    assert calls == ["q", "q"]


def test_an_async_lookup_without_update_is_released_by_lock_ttl(url: str) -> None:
    cache = LLMCache(backend=url, lock_ttl=0.2)

    async def main() -> None:
        stalled = asyncio.Event()

        async def leader() -> None:
            assert await cache.alookup("p", "l") is None
            stalled.set()
            await asyncio.sleep(1)  # holds its lead past lock_ttl, then updates
            await cache.aupdate("p", "l", [Generation(text="late")])

        async def waiter() -> Any:
            await stalled.wait()
            return await cache.alookup("p", "l")

        _, waited = await asyncio.wait_for(asyncio.gather(leader(), waiter()), 60)
        assert waited is None
        assert await cache.alookup("p", "l") == [Generation(text="late")]

    asyncio.run(main())
