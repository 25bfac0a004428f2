"""The semantic layer: embedders, vector indexes, look-alike guards, the query/partition split, and how the
per-process indexes stay in step with the backend (event log, persisted ANN indexes).

Importing this package is light (standard library only); numpy, onnxruntime, tokenizers and usearch are
imported by the functions that need them.
"""

from agentcache.semantic.embedders import Embedder, LocalEmbedder, OpenAIEmbedder, Vector
from agentcache.semantic.eventlog import EventBatch, SupportsEventLog
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
from agentcache.semantic.persist import save_indexes
from agentcache.semantic.query import split_query

__all__ = [
    "DEFAULT_GUARDS",
    "DEFAULT_THRESHOLD",
    "AutoIndex",
    "Embedder",
    "EventBatch",
    "Guard",
    "LocalEmbedder",
    "NumpyIndex",
    "OpenAIEmbedder",
    "SupportsEventLog",
    "Vector",
    "VectorIndex",
    "Verifier",
    "check_guards",
    "effective_threshold",
    "load_index",
    "save_indexes",
    "set_threshold_floor",
    "split_query",
    "threshold_floor",
]
