"""Test embedders: deterministic vectors, so a test decides which texts a semantic cache may confuse."""

from __future__ import annotations

from collections.abc import Sequence


class SameVector:
    """An embedder that maps every text to one vector: only the partition can keep two calls apart."""

    model = "same-vector"
    dim = 3

    def embed(self, texts: Sequence[str], /) -> list[list[float]]:
        return [[1.0, 0.0, 0.0] for _ in texts]

    async def aembed(self, texts: Sequence[str], /) -> list[list[float]]:
        return self.embed(texts)
