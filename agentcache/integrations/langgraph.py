"""LangGraph: ``graph.compile(cache=GraphCache(...))`` stores node results in an agentcache store.

`GraphCache` implements LangGraph's cache protocol (`langgraph.cache.base.BaseCache`: batched ``get``/``set``
with a TTL per entry, ``clear`` by namespace, and their async faces) through `agentcache.CacheLayer`, so node
results get agentcache's stores (memory, SQLite, Redis: processes sharing a file or a server share results),
namespaces, tags, stats and invalidation. Which nodes are cached, for how long and under which key is LangGraph's
`CachePolicy` per node (``builder.add_node("n", fn, cache_policy=CachePolicy(ttl=60))``).

Values are what LangGraph's serializer makes of a node's writes (``serde.dumps_typed``: a type name and bytes,
msgpack by default), stored as bytes and handed back to ``serde.loads_typed``. A serializer that falls back to
pickle is refused: such a value is not stored (a miss next time), never unpickled from a shared store.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any, TypeVar

from langgraph.cache.base import BaseCache, FullKey, Namespace
from langgraph.checkpoint.serde.base import SerializerProtocol

import agentcache
from agentcache.durations import TTL

__all__ = ["GraphCache", "node_key"]

log = logging.getLogger("agentcache")

ValueT = TypeVar("ValueT")

_UNSAFE_ENCODINGS = frozenset({"pickle"})


def node_key(*args: Any, **kwargs: Any) -> bytes:
    """A `CachePolicy` ``key_func`` from agentcache's canonical key encoding.

    LangGraph's default pickles a node's input to hash it; this encodes it canonically instead (sorted keys,
    type tags), so equal inputs give equal keys in every process, and an input holding state its encoding
    would leave out raises `KeyEncodingError` instead of sharing a key::

        builder.add_node("search", search, cache_policy=CachePolicy(key_func=node_key, ttl=600))
    """
    from agentcache.keys.encoding import canonical_bytes

    return canonical_bytes([list(args), kwargs], "input")


def _tag(name: str, ns: Namespace) -> str:
    """The tag of one LangGraph namespace (node) of cache `name`: a digest, since node names may hold any
    character."""
    from agentcache.keys.encoding import canonical_bytes, digest

    return "langgraph:" + digest(canonical_bytes([name, list(ns)]))[:24]


class GraphCache(BaseCache[ValueT]):
    """LangGraph's node cache on an agentcache store: ``graph.compile(cache=GraphCache(backend=...))``.

    Args:
        backend: a URL (``"sqlite:///graph.db"``, ``"redis://..."``, ``"memory://"``), backend object or
            `agentcache.Cache`; default: the configured store.
        namespace: the agentcache namespace of the entries (default: the current `agentcache.namespace()`).
        ttl: lifetime of entries whose `CachePolicy` sets none (default: the configured TTL).
        tags: tags every entry carries, for ``agentcache.invalidate(tags=[...])``.
        version: bump it to stop reading older entries.
        serde: LangGraph's serializer (default: its JSON-plus/msgpack one, without pickle).
        name: the name of this cache in keys and stats.

    ``graph.clear_cache(nodes)`` removes those nodes' entries; ``clear()`` every entry of this cache.
    """

    def __init__(
        self,
        *,
        backend: Any = None,
        namespace: str | None = None,
        ttl: TTL = None,
        tags: Collection[str] = (),
        version: str | int | None = None,
        serde: SerializerProtocol | None = None,
        name: str = "langgraph.nodes",
    ) -> None:
        super().__init__(serde=serde)
        self.name = name
        self.namespace = namespace
        self.layer = agentcache.CacheLayer(
            name, layer="langgraph", namespace=namespace, version=version, backend=backend, ttl=ttl, tags=tuple(tags)
        )

    # -- values ----------------------------------------------------------------------------------------------

    def _encode(self, value: Any) -> list[Any] | None:
        encoding, data = self.serde.dumps_typed(value)
        if encoding in _UNSAFE_ENCODINGS:
            log.warning("agentcache: GraphCache does not store a node result its serializer pickled")
            return None
        return [encoding, bytes(data)]

    def _decode(self, stored: Any) -> Any:
        encoding, data = stored
        if encoding in _UNSAFE_ENCODINGS:
            raise ValueError("a pickled entry")
        return self.serde.loads_typed((encoding, data))

    def _found(self, keys: Sequence[FullKey], stored: list[Any]) -> dict[FullKey, ValueT]:
        out: dict[FullKey, ValueT] = {}
        for (ns, key), value in zip(keys, stored, strict=True):
            if value is None:
                continue
            try:
                out[(ns, key)] = self._decode(value)
            except Exception as exc:  # an entry another version or serializer wrote: a miss, never an error
                log.warning("agentcache: GraphCache ignores an entry it cannot decode: %s", exc)
        return out

    @staticmethod
    def _request(ns: Namespace, key: str) -> list[Any]:
        return [list(ns), key]

    def _batches(self, pairs: Mapping[FullKey, tuple[ValueT, int | None]]) -> dict[tuple[int | None, str], list[Any]]:
        """Pairs grouped by (TTL, namespace tag): each group is one `set_many`."""
        groups: dict[tuple[int | None, str], list[Any]] = {}
        for (ns, key), (value, ttl) in pairs.items():
            encoded = self._encode(value)
            if encoded is not None:
                groups.setdefault((ttl, _tag(self.name, ns)), []).append((self._request(ns, key), encoded))
        return groups

    @staticmethod
    def _ttl(ttl: int | None) -> dict[str, Any]:
        """LangGraph's TTL (`None`: none set in the `CachePolicy`, so this cache's default applies)."""
        return {} if ttl is None else {"ttl": ttl}

    # -- the protocol ----------------------------------------------------------------------------------------

    def get(self, keys: Sequence[FullKey]) -> dict[FullKey, ValueT]:
        """The cached values of the given ``(namespace, key)`` pairs (missing and expired ones left out)."""
        if not keys:
            return {}
        return self._found(keys, self.layer.get_many([self._request(ns, key) for ns, key in keys]))

    async def aget(self, keys: Sequence[FullKey]) -> dict[FullKey, ValueT]:
        """Async `get`."""
        if not keys:
            return {}
        return self._found(keys, await self.layer.aget_many([self._request(ns, key) for ns, key in keys]))

    def set(self, pairs: Mapping[FullKey, tuple[ValueT, int | None]]) -> None:
        """Store values, each with its TTL in seconds (`None`: this cache's default)."""
        for (ttl, tag), batch in self._batches(pairs).items():
            self.layer.set_many(batch, tags=(tag,), **self._ttl(ttl))

    async def aset(self, pairs: Mapping[FullKey, tuple[ValueT, int | None]]) -> None:
        """Async `set`."""
        for (ttl, tag), batch in self._batches(pairs).items():
            await self.layer.aset_many(batch, tags=(tag,), **self._ttl(ttl))

    def clear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        """Remove the entries of the given namespaces (nodes), or every entry of this cache."""
        if namespaces is None:
            self.layer.clear(namespace=self.namespace)
        elif namespaces:
            self.layer.invalidate(tags=[_tag(self.name, ns) for ns in namespaces], namespace=self.namespace)

    async def aclear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        """Async `clear`."""
        if namespaces is None:
            await self.layer.aclear(namespace=self.namespace)
        elif namespaces:
            await self.layer.ainvalidate(tags=[_tag(self.name, ns) for ns in namespaces], namespace=self.namespace)
