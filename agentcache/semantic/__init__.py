"""The semantic layer: embedders, vector indexes, look-alike guards, the pair judge and its wrong-answer budget,
the query/context/partition split, evaluation on labelled pairs, and how the per-process indexes stay in step
with the backend (event log, persisted ANN indexes).

Importing this package is light (standard library only); numpy, onnxruntime, tokenizers and usearch are
imported by the functions that need them.
"""

from agentcache.semantic.budget import DEFAULT_MAX_WRONG, OperatingPoint, operating_point
from agentcache.semantic.embedders import Embedder, LocalEmbedder, OpenAIEmbedder, Vector
from agentcache.semantic.evaluate import EvalReport, evaluate, load_pairs
from agentcache.semantic.eventlog import EventBatch, SupportsEventLog
from agentcache.semantic.guards import (
    DEFAULT_GUARDS,
    DEFAULT_THRESHOLD,
    GUARDS_WITHOUT_JUDGE,
    Guard,
    Verifier,
    check_guards,
    effective_threshold,
    set_threshold_floor,
    threshold_floor,
)
from agentcache.semantic.index import AutoIndex, NumpyIndex, VectorIndex, load_index
from agentcache.semantic.pairjudge import PairJudge, get_judge
from agentcache.semantic.persist import save_indexes
from agentcache.semantic.query import split_query

__all__ = [
    "DEFAULT_GUARDS",
    "DEFAULT_MAX_WRONG",
    "DEFAULT_THRESHOLD",
    "GUARDS_WITHOUT_JUDGE",
    "AutoIndex",
    "Embedder",
    "EvalReport",
    "EventBatch",
    "Guard",
    "LocalEmbedder",
    "NumpyIndex",
    "OpenAIEmbedder",
    "OperatingPoint",
    "PairJudge",
    "SupportsEventLog",
    "Vector",
    "VectorIndex",
    "Verifier",
    "check_guards",
    "effective_threshold",
    "evaluate",
    "get_judge",
    "load_index",
    "load_pairs",
    "operating_point",
    "save_indexes",
    "set_threshold_floor",
    "split_query",
    "threshold_floor",
]
