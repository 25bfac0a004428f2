"""A partition of vector records written straight into a store, as `@semantic_cached` (or another process)
stores them: for tests of how the semantic index is built, refreshed and loaded."""

from __future__ import annotations

from typing import Any

import numpy as np

from agentcache.backends.base import Item
from agentcache.engine.cache import Cache
from agentcache.keys.encoding import make_key
from agentcache.semantic import partitions
from agentcache.semantic.partitions import refresh

NS = "default"
DIM = 16


class VectorPartition:
    """One partition (`mark` names it: partitions of different test modules never share keys)."""

    def __init__(self, mark: str, dim: int = DIM, ns: str = NS) -> None:
        self.dim, self.ns = dim, ns
        self.prefix = make_key(ns, partitions.VECTOR_LAYER, mark * 32, "")

    def vectors(self, n: int, seed: int = 0) -> Any:
        """`n` random unit vectors (reproducible by `seed`)."""
        v = np.random.default_rng(seed).standard_normal((n, self.dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def key(self, i: int) -> str:
        """The store key of record `i`."""
        return f"{self.prefix}{i:032x}"

    def write(self, cache: Cache, data: Any, start: int = 0, tags: tuple[str, ...] = ()) -> None:
        """Records `start`, `start + 1`, ... holding the rows of `data`."""
        cache.store.set_many(
            [
                Item(
                    self.key(i),
                    partitions.encode_record(self.key(i), f"question {i}", f"ac:v1:{self.ns}:x:f:{i}", "m", v),
                    None,
                    tags,
                )
                for i, v in enumerate(data, start)
            ]
        )

    def lookup(self, cache: Cache, vector: Any) -> str | None:
        """The record key a lookup would consider first for `vector` (refresh, then search)."""
        found = refresh(cache.store, self.ns, self.prefix, self.dim).search(vector.tolist(), 1)
        return found[0][0] if found else None
