"""`CacheLayer`: the engine every entry point runs on, and the low-level cache API.

A layer is a named scope (namespace, layer kind, name, version) over one store. Given a request (a mapping of
named fields, or any value the key encoder accepts) and options (TTL, tags, admission, single-flight), it does
key -> lookup -> single-flight (in-process, and across processes on stores that take locks) -> compute ->
admission -> store -> stats. The miss path is one sans-I/O generator (`CacheLayer.miss_flow`) driven by
`agentcache.engine.flow.run_sync` or `run_async`, so the blocking and the awaitable faces share every decision.

Decorators (`agentcache.decorators.function.FunctionLayer` adds argument binding and code identity), `wrap()`,
`@semantic_cached` and `@embedding_cached` are adapters over it; users and integrations can use it directly::

    layer = agentcache.CacheLayer("weather", ttl="10m")
    layer.set({"city": "Paris"}, {"temp": 21})
    layer.get({"city": "Paris"})                        # {'temp': 21}
    layer.call({"city": "Oslo"}, lambda: fetch("Oslo"))  # computed once, then served
"""

from __future__ import annotations

import struct
import time
import weakref
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence

from agentcache import _fork
from agentcache._record import Record
from agentcache.codec.entries import CorruptEntryError, OutdatedEntryError, decode_hit, decode_parts, encode_entry
from agentcache.durations import TTL, parse_ttl
from agentcache.engine import cache as _cache
from agentcache.engine import control as _control
from agentcache.engine import registry
from agentcache.engine.flights import OVERTAKEN, Flights
from agentcache.engine.flow import (
    Compute,
    Get,
    GetFenced,
    GetMany,
    LockGet,
    Put,
    ReadFence,
    StoreUnlock,
    Unlock,
    no_acompute,
    no_compute,
    run_async,
    run_sync,
)
from agentcache.engine.policy import Policy, make_policy
from agentcache.engine.registry import every_layer
from agentcache.engine.settings import get_settings
from agentcache.engine.shared_stats import maybe_flush
from agentcache.errors import ConfigurationError, KeyEncodingError, SerializationError
from agentcache.keys.encoding import fields_bytes, make_key, scoped_digest, validate_namespace
from agentcache.keys.namespaces import current_namespace
from agentcache.stats.counters import Counters

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from agentcache.backends.base import Backend, Item
    from agentcache.codec.entries import Kind
    from agentcache.engine.cache import Cache
    from agentcache.engine.control import Control, Mode
    from agentcache.engine.flow import Flow
    from agentcache.engine.settings import Settings
    from agentcache.keys.namespaces import NamespaceTarget
    from agentcache.stats.info import CacheInfo
    from agentcache.usage import Usage

    T = TypeVar("T")

__all__ = ["MISS", "OVERTAKEN", "CallPlan", "CacheLayer", "Policy", "make_policy"]


MISS: Any = object()
"""What `CacheLayer.hit` returns for bytes that cannot be served (and `get` for a missing entry by default)."""
ENTRY_TAG = "@fn:"  # every entry carries ENTRY_TAG + layer name, so `clear()` / `cache_clear()` find them all
_UNSET: Any = object()
_CREATED = struct.Struct("<d")  # the creation time in an entry header (see agentcache.codec.entries)
_CREATED_AT = 16


class CallPlan(Record):
    """One call's resolved cache coordinates, and the control it runs under."""

    __match_args__ = ("key", "namespace", "tags", "ttl", "cache", "store", "epoch", "fields", "control", "request")
    __slots__ = __match_args__

    key: str
    namespace: str
    tags: tuple[str, ...]
    ttl: float | None
    cache: Cache
    store: Backend
    epoch: int
    fields: dict[str, Any]
    control: Control | None
    request: Any
    """What the adapter needs to turn stored values back into results (the SDK request for `wrap()`)."""

    def __init__(
        self,
        key: str,
        namespace: str,
        tags: tuple[str, ...],
        ttl: float | None,
        cache: Cache,
        store: Backend,
        epoch: int,
        fields: dict[str, Any],
        control: Control | None = None,
        request: Any = None,
    ) -> None:
        self.key = key
        self.namespace = namespace
        self.tags = tags
        self.ttl = ttl
        self.cache = cache
        self.store = store
        self.epoch = epoch
        self.fields = fields
        self.control = control
        self.request = request

    @property
    def max_age(self) -> float | None:
        """The oldest entry this call accepts (seconds), `None` for any."""
        return None if self.control is None else self.control.max_age


_scoped_namespace = current_namespace  # the `namespace()` block's namespace, or None
_control_now = _control.current


@_fork.at_fork
def _after_fork_in_child() -> None:
    """Flights led by the parent's threads never finish here: forget them (callers lead their own)."""
    for layer in every_layer():
        layer.flights = Flights()
        _fork.renew(layer.counters, "_lock")


def request_fields(request: object) -> dict[str, Any]:
    """The named fields a low-level request is keyed on: a mapping with string keys is used as is, anything
    else is the single field ``$request``."""
    if isinstance(request, Mapping) and all(type(k) is str for k in request):
        return dict(request)
    return {"$request": request}


class CacheLayer:
    """A named cache scope with the engine's full pipeline and a cachetools/diskcache-style API.

    Args:
        name: what the layer caches (part of every key and the row name in `agentcache.stats()`).
        layer: the kind of cache (``"tool"``, ``"response"``, ``"langgraph"``, ...; part of every key).
        namespace: a namespace (tenant) for every entry, nested in the current `agentcache.namespace()` block;
            a callable gets the request and returns one.
        version: bump it to start afresh (old entries are never read again).
        backend: a store URL, backend object or `agentcache.Cache`; `None` for the configured default.
        ttl: default lifetime of entries (seconds, ``"10m"``, a timedelta); `None` uses the configured default.
        tags: tags every entry carries, for `agentcache.invalidate(tags=...)`.
        cache_if: a predicate on computed results; `False` means "return it, do not store it" (`call` only).
        single_flight: concurrent misses of one request compute once (in-process, and across processes on
            stores that take locks, such as Redis).
        lock_ttl: how long a cross-process computation lock lives.

    Every method has an awaitable twin (`aget`, `aset`, ...). A store failure is a miss, never an exception,
    except for `delete`/`invalidate`/`clear`, which raise `InvalidationError` when they could not land.
    """

    def __init__(
        self,
        name: str,
        *,
        layer: str = "custom",
        namespace: str | Callable[..., str] | None = None,
        version: str | int | None = None,
        backend: Any = None,
        ttl: TTL = None,
        tags: Collection[str] = (),
        cache_if: Callable[[Any], bool] | None = None,
        single_flight: bool = True,
        lock_ttl: TTL = 60.0,
    ) -> None:
        if not name or not isinstance(name, str):
            raise ConfigurationError("CacheLayer needs a name, e.g. CacheLayer('weather')")
        policy = make_policy(
            layer,
            ttl=ttl,
            tags=tags,
            namespace=namespace,
            backend=backend,
            cache_if=cache_if,
            version=version,
            name=name,
            single_flight=single_flight,
            lock_ttl=lock_ttl,
        )
        self._setup(policy, name)

    @classmethod
    def from_policy(cls, policy: Policy, name: str) -> CacheLayer:
        """A layer with already validated options (the adapters' constructor)."""
        layer = cls.__new__(cls)
        layer._setup(policy, name)
        return layer

    def _setup(self, policy: Policy, name: str) -> None:
        self.policy = policy
        self.name = name
        self.layer = policy.layer
        self.counters = Counters()
        self.flights = Flights()
        self._cache: Cache | None = None
        self._scopes: dict[str, tuple[Callable[[bytes], str], str, Settings]] = {}
        self._own_namespace = policy.namespace is not None
        self._warned: set[str] = set()
        self.reads_shared_on: object = None
        """The store `shares_reads` last answered for; `reads_shared` is its answer (read by the faces)."""
        self.reads_shared = False
        registry.add(self)

    def __repr__(self) -> str:
        return f"<CacheLayer {self.layer}/{self.name}>"

    def warn_once(self, what: str, message: str) -> None:
        """Log `message` the first time this layer hits the problem `what`."""
        if what not in self._warned:
            self._warned.add(what)
            import logging

            logging.getLogger("agentcache").warning(message)

    # -- coordinates --------------------------------------------------------------------------------------

    @property
    def opened_cache(self) -> Cache | None:
        """The store this layer uses if it has used it yet (no resolving: `configure()` may still change it)."""
        return self._cache

    @property
    def cache(self) -> Cache:
        """The store this layer uses (resolved on first use, so `configure()` still applies)."""
        cache = self._cache
        if cache is None:
            cache = self._cache = _cache.cache_for(self.policy.backend)
        return cache

    def namespace_for(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
        """The effective namespace: the `namespace()` scope, then the layer's own (nested)."""
        scoped = _scoped_namespace()
        own = self.policy.namespace
        if own is not None and not isinstance(own, str):
            own = validate_namespace(str(own(*args, **kwargs)))
        if scoped and own:
            return f"{scoped}/{own}"
        return scoped or own or get_settings().namespace

    def scope(self, ns: str, settings: Settings) -> tuple[Callable[[bytes], str], str, Settings]:
        """The digest function and key prefix of namespace `ns` (made once per namespace and settings)."""
        scope = self._scopes.get(ns)
        if scope is not None and scope[2] is settings:
            return scope
        if len(self._scopes) > 4096:  # a namespace per tenant: bounded, recomputing is cheap
            self._scopes.clear()
        scope = self._scopes[ns] = (
            scoped_digest((ns, self.layer, self.name, *self.identity(settings))),
            make_key(ns, self.layer, self.name, ""),
            settings,
        )
        return scope

    def identity(self, settings: Settings | None = None) -> tuple[str, ...]:
        """What identifies this layer in its keys besides namespace, kind and name: its version."""
        return (self.policy.version or "",)

    @property
    def entry_tag(self) -> str:
        """The tag every entry of this layer carries, so `clear()` finds them all."""
        return ENTRY_TAG + self.name

    def key_in(self, ns: str, fields: Mapping[str, Any], settings: Settings | None = None) -> str:
        """The key of `fields` in namespace `ns`.

        Raises:
            KeyEncodingError: a field cannot be encoded (the message names it).
        """
        scope = self.scope(ns, settings or get_settings())
        try:
            payload = fields_bytes(fields)
        except KeyEncodingError as exc:
            raise KeyEncodingError(f"{self.name}: {exc}") from None
        return scope[1] + scope[0](payload)

    def place(self, request: object) -> tuple[str, str, dict[str, Any]]:
        """``(key, namespace, fields)`` of a low-level request.

        Raises:
            KeyEncodingError: the request cannot be encoded.
        """
        settings = get_settings()
        ns = self.namespace_for((request,), {}) if self._own_namespace else (_scoped_namespace() or settings.namespace)
        fields = request_fields(request)
        return self.key_in(ns, fields, settings), ns, fields

    def call_at(
        self,
        key: str,
        ns: str,
        fields: dict[str, Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        control: Control | None = None,
        *,
        ttl: float | None = _UNSET,
        tags: Collection[str] = (),
        request: Any = None,
    ) -> CallPlan:
        """The full coordinates of a call that missed (tags, TTL, store and the store's epoch for it now).

        `args`/`kwargs` are what a callable ``tags=`` option receives; `ttl`/`tags` override and extend the
        layer's for this call."""
        own = self.policy.tags
        base = own(*args, **kwargs) if callable(own) else own
        all_tags = (*base, *tags, self.entry_tag)
        if ttl is _UNSET:
            ttl = self.policy.ttl if self.policy.ttl_set else get_settings().ttl
        cache = self.cache
        return CallPlan(
            key, ns, all_tags, ttl, cache, cache.store, cache.epoch_of(key, all_tags), fields, control, request
        )

    # -- hits and stores ----------------------------------------------------------------------------------

    def hit(self, key: str, raw: bytes, want: Kind = "value", request: Any = None, max_age: float | None = None) -> Any:
        """The value of the entry `raw` read under `key` (the hit is counted), or `MISS` when it is unusable.

        A corrupt, foreign or unreadable entry is deleted (see `discard`); an entry of an earlier format, of
        another kind than `want` that `convert` cannot turn into one, or older than `max_age` seconds is left
        alone.
        """
        if max_age is not None and (max_age <= 0 or _age(raw) > max_age):
            return MISS
        try:
            found, value, duration, usage = decode_hit(key, raw)
        except SerializationError as exc:
            parts = self._unreadable(key, raw, exc)
            if parts is None:
                return MISS
            found, value, duration, usage = parts
        if found != want or request is not None:
            value = self.convert(found, value, want, request)
            if value is MISS:
                return MISS
        self.counters.hit(duration, usage)
        return value

    def convert(self, kind: Kind, value: Any, want: Kind, request: Any) -> Any:
        """Turn a stored value of `kind` into the result a call wants (`MISS` if it cannot). Adapters whose
        results are not the stored values (SDK objects, streams) override it."""
        return value if kind == want else MISS

    def _unreadable(self, key: str, raw: bytes, exc: SerializationError) -> tuple[Kind, Any, float, bytes] | None:
        self.discard(key, exc)
        return None

    def discard(self, key: str, exc: SerializationError, *, delete: bool = True) -> None:
        """Deal with an entry that cannot be served: one of an earlier format is left for the next store to
        replace; a corrupt one (damaged, foreign, another key's) is counted as ``corrupt``, an unreadable one
        (naming a type this process does not know) as an error; either is warned about once and deleted (unless
        `delete` is false: the caller is about to overwrite it)."""
        if isinstance(exc, OutdatedEntryError):
            return
        if isinstance(exc, CorruptEntryError):
            self.counters.add("corrupt")
            self.warn_once("corrupt", f"agentcache: dropped a corrupt entry of {self.name}: {exc}")
        else:
            self.counters.add("errors")
            self.warn_once("unreadable", f"agentcache: dropped an unreadable entry of {self.name}: {exc}")
        if not delete:
            return
        try:
            self.cache.store.delete_many([key])
        except Exception:  # noqa: S110 - the store already fails open; nothing else to do
            pass

    def stored_form(self, value: Any, kind: Kind) -> tuple[Any, Usage | None]:
        """What is stored for a computed result, and the usage it reports (adapters override it)."""
        stored = value if kind == "value" else list(value)
        usage: Usage | None = None
        if self.policy.track_usage:
            from agentcache.usage import extract_usage

            usage = _stream_usage(stored) if kind == "stream" else extract_usage(stored)
        return stored, usage

    def encode(self, call: CallPlan, value: Any, duration: float, kind: Kind = "value") -> bytes | None:
        """Entry bytes for a fresh result, or `None` when it must not be stored."""
        if call.ttl is not None and call.ttl <= 0:
            return None
        if self.policy.cache_if is not None and not self.policy.cache_if(value if kind == "value" else list(value)):
            self.counters.add("not_stored")
            return None
        try:
            stored, usage = self.stored_form(value, kind)
            return encode_entry(stored, key=call.key, kind=kind, duration=duration, usage=usage)
        except SerializationError as exc:
            self.counters.add("not_stored")
            self.warn_once(
                "serialize",
                f"agentcache: results of {self.name} are returned but not cached: {exc}. "
                "Return JSON-friendly data, dataclasses or pydantic models.",
            )
            return None

    def items(self, call: CallPlan, raw: bytes) -> list[Item]:
        """The backend items to write for one entry."""
        from agentcache.backends.base import Item

        return [Item(call.key, raw, call.ttl, call.tags)]

    def miss_flow(self, call: CallPlan, *, recheck: bool) -> Flow[tuple[Any, bytes | None]]:
        """The miss path, written once: recheck, cross-process lock, compute, store (if still valid).

        The fence of the write (see `agentcache.backends.generations`) is read with the last read before
        computing, so the store drops the write if an invalidation covering it happens meanwhile. Under a
        ``write`` control nothing cached is served; under ``read`` nothing is stored (and no lock is taken).
        With cross-process locks the recheck, the lock and the fence are one `LockGet`, a caller that finds the
        lock held waits for its release inside the next `LockGet`, and the write and the release are one
        `StoreUnlock`: a Redis miss is three round trips with the face's read, and a waiter is woken, not
        polling (issue 13; see `agentcache.backends.flight`).
        """
        control = call.control
        serves = control is None or control.reads
        stores = control is None or control.stores
        max_age = call.max_age
        request = call.request
        fence: object | None = None
        fenced = False
        locking = stores and self.policy.single_flight and _supports_locking(call.store)
        if recheck and serves and not locking:  # with locking, LockGet rechecks
            raw, fence = yield GetFenced(call.key, call.tags)
            fenced = True
            if raw is not None and (value := self.hit(call.key, raw, "value", request, max_age)) is not MISS:
                return value, raw
        token: str | None = None
        lock_name = f"{call.key}:lock"
        try:
            if locking:
                deadline = time.monotonic() + self.policy.lock_wait
                wait = 0.0  # after a first try: wait for the lock's release (Redis wakes us), at most this long
                delay = 0.005  # the back-off of stores that cannot wake a waiter
                force = not serves  # lock over what is stored: nothing is served, or it is unusable
                while True:
                    lock_get = LockGet(call.key, lock_name, self.policy.lock_ttl, call.tags, force, wait, delay)
                    token, raw, found = yield lock_get
                    if (
                        serves
                        and raw is not None
                        and (value := self.hit(call.key, raw, "value", request, max_age)) is not MISS
                    ):
                        return value, raw
                    if token is not None:
                        fence, fenced = found, True
                        break
                    if raw is not None and not force:
                        force, wait = True, 0.0
                        continue
                    wait = deadline - time.monotonic()
                    if wait <= 0:
                        break
                    if lock_get.wait:
                        delay = min(delay * 2, 0.1)
            if stores and not fenced:
                fence = yield ReadFence((call.key,), call.tags)
            self.counters.add("misses")
            try:
                value, duration = yield Compute()
            except BaseException:
                self.counters.add("errors")
                raise
            raw = self.encode(call, value, duration) if stores else None
            if raw is not None and self.may_store(call, fence):
                if token is not None:
                    stored = yield StoreUnlock(self.items(call, raw), fence, lock_name, token)
                    token = None  # released with the write
                else:
                    stored = yield Put(self.items(call, raw), fence)
                if stored:
                    self.counters.add("stores")
                else:
                    raw = OVERTAKEN
            maybe_flush()
            return value, raw
        finally:
            if token is not None:
                yield Unlock(lock_name, token)

    def commit_flow(self, call: CallPlan, value: Any, duration: float, fence: object | None, kind: Kind) -> Flow[bool]:
        """Store a result computed outside `miss_flow` (a recorded stream, once complete) under the fence read
        before it began (`fence_flow`)."""
        if call.control is not None and not call.control.stores:
            return False
        raw = self.encode(call, value, duration, kind)
        stored = raw is not None and self.may_store(call, fence) and bool((yield Put(self.items(call, raw), fence)))
        if stored:
            self.counters.add("stores")
        maybe_flush()
        return stored

    def fence_flow(self, call: CallPlan) -> Flow[object | None]:
        """The start of a miss computed outside `miss_flow` (a stream): count it and read its write fence."""
        self.counters.add("misses")
        fence: object | None = yield ReadFence((call.key,), call.tags)
        return fence

    @staticmethod
    def may_store(call: CallPlan, fence: object | None) -> bool:
        """Whether a result may be offered to the store: always under a fence (the store checks it); without
        generations (`None`), only if no invalidation covering the call went through this process since it
        began."""
        return fence is not None or call.cache.epoch_of(call.key, call.tags) == call.epoch

    # -- single-flight (`self.flights`) -----------------------------------------------------------------

    def follower_value(self, call: CallPlan, value: Any, raw: bytes | None) -> Any:
        """What a caller that waited for another's computation gets: its own decoded copy when possible."""
        if raw is not None and raw is not OVERTAKEN:
            try:
                kind, copy, duration, usage = decode_parts(raw, call.key)
                if kind != "value" or call.request is not None:
                    copy = self.convert(kind, copy, "value", call.request)
            except SerializationError:
                pass
            else:
                if copy is not MISS:
                    self.counters.hit(duration, usage)
                    return copy
        self.counters.hit(0.0)
        return value

    def read_flow(self, call: CallPlan) -> Flow[tuple[Any, bytes | None]]:
        """The lookup, then (when it missed) `miss_flow`: what a shared flight runs when reads are shared too."""
        raw = yield Get(call.key)
        if raw is not None and (value := self.hit(call.key, raw)) is not MISS:
            return value, raw
        return (yield from self.miss_flow(call, recheck=True))

    def _shared_flow(self, call: CallPlan, read: bool) -> Callable[[], Flow[tuple[Any, bytes | None]]] | None:
        """The flow a shared flight runs (`read`: the lookup too), or `None` when the call runs alone (no
        single-flight, or a forced refresh)."""
        control = call.control
        if not self.policy.single_flight or (control is not None and control.mode == "write"):
            return None
        if read:
            return lambda: self.read_flow(call)
        return lambda: self.miss_flow(call, recheck=True)

    def miss(
        self, call: CallPlan, compute: Callable[[Any], Any], retry: Callable[[], Any], *, read: bool = False
    ) -> Any:
        """After a lookup missed (blocking face): single-flight, compute, store; returns the result. With `read`
        the lookup itself is part of the shared flight (see `shares_reads`): concurrent callers of `call.key`
        wait for the leader's read, and its miss when it missed; each gets its own decoded copy."""
        flow = self._shared_flow(call, read)
        if flow is None:
            return run_sync(self.miss_flow(call, recheck=False), call.store, compute)[0]
        return self.flights.coalesce_sync(
            call.key,
            call.epoch,
            lambda: run_sync(flow(), call.store, compute),
            retry,
            _first,
            lambda outcome: self.follower_value(call, *outcome),
        )

    async def amiss(
        self,
        call: CallPlan,
        compute: Callable[[Any], Awaitable[Any]],
        retry: Callable[[], Awaitable[Any]],
        *,
        read: bool = False,
    ) -> Any:
        """After a lookup missed (awaitable face): the same as `miss`."""
        flow = self._shared_flow(call, read)
        if flow is None:
            return (await run_async(self.miss_flow(call, recheck=False), call.store, compute))[0]
        return await self.flights.coalesce_async(
            call.key,
            call.epoch,
            lambda: run_async(flow(), call.store, compute),
            retry,
            _first,
            lambda outcome: self.follower_value(call, *outcome),
        )

    def shares_reads(self, store: Backend) -> bool:
        """Whether callers of one key join one flight before they read (issue 13): with single-flight, on a store
        whose read is a network round trip (`coalesce_reads`: Redis), so a stampede of N in this process costs
        one read instead of N. Faces test `store is self.reads_shared_on` first (the hit path)."""
        inner = getattr(store, "inner", store)
        shared = self.policy.single_flight and bool(getattr(inner, "coalesce_reads", False))
        self.reads_shared_on, self.reads_shared = store, shared
        return shared

    def bypass(self) -> None:
        """Count a call that went around the cache (``mode("off")``)."""
        self.counters.add("bypasses")

    # -- the low-level API ------------------------------------------------------------------------------------

    def key(self, request: object) -> str:
        """The store key of `request` in the current namespace (what `get`/`set` read and write).

        Raises:
            KeyEncodingError: the request holds a value that cannot be part of a key.
        """
        return self.place(request)[0]

    def _read_flow(self, keys: list[str], control: Control | None, misses: bool = True) -> Flow[list[Any]]:
        found: list[bytes | None] = yield GetMany(keys)
        max_age = None if control is None else control.max_age
        out = []
        for key, raw in zip(keys, found, strict=True):
            value = MISS if raw is None else self.hit(key, raw, "value", None, max_age)
            if value is MISS and misses:
                self.counters.add("misses")
            out.append(value)
        return out

    def _write_flow(self, items: list[Item]) -> Flow[int]:
        if not items:
            return 0
        written = yield Put(items, None)
        if not written:
            return 0
        self.counters.add("stores", len(items))
        maybe_flush()
        return len(items)

    def _reads(
        self, requests: Iterable[object], mode: Mode | None, max_age: TTL, counted: bool = True
    ) -> tuple[list[str], Control | None]:
        control = _control.resolve(mode, max_age)
        if control is not None and not control.reads:
            if control.mode == "off" and counted:
                self.bypass()
            return [], control
        if get_settings().disabled:
            return [], None
        return [self.place(r)[0] for r in requests], control

    def get(self, request: object, default: Any = None, *, mode: Mode | None = None, max_age: TTL = None) -> Any:
        """The cached value of `request`, or `default` (a miss, an expired or unreadable entry, a store failure,
        an entry older than `max_age`, or a ``write``/``off`` mode)."""
        return self.get_many([request], default, mode=mode, max_age=max_age)[0]

    async def aget(self, request: object, default: Any = None, *, mode: Mode | None = None, max_age: TTL = None) -> Any:
        """Awaitable `get`."""
        return (await self.aget_many([request], default, mode=mode, max_age=max_age))[0]

    def peek(self, request: object) -> Any:
        """The cached value of `request` (a hit is counted), or `MISS` counting nothing: the lookup of a caller
        that goes on to `call` for it when it missed (`call` counts the miss, or the bypass)."""
        keys, control = self._reads([request], None, None, counted=False)
        if not keys:
            return MISS
        return run_sync(self._read_flow(keys, control, misses=False), self.cache.store, no_compute)[0]

    async def apeek(self, request: object) -> Any:
        """Awaitable `peek`."""
        keys, control = self._reads([request], None, None, counted=False)
        if not keys:
            return MISS
        return (await run_async(self._read_flow(keys, control, misses=False), self.cache.store, no_acompute))[0]

    def get_many(
        self, requests: Iterable[object], default: Any = None, *, mode: Mode | None = None, max_age: TTL = None
    ) -> list[Any]:
        """The cached values of `requests` in order (`default` for each miss), read in one round trip."""
        requests = list(requests)
        keys, control = self._reads(requests, mode, max_age)
        if not keys:
            return [default] * len(requests)
        values = run_sync(self._read_flow(keys, control), self.cache.store, no_compute)
        return [default if v is MISS else v for v in values]

    async def aget_many(
        self, requests: Iterable[object], default: Any = None, *, mode: Mode | None = None, max_age: TTL = None
    ) -> list[Any]:
        """Awaitable `get_many`."""
        requests = list(requests)
        keys, control = self._reads(requests, mode, max_age)
        if not keys:
            return [default] * len(requests)
        values = await run_async(self._read_flow(keys, control), self.cache.store, no_acompute)
        return [default if v is MISS else v for v in values]

    def _ttl(self, ttl: TTL) -> float | None:
        """A call's TTL: the given one, else the layer's, else the configured default."""
        if ttl is not _UNSET:
            return parse_ttl(ttl)
        return self.policy.ttl if self.policy.ttl_set else get_settings().ttl

    def _items(
        self,
        pairs: Iterable[tuple[object, Any]] | Mapping[Any, Any],
        ttl: TTL,
        tags: Collection[str],
        mode: Mode | None,
    ) -> list[Item]:
        from agentcache.backends.base import Item

        if isinstance(tags, str):
            raise ConfigurationError("tags= takes a list of strings, e.g. tags=['search']")
        control = _control.resolve(mode)
        if control is not None and not control.stores:
            if control.mode == "off":
                self.bypass()
            return []
        if get_settings().disabled:
            return []
        seconds = self._ttl(ttl)
        if seconds is not None and seconds <= 0:
            return []
        own = self.policy.tags
        base = () if callable(own) else own
        items = []
        for request, value in pairs.items() if isinstance(pairs, Mapping) else pairs:
            key = self.place(request)[0]
            raw = encode_entry(value, key=key)
            items.append(Item(key, raw, seconds, (*base, *tags, self.entry_tag)))
        return items

    def set(
        self, request: object, value: Any, *, ttl: TTL = _UNSET, tags: Collection[str] = (), mode: Mode | None = None
    ) -> bool:
        """Store `value` for `request` (`ttl` defaults to the layer's); whether it was written (a store failure, a
        zero TTL or a ``read``/``off`` mode writes nothing).

        Raises:
            SerializationError: `value` cannot be stored safely (it is never pickled).
            KeyEncodingError: the request cannot be encoded.
        """
        return self.set_many([(request, value)], ttl=ttl, tags=tags, mode=mode) == 1

    async def aset(
        self, request: object, value: Any, *, ttl: TTL = _UNSET, tags: Collection[str] = (), mode: Mode | None = None
    ) -> bool:
        """Awaitable `set`."""
        return await self.aset_many([(request, value)], ttl=ttl, tags=tags, mode=mode) == 1

    def set_many(
        self,
        pairs: Iterable[tuple[object, Any]] | Mapping[Any, Any],
        *,
        ttl: TTL = _UNSET,
        tags: Collection[str] = (),
        mode: Mode | None = None,
    ) -> int:
        """Store several ``(request, value)`` pairs (or a mapping with hashable requests) in one round trip;
        how many were written."""
        items = self._items(pairs, ttl, tags, mode)
        return run_sync(self._write_flow(items), self.cache.store, no_compute) if items else 0

    async def aset_many(
        self,
        pairs: Iterable[tuple[object, Any]] | Mapping[Any, Any],
        *,
        ttl: TTL = _UNSET,
        tags: Collection[str] = (),
        mode: Mode | None = None,
    ) -> int:
        """Awaitable `set_many`."""
        items = self._items(pairs, ttl, tags, mode)
        return await run_async(self._write_flow(items), self.cache.store, no_acompute) if items else 0

    def delete(self, request: object) -> bool:
        """Delete the entry of `request` (computations of it still running do not store theirs); whether one was
        deleted.

        Raises:
            InvalidationError: the store could not be reached (the deletion is retried in the background).
        """
        return self.cache.invalidate(keys=[self.key(request)]) > 0

    async def adelete(self, request: object) -> bool:
        """Awaitable `delete`."""
        return await self.cache.ainvalidate(keys=[self.key(request)]) > 0

    def invalidate(self, *, tags: Collection[str], namespace: NamespaceTarget = None) -> int:
        """Delete the entries carrying any of `tags` in this layer's store, scoped like `agentcache.invalidate`
        (tags are shared by every layer of the store). Returns how many were deleted.

        Raises:
            InvalidationError: the store could not be reached.
        """
        return self.cache.invalidate(tags=tags, namespace=namespace)

    async def ainvalidate(self, *, tags: Collection[str], namespace: NamespaceTarget = None) -> int:
        """Awaitable `invalidate`."""
        return await self.cache.ainvalidate(tags=tags, namespace=namespace)

    def clear(self, *, namespace: NamespaceTarget = None) -> int:
        """Delete this layer's entries (in the current `namespace()` block, or `namespace`); how many.

        Raises:
            InvalidationError: the store could not be reached.
        """
        return self.cache.invalidate(tags=[self.entry_tag], namespace=namespace)

    async def aclear(self, *, namespace: NamespaceTarget = None) -> int:
        """Awaitable `clear`."""
        return await self.cache.ainvalidate(tags=[self.entry_tag], namespace=namespace)

    def _call_for(
        self, request: object, mode: Mode | None, max_age: TTL, ttl: TTL, tags: Collection[str]
    ) -> CallPlan | None:
        """The coordinates of a `call` (`None`: go around the cache)."""
        control = _control.resolve(mode, max_age)
        if get_settings().disabled:
            return None
        if control is not None and control.mode == "off":
            self.bypass()
            return None
        key, ns, fields = self.place(request)
        return self.call_at(key, ns, fields, (request,), {}, control, ttl=self._ttl(ttl), tags=tags)

    def call(
        self,
        request: object,
        compute: Callable[[], T],
        *,
        ttl: TTL = _UNSET,
        tags: Collection[str] = (),
        mode: Mode | None = None,
        max_age: TTL = None,
    ) -> T:
        """The cached result of `request`, or ``compute()`` run once (concurrent callers wait for it), stored
        unless `cache_if` refuses it. An exception from `compute` propagates and nothing is stored."""
        call = self._call_for(request, mode, max_age, ttl, tags)
        if call is None:
            return compute()
        retry = lambda: self.call(request, compute, ttl=ttl, tags=tags, mode=mode, max_age=max_age)  # noqa: E731
        if call.control is None and self.shares_reads(call.store):
            shared: T = self.miss(call, lambda _: compute(), retry, read=True)
            return shared
        if call.control is None or call.control.reads:
            raw = call.store.get(call.key)
            if raw is not None and (value := self.hit(call.key, raw, "value", None, call.max_age)) is not MISS:
                return value  # type: ignore[no-any-return]
        result: T = self.miss(call, lambda _: compute(), retry)
        return result

    async def acall(
        self,
        request: object,
        compute: Callable[[], Awaitable[T]],
        *,
        ttl: TTL = _UNSET,
        tags: Collection[str] = (),
        mode: Mode | None = None,
        max_age: TTL = None,
    ) -> T:
        """Awaitable `call`: `compute` returns an awaitable."""
        call = self._call_for(request, mode, max_age, ttl, tags)
        if call is None:
            return await compute()
        retry = lambda: self.acall(request, compute, ttl=ttl, tags=tags, mode=mode, max_age=max_age)  # noqa: E731
        if call.control is None and self.shares_reads(call.store):
            shared: T = await self.amiss(call, lambda _: compute(), retry, read=True)
            return shared
        if call.control is None or call.control.reads:
            raw = await call.store.aget(call.key)
            if raw is not None and (value := self.hit(call.key, raw, "value", None, call.max_age)) is not MISS:
                return value  # type: ignore[no-any-return]
        result: T = await self.amiss(call, lambda _: compute(), retry)
        return result

    def info(self) -> CacheInfo:
        """Hits, misses, stores and what the hits saved, for this layer in this process."""
        return self.counters.info()


def _age(raw: bytes) -> float:
    """Seconds since the entry `raw` was written (infinite for bytes too short to hold a header)."""
    try:
        created: float = _CREATED.unpack_from(raw, _CREATED_AT)[0]
    except struct.error:
        return float("inf")
    return time.time() - created


def _first(outcome: tuple[Any, ...]) -> Any:
    return outcome[0]


_locking: dict[int, tuple[weakref.ref[Backend], bool]] = {}  # id(store) -> (the store, the answer)


def _supports_locking(store: Backend) -> bool:
    """Whether `store` (or the store it wraps) takes cross-process locks, asked once per store object: an
    `isinstance` against a runtime-checkable Protocol costs ~13 µs, 17% of a memory miss (and loads `typing`)."""
    known = _locking.get(id(store))
    if known is not None and known[0]() is store:
        return known[1]
    from agentcache.backends.base import LOCKING_METHODS, supports

    answer = supports(getattr(store, "inner", store), LOCKING_METHODS)
    key = id(store)

    def forget(_: object) -> None:
        _locking.pop(key, None)

    try:
        ref = weakref.ref(store, forget)
    except TypeError:  # a store that cannot be weakly referenced is asked every time
        return answer
    _locking[key] = (ref, answer)
    return answer


def _stream_usage(chunks: Sequence[Any]) -> Usage | None:
    from agentcache.usage import extract_usage

    for chunk in reversed(chunks):
        usage = extract_usage(chunk)
        if usage is not None:
            return usage
    return None
