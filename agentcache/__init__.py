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

# The subpackage, imported first: importing it later would rebind `agentcache.stats`, the function below.
from agentcache import stats as _stats_package  # noqa: F401
from agentcache.errors import (
    AgentCacheError,
    ConfigurationError,
    InvalidationError,
    KeyEncodingError,
    SerializationError,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # the lazily loaded names below (`__getattr__`), typed for checkers and IDEs
    from typing import Any

    from agentcache.codec.entries import register_type
    from agentcache.decorators import response_cached, tool_cached
    from agentcache.decorators.embedding import embedding_cached
    from agentcache.decorators.function import explain_key
    from agentcache.decorators.prompt import prompt_cached
    from agentcache.decorators.protocols import AsyncCachedFunction, CachedFunction
    from agentcache.decorators.semantic import last_semantic_hit, semantic_cached
    from agentcache.engine.cache import Cache
    from agentcache.engine.control import mode, refresh
    from agentcache.engine.invalidation import aemit, ainvalidate, emit, invalidate, on
    from agentcache.engine.layer import CacheLayer
    from agentcache.engine.settings import configure, get_settings
    from agentcache.engine.shared_stats import flush_stats
    from agentcache.integrations import is_cache_hit, wrap
    from agentcache.integrations.transport import async_http_client, http_client
    from agentcache.keys.namespaces import ALL, current_namespace, namespace
    from agentcache.stats.counters import StatsReport
    from agentcache.usage import set_prices

__version__ = "0.1.0"

__all__ = [
    "ALL",
    "AgentCacheError",
    "AsyncCachedFunction",
    "Cache",
    "CacheLayer",
    "CachedFunction",
    "ConfigurationError",
    "InvalidationError",
    "KeyEncodingError",
    "SerializationError",
    "__version__",
    "aemit",
    "ainvalidate",
    "async_http_client",
    "configure",
    "current_namespace",
    "embedding_cached",
    "emit",
    "explain_key",
    "flush_stats",
    "get_settings",
    "http_client",
    "invalidate",
    "is_cache_hit",
    "last_semantic_hit",
    "mode",
    "namespace",
    "on",
    "prompt_cached",
    "refresh",
    "register_type",
    "reset",
    "response_cached",
    "semantic_cached",
    "set_prices",
    "stats",
    "tool_cached",
    "wrap",
]


def stats() -> StatsReport:
    """Hits, misses, errors, hit rate and time/tokens/dollars saved in this process.

    ``print(agentcache.stats())`` shows a table; ``.total``, ``.by_layer[...]`` and ``.by_function[...]`` hold
    the numbers. For every process that shares a store, run ``agentcache stats`` on the command line.
    """
    from agentcache.engine.report import stats_report

    return stats_report()


def reset() -> None:
    """Return to a pristine state: forget `configure()`, close every store, zero stats, drop event rules.

    Meant for tests (use it in an autouse fixture) and notebooks.
    """
    import sys

    from agentcache.codec import entries as serialization
    from agentcache.engine import cache, invalidation
    from agentcache.engine import settings as config
    from agentcache.engine.report import reset_stats

    partitions = sys.modules.get("agentcache.semantic.partitions")
    if partitions is not None:
        partitions.forget_partitions()
    cache.forget_all()
    serialization.forget_decoded()
    config.reset_settings()
    invalidation.reset_events()
    reset_stats()


# Everything else is imported on first access, so `import agentcache` loads only what the names a program uses
# need (a process serving one hit from SQLite never loads the semantic layer, the integrations, the invalidation
# events or the stats report).
_LAZY = {
    "ALL": "agentcache.keys.namespaces",
    "AsyncCachedFunction": "agentcache.decorators.protocols",
    "Cache": "agentcache.engine.cache",
    "CacheLayer": "agentcache.engine.layer",
    "CachedFunction": "agentcache.decorators.protocols",
    "aemit": "agentcache.engine.invalidation",
    "ainvalidate": "agentcache.engine.invalidation",
    "async_http_client": "agentcache.integrations.transport",
    "configure": "agentcache.engine.settings",
    "current_namespace": "agentcache.keys.namespaces",
    "embedding_cached": "agentcache.decorators.embedding",
    "emit": "agentcache.engine.invalidation",
    "explain_key": "agentcache.decorators.function",
    "flush_stats": "agentcache.engine.shared_stats",
    "get_settings": "agentcache.engine.settings",
    "http_client": "agentcache.integrations.transport",
    "invalidate": "agentcache.engine.invalidation",
    "is_cache_hit": "agentcache.integrations",
    "last_semantic_hit": "agentcache.decorators.semantic",
    "mode": "agentcache.engine.control",
    "namespace": "agentcache.keys.namespaces",
    "on": "agentcache.engine.invalidation",
    "prompt_cached": "agentcache.decorators.prompt",
    "refresh": "agentcache.engine.control",
    "register_type": "agentcache.codec.entries",
    "response_cached": "agentcache.decorators.response",
    "semantic_cached": "agentcache.decorators.semantic",
    "set_prices": "agentcache.usage",
    "tool_cached": "agentcache.decorators.tool",
    "wrap": "agentcache.integrations",
}


def __dir__() -> list[str]:
    """The public API (`__all__`, lazily loaded names included) and the module's own attributes."""
    return sorted(set(globals()) | set(__all__))


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'agentcache' has no attribute {name!r}")
    import sys

    try:
        __import__(target)  # not importlib.import_module: the importlib package is not loaded yet
        module = sys.modules[target]
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("agentcache"):
            raise AttributeError(f"agentcache.{name} is not available in this version") from None
        raise
    value = getattr(module, name)
    globals()[name] = value
    return value
