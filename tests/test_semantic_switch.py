"""AutoIndex builds its HNSW graph in the background: lookups and writes go on meanwhile, none is lost."""

from __future__ import annotations

import pytest

np = pytest.importorskip("numpy")

from agentcache.semantic.index import AutoIndex  # noqa: E402
from agentcache.semantic.usearch_index import USearchIndex  # noqa: E402

DIM = 16


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class TestAutoIndexBackgroundSwitch:
    def test_writes_during_the_build_reach_the_graph(self) -> None:
        """Adds, replacements and removes made right after the threshold was crossed (while the graph may still
        be building) are all in the index that takes over; lookups answer throughout."""
        rng = np.random.default_rng(8)
        vecs = unit(rng, 60)
        auto = AutoIndex(DIM, switch_at=20)
        auto.add([str(i) for i in range(30)], vecs[:30])  # crosses: the build starts
        assert auto.search(vecs[4], k=1)[0][0] == "4"
        for i in range(30, 60):
            auto.add([str(i)], vecs[i : i + 1])
        assert auto.remove(["1", "2", "40"]) == 3
        auto.add(["5"], vecs[50:51])  # "5" now holds another vector
        assert auto.settle(timeout=60)
        assert isinstance(auto.inner, USearchIndex)
        assert len(auto) == 57
        assert "1" not in auto and "40" not in auto and "59" in auto
        assert auto.search(vecs[59], k=1)[0][0] == "59"
        assert {hit[0] for hit in auto.search(vecs[50], k=2)} == {"5", "50"}

    def test_inline_build_when_asked(self) -> None:
        """`background=False` switches inside the call that crossed the threshold."""
        rng = np.random.default_rng(9)
        vecs = unit(rng, 30)
        auto = AutoIndex(DIM, switch_at=20, background=False)
        auto.add([str(i) for i in range(30)], vecs)
        assert isinstance(auto.inner, USearchIndex)
