"""The caching HTTP transport (`agentcache.http_client()`): the real OpenAI and Anthropic SDKs over httpx2 and
httpx, talking to the local fake server; upstream call counts prove what was cached."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import agentcache
from agentcache.integrations import _http
from agentcache.integrations.transport import async_http_client, http_client
from agentcache.testing.simulator import SimulatedLLM

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")

LIBRARIES = ["httpx2", "httpx"]
MSGS = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def sim(_server: SimulatedLLM) -> Iterator[SimulatedLLM]:
    """The fake server with fresh counters; the clients a test made are closed after it."""
    _server.reset()
    yield _server
    while _clients:
        client = _clients.pop()
        result = client.close()
        if asyncio.iscoroutine(result):
            asyncio.run(result)


_clients: list[Any] = []


def _keep(client: Any) -> Any:
    _clients.append(client)
    return client


def _openai(sim: SimulatedLLM, library: str = "httpx2", key: str = "sk-test-aaaaaaaaaaaaaaaaaaaa", **opts: Any) -> Any:
    return _keep(
        openai.OpenAI(
            base_url=sim.openai_base_url, api_key=key, max_retries=0, http_client=http_client(library=library, **opts)
        )
    )


def _chat(client: Any, content: str = "hi", **extra: Any) -> Any:
    return client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": content}], **extra)


async def _drain(stream: Any) -> None:
    async for _ in stream:
        pass


def _text(stream: Any) -> str:
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


class TestKeys:
    """What the key is made of."""

    def test_transport_fields_left_out_and_version_headers_kept(self) -> None:
        """`user`/`metadata`/`store` never change the key; `anthropic-version` and `anthropic-beta` do."""
        body = b'{"model":"m","messages":[],"user":"u1","metadata":{"a":1},"store":true,"temperature":0.5}'
        view = _http.describe("POST", "/v1/messages", [], [("anthropic-version", "2023-06-01")], body)
        assert view["body"] == {"model": "m", "messages": [], "temperature": 0.5}
        assert view["headers"] == {"anthropic-version": "2023-06-01"}
        other = _http.describe("POST", "/v1/messages", [], [("anthropic-version", "2024-01-01")], body)
        assert other != view

    def test_credentials_only_in_partition(self) -> None:
        """API keys (headers and `key=` query parameters) are hashed into the partition, never in the view."""
        headers = [("authorization", "Bearer sk-secret-1"), ("content-type", "application/json")]
        view = _http.describe("POST", "/v1/x", [("key", "AIza-secret"), ("alt", "sse")], headers, b"{}")
        assert "secret" not in repr(view)
        assert view["query"] == [["alt", "sse"]]
        p1 = _http.partition(headers)
        p2 = _http.partition([("authorization", "Bearer sk-secret-2")])
        assert p1 != p2 and len(p1) == 16 and "secret" not in p1
        assert _http.partition([], [("key", "AIza-secret")]) != _http.partition([], [("key", "AIza-other")])

    def test_paths(self) -> None:
        """Only POSTs to model-answering paths are cached by default."""
        assert _http.is_cached_path("POST", "/v1/chat/completions", _http.DEFAULT_PATHS)
        assert _http.is_cached_path("POST", "/v1beta/models/gemini:generateContent", _http.DEFAULT_PATHS)
        assert not _http.is_cached_path("GET", "/v1/chat/completions", _http.DEFAULT_PATHS)
        assert not _http.is_cached_path("POST", "/v1/files", _http.DEFAULT_PATHS)
        assert not _http.is_cached_path("POST", "/v1/responses/resp_1/cancel", _http.DEFAULT_PATHS)

    def test_stream_completion(self) -> None:
        """A stream is whole when read to its end or when its terminal event was seen, never with an error event."""
        assert _http.sse_complete('data: {"a":1}\n\ndata: [DONE]\n\n', exhausted=False)
        assert not _http.sse_complete('data: {"a":1}\n\n', exhausted=False)
        assert _http.sse_complete('data: {"a":1}\n\n', exhausted=True)
        overloaded = 'event: error\ndata: {"type":"error","error":{"type":"overloaded_error"}}\n\n'
        assert not _http.sse_complete(overloaded, exhausted=True)
        failed = 'data: {"type":"response.failed"}\n\n'
        assert not _http.sse_complete(failed, exhausted=True)


@pytest.mark.parametrize("library", LIBRARIES)
class TestOpenAI:
    """`OpenAI(http_client=agentcache.http_client())` on httpx2 and httpx."""

    def test_same_request_answered_once(self, sim: SimulatedLLM, library: str) -> None:
        """The second identical call is a hit with the same answer; another prompt is a miss."""
        client = _openai(sim, library)
        first = _chat(client)
        second = _chat(client)
        assert second.id == first.id
        assert sim.calls["chat.completions"] == 1
        _chat(client, "something else")
        assert sim.calls["chat.completions"] == 2

    def test_stats(self, sim: SimulatedLLM, library: str) -> None:
        """Hits and misses land in the ``http`` layer's row of `agentcache.stats()`, with the tokens hits saved,
        for plain and streamed answers."""
        client = _openai(sim, library)
        for _ in range(2):
            _chat(client)
            _text(_chat(client, stream=True, stream_options={"include_usage": True}))
        row = agentcache.stats().by_layer["http"].info()
        assert (row.hits, row.misses) == (2, 2)
        assert row.tokens_saved > 0

    def test_hit_is_marked(self, sim: SimulatedLLM, library: str) -> None:
        """A hit carries `x-agentcache: hit`; a miss does not."""
        client = _openai(sim, library)
        miss = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSGS)
        hit = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSGS)
        assert miss.headers.get("x-agentcache") is None
        assert hit.headers.get("x-agentcache") == "hit"
        assert hit.parse().id == miss.parse().id

    def test_transport_only_fields_share_an_entry(self, sim: SimulatedLLM, library: str) -> None:
        """Requests differing only in `user` / `metadata` share one entry."""
        client = _openai(sim, library)
        _chat(client, user="alice")
        _chat(client, user="bob", metadata={"run": "2"})
        assert sim.calls["chat.completions"] == 1

    def test_api_keys_never_share_entries(self, sim: SimulatedLLM, library: str, tmp_path: Path) -> None:
        """Two API keys get two entries; the same key shares; the key itself is nowhere in the store."""
        store = f"sqlite://{tmp_path / 'cache.db'}"
        secret_a, secret_b = "sk-test-keyA-0123456789abcdef", "sk-test-keyB-0123456789abcdef"
        a1 = _openai(sim, library, secret_a, backend=store)
        a2 = _openai(sim, library, secret_a, backend=store)
        b = _openai(sim, library, secret_b, backend=store)
        assert _chat(a1).id == _chat(a2).id
        assert sim.calls["chat.completions"] == 1
        _chat(b)
        assert sim.calls["chat.completions"] == 2
        agentcache.reset()  # closes the store: everything is on disk
        raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
        assert (tmp_path / "cache.db").exists() and b"Simulated reply to: hi" in raw  # the entries are here
        assert b"keyA" not in raw and b"keyB" not in raw

    def test_servers_never_share_entries(self, sim: SimulatedLLM, library: str, tmp_path: Path) -> None:
        """The same request and API key sent to two servers (a local model server and a provider, both taking a
        dummy key) is answered by each: the origin is part of the key. The same server shares."""
        store = f"sqlite://{tmp_path / 'cache.db'}"
        with SimulatedLLM() as other:
            here = _openai(sim, library, "sk-dummy", backend=store)
            there = _keep(
                openai.OpenAI(
                    base_url=other.openai_base_url,
                    api_key="sk-dummy",
                    max_retries=0,
                    http_client=http_client(library=library, backend=store),
                )
            )
            _chat(here)
            _chat(there)
            _chat(here)
            _chat(there)
            assert (sim.calls["chat.completions"], other.calls["chat.completions"]) == (1, 1)

    def test_stream_recorded_and_replayed(self, sim: SimulatedLLM, library: str) -> None:
        """A completed stream is stored; the next identical streamed call replays it through the SDK's Stream."""
        client = _openai(sim, library)
        live = _text(_chat(client, stream=True, stream_options={"include_usage": True}))
        replayed = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(replayed)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == live
        assert chunks[-1].usage is not None
        assert sim.calls["chat.completions"] == 1
        _chat(client)  # the non-streamed form is a different answer on the wire
        assert sim.calls["chat.completions"] == 2

    def test_errors_never_stored(self, sim: SimulatedLLM, library: str) -> None:
        """A 4xx/5xx answer reaches the caller as the SDK's error and is not stored."""
        client = _openai(sim, library)
        sim.fail_next(400, endpoint="chat.completions")
        with pytest.raises(openai.BadRequestError):
            _chat(client)
        sim.fail_next(503, endpoint="chat.completions")
        with pytest.raises(openai.InternalServerError):
            _chat(client)
        _chat(client)
        assert sim.calls["chat.completions"] == 3

    def test_aborted_stream_never_stored(self, sim: SimulatedLLM, library: str) -> None:
        """A stream cut by the server raises and is not stored; the next call goes upstream."""
        client = _openai(sim, library)
        sim.abort_streams_after = 2
        with pytest.raises(openai.APIError):
            _text(_chat(client, stream=True))
        sim.abort_streams_after = None
        _text(_chat(client, stream=True))
        assert sim.calls["chat.completions"] == 2

    def test_abandoned_stream_never_stored(self, sim: SimulatedLLM, library: str) -> None:
        """A stream the caller stops reading early is not stored."""
        client = _openai(sim, library)
        stream = _chat(client, "tell me a long story", stream=True)
        next(iter(stream))
        stream.close()
        _text(_chat(client, "tell me a long story", stream=True))
        assert sim.calls["chat.completions"] == 2

    def test_other_requests_pass_through(self, sim: SimulatedLLM, library: str) -> None:
        """A request outside the cached paths goes to the network every time."""
        client = _openai(sim, library, paths=("*/embeddings",))
        _chat(client)
        _chat(client)
        assert sim.calls["chat.completions"] == 2
        client.embeddings.create(model="text-embedding-3-small", input="x")
        client.embeddings.create(model="text-embedding-3-small", input="x")
        assert sim.calls["embeddings"] == 1

    def test_concurrent_identical_requests_send_once(self, sim: SimulatedLLM, library: str) -> None:
        """Identical requests in flight together are sent once (the layer's single-flight)."""
        client = _openai(sim, library)
        sim.latency = 1.0
        barrier = threading.Barrier(4)
        ids: list[str] = []

        def run() -> None:
            barrier.wait()
            ids.append(_chat(client, "together").id)

        threads = [threading.Thread(target=run) for _ in range(4)]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            sim.latency = 0.0
        assert len(ids) == 4 and len(set(ids)) == 1
        assert sim.calls["chat.completions"] == 1


class TestPlainClient:
    """The client itself, without an SDK."""

    def test_any_json_api_and_unencodable_bodies(self, sim: SimulatedLLM) -> None:
        """A plain `http_client()` caches a JSON POST to a model path; a body the key cannot encode (NaN) is sent
        uncached instead of failing."""
        with http_client() as client:
            url = sim.openai_base_url + "/chat/completions"
            body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
            first = client.post(url, json=body, headers={"authorization": "Bearer k"})
            second = client.post(url, json=body, headers={"authorization": "Bearer k"})
            assert first.json() == second.json() and second.headers["x-agentcache"] == "hit"
            nan = b'{"model":"m","messages":[],"temperature":NaN}'
            for _ in range(2):
                assert client.post(url, content=nan, headers={"content-type": "application/json"}).status_code == 200
        assert sim.calls["chat.completions"] == 3


class TestAnthropic:
    """`Anthropic(http_client=agentcache.http_client())` (Anthropic requires httpx2)."""

    def test_messages_and_stream(self, sim: SimulatedLLM) -> None:
        """`messages.create` and `messages.stream` are each sent once for two identical calls."""
        client = _keep(
            anthropic.Anthropic(base_url=sim.anthropic_base_url, api_key="sk-ant-test", http_client=http_client())
        )
        kwargs: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": MSGS}
        first = client.messages.create(**kwargs)
        assert client.messages.create(**kwargs).id == first.id
        assert sim.calls["messages"] == 1
        texts = []
        for _ in range(2):
            with client.messages.stream(**{**kwargs, "messages": [{"role": "user", "content": "stream it"}]}) as s:
                texts.append(s.get_final_text())
        assert texts[0] == texts[1]
        assert sim.calls["messages"] == 2


class TestAsync:
    """`AsyncOpenAI` / `AsyncAnthropic` with `agentcache.async_http_client()`."""

    @pytest.mark.parametrize("library", LIBRARIES)
    async def test_openai_async(self, sim: SimulatedLLM, library: str) -> None:
        """Plain and streamed async calls are each sent once; aborted async streams are not stored."""
        client = openai.AsyncOpenAI(
            base_url=sim.openai_base_url, api_key="sk-x", max_retries=0, http_client=async_http_client(library=library)
        )
        kwargs: dict[str, Any] = {"model": "gpt-4o-mini", "messages": MSGS}
        a = await client.chat.completions.create(**kwargs)
        b = await client.chat.completions.create(**kwargs)
        assert a.id == b.id and sim.calls["chat.completions"] == 1
        texts = []
        for _ in range(2):
            stream = await client.chat.completions.create(**kwargs, stream=True)
            texts.append("".join([c.choices[0].delta.content or "" async for c in stream if c.choices]))
        assert texts[0] == texts[1] and sim.calls["chat.completions"] == 2
        sim.abort_streams_after = 1
        stream = await client.chat.completions.create(model="gpt-4o-mini", messages=[], stream=True)
        with pytest.raises(openai.APIError):
            await _drain(stream)
        sim.abort_streams_after = None
        stream = await client.chat.completions.create(model="gpt-4o-mini", messages=[], stream=True)
        async for _ in stream:
            pass
        assert sim.calls["chat.completions"] == 4
        await client.close()

    async def test_anthropic_async_concurrent(self, sim: SimulatedLLM) -> None:
        """Concurrent identical async calls are sent once."""
        client = anthropic.AsyncAnthropic(
            base_url=sim.anthropic_base_url, api_key="sk-ant-test", http_client=async_http_client()
        )
        sim.latency = 0.5
        try:
            results = await asyncio.gather(
                *[client.messages.create(model="claude-sonnet-4-5", max_tokens=32, messages=MSGS) for _ in range(3)]
            )
        finally:
            sim.latency = 0.0
        assert len({r.id for r in results}) == 1
        assert sim.calls["messages"] == 1
        await client.close()
