"""Never executed: `mypy --strict` checks that `@semantic_cached` and `@embedding_cached` keep signatures.

Imported from their modules: `agentcache.<name>` is resolved lazily by the package's `__getattr__`, which a
type checker sees as `Any` until `agentcache/__init__.py` re-exports these names under `TYPE_CHECKING`.
"""

from __future__ import annotations

from typing import Any

from typing_extensions import assert_type

from agentcache.decorators.embedding import embedding_cached
from agentcache.decorators.semantic import last_semantic_hit, semantic_cached
from agentcache.semantic import LocalEmbedder


@semantic_cached(threshold=0.9, ttl="1d", namespace=lambda user_id, q: user_id)
async def answer(user_id: str, question: str) -> str:
    return question


@semantic_cached
def faq(question: str, *, lang: str = "en") -> list[str]:
    return [question, lang]


@semantic_cached(query="messages", embedder=LocalEmbedder(), guards=(), verify=lambda a, b, s: s > 0.95)
def chat(messages: list[dict[str, Any]], model: str = "gpt-4o") -> dict[str, Any]:
    return {}


@embedding_cached(model="text-embedding-3-small")
def embed(texts: list[str]) -> list[list[float]]:
    return [[0.0] for _ in texts]


@embedding_cached(model="text-embedding-3-small", ttl=None, namespace="emb")
async def aembed_one(text: str, dimensions: int = 256) -> list[float]:
    return [0.0] * dimensions


def _embed_one(text: str) -> list[float]:
    return [0.0]


embed_one = embedding_cached(_embed_one, model="m")


async def check_async() -> None:
    assert_type(await answer("u1", "What is the capital of France?"), str)
    assert_type(await answer.acache_invalidate("u1", "q"), bool)
    assert_type(answer.cache_key("u1", "q"), str)
    assert_type(await aembed_one("hi", dimensions=8), list[float])
    assert_type(await aembed_one.acache_invalidate("hi"), bool)


def check_sync() -> None:
    assert_type(faq("q", lang="fr"), list[str])
    assert_type(faq.cache_invalidate("q"), bool)
    assert_type(faq.cache_info().hits, int)
    assert_type(chat([{"role": "user", "content": "hi"}], model="m"), dict[str, Any])
    assert_type(embed(["a", "b"]), list[list[float]])
    assert_type(embed_one("a"), list[float])
    embed.cache_clear()
    hit = last_semantic_hit()
    if hit is not None:
        assert_type(hit.similarity, float)


def check_rejections() -> None:
    faq(1)  # type: ignore[arg-type]
    faq("q", language="fr")  # type: ignore[call-arg]
    embed("not a list")  # type: ignore[arg-type]
    faq.cache_invalidate(3)  # type: ignore[arg-type]
    embedding_cached(embed)  # type: ignore[call-overload]
    semantic_cached(threshold="high")  # type: ignore[call-overload]


async def check_async_rejections() -> None:
    await answer("u1")  # type: ignore[call-arg]
    await aembed_one(["a"])  # type: ignore[arg-type]
