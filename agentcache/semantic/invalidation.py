"""`invalidate_similar`: surgical invalidation of every semantic entry close in meaning to a text."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentcache.engine import cache as _cache
from agentcache.errors import ConfigurationError, SerializationError
from agentcache.keys.encoding import KEY_PREFIX, namespace_prefixes, split_key
from agentcache.keys.namespaces import NamespaceTarget, invalidation_scope
from agentcache.semantic.checks import notes_key
from agentcache.semantic.partitions import VECTOR_LAYER, announce, decode_record, loaded_partitions

if TYPE_CHECKING:
    from agentcache.semantic.embedders import Embedder

__all__ = ["invalidate_similar"]


def invalidate_similar(
    text: str,
    *,
    threshold: float = 0.85,
    namespace: NamespaceTarget = None,
    embedder: Embedder | None = None,
    backend: Any = None,
) -> int:
    """Delete every semantic entry whose cached query is at least `threshold`-similar to `text`.

    Searches the partitions of the scope, comparing only with vectors of the same embedding model as `embedder`
    (default: the local MiniLM). The scope is that of `agentcache.invalidate`: inside a `namespace()` block,
    that block's namespace and the ones nested in it (a name given as `namespace` is nested in the block);
    outside any block, or with ``namespace=agentcache.ALL``, every namespace. Returns how many entries were
    deleted. Needs a backend that can list keys (memory, SQLite and Redis can). Other processes sharing the
    store drop the vectors at their next lookup (Redis: through the event log).
    """
    from agentcache.backends.base import SupportsScan

    if embedder is None:
        from agentcache.semantic.embedders import LocalEmbedder

        embedder = LocalEmbedder()
    store = _cache.cache_for(backend).store
    inner = getattr(store, "inner", store)
    if not isinstance(inner, SupportsScan):
        raise ConfigurationError("invalidate_similar needs a backend that can list keys (memory, sqlite, redis)")
    scope = invalidation_scope(namespace)
    prefixes = namespace_prefixes(scope) if scope is not None else (KEY_PREFIX,)
    keys = [
        e.key
        for p in prefixes
        for e in inner.scan(p)
        if (kp := split_key(e.key)) is not None and kp.layer == VECTOR_LAYER
    ]
    if not keys:
        return 0
    (target,) = embedder.embed([text])
    norm = sum(x * x for x in target) ** 0.5 or 1.0
    doomed: list[str] = []
    for key, raw in zip(keys, store.get_many(keys), strict=True):
        if raw is None:
            continue
        try:
            _, entry_key, model, vector = decode_record(key, raw)
        except SerializationError:
            continue
        if model != embedder.model or len(vector) != len(target):
            continue
        vnorm = sum(x * x for x in vector) ** 0.5 or 1.0
        if sum(a * b for a, b in zip(target, vector, strict=True)) / (norm * vnorm) >= threshold:
            doomed += [entry_key, key]
    if not doomed:
        return 0
    _cache.bump_epoch()
    records = doomed[1::2]
    store.delete_many(doomed + [notes_key(r) for r in records])  # the pair judge's notes on each query too
    _cache.bump_epoch()
    for part in loaded_partitions():
        part.drop(records)
    announce(store, "del", records)
    return len(doomed) // 2
