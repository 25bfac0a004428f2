"""agentcache: never pay twice for the same LLM, tool or embedding call.

```python
import agentcache

@agentcache.tool_cached(ttl="1h", tags=["search"])
async def search_web(query: str) -> str: ...

@agentcache.response_cached()
def ask(messages: list[dict], model: str = "gpt-4o", temperature: float = 0.0) -> dict: ...

with agentcache.namespace("tenant-42"):
    ask([{"role": "user", "content": "hi"}])

agentcache.invalidate(tags=["search"])
print(agentcache.stats())
```

Importing this package imports only the standard library and agentcache's own modules; optional integrations
load when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._core import KeyExplanation, explain_key
from ._core import reset_stats as _reset_stats
from ._core import stats_report as _stats_report
from .cache import Cache
from .config import Settings, configure, get_settings
from .decorators import CacheDecorator, CacheOptions, response_cached, tool_cached
from .errors import (
    AgentCacheError,
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    InvalidationError,
    KeyEncodingError,
    MissingDependencyError,
    SerializationError,
)
from .invalidation import aemit, ainvalidate, emit, invalidate, on
from .scope import ALL, current_namespace, namespace
from .serialization import register_type
from .stats import CacheInfo, StatsReport
from .stats_store import flush_stats
from .types import AsyncCachedFunction, AsyncCachedMethod, CachedFunction, CachedMethod
from .usage import Price, Usage, extract_usage, set_prices

if TYPE_CHECKING:  # the lazily loaded names below, typed for checkers and IDEs
    from .backends import open_backend
    from .backends.memory import MemoryBackend
    from .backends.redis import RedisBackend
    from .backends.sqlite import SQLiteBackend
    from .backends.tiered import TieredBackend
    from .decorators.embedding import CachedEmbedder, embedding_cached
    from .decorators.semantic import SemanticHit, invalidate_similar, last_semantic_hit, semantic_cached
    from .integrations import is_cache_hit, wrap
    from .integrations.transport import async_http_client, http_client
    from .prompt_cache import prompt_cached
    from .semantic.embedders import LocalEmbedder, OpenAIEmbedder
    from .semantic.guards import set_threshold_floor

__version__ = "0.1.0"

__all__ = [
    "ALL",
    "AgentCacheError",
    "AsyncCachedFunction",
    "AsyncCachedMethod",
    "BackendError",
    "BackendUnavailable",
    "Cache",
    "CacheDecorator",
    "CacheInfo",
    "CacheOptions",
    "CachedEmbedder",
    "CachedFunction",
    "CachedMethod",
    "ConfigurationError",
    "InvalidationError",
    "KeyEncodingError",
    "KeyExplanation",
    "LocalEmbedder",
    "MemoryBackend",
    "MissingDependencyError",
    "OpenAIEmbedder",
    "Price",
    "RedisBackend",
    "SQLiteBackend",
    "SemanticHit",
    "SerializationError",
    "Settings",
    "StatsReport",
    "TieredBackend",
    "Usage",
    "__version__",
    "aemit",
    "ainvalidate",
    "async_http_client",
    "configure",
    "current_namespace",
    "embedding_cached",
    "emit",
    "explain_key",
    "extract_usage",
    "flush_stats",
    "get_settings",
    "http_client",
    "invalidate",
    "invalidate_similar",
    "is_cache_hit",
    "last_semantic_hit",
    "namespace",
    "on",
    "open_backend",
    "prompt_cached",
    "register_type",
    "reset",
    "response_cached",
    "semantic_cached",
    "set_prices",
    "set_threshold_floor",
    "stats",
    "tool_cached",
    "wrap",
]


def stats() -> StatsReport:
    """Hits, misses, errors, hit rate and time/tokens/dollars saved in this process.

    ``print(agentcache.stats())`` shows a table; ``.total``, ``.by_layer[...]`` and ``.by_function[...]`` hold
    the numbers. For every process that shares a store, run ``agentcache stats`` on the command line.
    """
    return _stats_report()


def reset() -> None:
    """Return to a pristine state: forget `configure()`, close every store, zero stats, drop event rules.

    Meant for tests (use it in an autouse fixture) and notebooks.
    """
    import sys

    from . import cache, config, invalidation, serialization

    partitions = sys.modules.get("agentcache.semantic.partitions")
    if partitions is not None:
        partitions.forget_partitions()
    cache.forget_all()
    serialization.forget_decoded()
    config.reset_settings()
    invalidation.reset_events()
    _reset_stats()


# Optional layers, imported on first access so `import agentcache` stays light.
_LAZY = {
    "wrap": ("agentcache.integrations", "wrap"),
    "is_cache_hit": ("agentcache.integrations", "is_cache_hit"),
    "http_client": ("agentcache.integrations.transport", "http_client"),
    "async_http_client": ("agentcache.integrations.transport", "async_http_client"),
    "embedding_cached": ("agentcache.decorators.embedding", "embedding_cached"),
    "semantic_cached": ("agentcache.decorators.semantic", "semantic_cached"),
    "invalidate_similar": ("agentcache.decorators.semantic", "invalidate_similar"),
    "prompt_cached": ("agentcache.prompt_cache", "prompt_cached"),
    "open_backend": ("agentcache.backends", "open_backend"),
    "MemoryBackend": ("agentcache.backends.memory", "MemoryBackend"),
    "SQLiteBackend": ("agentcache.backends.sqlite", "SQLiteBackend"),
    "RedisBackend": ("agentcache.backends.redis", "RedisBackend"),
    "TieredBackend": ("agentcache.backends.tiered", "TieredBackend"),
    "last_semantic_hit": ("agentcache.decorators.semantic", "last_semantic_hit"),
    "SemanticHit": ("agentcache.decorators.semantic", "SemanticHit"),
    "CachedEmbedder": ("agentcache.decorators.embedding", "CachedEmbedder"),
    "LocalEmbedder": ("agentcache.semantic.embedders", "LocalEmbedder"),
    "OpenAIEmbedder": ("agentcache.semantic.embedders", "OpenAIEmbedder"),
    "set_threshold_floor": ("agentcache.semantic.guards", "set_threshold_floor"),
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'agentcache' has no attribute {name!r}")
    import importlib

    try:
        module = importlib.import_module(target[0])
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("agentcache"):
            raise AttributeError(f"agentcache.{name} is not available in this version") from None
        raise
    value = getattr(module, target[1])
    globals()[name] = value
    return value
