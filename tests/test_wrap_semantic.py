"""`agentcache.wrap(client, semantic=...)`: paraphrase hits through the real SDKs and the real MiniLM embedder."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from support.fake_llm_server import SimulatedLLM, anthropic_client, openai_client

import agentcache
from agentcache.errors import ConfigurationError
from agentcache.integrations import is_cache_hit, wrap
from agentcache.semantic.embedders import LocalEmbedder

MODEL = "gpt-4o-mini"
QUESTION = "What is the capital of France?"
PARAPHRASE = "Can you tell me the capital of France?"
OTHER = "How do I bake sourdough bread at home?"
TOOLS = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}]


def ask(text: str, *, system: str | None = None) -> list[dict[str, Any]]:
    """Chat messages: an optional system prompt, then one user turn."""
    head = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": text}]


@pytest.fixture(name="client")
def _client(server: SimulatedLLM, url: str) -> Iterator[Any]:
    client = wrap(openai_client(server), backend=url, semantic={"embedder": LocalEmbedder()})
    yield client
    client.close()


class TestChat:
    def test_paraphrase_is_a_typed_hit_with_its_similarity(self, client: Any, server: SimulatedLLM) -> None:
        """A paraphrase reaches the server zero times and returns an equal `ChatCompletion`, similarity shown."""
        first = client.chat.completions.create(model=MODEL, messages=ask(QUESTION))
        assert agentcache.last_semantic_hit() is None
        second = client.chat.completions.create(model=MODEL, messages=ask(PARAPHRASE))
        assert server.calls["chat.completions"] == 1
        assert isinstance(second, openai.types.chat.ChatCompletion)
        assert second.model_dump(mode="json") == first.model_dump(mode="json")
        assert (is_cache_hit(first), is_cache_hit(second)) == (False, True)
        hit = agentcache.last_semantic_hit()
        assert hit is not None
        assert 0.8 <= hit.similarity < 1.0
        assert (hit.query, hit.cached_query) == (PARAPHRASE, QUESTION)

    def test_exact_repeat_is_a_hit_of_similarity_one(self, client: Any, server: SimulatedLLM) -> None:
        """The same request again is served by the exact fast path (similarity 1.0)."""
        client.chat.completions.create(model=MODEL, messages=ask(QUESTION))
        again = client.chat.completions.create(model=MODEL, messages=ask(QUESTION))
        assert is_cache_hit(again)
        hit = agentcache.last_semantic_hit()
        assert hit is not None
        assert hit.similarity == 1.0
        assert server.calls["chat.completions"] == 1

    def test_a_different_question_misses(self, client: Any, server: SimulatedLLM) -> None:
        """An unrelated question reaches the server and is not a hit."""
        client.chat.completions.create(model=MODEL, messages=ask(QUESTION))
        other = client.chat.completions.create(model=MODEL, messages=ask(OTHER))
        assert not is_cache_hit(other)
        assert agentcache.last_semantic_hit() is None
        assert server.calls["chat.completions"] == 2

    @pytest.mark.parametrize(
        "change",
        [
            {"model": "gpt-4o"},
            {"messages": ask(PARAPHRASE, system="Answer in French.")},
            {"tools": TOOLS},
            {"temperature": 1.0},
            {
                "messages": [
                    *ask("Tell me about France's regions."),
                    {"role": "assistant", "content": "..."},
                    *ask(PARAPHRASE),
                ]
            },
        ],
        ids=["model", "system-prompt", "tools", "temperature", "relevant-history"],
    )
    def test_anything_but_the_query_partitions(self, client: Any, server: SimulatedLLM, change: dict[str, Any]) -> None:
        """A paraphrase with another model, system prompt, tools, parameter or a history it depends on never hits."""
        client.chat.completions.create(model=MODEL, messages=ask(QUESTION))
        answer = client.chat.completions.create(**{"model": MODEL, "messages": ask(PARAPHRASE), **change})
        assert not is_cache_hit(answer)
        assert server.calls["chat.completions"] == 2

    def test_a_paraphrase_after_small_talk_hits(self, client: Any, server: SimulatedLLM) -> None:
        """Earlier turns that share nothing with the question (greetings) do not stop a paraphrase hit."""
        client.chat.completions.create(model=MODEL, messages=ask(QUESTION))
        chatter = [*ask("Hello"), {"role": "assistant", "content": "Hi! How can I help?"}, *ask(PARAPHRASE)]
        answer = client.chat.completions.create(model=MODEL, messages=chatter)
        assert is_cache_hit(answer)
        assert server.calls["chat.completions"] == 1

    def test_a_follow_up_hits_only_in_the_same_context(self, client: Any, server: SimulatedLLM) -> None:
        """ "What is its capital?" after France is reworded and hits; after Italy it is another question."""

        def chat(subject: str, follow_up: str) -> Any:
            history = [*ask(f"Tell me about {subject}."), {"role": "assistant", "content": "Sure."}]
            return client.chat.completions.create(model=MODEL, messages=[*history, *ask(follow_up)])

        chat("France", "What is its capital?")
        assert is_cache_hit(chat("France", "Tell me its capital."))
        assert not is_cache_hit(chat("Italy", "What is its capital?"))
        assert server.calls["chat.completions"] == 2

    def test_shadow_verification_runs_the_real_call_and_counts(self, server: SimulatedLLM, url: str) -> None:
        """With verify_sample=1 a paraphrase hit also reaches the server; the answers' texts are compared."""
        client = wrap(openai_client(server), backend=url, semantic={"verify_sample": 1.0})
        first = client.chat.completions.create(model=MODEL, messages=ask(QUESTION))
        answer = client.chat.completions.create(model=MODEL, messages=ask(PARAPHRASE))
        assert isinstance(answer, openai.types.chat.ChatCompletion)
        assert not is_cache_hit(answer)
        assert server.calls["chat.completions"] == 2
        total = agentcache.stats().total
        assert total.shadow_checks == 1
        differ = first.choices[0].message.content != answer.choices[0].message.content
        assert total.shadow_wrong == int(differ)
        client.close()

    def test_namespaces_never_share_hits(self, client: Any, server: SimulatedLLM) -> None:
        """A paraphrase asked in another namespace is computed again."""
        with agentcache.namespace("tenant-a"):
            client.chat.completions.create(model=MODEL, messages=ask(QUESTION))
        with agentcache.namespace("tenant-b"):
            answer = client.chat.completions.create(model=MODEL, messages=ask(PARAPHRASE))
        assert not is_cache_hit(answer)
        assert server.calls["chat.completions"] == 2

    def test_streamed_calls_keep_the_exact_cache(self, client: Any, server: SimulatedLLM) -> None:
        """With `semantic=` on, a streamed call is still recorded and replayed as an `openai.Stream`."""
        live = list(client.chat.completions.create(model=MODEL, messages=ask(QUESTION), stream=True))
        replay = client.chat.completions.create(model=MODEL, messages=ask(QUESTION), stream=True)
        assert isinstance(replay, openai.Stream)
        assert list(replay) == live
        assert server.calls["chat.completions"] == 1

    def test_a_query_without_text_takes_the_exact_path(self, client: Any, server: SimulatedLLM) -> None:
        """A last user message that is not text (an image part) is cached exactly, without an error."""
        image = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
        messages = [{"role": "user", "content": image}]
        client.chat.completions.create(model=MODEL, messages=messages)
        again = client.chat.completions.create(model=MODEL, messages=messages)
        assert is_cache_hit(again)
        assert server.calls["chat.completions"] == 1

    def test_errors_are_never_cached(self, client: Any, server: SimulatedLLM) -> None:
        """A 500 propagates as the SDK's error; the next paraphrase reaches the server."""
        server.fail_next(500)
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model=MODEL, messages=ask(QUESTION))
        answer = client.chat.completions.create(model=MODEL, messages=ask(PARAPHRASE))
        assert not is_cache_hit(answer)
        assert server.calls["chat.completions"] == 2


class TestOptions:
    def test_a_float_is_the_threshold(self, server: SimulatedLLM, url: str) -> None:
        """`semantic=0.99` refuses a paraphrase that the default threshold accepts."""
        client = wrap(openai_client(server), backend=url, semantic=0.99)
        client.chat.completions.create(model=MODEL, messages=ask(QUESTION))
        answer = client.chat.completions.create(model=MODEL, messages=ask(PARAPHRASE))
        client.close()
        assert not is_cache_hit(answer)
        assert server.calls["chat.completions"] == 2

    def test_true_uses_the_defaults(self, server: SimulatedLLM, url: str) -> None:
        """`semantic=True` serves paraphrases with the default threshold and embedder."""
        client = wrap(openai_client(server), backend=url, semantic=True)
        client.chat.completions.create(model=MODEL, messages=ask(QUESTION))
        answer = client.chat.completions.create(model=MODEL, messages=ask(PARAPHRASE))
        client.close()
        assert is_cache_hit(answer)

    @pytest.mark.parametrize("bad", [{"query": "messages"}, {"name": "x"}, "yes", {"threshold": 7}])
    def test_bad_options_are_refused_at_wrap_time(self, server: SimulatedLLM, bad: Any) -> None:
        """Options the wrapper decides, wrong types and invalid thresholds raise `ConfigurationError`."""
        with pytest.raises(ConfigurationError):
            wrap(openai_client(server), semantic=bad)


def test_responses_create_paraphrase_hits(client: Any, server: SimulatedLLM) -> None:
    """`responses.create(input=...)` paraphrases hit and return an equal `Response`."""
    first = client.responses.create(model=MODEL, input=QUESTION)
    second = client.responses.create(model=MODEL, input=PARAPHRASE)
    assert isinstance(second, openai.types.responses.Response)
    assert second.model_dump(mode="json") == first.model_dump(mode="json")
    assert is_cache_hit(second)
    assert server.calls["responses"] == 1


def test_anthropic_messages_paraphrase_and_system_prompt(server: SimulatedLLM, url: str) -> None:
    """`messages.create` paraphrases hit under the same system prompt and never under another one."""
    client = wrap(anthropic_client(server), backend=url, semantic=True)
    first = client.messages.create(model="claude-sonnet-4-6", max_tokens=64, system="Be brief.", messages=ask(QUESTION))
    second = client.messages.create(
        model="claude-sonnet-4-6", max_tokens=64, system="Be brief.", messages=ask(PARAPHRASE)
    )
    third = client.messages.create(
        model="claude-sonnet-4-6", max_tokens=64, system="Be verbose.", messages=ask(PARAPHRASE)
    )
    client.close()
    assert isinstance(second, anthropic.types.Message)
    assert second == first
    assert (is_cache_hit(second), is_cache_hit(third)) == (True, False)
    assert server.calls["messages"] == 2


async def test_async_clients_get_paraphrase_hits(server: SimulatedLLM, url: str) -> None:
    """`AsyncOpenAI` paraphrases hit, and `last_semantic_hit()` is visible in the calling task."""
    client = wrap(openai_client(server, is_async=True), backend=url, semantic=True)
    first = await client.chat.completions.create(model=MODEL, messages=ask(QUESTION))
    second = await client.chat.completions.create(model=MODEL, messages=ask(PARAPHRASE))
    hit = agentcache.last_semantic_hit()
    other = await client.chat.completions.create(model=MODEL, messages=ask(OTHER))
    await client.close()
    assert second == first
    assert is_cache_hit(second)
    assert hit is not None
    assert hit.cached_query == QUESTION
    assert not is_cache_hit(other)
    assert server.calls["chat.completions"] == 2
