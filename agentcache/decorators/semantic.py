"""`@semantic_cached`: paraphrases of a cached question hit; different questions, tenants or prompts never do.

Per call: the exact key first (a repeated call costs one read). Otherwise the query (see
`agentcache.semantic.query`) is embedded and searched only among entries of the same *partition*, the
exact digest of everything else (namespace, function, embedding model, system prompt, tools, earlier turns,
other arguments). A candidate is served only if its cosine similarity is at least the threshold (never below
the deployment floor) and every guard and the optional verifier accept it.

Storage: the answer is an ordinary entry under the exact key; next to it a *vector record*
(``ac:v1:{ns}:semvec:{partition}:{digest}``: the query text, the entry's key, float32 vector) with the same
TTL and tags. Each process keeps an in-memory index per partition, built lazily from the backend by prefix
scan (so with SQLite the vectors persist in the same file and survive restarts). Every candidate is
re-read from the backend before it is served, so an entry removed by TTL, LRU eviction or invalidation
(anywhere) is never served: its vector is dropped from the index instead.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
import logging
import struct
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentcache._core import MISS, Call, Core, _attach, make_policy
from agentcache._flow import Compute, Flow, Get, Store, run_async, run_sync
from agentcache.config import get_settings
from agentcache.errors import ConfigurationError, SerializationError
from agentcache.keys import KEY_PREFIX, make_key, mapping_digest, namespace_prefixes, split_key
from agentcache.serialization import pack_vector, unpack_vector

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from typing import Unpack
    else:
        from typing_extensions import Unpack

    from agentcache.backends.base import Backend
    from agentcache.decorators._options import CacheOptions
    from agentcache.semantic.embedders import Embedder
    from agentcache.semantic.guards import Guard, Verifier
    from agentcache.semantic.index import AutoIndex

__all__ = ["SemanticHit", "invalidate_similar", "last_semantic_hit", "semantic_cached"]

LAYER = "semantic"
VECTOR_LAYER = "semvec"
CANDIDATES = 4  # look past a nearest neighbour that a guard rejects, but not far
RESCAN_SECONDS = 10.0  # how stale a partition's local index may be before a miss rescans the backend


@dataclass(frozen=True)
class SemanticHit:
    """How the last semantic lookup in this context was answered (`similarity` is 1.0 for an exact hit)."""

    similarity: float
    query: str
    cached_query: str
    key: str


_last_hit: contextvars.ContextVar[SemanticHit | None] = contextvars.ContextVar("agentcache_semantic_hit", default=None)


def last_semantic_hit() -> SemanticHit | None:
    """The `SemanticHit` of the last `semantic_cached` call in this thread/task, or `None` after a miss."""
    return _last_hit.get()


_warned: set[str] = set()


def _warn_embed_failure(name: str, exc: Exception) -> None:
    if name not in _warned:  # once per function: an outage must not flood the log
        _warned.add(name)
        logging.getLogger("agentcache").warning(
            "agentcache: %s: the embedder failed (%r); serving exact-cache hits only", name, exc
        )


def encode_record(query: str, entry_key: str, model: str, vector: Sequence[float]) -> bytes:
    """A vector record: length-prefixed JSON metadata, then the float32 vector."""
    meta = json.dumps({"q": query, "k": entry_key, "m": model}).encode()
    return struct.pack("<I", len(meta)) + meta + pack_vector(vector)


def decode_record(raw: bytes) -> tuple[str, str, str, list[float]]:
    """`(query, entry_key, model, vector)` of a vector record; raises `SerializationError` if malformed."""
    try:
        (size,) = struct.unpack_from("<I", raw)
        meta = json.loads(raw[4 : 4 + size])
        return str(meta["q"]), str(meta["k"]), str(meta["m"]), unpack_vector(raw[4 + size :])
    except (struct.error, ValueError, KeyError, TypeError) as exc:
        raise SerializationError(f"corrupt semantic vector record: {exc}") from exc


@dataclass
class _Partition:
    """The local index of one partition: vector-record key -> (entry key, query text)."""

    index: AutoIndex
    meta: dict[str, tuple[str, str]] = field(default_factory=dict)
    scanned_at: float = float("-inf")
    lock: threading.Lock = field(default_factory=threading.Lock)

    def load(self, records: list[tuple[str, bytes]]) -> None:
        for key, raw in records:
            if key in self.meta:  # already indexed: a rescan only picks up other processes' new entries
                continue
            try:
                query, entry_key, _, vector = decode_record(raw)
                self.index.add([key], [vector])
            except (SerializationError, ValueError):
                continue
            self.meta[key] = (entry_key, query)
        self.scanned_at = time.monotonic()

    def drop(self, key: str) -> None:
        self.index.remove([key])
        self.meta.pop(key, None)


_partitions: dict[tuple[int, str], _Partition] = {}
_partitions_lock = threading.Lock()


def _scan(store: Backend, prefix: str) -> list[tuple[str, bytes]]:
    """Every live vector record under `prefix` (empty when the store cannot list keys or fails)."""
    from agentcache.backends.base import SupportsScan

    inner = getattr(store, "inner", store)
    if not isinstance(inner, SupportsScan):
        return []
    try:
        keys = [e.key for e in inner.scan(prefix)]
        values = store.get_many(keys) if keys else []
    except Exception:  # a failing store degrades to "nothing cached"
        return []
    return [(k, v) for k, v in zip(keys, values, strict=True) if v is not None]


class _SemanticCore(Core):
    """`Core` plus the semantic options, the partition split and the lookup flow."""

    def __init__(
        self,
        func: Callable[..., Any],
        policy: Any,
        *,
        threshold: float | None,
        query: str | None,
        embedder: Embedder | None,
        guards: Sequence[Guard] | None,
        verify: Verifier | None,
    ) -> None:
        super().__init__(func, policy)
        from agentcache.semantic.guards import DEFAULT_GUARDS, effective_threshold

        effective_threshold(threshold)  # validate now, at decoration time
        self.threshold = threshold
        self.query = query
        self._embedder = embedder
        self.guards = tuple(DEFAULT_GUARDS if guards is None else guards)
        self.verify = verify

    @property
    def embedder(self) -> Embedder:
        """The embedder (the offline MiniLM default is created on first use)."""
        if self._embedder is None:
            from agentcache.semantic.embedders import LocalEmbedder

            self._embedder = LocalEmbedder()
        return self._embedder

    def locate(self, call: Call) -> tuple[str, str, str]:
        """`(query text, vector-record key prefix of the partition, this call's vector-record key)`."""
        from agentcache.semantic.query import split_query

        text, rest = split_query(call.fields, self.query)
        scope = (call.namespace, LAYER, self.name, self.policy.version or "")
        partition = mapping_digest({**rest, "$embedding_model": self.embedder.model}, scope=scope)
        prefix = make_key(call.namespace, VECTOR_LAYER, partition, "")
        return text, prefix, prefix + call.key.rsplit(":", 1)[1]

    def partition(self, store: Backend, prefix: str) -> _Partition:
        """The local index of a partition (created empty; `flow` fills it from the backend)."""
        ident = (id(store), prefix)
        with _partitions_lock:
            part = _partitions.get(ident)
            if part is None:
                from agentcache.semantic.index import AutoIndex

                part = _partitions[ident] = _Partition(AutoIndex(self.embedder.dim))
            return part

    def flow(self, call: Call, text: str, prefix: str, record_key: str) -> Flow[Any]:
        """Exact read, then semantic search in the partition, then (on a miss) compute and store both records."""
        from agentcache.semantic.guards import check_guards, effective_threshold

        _last_hit.set(None)
        raw = yield Get(call.key)
        if raw is not None and (value := self.hit(call, raw)) is not MISS:
            _last_hit.set(SemanticHit(1.0, text, text, call.key))
            return value
        part = self.partition(call.store, prefix)
        if time.monotonic() - part.scanned_at > RESCAN_SECONDS:
            records, _ = yield Compute(("scan", prefix))
            with part.lock:
                part.load(records)
        try:
            vectors, _ = yield Compute(("embed", text))
            vector: list[float] | None = [float(x) for x in vectors[0]]
        except Exception as exc:  # an embedder outage degrades to exact caching, never to a failed call
            _warn_embed_failure(self.name, exc)
            self.counters.add("errors")
            vector = None
        if vector is None:
            return (yield from self._compute_and_store(call, text, record_key, None, part))
        threshold = effective_threshold(self.threshold)
        with part.lock:
            candidates = [(k, s, *part.meta[k]) for k, s in part.index.search(vector, CANDIDATES) if k in part.meta]
        for key, similarity, entry_key, cached_query in candidates:
            if similarity < threshold:
                break
            if check_guards(self.guards, cached_query, text) is not None:
                continue
            raw = yield Get(entry_key)
            if raw is None:  # expired, evicted or invalidated: forget its vector too
                with part.lock:
                    part.drop(key)
                yield Compute(("delete", [key]))
                continue
            if self.verify is not None:
                accepted, _ = yield Compute(("verify", (cached_query, text, similarity)))
                if not accepted:
                    continue
            value = self.hit(call, raw)
            if value is not MISS:
                _last_hit.set(SemanticHit(similarity, text, cached_query, entry_key))
                return value
        return (yield from self._compute_and_store(call, text, record_key, vector, part))

    def _compute_and_store(
        self, call: Call, text: str, record_key: str, vector: list[float] | None, part: _Partition
    ) -> Flow[Any]:
        """The miss: call the function, store the answer and (when there is one) the vector record."""
        from agentcache.backends.base import Item

        self.counters.add("misses")
        try:
            value, duration = yield Compute(("call", None))
        except BaseException:
            self.counters.add("errors")
            raise
        encoded = self.encode(call, value, duration)
        if encoded is not None:
            items = [Item(call.key, encoded, call.ttl, call.tags)]
            if vector is not None:
                record = encode_record(text, call.key, self.embedder.model, vector)
                items.append(Item(record_key, record, call.ttl, call.tags))
            yield Store(items)
            self.counters.add("stores")
            if vector is not None:
                with part.lock:
                    part.index.add([record_key], [vector])
                    part.meta[record_key] = (call.key, text)
        return value


def semantic_cached(
    func: Callable[..., Any] | None = None,
    /,
    *,
    threshold: float | None = None,
    query: str | None = None,
    embedder: Embedder | None = None,
    guards: Sequence[Guard] | None = None,
    verify: Verifier | None = None,
    **options: Unpack[CacheOptions],
) -> Any:
    """Serve a cached answer to a paraphrase of an earlier question, within the same partition only.

    threshold: minimum cosine similarity (default `agentcache.semantic.guards.DEFAULT_THRESHOLD`, 0.80 for the
        local MiniLM embedder, chosen on the dev pairs); never below the deployment floor
        (`set_threshold_floor`, `AGENTCACHE_SEMANTIC_FLOOR`).
    query: the parameter holding the query (a `str` or chat messages); default: the last user message of a
        `messages` argument, else a parameter named query/question/prompt/text/q/input, else the only `str`.
    embedder: an `Embedder` (default: the offline `LocalEmbedder`). Its model name is part of the partition.
    guards: checks that veto look-alike hits (default `DEFAULT_GUARDS`; pass ``()`` for cosine alone).
    verify: an optional `(cached_query, query, similarity) -> bool` (may be async), e.g. an LLM judge.

    Plus the options of every decorator (`ttl`, `namespace`, `tags`, `backend`, `version`, ...). After a
    call, `last_semantic_hit()` tells whether and how it was answered from the cache.

    Example::

        @agentcache.semantic_cached(threshold=0.9, ttl="1d", namespace=lambda user_id, q: user_id)
        async def answer(user_id: str, question: str) -> str: ...
    """
    options.setdefault("single_flight", False)
    policy = make_policy(LAYER, **options)

    def apply(f: Callable[..., Any]) -> Any:
        core = _SemanticCore(
            f, policy, threshold=threshold, query=query, embedder=embedder, guards=guards, verify=verify
        )
        target = f
        while isinstance(target, functools.partial):
            target = target.func
        is_async = inspect.iscoroutinefunction(target)

        if is_async:

            @functools.wraps(f)
            async def async_face(*args: Any, **kwargs: Any) -> Any:
                if get_settings().disabled:
                    return await f(*args, **kwargs)
                call = core.prepare(args, kwargs)
                text, prefix, record_key = core.locate(call)

                async def compute(op: tuple[str, Any]) -> Any:
                    kind, payload = op
                    if kind == "call":
                        return await f(*args, **kwargs)
                    if kind == "embed":
                        return await core.embedder.aembed([payload])
                    if kind == "scan":
                        return await asyncio.to_thread(_scan, call.store, payload)
                    if kind == "delete":
                        return await call.store.adelete_many(payload)
                    verdict = core.verify(*payload) if core.verify is not None else True
                    return bool(await verdict) if inspect.isawaitable(verdict) else bool(verdict)

                return await run_async(core.flow(call, text, prefix, record_key), call.store, compute)

            face: Any = async_face
        else:

            @functools.wraps(f)
            def sync_face(*args: Any, **kwargs: Any) -> Any:
                if get_settings().disabled:
                    return f(*args, **kwargs)
                call = core.prepare(args, kwargs)
                text, prefix, record_key = core.locate(call)

                def compute(op: tuple[str, Any]) -> Any:
                    kind, payload = op
                    if kind == "call":
                        return f(*args, **kwargs)
                    if kind == "embed":
                        return core.embedder.embed([payload])
                    if kind == "scan":
                        return _scan(call.store, payload)
                    if kind == "delete":
                        return call.store.delete_many(payload)
                    verdict = core.verify(*payload) if core.verify is not None else True
                    if inspect.isawaitable(verdict):
                        raise ConfigurationError("an async verify= needs an async cached function")
                    return bool(verdict)

                return run_sync(core.flow(call, text, prefix, record_key), call.store, compute)

            face = sync_face
        face = _attach(face, core, is_async=is_async)
        face.last_hit = last_semantic_hit
        return face

    return apply if func is None else apply(func)


def invalidate_similar(
    text: str,
    *,
    threshold: float = 0.85,
    namespace: str | None = None,
    embedder: Embedder | None = None,
    backend: Any = None,
) -> int:
    """Delete every semantic entry whose cached query is at least `threshold`-similar to `text`.

    Searches every partition of the store (or of `namespace` and the namespaces under it), comparing only
    with vectors of the same embedding model as `embedder` (default: the local MiniLM). Returns how many
    entries were deleted. Needs a backend that can list keys (memory, SQLite and Redis can).
    """
    from agentcache import cache as _cache
    from agentcache.backends.base import SupportsScan

    if embedder is None:
        from agentcache.semantic.embedders import LocalEmbedder

        embedder = LocalEmbedder()
    store = _cache.cache_for(backend).store
    inner = getattr(store, "inner", store)
    if not isinstance(inner, SupportsScan):
        raise ConfigurationError("invalidate_similar needs a backend that can list keys (memory, sqlite, redis)")
    prefixes = namespace_prefixes(namespace) if namespace is not None else (KEY_PREFIX,)
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
            _, entry_key, model, vector = decode_record(raw)
        except SerializationError:
            continue
        if model != embedder.model or len(vector) != len(target):
            continue
        vnorm = sum(x * x for x in vector) ** 0.5 or 1.0
        if sum(a * b for a, b in zip(target, vector, strict=True)) / (norm * vnorm) >= threshold:
            doomed += [entry_key, key]
    if not doomed:
        return 0
    store.delete_many(doomed)
    with _partitions_lock:
        parts = list(_partitions.values())
    for part in parts:
        with part.lock:
            for key in doomed[1::2]:
                if key in part.meta:
                    part.drop(key)
    return len(doomed) // 2
