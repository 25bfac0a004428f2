"""Vector indexes: add, replace, remove, search, save/load, and the exact-to-HNSW switch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from agentcache.errors import ConfigurationError, SerializationError
from agentcache.semantic.index import AutoIndex, NumpyIndex, VectorIndex, load_index
from agentcache.semantic.usearch_index import USearchIndex

DIM = 16
FACTORIES: dict[str, Callable[[], VectorIndex]] = {
    "numpy": lambda: NumpyIndex(DIM),
    "usearch": lambda: USearchIndex(DIM),
}


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(params=sorted(FACTORIES))
def index(request: pytest.FixtureRequest) -> VectorIndex:
    """Each index kind in turn."""
    return FACTORIES[str(request.param)]()


class TestProtocol:
    def test_finds_exact_vector_with_cosine_one(self, index: VectorIndex) -> None:
        """A stored vector is its own nearest neighbour, with similarity 1."""
        rng = np.random.default_rng(1)
        vecs = unit(rng, 50)
        index.add([f"id{i}" for i in range(50)], vecs)
        (best_id, score), *_ = index.search(vecs[7], k=3)
        assert best_id == "id7"
        assert score == pytest.approx(1.0, abs=1e-5)
        assert len(index) == 50
        assert isinstance(index, VectorIndex)

    def test_scores_are_cosine_for_unnormalized_input(self, index: VectorIndex) -> None:
        """Vectors are normalized on the way in, so scores are cosines whatever the input scale."""
        index.add(["a", "b"], [[3.0] + [0.0] * (DIM - 1), [1.0, 1.0] + [0.0] * (DIM - 2)])
        result = dict(index.search([10.0] + [0.0] * (DIM - 1), k=2))
        assert result["a"] == pytest.approx(1.0, abs=1e-5)
        assert result["b"] == pytest.approx(2**-0.5, abs=1e-5)

    def test_results_best_first_and_bounded_by_k(self, index: VectorIndex) -> None:
        """search returns at most k pairs, in decreasing similarity."""
        rng = np.random.default_rng(2)
        index.add([str(i) for i in range(30)], unit(rng, 30))
        found = index.search(unit(rng, 1)[0], k=5)
        assert len(found) == 5
        scores = [s for _, s in found]
        assert scores == sorted(scores, reverse=True)
        assert index.search(unit(rng, 1)[0], k=0) == []

    def test_removed_ids_are_never_returned(self, index: VectorIndex) -> None:
        """remove really deletes: the removed ids disappear from results and from len()."""
        rng = np.random.default_rng(3)
        vecs = unit(rng, 40)
        ids = [f"k{i}" for i in range(40)]
        index.add(ids, vecs)
        assert index.remove(["k3", "k39", "missing"]) == 2
        assert len(index) == 38
        assert "k3" not in index
        assert "k4" in index
        assert index.search(vecs[3], k=1)[0][0] != "k3"
        assert all(i not in ("k3", "k39") for i, _ in index.search(vecs[39], k=38))
        assert index.search(vecs[38], k=1)[0][0] == "k38"  # the row swapped into the hole still resolves

    def test_add_replaces_an_existing_id(self, index: VectorIndex) -> None:
        """Adding an id again replaces its vector instead of duplicating it."""
        rng = np.random.default_rng(4)
        a, b = unit(rng, 2)
        index.add(["x"], [a])
        index.add(["x"], [b])
        assert len(index) == 1
        assert index.search(b, k=1)[0] == ("x", pytest.approx(1.0, abs=1e-5))

    def test_empty_index_returns_nothing(self, index: VectorIndex) -> None:
        """Searching an empty index returns an empty list."""
        assert index.search(np.ones(DIM), k=3) == []

    def test_wrong_dimension_is_rejected(self, index: VectorIndex) -> None:
        """A vector of the wrong length raises ConfigurationError."""
        with pytest.raises(ConfigurationError):
            index.add(["a"], [[1.0, 2.0]])

    def test_save_and_load_round_trip(self, index: VectorIndex, tmp_path: Path) -> None:
        """A saved index reloads with the same ids, vectors and deletions."""
        rng = np.random.default_rng(5)
        vecs = unit(rng, 60)
        index.add([f"v{i}" for i in range(60)], vecs)
        index.remove(["v10"])
        path = tmp_path / "index.bin"
        index.save(path)
        loaded = load_index(path)
        assert type(loaded) is type(index)
        assert len(loaded) == 59
        assert "v10" not in loaded
        assert loaded.search(vecs[20], k=1)[0][0] == "v20"
        loaded.add(["new"], vecs[10:11])  # a reloaded index stays mutable
        assert loaded.search(vecs[10], k=1)[0][0] == "new"


class TestFiles:
    def test_numpy_load_rejects_foreign_file(self, tmp_path: Path) -> None:
        """Loading a file that is not a saved NumpyIndex raises SerializationError."""
        path = tmp_path / "x.bin"
        path.write_bytes(b"not an index")
        with pytest.raises(SerializationError):
            NumpyIndex.load(path)

    def test_usearch_load_needs_its_id_map(self, tmp_path: Path) -> None:
        """A usearch file without its id sidecar raises SerializationError instead of guessing ids."""
        index = USearchIndex(DIM)
        index.add(["a"], np.ones((1, DIM)))
        index.save(tmp_path / "u.bin")
        (tmp_path / "u.bin.ids.json").unlink()
        with pytest.raises(SerializationError):
            USearchIndex.load(tmp_path / "u.bin")


class TestAutoIndex:
    def test_switches_to_hnsw_past_threshold_and_keeps_entries(self) -> None:
        """AutoIndex answers exactly while small, then moves every entry into a USearchIndex."""
        rng = np.random.default_rng(6)
        vecs = unit(rng, 30)
        auto = AutoIndex(DIM, switch_at=20)
        auto.add([str(i) for i in range(15)], vecs[:15])
        assert isinstance(auto.inner, NumpyIndex)
        auto.add([str(i) for i in range(15, 30)], vecs[15:])
        assert auto.settle(timeout=60)  # the graph is built in the background
        assert isinstance(auto.inner, USearchIndex)
        assert len(auto) == 30
        assert auto.search(vecs[3], k=1)[0][0] == "3"
        assert auto.remove(["3"]) == 1
        assert auto.search(vecs[3], k=1)[0][0] != "3"
