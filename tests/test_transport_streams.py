"""Concurrent identical streamed requests through `agentcache.http_client()` (#11.2): the followers wait for the
leading stream's recording and replay it; a leading stream that is cut or abandoned releases them, and each
sends its own request; non-2xx answers are never stored.

The fake server holds its answers (`server.hold`) until every caller has started its request, so without single
flight every caller would reach the server.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest

from agentcache.integrations.transport import async_http_client, http_client
from agentcache.testing.simulator import SimulatedLLM

N = 8
MESSAGES = [{"role": "user", "content": "Tell me a story"}]


class Gate:
    """Counts callers; opens the server's answers once `n` have started."""

    def __init__(self, server: SimulatedLLM, n: int = N) -> None:
        self.n = n
        self.started = 0
        self.lock = threading.Lock()
        self.open = threading.Event()
        server.hold = self.open

    def arrive(self) -> None:
        with self.lock:
            self.started += 1
            if self.started >= self.n:
                self.open.set()


def _stream_ids(stream: Any) -> tuple[str, str]:
    """The stream's response id (the server numbers answers) and its text."""
    chunks = list(stream)
    return chunks[0].id, "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def streams_on_threads(server: SimulatedLLM, library: str, n: int = N, **client_options: Any) -> list[Any]:
    """`n` identical streamed chat calls on `n` threads of one client: `(id, text)` each, or the exception."""
    client = openai.OpenAI(
        base_url=server.openai_base_url,
        api_key="sk-test",
        max_retries=0,
        http_client=http_client(library=library, **client_options),  # type: ignore[arg-type]
    )
    gate = Gate(server, n)

    def one() -> tuple[str, str]:
        gate.arrive()
        return _stream_ids(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))

    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(one) for _ in range(n)]
        results = [f.exception(timeout=120) or f.result() for f in futures]
    client.close()
    return results


@pytest.mark.parametrize("library", ["httpx2", "httpx"])
def test_concurrent_streams_make_one_request(server: SimulatedLLM, library: str, url: str) -> None:
    results = streams_on_threads(server, library, backend=url)
    assert server.calls["chat.completions"] == 1
    assert len(set(results)) == 1 and results[0][1] != ""


@pytest.mark.parametrize("backend_kind", ["memory", "redis"])
def test_concurrent_streams_on_other_stores(server: SimulatedLLM, backend_url: str) -> None:
    results = streams_on_threads(server, "httpx2", backend=backend_url)
    assert server.calls["chat.completions"] == 1
    assert len(set(results)) == 1


def test_concurrent_async_streams_make_one_request(server: SimulatedLLM, url: str) -> None:
    async def main() -> list[tuple[str, str]]:
        http = async_http_client(backend=url)
        client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0, http_client=http)
        gate = Gate(server)

        async def one() -> tuple[str, str]:
            gate.arrive()
            stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
            chunks = [c async for c in stream]
            return chunks[0].id, "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

        try:
            return await asyncio.wait_for(asyncio.gather(*(one() for _ in range(N))), 120)
        finally:
            await client.close()

    results = asyncio.run(main())
    assert server.calls["chat.completions"] == 1
    assert len(set(results)) == 1


def test_followers_of_a_cut_stream_send_their_own(server: SimulatedLLM, url: str) -> None:
    """The server cuts every stream: the leader's raises, its followers are released and each sends its own
    request (which is cut too); nothing is stored, so the next call goes upstream."""
    server.abort_streams_after = 2
    results = streams_on_threads(server, "httpx2", backend=url)
    assert all(isinstance(r, openai.APIError) for r in results)
    assert server.calls["chat.completions"] == N
    server.abort_streams_after = None
    server.hold = None
    assert streams_on_threads(server, "httpx2", n=1, backend=url)[0][1] != ""
    assert server.calls["chat.completions"] == N + 1


def test_followers_of_an_abandoned_stream_send_their_own(server: SimulatedLLM, url: str) -> None:
    """The leading caller reads one chunk and closes its stream once the others started theirs: they are
    released, send their own requests and read whole stories; one of those is stored."""
    client = openai.OpenAI(
        base_url=server.openai_base_url, api_key="sk-test", max_retries=0, http_client=http_client(backend=url)
    )
    server.chunk_delay = 0.01
    followers = Gate(server, N - 1)
    server.hold = None
    leading = threading.Event()

    def leader() -> None:
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        next(iter(stream))
        leading.set()
        followers.open.wait(60)
        stream.close()

    def follower() -> str:
        leading.wait(60)
        followers.arrive()
        return _stream_ids(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))[1]  # type: ignore[arg-type]

    with ThreadPoolExecutor(N) as pool:
        first = pool.submit(leader)
        texts = [f.result(timeout=120) for f in [pool.submit(follower) for _ in range(N - 1)]]
        first.result(timeout=120)
    assert len(set(texts)) == 1 and texts[0].startswith("Simulated")
    sent = server.calls["chat.completions"]
    assert 2 <= sent <= N
    _stream_ids(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))  # type: ignore[arg-type]
    assert server.calls["chat.completions"] == sent
    client.close()


def test_error_answers_reach_followers_and_are_never_stored(server: SimulatedLLM, url: str) -> None:
    """A 500 to the leading streamed request: the callers waiting for it get the same error without another
    request (as for plain requests), and it is not stored: a caller that came after it sends a new request (and
    stores that answer), and so does the next call if none came."""
    server.fail_next(500, count=1)
    results = streams_on_threads(server, "httpx2", backend=url)
    errors = [r for r in results if isinstance(r, BaseException)]
    answers = {r for r in results if not isinstance(r, BaseException)}
    assert errors and all(isinstance(e, openai.InternalServerError) for e in errors)
    assert len(answers) <= 1
    assert server.calls["chat.completions"] == 1 + len(answers)
    server.hold = None
    after = streams_on_threads(server, "httpx2", n=1, backend=url)[0]
    assert server.calls["chat.completions"] == 2
    assert not answers or after in answers
