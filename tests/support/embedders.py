"""Test embedders: deterministic vectors, so a test decides which texts a semantic cache may confuse."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence


class SameVector:
    """An embedder that maps every text to one vector: only the partition can keep two calls apart."""

    model = "same-vector"
    dim = 3

    def embed(self, texts: Sequence[str], /) -> list[list[float]]:
        return [[1.0, 0.0, 0.0] for _ in texts]

    async def aembed(self, texts: Sequence[str], /) -> list[list[float]]:
        return self.embed(texts)


# Words that carry no topic: a paraphrase that only rewords around the content words embeds the same.
_STOPWORD_TEXT = (
    "a an and are as at be by can do does for how i in is it its me of on or please tell the to was what whats "
    "which who why you"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


class TopicVector:
    """A bag of content words: texts with the same content words (in any order, case or wording around them) get
    the same vector; texts with disjoint content words are orthogonal (unless two words hash to one of the 256
    dimensions: the words the tests use do not). Deterministic across processes."""

    model = "topic-vector"
    dim = 256

    def embed(self, texts: Sequence[str], /) -> list[list[float]]:
        return [self._one(t) for t in texts]

    async def aembed(self, texts: Sequence[str], /) -> list[list[float]]:
        return self.embed(texts)

    def _one(self, text: str) -> list[float]:
        vector = [0.0] * self.dim
        for word in set(re.findall(r"[a-z0-9]+", text.lower().replace("'", ""))) - _STOPWORDS:
            vector[int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "big") % self.dim] += 1.0
        if not any(vector):
            vector[0] = 1.0
        return vector
