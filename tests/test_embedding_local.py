"""The offline MiniLM embedder, run for real on hand-written sentences."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
import pytest

from agentcache.errors import ConfigurationError
from agentcache.semantic import _minilm
from agentcache.semantic.embedders import Embedder, LocalEmbedder


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    """One local embedder for the module (the model loads once per process anyway)."""
    return LocalEmbedder()


def cos(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b))


class TestLocalEmbedder:
    def test_is_an_embedder_with_unit_vectors(self, embedder: LocalEmbedder) -> None:
        """Vectors are 384-d, L2-normalized, one per text, and the class satisfies the protocol."""
        vecs = embedder.embed(["hello there", "general kenobi"])
        assert isinstance(embedder, Embedder)
        assert len(vecs) == 2
        assert all(len(v) == embedder.dim == 384 for v in vecs)
        assert all(math.isclose(float(np.linalg.norm(v)), 1.0, abs_tol=1e-4) for v in vecs)
        assert embedder.embed([]) == []

    def test_paraphrases_score_above_unrelated(self, embedder: LocalEmbedder) -> None:
        """A paraphrase is far closer than an unrelated question (hand-written pairs)."""
        a, b, c = embedder.embed(
            [
                "How can I change my account password?",
                "What are the steps to reset my password?",
                "Which trains run from Lyon to Geneva on Sundays?",
            ],
        )
        assert cos(a, b) > 0.7
        assert cos(a, c) < 0.3
        assert cos(a, b) - cos(a, c) > 0.5

    def test_batch_matches_single_calls(self, embedder: LocalEmbedder) -> None:
        """Embedding in a padded batch gives the same vectors as one text at a time (mask-aware pooling)."""
        texts = [
            "short",
            "a much longer sentence that needs plenty of padding for the others",
            "mid length one",
        ]
        batch = embedder.embed(texts)
        for text, vec in zip(texts, batch, strict=True):
            assert np.allclose(embedder.embed([text])[0], vec, atol=1e-4)

    async def test_async_face_matches_sync(self, embedder: LocalEmbedder) -> None:
        """aembed returns the same vectors as embed."""
        texts = ["async works", "so does sync"]
        assert np.allclose(await embedder.aembed(texts), embedder.embed(texts), atol=1e-6)

    def test_model_loads_once_across_threads(self, embedder: LocalEmbedder) -> None:
        """Concurrent first uses share one loaded model."""
        seen: list[object] = []
        threads = [threading.Thread(target=lambda: seen.append(_minilm.get_model())) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len({id(m) for m in seen}) == 1

    def test_vendored_tokenizer_is_pinned(self) -> None:
        """The vendored tokenizer file matches its pinned sha256 and ships with its notice."""
        _minilm.verify_sha256(_minilm.TOKENIZER_PATH, _minilm.TOKENIZER_SHA256, "tokenizer")
        assert "Apache License" in (_minilm.TOKENIZER_PATH.parent / "NOTICE").read_text()

    def test_tampered_file_is_refused(self, tmp_path: Path) -> None:
        """A file whose sha256 differs from the pin raises a ConfigurationError that says so."""
        copy = tmp_path / "tokenizer.json"
        copy.write_bytes(_minilm.TOKENIZER_PATH.read_bytes() + b" ")
        with pytest.raises(ConfigurationError, match="sha256"):
            _minilm.verify_sha256(copy, _minilm.TOKENIZER_SHA256, "MiniLM tokenizer")
        with pytest.raises(ConfigurationError, match="cannot read"):
            _minilm.verify_sha256(tmp_path / "missing", _minilm.TOKENIZER_SHA256, "MiniLM tokenizer")


def test_word_states_kept_are_bounded_and_least_recently_used_go_first() -> None:
    """The model keeps the word states of at most STATES_KEPT texts; a text read again stays, the oldest unread
    one goes (the judge reads the query's states right after embedding it)."""
    model = _minilm.get_model()
    model.encode(["the first text"])
    model.encode([f"filler text number {i}" for i in range(_minilm.STATES_KEPT - 1)])
    model.token_states(["the first text"])  # read: now the most recent
    model.encode(["one more text"])  # evicts the least recently used: filler 0
    assert model.has_states(["the first text", "one more text"])
    assert not model.has_states(["filler text number 0"])
    model.encode([f"second filler {i}" for i in range(_minilm.STATES_KEPT)])
    assert not model.has_states(["the first text"])
