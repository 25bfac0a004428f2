"""Behaviour of `@tool_cached` / `@response_cached`, written once and run over every backend x face."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

import agentcache
from agentcache import KeyEncodingError


def make(face: str, body: Callable[..., Any], decorator: Callable[..., Any]) -> Any:
    """Decorate `body` as a plain function or as a coroutine function with the same name."""
    if face == "sync":
        return decorator(body)

    @functools.wraps(body)
    async def async_body(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0)
        return body(*args, **kwargs)

    return decorator(async_body)


async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call either face and return its result."""
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


async def invalidate(fn: Any, *args: Any, **kwargs: Any) -> bool:
    """`cache_invalidate` of either face."""
    result = fn.cache_invalidate(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return bool(result)


class Counter:
    """A tool body that counts its executions and returns a fresh dict each time."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, query: str, limit: int = 3) -> dict[str, Any]:
        self.calls.append((query, limit))
        return {"query": query, "limit": limit, "n": len(self.calls), "pair": (1, 2)}


class TestHitsAndMisses:
    async def test_second_call_is_a_hit_with_the_same_value(self, face: str, backend_url: str) -> None:
        """The function runs once; the second call returns an equal value from the store."""
        body = Counter()
        body.__name__ = body.__qualname__ = "search"  # type: ignore[attr-defined]
        fn = make(face, _named(body, "search"), agentcache.tool_cached(backend=backend_url))
        first = await call(fn, "llm caching")
        second = await call(fn, "llm caching")
        assert first == second == {"query": "llm caching", "limit": 3, "n": 1, "pair": (1, 2)}
        assert len(body.calls) == 1
        info = fn.cache_info()
        assert (info.hits, info.misses) == (1, 1)
        assert info.hit_rate == 0.5

    async def test_different_arguments_miss(self, face: str, backend_url: str) -> None:
        """Each distinct argument set is its own entry; defaults and explicit defaults share one."""
        body = Counter()
        fn = make(face, _named(body, "search"), agentcache.tool_cached(backend=backend_url))
        await call(fn, "a")
        await call(fn, "b")
        await call(fn, "a", 3)
        await call(fn, "a", limit=3)
        await call(fn, query="a")
        await call(fn, "a", limit=4)
        assert body.calls == [("a", 3), ("b", 3), ("a", 4)]

    async def test_hit_returns_an_independent_copy(self, face: str, backend_url: str) -> None:
        """Mutating a returned value never changes what later callers get."""
        fn = make(face, _named(Counter(), "search"), agentcache.tool_cached(backend=backend_url))
        first = await call(fn, "q")
        first["query"] = "mutated"
        hit = await call(fn, "q")
        hit["limit"] = 99
        assert (await call(fn, "q"))["query"] == "q"
        assert (await call(fn, "q"))["limit"] == 3

    async def test_errors_are_never_cached(self, face: str, backend_url: str) -> None:
        """A raising call propagates and stores nothing; the next call runs again."""
        attempts: list[int] = []

        def flaky(q: str) -> str:
            attempts.append(1)
            if len(attempts) == 1:
                raise RuntimeError("upstream 503")
            return f"ok {q}"

        fn = make(face, flaky, agentcache.tool_cached(backend=backend_url))
        with pytest.raises(RuntimeError, match="503"):
            await call(fn, "x")
        assert await call(fn, "x") == "ok x"
        assert await call(fn, "x") == "ok x"
        assert len(attempts) == 2
        assert fn.cache_info().errors == 1

    async def test_cache_if_filters_results(self, face: str, backend_url: str) -> None:
        """Only results the predicate accepts are stored."""
        results = iter(["", "", "answer", "other"])

        def tool(q: str) -> str:
            return next(results)

        fn = make(face, tool, agentcache.tool_cached(backend=backend_url, cache_if=bool))
        assert await call(fn, "q") == ""
        assert await call(fn, "q") == ""
        assert await call(fn, "q") == "answer"
        assert await call(fn, "q") == "answer"

    async def test_ttl_expires(self, face: str, backend_url: str) -> None:
        """An entry older than its TTL is a miss (the hit before it is asserted only when the machine was quick
        enough to make it within the TTL: a loaded machine must not fail this test)."""
        body = Counter()
        fn = make(face, _named(body, "search"), agentcache.tool_cached(backend=backend_url, ttl=1.0))
        started = time.monotonic()
        await call(fn, "q")
        await call(fn, "q")
        if time.monotonic() - started < 0.9:
            assert len(body.calls) == 1
        await asyncio.sleep(1.2)
        await call(fn, "q")
        assert len(body.calls) == 2

    async def test_ttl_zero_stores_nothing(self, face: str, backend_url: str) -> None:
        """ttl=0 means never store."""
        body = Counter()
        fn = make(face, _named(body, "search"), agentcache.tool_cached(backend=backend_url, ttl=0))
        await call(fn, "q")
        await call(fn, "q")
        assert len(body.calls) == 2

    async def test_rich_values_round_trip(self, face: str, backend_url: str) -> None:
        """Tuples, bytes, sets, datetimes and dataclasses come back as the same types."""
        value = {
            "t": (1, "a"),
            "b": b"\x00\xff",
            "s": {1, 2},
            "when": dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.timezone.utc),
            "pt": Point(1.5, -2.0),
            "nested": [{"k": (None, True)}],
            "intkeys": {1: "one"},
        }
        fn = make(face, lambda q: value, agentcache.tool_cached(backend=backend_url, name="rich"))
        assert await call(fn, "q") == value
        hit = await call(fn, "q")
        assert hit == value
        assert type(hit["pt"]) is Point and type(hit["t"]) is tuple
        assert fn.cache_info().hits == 1


@dataclasses.dataclass(frozen=True)
class Point:
    x: float
    y: float


def _named(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    """A function object with a stable `__name__`/`__qualname__` wrapping `fn`."""

    def wrapper(query: str, limit: int = 3) -> Any:
        return fn(query, limit)

    wrapper.__name__ = wrapper.__qualname__ = name
    return wrapper


class TestNamespacesAndKeys:
    async def test_namespaces_are_isolated(self, face: str, backend_url: str) -> None:
        """The same call in two tenants runs twice and each tenant reads its own value."""
        body = Counter()
        fn = make(face, _named(body, "search"), agentcache.tool_cached(backend=backend_url))
        with agentcache.namespace("tenant-4"):
            a = await call(fn, "q")
        with agentcache.namespace("tenant-42"):
            b = await call(fn, "q")
            b2 = await call(fn, "q")
        with agentcache.namespace("tenant-4"):
            a2 = await call(fn, "q")
        assert (a["n"], b["n"], a2["n"], b2["n"]) == (1, 2, 1, 2)

    async def test_namespace_callable_and_nesting(self, face: str, backend_url: str) -> None:
        """A namespace callable gets the call's arguments and nests inside the scope."""
        fn = make(
            face,
            lambda user_id, q: f"{user_id}:{q}",
            agentcache.tool_cached(backend=backend_url, namespace=lambda user_id, q: user_id, name="per_user"),
        )
        with agentcache.namespace("acme"):
            key = fn.cache_key("u1", "hello")
            assert await call(fn, "u1", "hello") == "u1:hello"
        assert key.startswith("ac:v1:acme/u1:tool:per_user:")

    async def test_invalid_namespace_is_refused(self, face: str) -> None:
        """Separators and glob characters cannot be injected through a namespace."""
        for bad in ("a:b", "t*", "x?", "", "a b", "{x}", "/lead"):
            with pytest.raises(agentcache.ConfigurationError), agentcache.namespace(bad):
                pass

    async def test_ignore_and_key(self, face: str, backend_url: str) -> None:
        """`ignore=` leaves a parameter out of the key; `key=` replaces the arguments."""
        ign = make(face, lambda q, request_id: q, agentcache.tool_cached(backend=backend_url, ignore=["request_id"]))
        assert ign.cache_key("q", "r1") == ign.cache_key("q", "r2")
        custom = make(
            face,
            lambda q, noise: q,
            agentcache.tool_cached(backend=backend_url, key=lambda q, noise: q.lower()),
        )
        assert custom.cache_key("Q", object()) == custom.cache_key("q", object())

    async def test_unencodable_argument_names_the_argument(self, face: str, backend_url: str) -> None:
        """An argument with no canonical form raises KeyEncodingError saying how to exclude it."""
        fn = make(face, lambda q, conn: q, agentcache.tool_cached(backend=backend_url))
        with pytest.raises(KeyEncodingError, match=r"'conn'.*ignore=\('conn',\)"):
            await call(fn, "q", object())
        with pytest.raises(KeyEncodingError, match="NaN"):
            await call(fn, "q", float("nan"))

    async def test_methods_include_self(self, face: str, backend_url: str) -> None:
        """Methods key on the instance via `__cache_key__`, so two configurations never share entries."""

        class Agent:
            def __init__(self, model: str) -> None:
                self.model = model
                self.calls = 0

            def __cache_key__(self) -> str:
                return self.model

            @agentcache.tool_cached(backend=backend_url)
            def answer(self, q: str) -> str:
                self.calls += 1
                return f"{self.model}: {q}"

        a, b, a2 = Agent("small"), Agent("large"), Agent("small")
        assert a.answer("q") == "small: q"
        assert b.answer("q") == "large: q"
        assert a2.answer("q") == "small: q"
        assert (a.calls, b.calls, a2.calls) == (1, 1, 0)

    async def test_version_separates_entries(self, face: str, backend_url: str) -> None:
        """Bumping `version=` stops reading entries of the old version."""
        v1 = make(face, lambda q: "v1", agentcache.tool_cached(backend=backend_url, name="f", version=1))
        v2 = make(face, lambda q: "v2", agentcache.tool_cached(backend=backend_url, name="f", version=2))
        assert await call(v1, "q") == "v1"
        assert await call(v2, "q") == "v2"
        assert await call(v1, "q") == "v1"


class TestControls:
    async def test_cache_invalidate_and_clear(self, face: str, backend_url: str) -> None:
        """cache_invalidate drops one entry; cache_clear drops all of the function's entries and counters."""
        body = Counter()
        fn = make(face, _named(body, "search"), agentcache.tool_cached(backend=backend_url))
        await call(fn, "a")
        await call(fn, "b")
        assert await invalidate(fn, "a") is True
        assert await invalidate(fn, "a") is False
        await call(fn, "a")
        await call(fn, "b")
        assert len(body.calls) == 3
        with agentcache.namespace("other"):
            await call(fn, "b")
        fn.cache_clear()
        assert fn.cache_info().hits == 0
        await call(fn, "b")
        with agentcache.namespace("other"):
            await call(fn, "b")
        assert len(body.calls) == 6

    async def test_kill_switch(self, face: str, backend_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """AGENTCACHE_DISABLED=1 makes every call go straight through."""
        monkeypatch.setenv("AGENTCACHE_DISABLED", "1")
        agentcache.reset()
        body = Counter()
        fn = make(face, _named(body, "search"), agentcache.tool_cached(backend=backend_url))
        await call(fn, "a")
        await call(fn, "a")
        assert len(body.calls) == 2

    async def test_signature_and_identity_preserved(self, face: str) -> None:
        """functools.wraps keeps name, doc and signature; coroutine functions stay coroutine functions."""

        def search(query: str, limit: int = 3) -> str:
            """Search the web."""
            return query

        fn = make(face, search, agentcache.tool_cached)
        assert fn.__name__ == "search"
        assert list(inspect.signature(fn).parameters) == ["query", "limit"]
        assert inspect.iscoroutinefunction(fn) is (face == "async")

    async def test_unserializable_result_returned_not_cached_warned_once(
        self, face: str, backend_url: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A result that cannot be stored is still returned, never cached, with one warning."""
        calls: list[int] = []

        def tool(q: str) -> object:
            calls.append(1)
            return {"conn": object()}

        fn = make(face, tool, agentcache.tool_cached(backend=backend_url, name="unstorable"))
        with caplog.at_level(logging.WARNING, logger="agentcache"):
            for _ in range(3):
                assert "conn" in await call(fn, "q")
        assert len(calls) == 3
        assert len([r for r in caplog.records if "not cached" in r.message]) == 1


class TestResponseKeys:
    def test_transport_fields_stay_out_of_the_key(self) -> None:
        """timeout/user/metadata/extra_headers/api keys do not change the key; sampling params do."""

        @agentcache.response_cached
        def ask(messages: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
            return {}

        m = [{"role": "user", "content": "hi"}]
        base = ask.cache_key(m, model="gpt-4o")
        for transport in (
            {"timeout": 3},
            {"user": "u1"},
            {"metadata": {"a": 1}},
            {"extra_headers": {"x": "y"}},
            {"api_key": "sk-1"},
        ):
            assert ask.cache_key(m, model="gpt-4o", **transport) == base
        changed = [
            {"temperature": 0.2},
            {"top_p": 0.9},
            {"max_tokens": 10},
            {"stop": ["\n"]},
            {"seed": 1},
            {"n": 2},
            {"response_format": {"type": "json_object"}},
            {"tools": [{"type": "function", "function": {"name": "f"}}]},
            {"tool_choice": "auto"},
            {"stream": True},
        ]
        keys = {ask.cache_key(m, model="gpt-4o", **c) for c in changed}
        assert base not in keys and len(keys) == len(changed)
        assert ask.cache_key(m, model="gpt-4o-mini") != base

    def test_omitted_parameter_never_collides_with_an_explicit_value(self) -> None:
        """A parameter the function does not receive is absent, not filled with a guessed default."""

        @agentcache.response_cached
        def ask(messages: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
            return {}

        m = [{"role": "user", "content": "hi"}]
        assert ask.cache_key(m, model="m") != ask.cache_key(m, model="m", temperature=1.0)

    def test_message_content_order_matters_but_dict_order_does_not(self) -> None:
        """Reordered dict keys give one key; reordered messages, tool calls or images do not."""

        @agentcache.response_cached
        def ask(messages: list[dict[str, Any]], model: str = "gpt-4o") -> dict[str, Any]:
            return {}

        a = [
            {
                "role": "user",
                "content": [{"type": "text", "text": "x"}, {"type": "image_url", "image_url": "u"}],
            }
        ]
        b = [
            {
                "content": [{"text": "x", "type": "text"}, {"image_url": "u", "type": "image_url"}],
                "role": "user",
            }
        ]
        c = [
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": "u"}, {"type": "text", "text": "x"}],
            }
        ]
        assert ask.cache_key(a) == ask.cache_key(b) != ask.cache_key(c)

    def test_stream_flag_ignored_only_for_generators(self) -> None:
        """A generator always streams, so `stream=` is transport for it; a plain function keys on it."""

        @agentcache.response_cached
        def chunks(prompt: str, stream: bool = True) -> Any:
            yield prompt

        assert chunks.cache_key("p", stream=True) == chunks.cache_key("p", stream=False)

    def test_explain_key_lists_fields(self) -> None:
        """explain_key shows included fields with values and excluded ones with the reason."""

        @agentcache.response_cached
        def ask(messages: list[dict[str, Any]], model: str = "gpt-4o", timeout: float = 10) -> dict[str, Any]:
            return {}

        exp = agentcache.explain_key(ask, [{"role": "user", "content": "hi"}])
        assert set(exp.included) == {"messages", "model"}
        assert "timeout" in exp.excluded
        assert exp.key == ask.cache_key([{"role": "user", "content": "hi"}])
        assert "messages" in str(exp) and exp.layer == "response"


class TestStreams:
    async def test_sync_generator_recorded_then_replayed(self, backend_url: str) -> None:
        """A completed stream is stored; a hit replays the same chunks in order."""
        runs: list[int] = []

        @agentcache.response_cached(backend=backend_url)
        def stream(prompt: str) -> Any:
            runs.append(1)
            for i in range(4):
                yield {"delta": f"{prompt}{i}", "i": (i,)}

        first = list(stream("p"))
        second = list(stream("p"))
        assert first == second and len(first) == 4 and len(runs) == 1
        assert isinstance(second[0]["i"], tuple)

    async def test_abandoned_or_failed_stream_is_not_stored(self, backend_url: str) -> None:
        """Stopping early or an exception mid-stream stores nothing."""
        runs: list[int] = []

        @agentcache.response_cached(backend=backend_url)
        def stream(fail: bool) -> Any:
            runs.append(1)
            yield 1
            if fail:
                raise ValueError("broken stream")
            yield 2

        gen = stream(False)
        assert next(gen) == 1
        gen.close()
        with pytest.raises(ValueError, match="broken"):
            list(stream(True))
        assert list(stream(False)) == [1, 2]
        assert list(stream(False)) == [1, 2]
        assert len(runs) == 3

    async def test_async_generator_recorded_then_replayed(self, backend_url: str) -> None:
        """Async generators are recorded while consumed and replayed on a hit."""
        runs: list[int] = []

        @agentcache.response_cached(backend=backend_url)
        async def stream(prompt: str) -> Any:
            runs.append(1)
            for i in range(3):
                await asyncio.sleep(0)
                yield f"{prompt}-{i}"

        first = [c async for c in stream("p")]
        second = [c async for c in stream("p")]
        assert first == second == ["p-0", "p-1", "p-2"]
        assert len(runs) == 1


class TestUsage:
    async def test_tokens_and_dollars_saved(self, face: str, backend_url: str) -> None:
        """Hits add the recorded call time, tokens and dollars to the stats."""
        completion = {
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"message": {"role": "assistant", "content": "hi"}}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500},
        }

        def ask(messages: list[dict[str, Any]], model: str) -> dict[str, Any]:
            return completion

        fn = make(face, ask, agentcache.response_cached(backend=backend_url, name="ask"))
        m = [{"role": "user", "content": "hi"}]
        await call(fn, m, "gpt-4o-mini")
        await call(fn, m, "gpt-4o-mini")
        await call(fn, m, "gpt-4o-mini")
        info = fn.cache_info()
        assert info.tokens_saved == 3000
        assert info.usd_saved == pytest.approx(2 * (1000 * 0.15 + 500 * 0.60) / 1e6)
        report = agentcache.stats()
        assert report.by_layer["response"].hits == 2
        assert "ask" in str(report)
