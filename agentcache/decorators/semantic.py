"""`@semantic_cached`: paraphrases of a cached question hit; different questions, tenants or prompts never do.

Per call: the exact key first (a repeated call costs one read). Otherwise the query (see
`agentcache.semantic.query`) is embedded and searched only among entries of the same *partition*, the
exact digest of everything else (namespace, function, embedding model, system prompt, tools, other
arguments; in a chat the earlier turns are compared by meaning instead, see
`agentcache.semantic.conversation`). A candidate is served only if its cosine similarity is at least the
threshold (never below the deployment floor), every guard accepts it, the pair judge's score reaches the
wrong-answer budget's operating point, and the optional verifier accepts it (`agentcache.semantic.checks`).

Storage: the answer is an ordinary entry under the exact key; next to it a *vector record*
(``ac:v1:{ns}:semvec:{partition}:{digest}``: the query text, the entry's key, float32 vector) and, while the
pair judge is on, the judge's *notes* on the query (``ac:v1:{ns}:semjudge:{partition}:{digest}``: MiniLM's
word states as int8 rows, `agentcache.semantic.pairjudge.encode_notes`), all with the same TTL and tags. The
notes are read with the candidate, so judging it costs no second model run. Each process keeps an index per
partition, kept in step with the backend by
`agentcache.semantic.partitions` (rebuilt or reloaded at restart, followed through the store's event log when
it has one, so N processes on one Redis share one semantic cache). Every candidate is re-read from the
backend before it is served, so an entry removed by TTL, LRU eviction or invalidation (anywhere) is never
served: its vector is dropped from the index instead.

Concurrent calls with the *same* arguments share one lookup and one computation (in-process single-flight,
as in the other decorators); concurrent paraphrases cannot coalesce, since neither is cached yet.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from agentcache.decorators.function import FunctionLayer, attach
from agentcache.engine import control as _control
from agentcache.engine.flow import Compute, Flow, Get, GetMany, Put, ReadFence, run_async, run_sync
from agentcache.engine.layer import MISS, OVERTAKEN, CacheLayer, CallPlan, make_policy
from agentcache.engine.settings import get_settings
from agentcache.errors import ConfigurationError
from agentcache.keys.encoding import make_key, mapping_digest
from agentcache.semantic.budget import DEFAULT_MAX_WRONG
from agentcache.semantic.checks import HitChecks, notes_key
from agentcache.semantic.invalidation import invalidate_similar
from agentcache.semantic.partitions import VECTOR_LAYER, announce, encode_record, needs_io, refresh

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from typing import Unpack
    else:
        from typing_extensions import Unpack

    from agentcache.decorators._options import CacheDecorator, CacheOptions
    from agentcache.decorators.protocols import AsyncCachedFunction, CachedFunction
    from agentcache.semantic.checks import Comparator
    from agentcache.semantic.embedders import Embedder
    from agentcache.semantic.guards import Guard, Verifier
    from agentcache.semantic.pairjudge import PairJudge, Words
    from agentcache.semantic.partitions import Partition

__all__ = [
    "SemanticFunctionLayer",
    "SemanticHit",
    "SemanticLayer",
    "aserve",
    "invalidate_similar",
    "last_semantic_hit",
    "semantic_cached",
    "serve",
]

LAYER = "semantic"
CANDIDATES = 4  # look past a nearest neighbour that a guard rejects, but not far

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class SemanticHit:
    """How the last semantic lookup in this context was answered: `similarity` is the cosine (1.0 for an exact
    hit); `score` the pair judge's score in [0, 1] (`None` for an exact hit or with ``judge=False``; 1.0 when the
    judge is not installed), to compare with the score the operating point needs."""

    similarity: float
    query: str
    cached_query: str
    key: str
    score: float | None = None


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


Outcome = tuple[Any, bytes | None, SemanticHit | None]  # value, its stored bytes, how it was answered


class SemanticLayer(CacheLayer):
    """A `CacheLayer` that also serves paraphrases: the semantic options, the partition split and the lookup flow.

    It keys a request by its named fields, like any layer; `SemanticFunctionLayer` gets them from a function's
    arguments, `wrap(client, semantic=...)` from an SDK request. `setup_semantic` must run before first use.
    """

    def setup_semantic(
        self,
        *,
        threshold: float | None,
        query: str | None,
        embedder: Embedder | None,
        guards: Sequence[Guard] | None,
        verify: Verifier | None,
        checks: HitChecks,
    ) -> None:
        """Validate and keep the semantic options (raises `ConfigurationError` for a bad threshold)."""
        from agentcache.semantic.guards import DEFAULT_GUARDS, GUARDS_WITHOUT_JUDGE, effective_threshold

        effective_threshold(threshold)  # validate now, at decoration time
        self.checks = checks
        self.threshold = threshold
        self.query = query
        self._embedder = embedder
        self.guards = tuple(DEFAULT_GUARDS if guards is None else guards)
        self.guards_without_judge = tuple(GUARDS_WITHOUT_JUDGE if guards is None else guards)
        self.verify = verify

    @property
    def embedder(self) -> Embedder:
        """The embedder (the offline MiniLM default is created on first use)."""
        if self._embedder is None:
            from agentcache.semantic.embedders import LocalEmbedder

            self._embedder = LocalEmbedder()
        return self._embedder

    def locate(self, call: CallPlan) -> tuple[str, str, str]:
        """`(query text, vector-record key prefix of the partition, this call's vector-record key)`."""
        from agentcache.semantic.conversation import pack
        from agentcache.semantic.query import split_query_context

        query, context, rest = split_query_context(call.fields, self.query)
        text = pack(query, context)  # the query with the earlier turns it depends on (chats only)
        scope = (call.namespace, LAYER, self.name, *self.identity())
        partition = mapping_digest({**rest, "$embedding_model": self.embedder.model}, scope=scope)
        prefix = make_key(call.namespace, VECTOR_LAYER, partition, "")
        return text, prefix, prefix + call.key.rsplit(":", 1)[1]

    def flow(self, call: CallPlan, text: str, prefix: str, record_key: str) -> Flow[Outcome]:
        """Exact read, then semantic search in the partition, then (on a miss) compute and store both records."""
        from agentcache.semantic.conversation import search_texts, unpack
        from agentcache.semantic.guards import effective_threshold

        control = call.control
        refresh = control is not None and not control.reads  # a forced refresh: compute and store, read nothing
        if not refresh:
            raw = yield Get(call.key)
            if raw is not None and (value := self.hit(call.key, raw, "value", None, call.max_age)) is not MISS:
                return value, raw, SemanticHit(1.0, text, text, call.key)
        part: Partition = (yield Compute(("refresh", prefix)))[0]
        try:
            texts = search_texts(text)
            vectors, _ = yield Compute(("embed", texts))
            vector: list[float] | None = [float(x) for x in vectors[0]]
        except Exception as exc:  # an embedder outage degrades to exact caching, never to a failed call
            _warn_embed_failure(self.name, exc)
            self.counters.add("errors")
            vector = None
        if vector is None or refresh:  # a refreshed answer keeps its vector record: paraphrases still find it
            return (yield from self._compute_and_store(call, text, record_key, vector, part))
        threshold = effective_threshold(
            self.threshold if self.threshold is not None else self.checks.default_threshold()
        )
        judging = self.checks.judging
        for key, similarity, entry_key, cached_query in _nearest(part, vectors, CANDIDATES):
            if similarity < threshold:
                break
            raw, notes = (yield GetMany([entry_key, notes_key(key)])) if judging else ((yield Get(entry_key)), None)
            if raw is None:  # expired, evicted or invalidated: forget its vector too, here and elsewhere
                part.drop([key])
                yield Compute(("forget", [key]))
                continue
            (accepted, score), _ = yield Compute(("judge", (cached_query, text, prefix, entry_key, key, notes)))
            if not accepted:
                continue
            if self.verify is not None:
                accepted, _ = yield Compute(("verify", (unpack(cached_query)[0], unpack(text)[0], similarity)))
                if not accepted:
                    continue
            value = self.hit(entry_key, raw, "value", None, call.max_age)
            if value is MISS:
                continue
            if self.checks.sample():  # shadow verification: the real call too, compared with the cached answer
                return (yield from self._shadow(call, value, prefix, entry_key, score))
            judged = score if self.checks.judging else None
            return value, raw, SemanticHit(similarity, unpack(text)[0], unpack(cached_query)[0], entry_key, judged)
        return (yield from self._compute_and_store(call, text, record_key, vector, part))

    def _shadow(self, call: CallPlan, cached: Any, prefix: str, entry_key: str, score: float) -> Flow[Outcome]:
        """A sampled semantic hit: run the real call, count whether the cached answer agreed, return the real one."""
        try:
            fresh, _ = yield Compute(("call", None))
        except BaseException:
            self.counters.add("errors")
            raise
        self.counters.add("shadow_checks")
        if not self.checks.record(prefix, entry_key, score, cached, fresh):
            self.counters.add("shadow_wrong")
        return fresh, None, None  # counted once, as the hit it was (`self.hit`), plus in shadow_checks

    def _compute_and_store(
        self, call: CallPlan, text: str, record_key: str, vector: list[float] | None, part: Partition | None
    ) -> Flow[Outcome]:
        """The miss: call the function, store the answer and (when there is one) the vector record."""
        from agentcache.backends.base import Item

        if call.control is not None and not call.control.stores:  # mode("read"): the answer is not stored
            self.counters.add("misses")
            try:
                value, _ = yield Compute(("call", None))
            except BaseException:
                self.counters.add("errors")
                raise
            return value, None, None

        fence = yield ReadFence((call.key, record_key), call.tags)  # no store across an invalidation
        self.counters.add("misses")
        try:
            value, duration = yield Compute(("call", None))
        except BaseException:
            self.counters.add("errors")
            raise
        encoded = self.encode(call, value, duration)
        if encoded is not None and self.may_store(call, fence):
            items = [Item(call.key, encoded, call.ttl, call.tags)]
            if vector is not None:
                record = encode_record(record_key, text, call.key, self.embedder.model, vector)
                items.append(Item(record_key, record, call.ttl, call.tags))
                if self.checks.judging:
                    notes, _ = yield Compute(("notes", (text, notes_key(record_key))))
                    if notes is not None:
                        items.append(Item(notes_key(record_key), notes, call.ttl, call.tags))
            if not (yield Put(items, fence)):
                return value, OVERTAKEN, None
            self.counters.add("stores")
            if vector is not None and part is not None:
                part.add(record_key, call.key, text, vector)
                yield Compute(("announce", [record_key]))
        return value, encoded, None

    def follow(self, call: CallPlan, outcome: Outcome) -> Any:
        """What a caller that waited for an identical call's lookup gets (and its `last_semantic_hit`)."""
        value, raw, hit = outcome
        _last_hit.set(hit)
        return self.follower_value(call, value, raw)


class SemanticFunctionLayer(SemanticLayer, FunctionLayer):
    """The layer of a `@semantic_cached` function: its arguments are the request's fields."""


def serve(core: SemanticLayer, call: CallPlan, run_call: Callable[[], Any], retry: Callable[[], Any]) -> Any:
    """A semantic lookup (blocking): exact read, search, checks, and on a miss `run_call()` and its store."""
    text, prefix, record_key = core.locate(call)
    store = call.store

    def compute(op: tuple[str, Any]) -> Any:
        kind, payload = op
        if kind == "call":
            return run_call()
        if kind == "embed":
            return core.embedder.embed(payload)
        if kind == "refresh":
            return refresh(store, call.namespace, payload, core.embedder.dim)
        if kind == "forget":
            store.delete_many(payload)
            return announce(store, "del", payload)
        if kind == "announce":
            return announce(store, "add", payload)
        if kind == "judge":
            return _judge(core, payload)
        if kind == "notes":
            return _notes(core, payload)
        verdict = _verdict(core, payload)
        if inspect.isawaitable(verdict):
            raise ConfigurationError("an async verify= needs an async cached function")
        return bool(verdict)

    _last_hit.set(None)
    control = call.control
    if not core.policy.single_flight or (control is not None and control.mode == "write"):
        value, _, hit = run_sync(core.flow(call, text, prefix, record_key), store, compute)
        _last_hit.set(hit)
        return value
    return core.flights.coalesce_sync(
        call.key,
        call.epoch,
        lambda: run_sync(core.flow(call, text, prefix, record_key), store, compute),
        retry,
        _lead,
        lambda outcome: core.follow(call, outcome),
    )


async def aserve(
    core: SemanticLayer, call: CallPlan, run_call: Callable[[], Awaitable[Any]], retry: Callable[[], Awaitable[Any]]
) -> Any:
    """Awaitable `serve`: `run_call()` returns an awaitable; blocking store and model work runs in threads."""
    text, prefix, record_key = core.locate(call)
    store = call.store

    async def compute(op: tuple[str, Any]) -> Any:
        kind, payload = op
        if kind == "call":
            return await run_call()
        if kind == "embed":
            return await core.embedder.aembed(payload)
        if kind == "refresh":
            if needs_io(store, payload):
                return await asyncio.to_thread(refresh, store, call.namespace, payload, core.embedder.dim)
            return refresh(store, call.namespace, payload, core.embedder.dim)
        if kind == "forget":
            await store.adelete_many(payload)
            return await asyncio.to_thread(announce, store, "del", payload)
        if kind == "announce":
            return await asyncio.to_thread(announce, store, "add", payload)
        if kind == "judge":
            cached, text, _, _, record_key, raw = payload
            notes = core.checks.read_notes(notes_key(record_key), raw)
            if core.checks.without_model(cached, text, notes):  # no model run: two thread wake-ups saved
                return _accept(core, payload, notes)
            return await asyncio.to_thread(_accept, core, payload, notes)
        if kind == "notes":
            return await asyncio.to_thread(_notes, core, payload)
        verdict = _verdict(core, payload)
        return bool(await verdict) if inspect.isawaitable(verdict) else bool(verdict)

    _last_hit.set(None)
    control = call.control
    if not core.policy.single_flight or (control is not None and control.mode == "write"):
        value, _, hit = await run_async(core.flow(call, text, prefix, record_key), store, compute)
        _last_hit.set(hit)
        return value
    return await core.flights.coalesce_async(
        call.key,
        call.epoch,
        lambda: run_async(core.flow(call, text, prefix, record_key), store, compute),
        retry,
        _lead,
        lambda outcome: core.follow(call, outcome),
    )


def _lead(outcome: Outcome) -> Any:
    """What the caller that ran the lookup gets (and its `last_semantic_hit`)."""
    _last_hit.set(outcome[2])
    return outcome[0]


def _nearest(part: Partition, vectors: Sequence[Sequence[float]], k: int) -> list[tuple[str, float, str, str]]:
    """The `k` nearest records to any of `vectors` (a chat query read alone and with the turn before it), best
    first, each with its highest cosine."""
    if len(vectors) == 1:
        return part.search(vectors[0], k)
    best: dict[str, tuple[str, float, str, str]] = {}
    for vector in vectors:
        for found in part.search(vector, k):
            if found[0] not in best or found[1] > best[found[0]][1]:
                best[found[0]] = found
    return sorted(best.values(), key=lambda found: -found[1])[:k]


_JudgePayload = tuple[str, str, str, str, str, bytes | None]  # cached, query, partition, entry, record, notes


def _judge(core: SemanticLayer, payload: _JudgePayload) -> tuple[bool, float]:
    return _accept(core, payload, core.checks.read_notes(notes_key(payload[4]), payload[5]))


def _accept(core: SemanticLayer, payload: _JudgePayload, notes: dict[str, Words] | None) -> tuple[bool, float]:
    cached, text, prefix, entry_key, _, _ = payload
    return core.checks.accept(
        core.guards, cached, text, prefix, entry_key, notes=notes, guards_without_judge=core.guards_without_judge
    )


def _notes(core: SemanticLayer, payload: tuple[str, str]) -> bytes | None:
    text, key = payload
    return core.checks.notes(text, key)


def _verdict(core: SemanticLayer, payload: tuple[str, str, float]) -> Any:
    return core.verify(*payload) if core.verify is not None else True


def _sync_face(f: Callable[..., Any], core: SemanticFunctionLayer) -> Callable[..., Any]:
    @functools.wraps(f)
    def sync_face(*args: Any, **kwargs: Any) -> Any:
        control = _control.current()
        if get_settings().disabled or (control is not None and control.mode == "off"):
            if control is not None:
                core.bypass()
            return f(*args, **kwargs)
        call = core.prepare(args, kwargs, control)
        return serve(core, call, lambda: f(*args, **kwargs), lambda: sync_face(*args, **kwargs))

    return sync_face


def _async_face(f: Callable[..., Any], core: SemanticFunctionLayer) -> Callable[..., Any]:
    @functools.wraps(f)
    async def async_face(*args: Any, **kwargs: Any) -> Any:
        control = _control.current()
        if get_settings().disabled or (control is not None and control.mode == "off"):
            if control is not None:
                core.bypass()
            return await f(*args, **kwargs)
        call = core.prepare(args, kwargs, control)
        return await aserve(core, call, lambda: f(*args, **kwargs), lambda: async_face(*args, **kwargs))

    return async_face


@overload
def semantic_cached(func: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncCachedFunction[P, R]: ...  # type: ignore[overload-overlap]
@overload
def semantic_cached(func: Callable[P, R], /) -> CachedFunction[P, R]: ...
@overload
def semantic_cached(
    *,
    threshold: float | None = None,
    query: str | None = None,
    embedder: Embedder | None = None,
    guards: Sequence[Guard] | None = None,
    verify: Verifier | None = None,
    judge: PairJudge | bool | None = None,
    max_wrong: float | None = None,
    verify_sample: float = 0.0,
    compare: Comparator = "normalized",
    track_usage: bool = False,
    **options: Unpack[CacheOptions],
) -> CacheDecorator: ...
def semantic_cached(
    func: Callable[..., Any] | None = None,
    /,
    *,
    threshold: float | None = None,
    query: str | None = None,
    embedder: Embedder | None = None,
    guards: Sequence[Guard] | None = None,
    verify: Verifier | None = None,
    judge: PairJudge | bool | None = None,
    max_wrong: float | None = None,
    verify_sample: float = 0.0,
    compare: Comparator = "normalized",
    track_usage: bool = False,
    **options: Unpack[CacheOptions],
) -> Any:
    """Serve a cached answer to a paraphrase of an earlier question, within the same partition only.

    threshold: minimum cosine similarity of a candidate (default 0.65 with the judge, `JUDGE_COSINE_FLOOR`;
        0.80 without, `DEFAULT_THRESHOLD`);
        never below the deployment floor (`set_threshold_floor`, `AGENTCACHE_SEMANTIC_FLOOR`).
    query: the parameter holding the query (a `str` or chat messages); default: the last user message of a
        `messages` argument, else a parameter named query/question/prompt/text/q/input, else the only `str`.
    embedder: an `Embedder` (default: the offline `LocalEmbedder`). Its model name is part of the partition.
    guards: checks that veto look-alike hits (default `DEFAULT_GUARDS` before the judge, `GUARDS_WITHOUT_JUDGE`
        when no judge runs; pass ``()`` for cosine alone). With the judge on, a built-in guard's objection is
        outweighed by a judge score of `GUARD_OVERRIDE` (0.98); a guard of your own always vetoes.
    verify: an optional `(cached_query, query, similarity) -> bool` (may be async), e.g. an LLM judge.
    judge: the pair judge that reads both queries together (`agentcache.semantic.pairjudge`); default on when
        `agentcache[semantic]` is installed (else guards only, logged once); `False` turns it off.
    max_wrong: the wrong-answer budget (default 0.05): the share of look-alike questions that may be served a
        neighbour's answer, as measured on the shipped calibration pairs; it picks the judge's operating point.
    verify_sample: share of semantic hits that also run the real call to measure wrong answers (default 0).
    compare: how a shadow check compares answers: "normalized" (default), "exact", or `(cached, fresh) -> bool`.
    track_usage: record the token usage of stored LLM responses, so hits report the tokens and $ they saved.

    Plus the options of every decorator (`ttl`, `namespace`, `tags`, `backend`, `version`, `single_flight`,
    ...). After a call, `last_semantic_hit()` tells whether and how it was answered from the cache.

    Example::

        @agentcache.semantic_cached(threshold=0.9, ttl="1d", namespace=lambda user_id, q: user_id)
        async def answer(user_id: str, question: str) -> str: ...
    """
    policy = make_policy(LAYER, track_usage=track_usage, **options)

    def apply(f: Callable[..., Any]) -> Any:
        if not callable(f):
            raise TypeError(f"semantic_cached decorates functions, not {type(f).__name__}")
        checks = HitChecks(
            str(policy.name or getattr(f, "__qualname__", repr(f))),
            judge=judge,
            max_wrong=DEFAULT_MAX_WRONG if max_wrong is None else max_wrong,
            verify_sample=verify_sample,
            compare=compare,
        )
        core = SemanticFunctionLayer(f, policy)
        core.setup_semantic(
            threshold=threshold, query=query, embedder=embedder, guards=guards, verify=verify, checks=checks
        )
        target = f
        while isinstance(target, functools.partial):
            target = target.func
        is_async = inspect.iscoroutinefunction(target)
        face = _async_face(f, core) if is_async else _sync_face(f, core)
        face = attach(face, core)
        face.last_hit = last_semantic_hit
        return face

    return apply if func is None else apply(func)
