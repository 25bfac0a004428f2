"""@embedding_cached: per-text entries, only misses reach the function, float32 bytes, sync and async."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from agentcache.codec.entries import VECTOR_HEADER_SIZE, pack_vector
from agentcache.decorators.embedding import embedding_cached
from agentcache.engine.cache import Cache
from agentcache.errors import ConfigurationError
from agentcache.semantic.embedders import LocalEmbedder


def fake_vector(text: str) -> list[float]:
    return [float(len(text)), float(sum(map(ord, text)) % 97), 0.5]


@pytest.fixture
def cache(backend_url: str) -> Iterator[Cache]:
    """A Cache on a fresh backend of each kind (memory, SQLite file, Redis, ...), closed afterwards."""
    c = Cache(backend_url)
    yield c
    c.close()


class TestBatch:
    def test_batch_call_passes_only_misses_in_one_call(self, cache: Cache) -> None:
        """A batch with cached and new texts calls the function once, with only the new ones, in order."""
        calls: list[list[str]] = []

        @embedding_cached(model="m1", backend=cache)
        def embed(texts: list[str]) -> list[list[float]]:
            calls.append(list(texts))
            return [fake_vector(t) for t in texts]

        assert embed(["a", "bb"]) == [fake_vector("a"), fake_vector("bb")]
        result = embed(["ccc", "a", "dddd", "bb", "ccc"])
        assert result == [fake_vector(t) for t in ["ccc", "a", "dddd", "bb", "ccc"]]
        assert calls == [["a", "bb"], ["ccc", "dddd"]]
        assert embed(["bb", "a"]) == [fake_vector("bb"), fake_vector("a")]
        assert len(calls) == 2
        info = embed.cache_info()
        assert info.hits == 2 + 2 and info.misses == 4

    async def test_async_batch(self, cache: Cache) -> None:
        """The async face follows the same rules."""
        calls: list[list[str]] = []

        @embedding_cached(model="m1", backend=cache)
        async def embed(texts: list[str]) -> list[list[float]]:
            calls.append(list(texts))
            return [fake_vector(t) for t in texts]

        await embed(["x", "y"])
        assert await embed(["y", "z", "x"]) == [fake_vector("y"), fake_vector("z"), fake_vector("x")]
        assert calls == [["x", "y"], ["z"]]
        await cache.store.aclose()  # the async Redis client belongs to this test's event loop

    def test_single_text_function(self, cache: Cache) -> None:
        """A single-text function is called once per distinct text."""
        calls: list[str] = []

        @embedding_cached(model="m1", backend=cache)
        def embed_one(text: str) -> list[float]:
            calls.append(text)
            return fake_vector(text)

        assert embed_one("hello") == fake_vector("hello")
        assert embed_one(text="hello") == fake_vector("hello")
        assert calls == ["hello"]


class TestKeys:
    def test_models_and_other_arguments_never_share_vectors(self, cache: Cache) -> None:
        """The model name and the other arguments (e.g. dimensions) are part of each text's key."""
        calls: list[tuple[str, int]] = []

        def make(model: str) -> object:
            @embedding_cached(model=model, backend=cache)
            def embed(texts: list[str], dimensions: int = 3) -> list[list[float]]:
                calls.append((model, dimensions))
                return [fake_vector(t) for t in texts]

            return embed

        a, b = make("small"), make("large")
        a(["q"])  # type: ignore[operator]
        b(["q"])  # type: ignore[operator]
        a(["q"], dimensions=8)  # type: ignore[operator]
        a(["q"])  # type: ignore[operator]
        assert calls == [("small", 3), ("large", 3), ("small", 8)]

    def test_vectors_are_stored_as_float32_bytes(self, tmp_path: Path) -> None:
        """The stored value is 4 bytes a dimension, not JSON; no expiry by default; survives a restart."""
        url = f"sqlite://{tmp_path / 'e.db'}"

        @embedding_cached(model="m", backend=Cache(url))
        def embed(texts: list[str]) -> list[list[float]]:
            return [[0.25, -1.0, 2.0] for _ in texts]

        embed(["t"])
        from agentcache.backends import open_backend

        store = open_backend(url)
        try:
            entries = list(store.scan(""))  # type: ignore[attr-defined]
            assert len(entries) == 1
            raw = store.get(entries[0].key)
            assert raw is not None and raw.endswith(pack_vector([0.25, -1.0, 2.0]))  # float32 bytes, not JSON
            assert len(raw) == VECTOR_HEADER_SIZE + 12  # behind a 20-byte header: checksum, key digest, dimension
            assert entries[0].expires_at is None
        finally:
            store.close()

        calls = []

        @embedding_cached(model="m", backend=Cache(url))
        def embed_again(texts: list[str]) -> list[list[float]]:
            calls.append(texts)
            return [[9.0, 9.0, 9.0] for _ in texts]

        assert embed_again(["t"]) == [[0.25, -1.0, 2.0]]
        assert calls == []

    def test_wrong_length_result_raises_and_stores_nothing(self, cache: Cache) -> None:
        """A function returning the wrong number of vectors raises instead of misaligning texts."""

        @embedding_cached(model="m", backend=cache)
        def embed(texts: list[str]) -> list[list[float]]:
            return [[1.0]]

        with pytest.raises(ValueError, match="returned 1 vectors for 2 texts"):
            embed(["a", "b"])

    def test_model_is_required(self) -> None:
        """Leaving out model= is a configuration error."""
        with pytest.raises(ConfigurationError):
            embedding_cached(model="")


def test_caches_the_real_local_embedder(tmp_path: Path) -> None:
    """The local MiniLM embedder behind the decorator: a repeated text is never embedded twice."""
    local = LocalEmbedder()
    seen: list[str] = []

    @embedding_cached(model=local.model, backend=Cache(f"sqlite://{tmp_path / 'c.db'}"))
    def embed(texts: list[str]) -> list[list[float]]:
        seen.extend(texts)
        return local.embed(texts)

    first = embed(["How do I rotate an API key?"])
    again = embed(["How do I rotate an API key?", "Where are the billing settings?"])
    assert seen == ["How do I rotate an API key?", "Where are the billing settings?"]
    assert again[0] == pytest.approx(first[0], abs=1e-6)
    assert len(again[1]) == 384


def test_cached_embedder_feeds_the_semantic_cache(tmp_path: Path) -> None:
    """CachedEmbedder embeds each distinct query text once, across partitions of a semantic cache."""
    from agentcache.decorators.embedding import CachedEmbedder
    from agentcache.decorators.semantic import semantic_cached

    class Counting:
        model = "counting"
        dim = 3

        def __init__(self) -> None:
            self.seen: list[str] = []

        def embed(self, texts: Sequence[str], /) -> list[list[float]]:
            self.seen.extend(texts)
            return [fake_vector(t) for t in texts]

        async def aembed(self, texts: Sequence[str], /) -> list[list[float]]:
            return self.embed(texts)

    inner = Counting()
    cache = Cache(f"sqlite://{tmp_path / 's.db'}")
    embedder = CachedEmbedder(inner, backend=cache)

    @semantic_cached(backend=cache, embedder=embedder, namespace=lambda tenant, question: tenant)
    def answer(tenant: str, question: str) -> str:
        return f"{tenant}:{question}"

    answer("t1", "same words")
    answer("t2", "same words")
    assert answer("t2", "same words") == "t2:same words"
    assert inner.seen == ["same words"]
    cache.close()
