"""The semantic layer: embedders, vector indexes, look-alike guards and the query/partition split.

Importing this package is light (standard library only); numpy, onnxruntime, tokenizers and usearch are
imported by the functions that need them.
"""

from agentcache.semantic.embedders import Embedder, LocalEmbedder, OpenAIEmbedder, Vector
from agentcache.semantic.guards import (
    DEFAULT_GUARDS,
    DEFAULT_THRESHOLD,
    Guard,
    Verifier,
    check_guards,
    effective_threshold,
    set_threshold_floor,
    threshold_floor,
)
from agentcache.semantic.index import AutoIndex, NumpyIndex, VectorIndex, load_index
from agentcache.semantic.query import split_query

__all__ = [
    "DEFAULT_GUARDS",
    "DEFAULT_THRESHOLD",
    "AutoIndex",
    "Embedder",
    "Guard",
    "LocalEmbedder",
    "NumpyIndex",
    "OpenAIEmbedder",
    "Vector",
    "VectorIndex",
    "Verifier",
    "check_guards",
    "effective_threshold",
    "load_index",
    "set_threshold_floor",
    "split_query",
    "threshold_floor",
]
