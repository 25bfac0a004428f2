"""`agentcache.wrap(client)` covers every call path of the official SDKs (issue #11, item 1).

Response forms (`with_raw_response`, `with_streaming_response`, at resource and client level), derived clients
(`with_options()`, `copy()`), `beta.*`, and a walk of the SDKs' whole public resource tree: every method is
cached or deliberately passed through, and a new SDK method fails `test_every_sdk_method_is_classified`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from support.fake_llm_server import SimulatedLLM, anthropic_client, openai_client
from support.sdk_tree import FORMS, method_paths, resolve

import agentcache
from agentcache.integrations import _wrap, core_of, is_cache_hit, wrap
from agentcache.integrations import anthropic as anthropic_wrap
from agentcache.integrations import openai as openai_wrap
from agentcache.integrations._wrap import base_path, role_of

MODEL = "gpt-4o-mini"
CLAUDE = "claude-sonnet-4-5"
MSGS = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(name="oai")
def _oai(server: SimulatedLLM, url: str) -> Iterator[Any]:
    client = wrap(openai_client(server), backend=url)
    yield client
    client.close()


@pytest.fixture(name="ant")
def _ant(server: SimulatedLLM, url: str) -> Iterator[Any]:
    client = wrap(anthropic_client(server), backend=url)
    yield client
    client.close()


# -- the resource tree ----------------------------------------------------------------------------------------

SDKS = {
    "openai": (openai.OpenAI, openai.AsyncOpenAI, openai_wrap.ENDPOINTS, openai_wrap.COVERAGE),
    "anthropic": (anthropic.Anthropic, anthropic.AsyncAnthropic, anthropic_wrap.ENDPOINTS, anthropic_wrap.COVERAGE),
}


def expected_role(sdk: str, path: str) -> str:
    """What the wrapped client must hand out at `path`: ``cached``, ``bypass`` or ``sdk`` (the SDK's own)."""
    _, _, endpoints, coverage = SDKS[sdk]
    base = base_path(path)
    in_form = base != path
    endpoint = next((e for e in endpoints if e.path == base), None)
    if endpoint is not None:
        return "bypass" if in_form and endpoint.custom is not None else "cached"
    if base in coverage.helpers and not in_form:
        return "cached"
    if coverage.is_passed(base):
        return "sdk"
    if base in coverage.uncached:
        return "bypass"
    raise AssertionError(
        f"{sdk} SDK method `{path}` is neither cached nor deliberately passed through: classify it in "
        f"agentcache/integrations/{sdk}.py (ENDPOINTS, or COVERAGE.helpers / uncached / passed)"
    )


@pytest.mark.parametrize("sdk", sorted(SDKS))
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_every_sdk_method_is_classified(sdk: str, is_async: bool) -> None:
    """Every public method reachable from the client (with its response forms) is classified, and the wrapped
    client hands out exactly that: a cached stand-in, a counted bypass, or the SDK's own method."""
    cls = SDKS[sdk][1] if is_async else SDKS[sdk][0]
    plain = cls(api_key="sk-test", base_url="http://127.0.0.1:9")
    wrapped = wrap(plain, backend="memory://")
    paths = method_paths(plain)
    assert len(paths) > 100  # the walker reached the tree
    assert any(FORMS[0] in p for p in paths) and any(p.startswith("beta.") for p in paths)
    wrong = {}
    for path in paths:
        want = expected_role(sdk, path)
        got = role_of(resolve(wrapped, path)) or "sdk"
        if got != want:
            wrong[path] = (want, got)
    assert wrong == {}


def test_a_new_sdk_method_is_noticed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A method a new SDK release adds fails the classification, and a wrapped client counts its calls."""
    from openai.resources.chat.completions import Completions

    def summarize(self: Any, **kwargs: Any) -> str:
        return "summary"

    monkeypatch.setattr(Completions, "summarize", summarize, raising=False)
    plain = openai.OpenAI(api_key="sk-test", base_url="http://127.0.0.1:9")
    assert "chat.completions.summarize" in method_paths(plain)
    with pytest.raises(AssertionError, match=r"chat\.completions\.summarize"):
        expected_role("openai", "chat.completions.summarize")
    wrapped = wrap(plain, backend="memory://")
    assert wrapped.chat.completions.summarize() == "summary"
    assert core_of(wrapped).bypass_layers["chat.completions.summarize"].counters.bypasses == 1


def test_every_classified_path_still_exists() -> None:
    """The tables name no method the SDKs dropped (a stale entry would hide a renamed method)."""
    for sdk, (cls, _, endpoints, coverage) in SDKS.items():
        bases = {base_path(p) for p in method_paths(cls(api_key="sk-test"))}
        named = {e.path for e in endpoints} | coverage.helpers | coverage.uncached
        named |= {p for p in coverage.passed if not p.endswith(".")}
        assert sorted(named - bases) == [], sdk
        prefixes = [p for p in coverage.passed if p.endswith(".")]
        assert [p for p in prefixes if not any(b.startswith(p) for b in bases)] == [], sdk


# -- response forms -------------------------------------------------------------------------------------------


class TestRawResponse:
    def test_chat_create_hit_behaves_like_the_sdk_response(self, oai: Any, server: SimulatedLLM) -> None:
        """The second `with_raw_response.create` is served from the cache as the SDK's `LegacyAPIResponse`."""
        first = oai.chat.completions.with_raw_response.create(model=MODEL, messages=MSGS)
        second = oai.chat.completions.with_raw_response.create(model=MODEL, messages=MSGS)
        assert server.calls["chat.completions"] == 1
        assert type(second) is type(first) is openai._legacy_response.LegacyAPIResponse
        assert (is_cache_hit(first), is_cache_hit(second)) == (False, True)
        assert second.status_code == 200 and second.headers["x-agentcache"] == "hit"
        assert (
            second.http_response.json()["choices"][0]["message"]["content"] == first.parse().choices[0].message.content
        )
        parsed = second.parse()
        assert isinstance(parsed, openai.types.chat.ChatCompletion) and is_cache_hit(parsed)
        assert parsed == first.parse()
        assert second.parse(to=dict)["id"] == parsed.id

    def test_one_entry_serves_every_form(self, oai: Any, server: SimulatedLLM) -> None:
        """A plain call's entry answers the raw and streaming forms, at resource and client level."""
        plain = oai.chat.completions.create(model=MODEL, messages=MSGS)
        raw = oai.with_raw_response.chat.completions.create(model=MODEL, messages=MSGS)
        with oai.chat.completions.with_streaming_response.create(model=MODEL, messages=MSGS) as streaming:
            via_streaming = streaming.parse()
        assert server.calls["chat.completions"] == 1
        assert raw.parse() == via_streaming == plain

    def test_parse_with_raw_response(self, oai: Any, server: SimulatedLLM) -> None:
        """LangChain's structured output path: `with_raw_response.parse` hits rebuild `message.parsed`."""
        from pydantic import BaseModel

        class City(BaseModel):
            name: str
            population: int

        for _ in range(2):
            raw = oai.chat.completions.with_raw_response.parse(model=MODEL, messages=MSGS, response_format=City)
            assert isinstance(raw.parse().choices[0].message.parsed, City)
        assert server.calls["chat.completions"] == 1
        assert is_cache_hit(raw)

    def test_responses_through_the_client_level_form(self, oai: Any, server: SimulatedLLM) -> None:
        """`client.with_raw_response.responses.create` (LangChain's Responses path) is cached."""
        first = oai.with_raw_response.responses.create(model=MODEL, input="hello").parse()
        second = oai.responses.with_raw_response.create(model=MODEL, input="hello")
        assert server.calls["responses"] == 1
        assert is_cache_hit(second) and second.parse().output_text == first.output_text

    def test_raw_stream_is_recorded_and_replayed(self, ant: Any, server: SimulatedLLM) -> None:
        """ChatAnthropic streams through `with_raw_response.create(stream=True).parse()`: recorded, then replayed."""
        live = list(
            ant.messages.with_raw_response.create(model=CLAUDE, max_tokens=64, messages=MSGS, stream=True).parse()
        )
        hit = ant.messages.with_raw_response.create(model=CLAUDE, max_tokens=64, messages=MSGS, stream=True)
        replayed = list(hit.parse())
        assert server.calls["messages"] == 1
        assert is_cache_hit(hit) and isinstance(hit, anthropic._response.APIResponse)
        assert [e.model_dump() for e in replayed] == [e.model_dump() for e in live]

    def test_errors_propagate_and_are_not_stored(self, oai: Any, ant: Any, server: SimulatedLLM) -> None:
        """A 500 through a response form raises the SDK's error; the next call reaches the server again."""
        server.fail_next(500)
        with pytest.raises(openai.InternalServerError):
            oai.chat.completions.with_raw_response.create(model=MODEL, messages=MSGS)
        server.fail_next(500)
        streaming = ant.messages.with_streaming_response.create(model=CLAUDE, max_tokens=64, messages=MSGS)
        with pytest.raises(anthropic.InternalServerError), streaming:
            pass
        assert not is_cache_hit(oai.chat.completions.with_raw_response.create(model=MODEL, messages=MSGS))
        assert not is_cache_hit(ant.messages.create(model=CLAUDE, max_tokens=64, messages=MSGS))
        assert (server.calls["chat.completions"], server.calls["messages"]) == (2, 2)

    def test_concurrent_raw_calls_make_one_request(self, url: str) -> None:
        """Eight threads calling `with_raw_response.create` at once share one request; each gets a response."""
        from concurrent.futures import ThreadPoolExecutor

        from support.fake_llm_server import fake_llm_server

        with fake_llm_server(latency=0.2) as server:
            client = wrap(openai_client(server), backend=url)
            with ThreadPoolExecutor(8) as pool:
                answers = list(
                    pool.map(
                        lambda _: client.chat.completions.with_raw_response.create(model=MODEL, messages=MSGS), range(8)
                    )
                )
            client.close()
        assert server.calls["chat.completions"] == 1
        assert all(isinstance(a, openai._legacy_response.LegacyAPIResponse) for a in answers)
        assert len({a.parse().id for a in answers}) == 1

    async def test_async_raw_forms(self, server: SimulatedLLM, url: str) -> None:
        """Async clients: raw (awaited) and streaming (`async with`) forms, plain and streamed, are cached."""
        oai = wrap(openai_client(server, is_async=True), backend=url)
        ant = wrap(anthropic_client(server, is_async=True), backend=url)
        for _ in range(2):
            raw = await oai.chat.completions.with_raw_response.create(model=MODEL, messages=MSGS)
            assert raw.parse().choices[0].message.content
            async with oai.chat.completions.with_streaming_response.create(
                model=MODEL, messages=MSGS, stream=True
            ) as streaming:
                chunks = [c async for c in await streaming.parse()]
                assert chunks[-1].choices[0].finish_reason == "stop"
            araw = await ant.messages.with_raw_response.create(model=CLAUDE, max_tokens=64, messages=MSGS, stream=True)
            events = [e async for e in await araw.parse()]
            assert events[-1].type == "message_stop"
            async with ant.beta.messages.with_streaming_response.create(
                model=CLAUDE, max_tokens=64, messages=MSGS, betas=["context-1m-2025-08-07"]
            ) as streaming:
                message = await streaming.parse()
                assert isinstance(message, anthropic.types.beta.BetaMessage)
        assert is_cache_hit(raw) and is_cache_hit(araw) and is_cache_hit(streaming)
        assert (server.calls["chat.completions"], server.calls["messages"]) == (1, 2)
        await oai.close()
        await ant.close()


class TestStreamingResponse:
    def test_streamed_body_is_recorded_and_replayed(self, oai: Any, server: SimulatedLLM) -> None:
        """`with_streaming_response.create(stream=True)`: the live stream is recorded; the second is replayed."""
        texts = []
        for _ in range(2):
            with oai.chat.completions.with_streaming_response.create(
                model=MODEL, messages=MSGS, stream=True
            ) as response:
                texts.append("".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices))
        assert server.calls["chat.completions"] == 1
        assert texts[0] == texts[1] != ""
        assert is_cache_hit(response) and response.headers["x-agentcache"] == "hit"

    async def test_agents_sdk_responses_streaming_sequence(self, server: SimulatedLLM, url: str) -> None:
        """The OpenAI Agents SDK streams Responses as `with_streaming_response.create(stream=True)`, entered by
        hand, `await response.parse()`, iterated, then `__aexit__`: recorded once, replayed after."""
        client = wrap(openai_client(server, is_async=True), backend=url)
        runs = []
        for _ in range(2):
            manager = client.responses.with_streaming_response.create(model=MODEL, input="plan a trip", stream=True)
            response = await manager.__aenter__()
            events = [e async for e in await response.parse()]
            await manager.__aexit__(None, None, None)
            runs.append([e.type for e in events])
            final = events[-1].response
        await client.close()
        assert server.calls["responses"] == 1
        assert runs[0] == runs[1] and runs[0][-1] == "response.completed"
        assert is_cache_hit(response) and final.output_text

    def test_hit_body_is_readable(self, oai: Any, server: SimulatedLLM) -> None:
        """A hit's body reads like a real response: `.json()`, `.read()`, `.status_code`."""
        oai.responses.create(model=MODEL, input="hi")
        with oai.responses.with_streaming_response.create(model=MODEL, input="hi") as response:
            assert response.status_code == 200
            assert response.json()["output"][0]["type"] == "message"
            assert response.parse().output_text
        assert server.calls["responses"] == 1


# -- derived clients and beta ---------------------------------------------------------------------------------


class TestDerivedClients:
    def test_with_options_and_copy_stay_wrapped(self, oai: Any, server: SimulatedLLM) -> None:
        """`with_options(max_retries=...)` (Pydantic AI) and `copy()` return wrapped clients sharing entries."""
        oai.chat.completions.create(model=MODEL, messages=MSGS)
        for derived in (oai.with_options(max_retries=3, timeout=20), oai.copy()):
            assert isinstance(derived, openai.OpenAI) and core_of(derived) is not None
            assert core_of(derived).options == core_of(oai).options
            assert is_cache_hit(derived.chat.completions.create(model=MODEL, messages=MSGS))
        assert oai.with_options(max_retries=3).max_retries == 3
        assert server.calls["chat.completions"] == 1

    def test_derived_client_keeps_namespace_and_ttl(self, server: SimulatedLLM, url: str) -> None:
        """The derived client uses the same namespace: it shares the entries, a client of another one does not."""
        client = wrap(openai_client(server), backend=url, namespace="tenant-a", ttl="1h")
        client.chat.completions.create(model=MODEL, messages=MSGS)
        assert is_cache_hit(client.with_options(timeout=5).chat.completions.create(model=MODEL, messages=MSGS))
        assert is_cache_hit(client.copy().chat.completions.create(model=MODEL, messages=MSGS))
        other = wrap(openai_client(server), backend=url, namespace="tenant-b", ttl="1h")
        assert not is_cache_hit(other.with_options(timeout=5).chat.completions.create(model=MODEL, messages=MSGS))
        assert server.calls["chat.completions"] == 2

    def test_wrapping_a_wrapped_client_does_not_nest(self, oai: Any, server: SimulatedLLM, url: str) -> None:
        """`wrap(wrap(client))` wraps the SDK client once."""
        again = wrap(oai, backend=url)
        assert type(again.chat.completions._real).__name__ == "Completions"


class TestAnthropicBeta:
    def test_beta_messages_create_and_stream(self, ant: Any, server: SimulatedLLM) -> None:
        """`beta.messages.create` (Pydantic AI, ChatAnthropic with betas) and `beta.messages.stream` are cached."""
        betas = ["context-1m-2025-08-07"]
        first = ant.beta.messages.create(model=CLAUDE, max_tokens=64, messages=MSGS, betas=betas)
        second = ant.beta.messages.create(model=CLAUDE, max_tokens=64, messages=MSGS, betas=betas)
        assert isinstance(second, anthropic.types.beta.BetaMessage) and is_cache_hit(second)
        assert second == first
        texts = []
        for _ in range(2):
            with ant.beta.messages.stream(model=CLAUDE, max_tokens=64, messages=MSGS) as stream:
                texts.append(stream.get_final_text())
        assert texts[0] == texts[1] != ""
        assert server.calls["messages"] == 2  # one per distinct request (the stream has no `betas`)

    def test_betas_are_part_of_the_key(self, ant: Any, server: SimulatedLLM) -> None:
        """Two beta sets are two entries; the beta and the GA endpoint never share one."""
        ant.beta.messages.create(model=CLAUDE, max_tokens=64, messages=MSGS, betas=["a-1"])
        ant.beta.messages.create(model=CLAUDE, max_tokens=64, messages=MSGS, betas=["b-1"])
        ant.messages.create(model=CLAUDE, max_tokens=64, messages=MSGS)
        assert server.calls["messages"] == 3


# -- bypasses -------------------------------------------------------------------------------------------------


class TestBypasses:
    def test_uncached_method_warns_once_and_counts(
        self, oai: Any, server: SimulatedLLM, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`completions.create` goes to the API with one warning naming it, and shows in stats as bypassed."""
        monkeypatch.setattr(_wrap, "_bypass_warned", set())  # once per process: forget earlier tests' warnings
        caplog.set_level(logging.WARNING, logger="agentcache")
        for _ in range(3):
            with pytest.raises(openai.NotFoundError):  # the fake server has no legacy completions endpoint
                oai.completions.create(model=MODEL, prompt="hi")
        warnings = [r.getMessage() for r in caplog.records if "completions.create" in r.getMessage()]
        assert len(warnings) == 1 and "not cached" in warnings[0]
        report = agentcache.stats()
        assert report.by_function["openai.completions.create"].bypasses == 3
        assert report.total.bypasses == 3
        assert "bypassed" in str(report).splitlines()[1]

    def test_uncached_form_of_a_cached_endpoint_counts(self, oai: Any, server: SimulatedLLM) -> None:
        """`embeddings.with_raw_response.create` passes through (per-text caching needs the plain form)."""
        for _ in range(2):
            raw = oai.embeddings.with_raw_response.create(model="text-embedding-3-small", input="a")
            assert raw.parse().data[0].embedding
        assert server.calls["embeddings"] == 2
        assert core_of(oai).layers["embeddings.create"].counters.bypasses == 2

    def test_management_methods_pass_through_silently(self, oai: Any, caplog: pytest.LogCaptureFixture) -> None:
        """Listing models is the SDK's own method: no warning, no counter."""
        caplog.set_level(logging.WARNING, logger="agentcache")
        assert oai.models.list == oai.models.list  # the SDK's bound method, not a stand-in
        assert role_of(oai.models.list) is None and role_of(oai.chat.completions.list) is None
        assert caplog.records == []
