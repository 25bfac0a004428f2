"""`agentcache.wrap(OpenAI())` against a local fake server: hits are the SDK's own typed objects."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from pydantic import BaseModel
from support.fake_llm_server import SimulatedLLM, fake_llm_server, openai_client

import agentcache
from agentcache.integrations import core_of, is_cache_hit, wrap

MODEL = "gpt-4o-mini"
MSGS = [{"role": "user", "content": "What is the capital of France?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
]


class City(BaseModel):
    """A structured output."""

    name: str
    population: int


def assert_same_items(replayed: list[Any], live: list[Any]) -> None:
    """Replayed stream items are the live ones field for field: same classes, same set fields, same values."""
    assert [type(x) for x in replayed] == [type(x) for x in live]
    assert [x.model_dump(mode="json", exclude_unset=True) for x in replayed] == [
        x.model_dump(mode="json", exclude_unset=True) for x in live
    ]
    assert [x.model_dump(mode="json") for x in replayed] == [x.model_dump(mode="json") for x in live]


@pytest.fixture(name="client")
def _client(server: SimulatedLLM, url: str) -> Iterator[Any]:
    client = wrap(openai_client(server), backend=url)
    yield client
    client.close()


class TestChat:
    def test_second_call_is_a_hit(self, client: Any, server: SimulatedLLM) -> None:
        """The same request twice reaches the server once and returns an equal ChatCompletion."""
        first = client.chat.completions.create(model=MODEL, messages=MSGS)
        second = client.chat.completions.create(model=MODEL, messages=MSGS)
        assert server.calls["chat.completions"] == 1
        assert isinstance(second, openai.types.chat.ChatCompletion)
        assert second == first
        assert second.model_dump() == first.model_dump()
        assert (is_cache_hit(first), is_cache_hit(second)) == (False, True)

    def test_wrapped_client_is_still_an_openai_client(self, client: Any) -> None:
        """The wrapped client keeps its class and passes other attributes through."""
        assert isinstance(client, openai.OpenAI)
        assert client.api_key == "sk-test"
        assert type(client.models).__name__ == "Models"
        assert core_of(client) is not None

    def test_tool_calls_n_and_finish_reasons_survive(self, client: Any, server: SimulatedLLM) -> None:
        """Tool calls, n>1 choices, finish reasons and usage are identical field by field on a hit."""
        first = client.chat.completions.create(model=MODEL, messages=MSGS, tools=TOOLS, n=3)
        second = client.chat.completions.create(model=MODEL, messages=MSGS, tools=TOOLS, n=3)
        assert server.calls["chat.completions"] == 1
        assert len(second.choices) == 3
        assert second.choices[2].message.tool_calls[0].function.name == "search"
        assert [c.finish_reason for c in second.choices] == ["tool_calls"] * 3
        assert second.usage == first.usage
        assert second.model_dump(mode="json") == first.model_dump(mode="json")

    def test_output_changing_parameters_miss(self, client: Any, server: SimulatedLLM) -> None:
        """A different temperature is a different entry; transport fields (user, timeout) are not."""
        client.chat.completions.create(model=MODEL, messages=MSGS, temperature=0)
        client.chat.completions.create(model=MODEL, messages=MSGS, temperature=1)
        hit = client.chat.completions.create(model=MODEL, messages=MSGS, temperature=0, user="u1", timeout=30)
        assert server.calls["chat.completions"] == 2
        assert is_cache_hit(hit)

    def test_namespaces_are_isolated(self, client: Any, server: SimulatedLLM) -> None:
        """The same request in two namespaces is two entries."""
        with agentcache.namespace("tenant-a"):
            client.chat.completions.create(model=MODEL, messages=MSGS)
        with agentcache.namespace("tenant-b"):
            client.chat.completions.create(model=MODEL, messages=MSGS)
        assert server.calls["chat.completions"] == 2

    def test_parse_returns_the_parsed_model_on_a_hit(self, client: Any, server: SimulatedLLM) -> None:
        """`chat.completions.parse` hits rebuild `message.parsed` as the user's pydantic class."""
        first = client.chat.completions.parse(model=MODEL, messages=MSGS, response_format=City)
        second = client.chat.completions.parse(model=MODEL, messages=MSGS, response_format=City)
        assert server.calls["chat.completions"] == 1
        assert isinstance(second.choices[0].message.parsed, City)
        assert second.choices[0].message.parsed == first.choices[0].message.parsed
        assert is_cache_hit(second)

    def test_hits_are_counted_in_stats(self, client: Any) -> None:
        """Hits and misses of the wrapped endpoint show in the per-endpoint counters."""
        for _ in range(3):
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "stats?"}])
        counters = core_of(client).layers["chat.completions.create"].counters
        assert (counters.hits, counters.misses) == (2, 1)
        assert counters.tokens_saved > 0


class TestOtherEndpoints:
    def test_responses_create_is_cached(self, client: Any, server: SimulatedLLM) -> None:
        """`responses.create` hits return an equal `Response`."""
        first = client.responses.create(model=MODEL, input="hello")
        second = client.responses.create(model=MODEL, input="hello")
        assert server.calls["responses"] == 1
        assert second.output_text == first.output_text
        assert second.model_dump() == first.model_dump()

    def test_embeddings_create_is_cached(self, client: Any, server: SimulatedLLM) -> None:
        """`embeddings.create` hits return the same vectors as a `CreateEmbeddingResponse`."""
        first = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
        second = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
        assert server.calls["embeddings"] == 1
        assert isinstance(second, openai.types.CreateEmbeddingResponse)
        assert is_cache_hit(second)
        assert [d.embedding for d in second.data] == [d.embedding for d in first.data]

    def test_embedding_batch_sends_only_missing_texts(self, client: Any, server: SimulatedLLM) -> None:
        """A batch with cached and new texts sends only the new ones; vectors come back in input order."""
        model = "text-embedding-3-small"
        single = client.embeddings.create(model=model, input="a").data[0].embedding
        mixed = client.embeddings.create(model=model, input=["b", "a", "c"])
        assert server.requests[-1][1]["input"] == ["b", "c"]
        assert mixed.data[1].embedding == single
        assert [d.index for d in mixed.data] == [0, 1, 2]
        again = client.embeddings.create(model=model, input=["c", "b"], dimensions=None)
        assert is_cache_hit(again)
        assert server.calls["embeddings"] == 2

    def test_base64_embeddings_are_cached_as_base64(self, client: Any, server: SimulatedLLM) -> None:
        """`encoding_format="base64"` hits return the same base64 strings the server sent; floats share the entry."""
        model = "text-embedding-3-small"
        first = client.embeddings.create(model=model, input=["a", "b"], encoding_format="base64")
        second = client.embeddings.create(model=model, input=["b", "a"], encoding_format="base64")
        floats = client.embeddings.create(model=model, input="a")
        assert isinstance(first.data[0].embedding, str)
        assert [d.embedding for d in second.data] == [first.data[1].embedding, first.data[0].embedding]
        assert is_cache_hit(second)
        assert is_cache_hit(floats)
        assert isinstance(floats.data[0].embedding, list)
        assert server.calls["embeddings"] == 1

    def test_embedding_dimensions_are_part_of_the_key(self, client: Any, server: SimulatedLLM) -> None:
        """The same text at another `dimensions` is computed again."""
        client.embeddings.create(model="text-embedding-3-small", input="a", dimensions=4)
        other = client.embeddings.create(model="text-embedding-3-small", input="a", dimensions=6)
        assert len(other.data[0].embedding) == 6
        assert server.calls["embeddings"] == 2


class TestStreaming:
    def test_stream_is_recorded_and_replayed(self, client: Any, server: SimulatedLLM) -> None:
        """A streamed call is replayed chunk for chunk (tool-call deltas, finish, usage) as an `openai.Stream`."""
        kwargs: dict[str, Any] = {"model": MODEL, "messages": MSGS, "tools": TOOLS, "stream": True}
        kwargs["stream_options"] = {"include_usage": True}
        with client.chat.completions.create(**kwargs) as live:
            recorded = list(live)
        replay = client.chat.completions.create(**kwargs)
        assert isinstance(replay, openai.Stream)
        assert is_cache_hit(replay)
        replayed = list(replay)
        assert server.calls["chat.completions"] == 1
        assert replayed == recorded
        assert replayed[-1].usage is not None
        assert any(c.choices and c.choices[0].delta.tool_calls for c in replayed)

    def test_streamed_entry_serves_a_plain_call_and_back(self, client: Any, server: SimulatedLLM) -> None:
        """A recorded stream answers a non-streamed call, and a stored completion answers a streamed one."""
        chunks = list(client.chat.completions.create(model=MODEL, messages=MSGS, stream=True))
        plain = client.chat.completions.create(model=MODEL, messages=MSGS)
        assert plain.choices[0].message.content == "".join(c.choices[0].delta.content or "" for c in chunks)
        other = [{"role": "user", "content": "another"}]
        stored = client.chat.completions.create(model=MODEL, messages=other)
        streamed = list(client.chat.completions.create(model=MODEL, messages=other, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in streamed) == stored.choices[0].message.content
        assert server.calls["chat.completions"] == 2

    def test_abandoned_stream_is_not_stored(self, client: Any, server: SimulatedLLM) -> None:
        """A stream the caller stops reading before the end is never stored."""
        stream = client.chat.completions.create(model=MODEL, messages=MSGS, stream=True)
        next(iter(stream))
        stream.close()
        client.chat.completions.create(model=MODEL, messages=MSGS, stream=True).close()
        assert server.calls["chat.completions"] == 2

    def test_cut_stream_raises_and_is_not_stored(self, client: Any, server: SimulatedLLM) -> None:
        """A stream the server cuts mid-body raises what the bare SDK raises and leaves no entry."""
        server.abort_streams_after = 2
        bare = openai_client(server)
        with pytest.raises(Exception) as expected:
            list(bare.chat.completions.create(model=MODEL, messages=MSGS, stream=True))
        bare.close()
        with pytest.raises(type(expected.value)):
            list(client.chat.completions.create(model=MODEL, messages=MSGS, stream=True))
        server.abort_streams_after = None
        list(client.chat.completions.create(model=MODEL, messages=MSGS, stream=True))
        assert server.calls["chat.completions"] == 3

    def test_replayed_chunks_equal_live_chunks_field_by_field(self, client: Any) -> None:
        """Replayed chunks (n=2, tool-call deltas, usage chunk) have the live chunks' classes, set fields and values."""
        kwargs: dict[str, Any] = {"model": MODEL, "messages": MSGS, "tools": TOOLS, "n": 2, "stream": True}
        kwargs["stream_options"] = {"include_usage": True}
        live = list(client.chat.completions.create(**kwargs))
        replayed = list(client.chat.completions.create(**kwargs))
        assert_same_items(replayed, live)

    def test_replay_keeps_the_stream_interface(self, client: Any) -> None:
        """A replayed stream has `.response`, works with `next()`, as a context manager, and closes."""
        list(client.chat.completions.create(model=MODEL, messages=MSGS, stream=True))
        with client.chat.completions.create(model=MODEL, messages=MSGS, stream=True) as replay:
            assert is_cache_hit(replay)
            assert replay.response.status_code == 200
            assert b"[DONE]" in replay.response.read()
            first = next(replay)
            rest = list(replay)
        assert first.choices[0].delta.role == "assistant"
        assert rest[-1].choices[0].finish_reason == "stop"
        assert replay.response.is_closed


class TestResponsesStreaming:
    def test_stream_is_recorded_and_replayed(self, client: Any, server: SimulatedLLM) -> None:
        """`responses.create(stream=True)` is replayed event for event as an `openai.Stream`, fields equal."""
        live = list(client.responses.create(model=MODEL, input="hello", stream=True))
        replay = client.responses.create(model=MODEL, input="hello", stream=True)
        assert isinstance(replay, openai.Stream)
        assert is_cache_hit(replay)
        replayed = list(replay)
        assert server.calls["responses"] == 1
        assert [e.type for e in live][-1] == "response.completed"
        assert "response.output_text.delta" in [e.type for e in live]
        assert_same_items(replayed, live)

    def test_one_entry_serves_both_forms(self, client: Any, server: SimulatedLLM) -> None:
        """A recorded stream answers a plain call, and a stored `Response` answers a streamed call."""
        events = list(client.responses.create(model=MODEL, input="a", stream=True))
        plain = client.responses.create(model=MODEL, input="a")
        assert is_cache_hit(plain)
        assert plain == events[-1].response
        stored = client.responses.create(model=MODEL, input="b")
        streamed = list(client.responses.create(model=MODEL, input="b", stream=True))
        assert "".join(e.delta for e in streamed if e.type == "response.output_text.delta") == stored.output_text
        assert streamed[-1].response == stored
        assert server.calls["responses"] == 2

    def test_abandoned_stream_is_not_stored(self, client: Any, server: SimulatedLLM) -> None:
        """A responses stream closed before `response.completed` is never stored."""
        stream = client.responses.create(model=MODEL, input="hello", stream=True)
        next(iter(stream))
        stream.close()
        list(client.responses.create(model=MODEL, input="hello", stream=True))
        assert server.calls["responses"] == 2

    def test_stream_helper_is_cached(self, client: Any, server: SimulatedLLM) -> None:
        """`responses.stream(...)` runs the SDK's own stream manager over the cached stream."""
        texts = []
        for _ in range(2):
            with client.responses.stream(model=MODEL, input="hello") as stream:
                kinds = [e.type for e in stream]
                texts.append(stream.get_final_response().output_text)
        assert server.calls["responses"] == 1
        assert "response.output_text.done" in kinds
        assert texts[0] == texts[1] != ""

    async def test_async_stream_and_helper(self, server: SimulatedLLM, url: str) -> None:
        """`AsyncOpenAI().responses` streams replay as an `openai.AsyncStream` and through `.stream()`."""
        client = wrap(openai_client(server, is_async=True), backend=url)
        live = [e async for e in await client.responses.create(model=MODEL, input="q", stream=True)]
        replay = await client.responses.create(model=MODEL, input="q", stream=True)
        assert isinstance(replay, openai.AsyncStream)
        assert_same_items([e async for e in replay], live)
        async with client.responses.stream(model=MODEL, input="q") as stream:
            final = await stream.get_final_response()
        await client.close()
        assert final.output_text == live[-1].response.output_text
        assert server.calls["responses"] == 1


class TestErrors:
    def test_errors_are_never_cached(self, client: Any, server: SimulatedLLM) -> None:
        """A 500 propagates as the SDK's error and the next call reaches the server again."""
        server.fail_next(500)
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model=MODEL, messages=MSGS)
        ok = client.chat.completions.create(model=MODEL, messages=MSGS)
        assert server.calls["chat.completions"] == 2
        assert not is_cache_hit(ok)

    def test_concurrent_callers_share_the_error(self, server: SimulatedLLM, url: str) -> None:
        """While one call is in flight, identical calls wait for it: its error reaches all, one server call."""
        import threading
        from concurrent.futures import ThreadPoolExecutor

        client = wrap(openai_client(server, max_retries=0), backend=url)
        server.latency = 0.2
        server.fail_next(500)
        barrier = threading.Barrier(6)

        def call(_: int) -> str:
            barrier.wait()
            try:
                client.chat.completions.create(model=MODEL, messages=MSGS)
            except openai.InternalServerError:
                return "error"
            return "ok"

        with ThreadPoolExecutor(6) as pool:
            outcomes = list(pool.map(call, range(6)))
        server.latency = 0.0
        assert outcomes == ["error"] * 6
        assert server.calls["chat.completions"] == 1
        assert not is_cache_hit(client.chat.completions.create(model=MODEL, messages=MSGS))
        client.close()

    def test_sdk_retries_apply(self, server: SimulatedLLM, url: str) -> None:
        """A 429 is retried by the SDK's own `max_retries`, and the successful answer is cached."""
        client = wrap(openai_client(server, max_retries=2), backend=url)
        server.fail_next(429)
        client.chat.completions.create(model=MODEL, messages=MSGS)
        client.chat.completions.create(model=MODEL, messages=MSGS)
        client.close()
        assert server.calls["chat.completions"] == 2


class TestAsync:
    async def test_async_create_and_stream_hit(self, server: SimulatedLLM, url: str) -> None:
        """`AsyncOpenAI` hits return equal objects and replay streams as an `openai.AsyncStream`."""
        client = wrap(openai_client(server, is_async=True), backend=url)
        first = await client.chat.completions.create(model=MODEL, messages=MSGS)
        second = await client.chat.completions.create(model=MODEL, messages=MSGS)
        assert second == first
        other = [{"role": "user", "content": "stream me"}]
        live = [c async for c in await client.chat.completions.create(model=MODEL, messages=other, stream=True)]
        replay = await client.chat.completions.create(model=MODEL, messages=other, stream=True)
        assert isinstance(replay, openai.AsyncStream)
        assert [c async for c in replay] == live
        assert server.calls["chat.completions"] == 2
        await client.close()


class TestSingleFlight:
    def test_concurrent_threads_make_one_call(self, url: str) -> None:
        """Eight threads asking the same question at once reach the server once."""
        from concurrent.futures import ThreadPoolExecutor

        with fake_llm_server(latency=0.2) as server:
            client = wrap(openai_client(server), backend=url)
            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(lambda _: client.chat.completions.create(model=MODEL, messages=MSGS), range(8)))
            client.close()
        assert server.calls["chat.completions"] == 1
        assert len({a.id for a in answers}) == 1

    async def test_concurrent_tasks_make_one_call(self, url: str) -> None:
        """Eight asyncio tasks asking the same question at once reach the server once."""
        import asyncio

        with fake_llm_server(latency=0.2) as server:
            client = wrap(openai_client(server, is_async=True), backend=url)
            answers = await asyncio.gather(
                *(client.chat.completions.create(model=MODEL, messages=MSGS) for _ in range(8))
            )
            await client.close()
        assert server.calls["chat.completions"] == 1
        assert sum(is_cache_hit(a) for a in answers) == 7


async def test_async_embeddings_partial_hits(server: SimulatedLLM, url: str) -> None:
    """`AsyncOpenAI().embeddings.create` sends only uncached texts too."""
    client = wrap(openai_client(server, is_async=True), backend=url)
    await client.embeddings.create(model="text-embedding-3-small", input=["x"])
    both = await client.embeddings.create(model="text-embedding-3-small", input=["x", "y"])
    await client.close()
    assert server.requests[-1][1]["input"] == ["y"]
    assert len(both.data) == 2


def test_kill_switch_calls_straight_through(client: Any, server: SimulatedLLM) -> None:
    """With `configure(disabled=True)` every call reaches the server and nothing is a hit."""
    agentcache.configure(disabled=True)
    answers = [client.chat.completions.create(model=MODEL, messages=MSGS) for _ in range(2)]
    client.embeddings.create(model="text-embedding-3-small", input="a")
    client.embeddings.create(model="text-embedding-3-small", input="a")
    assert server.calls["chat.completions"] == 2
    assert server.calls["embeddings"] == 2
    assert not any(is_cache_hit(a) for a in answers)


def test_stream_helper_is_cached(client: Any, server: SimulatedLLM) -> None:
    """`chat.completions.stream(response_format=Model)` replays on a hit with the parsed final completion."""
    for _ in range(2):
        with client.chat.completions.stream(model=MODEL, messages=MSGS, response_format=City) as stream:
            events = [e.type for e in stream]
            final = stream.get_final_completion()
    assert server.calls["chat.completions"] == 1
    assert "content.done" in events
    assert isinstance(final.choices[0].message.parsed, City)


async def test_async_stream_helper_is_cached(server: SimulatedLLM, url: str) -> None:
    """The async `chat.completions.stream()` helper replays too."""
    client = wrap(openai_client(server, is_async=True), backend=url)
    for _ in range(2):
        async with client.chat.completions.stream(model=MODEL, messages=MSGS) as stream:
            final = await stream.get_final_completion()
    await client.close()
    assert server.calls["chat.completions"] == 1
    assert final.choices[0].message.content
