"""`@embedding_cached`: never pay twice for an embedding; a batch call computes only the texts not cached.

Each text is one entry, keyed by the model name, the text and the function's other arguments, and stored as
little-endian float32 bytes (4 bytes a dimension, no JSON) behind a header holding a checksum, the key's digest
and the dimension (`agentcache.codec.entries.encode_vector`): damaged bytes or another key's vector are a miss.
Entries never expire unless `ttl=` says so.
The batch flow is written once (`batch_flow`) and driven by the shared sync and async drivers.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Collection, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from agentcache.codec.entries import decode_vector, encode_vector
from agentcache.decorators.function import FunctionLayer, attach
from agentcache.engine import control as _control
from agentcache.engine.control import Control
from agentcache.engine.flow import Compute, Flow, GetMany, Put, ReadFence, run_async, run_sync
from agentcache.engine.layer import CacheLayer, make_policy
from agentcache.engine.settings import get_settings
from agentcache.errors import ConfigurationError, SerializationError
from agentcache.keys.encoding import make_key, mapping_digest

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from typing import Unpack
    else:
        from typing_extensions import Unpack

    from agentcache.decorators._options import CacheDecorator, CacheOptions
    from agentcache.decorators.protocols import AsyncCachedFunction, CachedFunction

__all__ = ["CachedEmbedder", "embedding_cached"]

LAYER = "embedding"

P = ParamSpec("P")
R = TypeVar("R")


class EmbeddingLayer(FunctionLayer):
    """A function layer whose entries are one vector per text, keyed by the model, the text and the other
    arguments (`keys_of` gives them, so `cache_key` / `cache_invalidate` name the entries actually stored)."""

    def __init__(self, func: Callable[..., Any], policy: Any, model: str) -> None:
        super().__init__(func, policy)
        self.model = model
        params = list(self.binder.sig.parameters)
        if not params:
            raise ConfigurationError(f"{self.name}: an embedding function takes the text(s) as first argument")
        self.text_param = params[0]

    def split(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """The text argument and the other named arguments (after `ignore=`)."""
        fields = self.binder.bind(args, kwargs)  # `ignore=` already applied; never mutated (may be `kwargs`)
        return fields[self.text_param], {k: v for k, v in fields.items() if k != self.text_param}

    def keys_of(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
        """The keys of a call's texts (one for a single text, one per distinct text for a batch)."""
        texts, others = self.split(args, kwargs)
        batch = [texts] if isinstance(texts, str) else list(dict.fromkeys(texts))
        return text_keys(self.policy.version, self.model, self.namespace_for(args, kwargs), batch, others)


def text_keys(
    version: str | None, model: str, namespace: str, texts: Sequence[str], others: dict[str, Any]
) -> list[str]:
    """One key per text: model, text and the other arguments, under the namespace (shared by every function and
    wrapped client embedding with `model`)."""
    scope = (namespace, LAYER, model, version or "")
    return [make_key(namespace, LAYER, model, mapping_digest({**others, "$text": t}, scope=scope)) for t in texts]


def batch_flow(
    core: CacheLayer,
    keys: list[str],
    texts: list[str],
    control: Control | None = None,
    tags: Collection[str] = (),
) -> Flow[list[list[float]]]:
    """Read every key; compute the distinct missing texts in one call; store them (with `tags`); reassemble in
    order.

    Under a ``write`` control every text is computed again; under ``read`` nothing is stored. Vectors do not go
    stale, so a ``max_age`` does not apply to them."""
    from agentcache.backends.base import Item

    reads = control is None or control.reads
    stores = control is None or control.stores
    found: list[bytes | None] = (yield GetMany(keys)) if reads else [None] * len(keys)
    out: list[list[float] | None] = []
    for key, raw in zip(keys, found, strict=True):
        try:
            out.append(None if raw is None else decode_vector(raw, key))
        except SerializationError as exc:  # counted; recomputed below, and the fresh vector replaces the entry
            core.discard(key, exc, delete=False)
            out.append(None)
    missing = list(dict.fromkeys(t for t, v in zip(texts, out, strict=True) if v is None))
    hits = len(texts) - sum(v is None for v in out)
    for _ in range(hits):
        core.counters.hit(0.0, None)
    if missing:
        tags = (*tags, core.entry_tag)
        key_of = dict(zip(texts, keys, strict=True))
        missing_keys = [key_of[t] for t in missing]
        epoch = core.cache.epoch_of_many(missing_keys, tags)  # without generations: see Cache.epoch_of
        fence = (yield ReadFence(missing_keys, tags)) if stores else None  # no store across an invalidation
        core.counters.add("misses", len(missing))
        try:
            fresh, _ = yield Compute(missing)
        except BaseException:
            core.counters.add("errors")
            raise
        if len(fresh) != len(missing):
            raise ValueError(f"{core.name} returned {len(fresh)} vectors for {len(missing)} texts")
        by_text = {t: [float(x) for x in v] for t, v in zip(missing, fresh, strict=True)}
        ttl = core.policy.ttl  # embeddings never go stale: no configured default TTL applies
        items = [Item(key_of[t], encode_vector(v, key=key_of[t]), ttl, tags) for t, v in by_text.items()]
        if (
            stores
            and (ttl is None or ttl > 0)
            and (fence is not None or core.cache.epoch_of_many(missing_keys, tags) == epoch)
            and (yield Put(items, fence))
        ):
            core.counters.add("stores", len(by_text))
        out = [by_text[t] if v is None else v for t, v in zip(texts, out, strict=True)]
    return [v for v in out if v is not None]


@overload
def embedding_cached(  # type: ignore[overload-overlap]
    func: Callable[P, Coroutine[Any, Any, R]], /, *, model: str, **options: Unpack[CacheOptions]
) -> AsyncCachedFunction[P, R]: ...
@overload
def embedding_cached(
    func: Callable[P, R], /, *, model: str, **options: Unpack[CacheOptions]
) -> CachedFunction[P, R]: ...
@overload
def embedding_cached(*, model: str, **options: Unpack[CacheOptions]) -> CacheDecorator: ...
def embedding_cached(func: Callable[..., Any] | None = None, /, *, model: str, **options: Unpack[CacheOptions]) -> Any:
    """Cache an embedding function per text, for single-text and batch functions, sync or async.

    The first parameter is the text: a `str` (the function returns one vector) or a list of `str` (it
    returns one vector per text). In a batch call only the texts not yet cached reach the function, in one
    call and without duplicates, and the results come back in input order. `model` names the vector space
    and is part of every key, so two models never share vectors; the function's other arguments (e.g.
    `dimensions=`) are part of the key too. Vectors are stored as float32 bytes; no expiry unless `ttl=`.
    Concurrent identical calls share one computation (``single_flight=``); batches that only overlap do not.

    Example::

        @agentcache.embedding_cached(model="text-embedding-3-small")
        def embed(texts: list[str]) -> list[list[float]]:
            return [d.embedding for d in client.embeddings.create(model=..., input=texts).data]
    """
    if not model:
        raise ConfigurationError("embedding_cached needs model=, the name of the embedding model")
    policy = make_policy(LAYER, **options)

    def apply(f: Callable[..., Any]) -> Any:
        core = EmbeddingLayer(f, policy, model)
        target = f
        while isinstance(target, functools.partial):
            target = target.func
        is_async = inspect.iscoroutinefunction(target)

        def plan(
            args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> tuple[bool, list[str], list[str], Any, Collection[str]]:
            texts, others = core.split(args, kwargs)
            single = isinstance(texts, str)
            batch = [texts] if single else list(texts)
            keys = text_keys(policy.version, model, core.namespace_for(args, kwargs), batch, others)

            def call_with(missing: list[str]) -> tuple[tuple[Any, ...], dict[str, Any]]:
                text = missing[0] if single else missing
                if args:
                    return (text, *args[1:]), kwargs
                return args, {**kwargs, core.text_param: text}

            tags = policy.tags(*args, **kwargs) if callable(policy.tags) else policy.tags
            return single, batch, keys, call_with, tags

        def invoke(call: tuple[tuple[Any, ...], dict[str, Any]]) -> Any:
            return f(*call[0], **call[1])

        def coalesces(control: Control | None) -> bool:
            # Identical calls (same texts, same other arguments) share one computation; batches that only
            # overlap each compute the texts they miss.
            return policy.single_flight and (control is None or control.mode != "write")

        def follow(vectors: list[list[float]], single: bool) -> Any:
            """A caller that waited for an identical call: its own copies, counted as hits."""
            for _ in vectors:
                core.counters.hit(0.0, None)
            copies = [list(v) for v in vectors]
            return copies[0] if single else copies

        if is_async:

            @functools.wraps(f)
            async def async_face(*args: Any, **kwargs: Any) -> Any:
                control = _control.current()
                if get_settings().disabled or (control is not None and control.mode == "off"):
                    if control is not None:
                        core.bypass()
                    return await f(*args, **kwargs)
                single, batch, keys, call_with, tags = plan(args, kwargs)

                async def compute(missing: list[str]) -> Any:
                    result = await invoke(call_with(missing))
                    return [result] if single else result

                store = core.cache.store
                if not coalesces(control):
                    vectors = await run_async(batch_flow(core, keys, batch, control, tags), store, compute)
                    return vectors[0] if single else vectors
                return await core.flights.coalesce_async(
                    "\n".join(keys),
                    core.cache.epoch_of_many(keys, (*tags, core.entry_tag)),
                    lambda: run_async(batch_flow(core, keys, batch, control, tags), store, compute),
                    lambda: async_face(*args, **kwargs),
                    lambda vectors: vectors[0] if single else vectors,
                    lambda vectors: follow(vectors, single),
                )

            face: Any = async_face
        else:

            @functools.wraps(f)
            def sync_face(*args: Any, **kwargs: Any) -> Any:
                control = _control.current()
                if get_settings().disabled or (control is not None and control.mode == "off"):
                    if control is not None:
                        core.bypass()
                    return f(*args, **kwargs)
                single, batch, keys, call_with, tags = plan(args, kwargs)

                def compute(missing: list[str]) -> Any:
                    result = invoke(call_with(missing))
                    return [result] if single else result

                store = core.cache.store
                if not coalesces(control):
                    vectors = run_sync(batch_flow(core, keys, batch, control, tags), store, compute)
                    return vectors[0] if single else vectors
                return core.flights.coalesce_sync(
                    "\n".join(keys),
                    core.cache.epoch_of_many(keys, (*tags, core.entry_tag)),
                    lambda: run_sync(batch_flow(core, keys, batch, control, tags), store, compute),
                    lambda: sync_face(*args, **kwargs),
                    lambda vectors: vectors[0] if single else vectors,
                    lambda vectors: follow(vectors, single),
                )

            face = sync_face
        return attach(face, core)

    return apply if func is None else apply(func)


class CachedEmbedder:
    """An `Embedder` whose vectors go through `embedding_cached`: give it to `semantic_cached(embedder=...)`
    so a query text seen before (in any partition, by any process sharing the store) is never re-embedded.

    Example::

        embedder = CachedEmbedder(OpenAIEmbedder(client), backend="sqlite:///cache.db")
        @agentcache.semantic_cached(embedder=embedder)
        def answer(question: str) -> str: ...
    """

    def __init__(self, embedder: Any, **options: Unpack[CacheOptions]) -> None:
        self.inner = embedder
        self.model: str = embedder.model
        self.dim: int = embedder.dim
        self._embed = embedding_cached(model=self.model, **options)(embedder.embed)
        self._aembed = embedding_cached(model=self.model, **options)(embedder.aembed)

    def embed(self, texts: Sequence[str], /) -> list[list[float]]:
        """The inner embedder's vectors, computed only for texts not cached yet."""
        result: list[list[float]] = self._embed(list(texts))
        return result

    async def aembed(self, texts: Sequence[str], /) -> list[list[float]]:
        """Awaitable `embed`."""
        result: list[list[float]] = await self._aembed(list(texts))
        return result
