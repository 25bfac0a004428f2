"""The one decorator machinery behind every cache layer.

`Policy` holds a decorator's options; `Core` holds every decision for one decorated function (its key
layout, computed once at decoration time; hit decoding; what to store; stats; single-flight bookkeeping);
`decorate` builds the thin face that fits the function (sync, async, sync generator, async generator). A face
contains only the call order and the I/O calls; the miss path is the `Core.miss_flow` generator, driven by
`run_sync` or `run_async`.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from . import _fork
from . import cache as _cache
from . import config as _config
from ._binding import Binder
from ._flow import Compute, Flow, Get, GetFenced, Lock, ReadFence, Sleep, Store, Unlock, run_async, run_sync
from .backends import generations as _gen
from .config import get_settings
from .durations import TTL, parse_ttl
from .errors import ConfigurationError, KeyEncodingError, SerializationError
from .keys import (
    canonical_bytes,
    digest,
    fields_bytes,
    function_name,
    make_key,
    preview,
    scoped_digest,
    validate_namespace,
)
from .scope import NamespaceTarget, invalidation_scope
from .scope import _current as _namespace_var
from .serialization import (
    CorruptEntryError,
    Kind,
    OutdatedEntryError,
    decode_hit,
    decode_parts,
    encode_entry,
    register_type,
)
from .stats import CacheInfo, Counters, StatsReport
from .stats_store import maybe_flush
from .usage import Usage, extract_usage

if TYPE_CHECKING:
    import asyncio

    from .backends.base import Backend, Item
    from .cache import Cache
    from .config import Settings

T = TypeVar("T")

MISS: Any = object()
_ABANDONED: Any = object()
OVERTAKEN: Any = object()
"""In place of a miss's entry bytes: its write was refused because an invalidation overtook the computation.
Callers that waited for that computation run the call again instead of taking its (possibly old) result."""
FUNCTION_TAG = "@fn:"  # every entry carries FUNCTION_TAG + function name, so cache_clear() finds them all


@dataclass(frozen=True)
class Policy:
    """A decorator's options, validated once at decoration time."""

    layer: str
    ttl: float | None = None
    ttl_set: bool = False
    tags: tuple[str, ...] | Callable[..., Collection[str]] = ()
    namespace: str | Callable[..., str] | None = None
    key: Callable[..., object] | None = None
    ignore: frozenset[str] = frozenset()
    drop: frozenset[str] = frozenset()
    drop_when_streaming: frozenset[str] = frozenset()
    backend: Any = None
    cache_if: Callable[[Any], bool] | None = None
    version: str | None = None
    name: str | None = None
    single_flight: bool = True
    lock_ttl: float = 60.0
    lock_wait: float = 65.0
    track_usage: bool = False


def make_policy(
    layer: str,
    *,
    ttl: TTL = None,
    tags: Collection[str] | Callable[..., Collection[str]] = (),
    namespace: str | Callable[..., str] | None = None,
    key: Callable[..., object] | None = None,
    ignore: Collection[str] = (),
    backend: Any = None,
    cache_if: Callable[[Any], bool] | None = None,
    version: str | int | None = None,
    name: str | None = None,
    single_flight: bool = True,
    lock_ttl: TTL = 60.0,
    drop: Collection[str] = (),
    drop_when_streaming: Collection[str] = (),
    track_usage: bool = False,
) -> Policy:
    """Validate decorator options into a `Policy` (raises `ConfigurationError` with what to fix)."""
    if isinstance(tags, str) or isinstance(ignore, str):
        raise ConfigurationError("tags= and ignore= take a list of strings, e.g. tags=['search']")
    if isinstance(namespace, str):
        namespace = validate_namespace(namespace)
    _cache.check_spec(backend)  # a bad URL is an error at start-up, never one per call
    lock_seconds = parse_ttl(lock_ttl) or 60.0
    return Policy(
        layer=layer,
        ttl=parse_ttl(ttl),
        ttl_set=ttl is not None,
        tags=tags if callable(tags) else tuple(tags),
        namespace=namespace,
        key=key,
        ignore=frozenset(ignore),
        drop=frozenset(drop),
        drop_when_streaming=frozenset(drop_when_streaming),
        backend=backend,
        cache_if=cache_if,
        version=None if version is None else str(version),
        name=name,
        single_flight=single_flight,
        lock_ttl=lock_seconds,
        lock_wait=lock_seconds + 5.0,
        track_usage=track_usage,
    )


@dataclass(slots=True)
class Call:
    """One call's resolved cache coordinates."""

    key: str
    namespace: str
    tags: tuple[str, ...]
    ttl: float | None
    cache: Cache
    store: Backend
    epoch: int
    fields: dict[str, Any] = field(default_factory=dict)


class _Flight:
    """A computation in progress that concurrent callers of the same key wait for (threads)."""

    __slots__ = ("epoch", "error", "event", "outcome")

    def __init__(self, epoch: int) -> None:
        self.event = threading.Event()
        self.epoch = epoch
        self.outcome: Any = _ABANDONED
        self.error: BaseException | None = None


_cores: weakref.WeakSet[Core] = weakref.WeakSet()
_scoped_namespace = _namespace_var.get  # the `namespace()` block's namespace, or None


@_fork.at_fork
def _after_fork_in_child() -> None:
    """Flights led by the parent's threads never finish here: forget them (callers lead their own)."""
    for core in list(_cores):
        _fork.renew(core, "_lock")
        _fork.renew(core.counters, "_lock")
        core._flights = {}
        core._aflights = {}


class Core:
    """Every decision for one cached function."""

    def __init__(self, func: Callable[..., Any], policy: Policy) -> None:
        self.func = func
        self.policy = policy
        self.name = policy.name or function_name(func)
        self.layer = policy.layer
        self.counters = Counters()
        self.is_generator = inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func)
        drop = set(policy.drop | policy.ignore)
        if self.is_generator:
            drop |= policy.drop_when_streaming
        self.drop = frozenset(drop)
        self.binder = Binder(func, self.drop)
        from ._identity import is_internal  # not at import time: `import agentcache` stays light

        self._internal = is_internal(func)
        self._identity: tuple[str | None, tuple[str, ...], str] | None = None  # see `identity`
        self._code: str | None = None
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}
        self._aflights: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], int]] = {}
        self._annotations_registered = False
        self._cache: Cache | None = None
        self._scopes: dict[str, tuple[Callable[[bytes], str], str, Settings]] = {}
        self._own_namespace = policy.namespace is not None
        self._keyed = policy.key is not None
        self._warned: set[str] = set()
        _cores.add(self)

    def warn_once(self, what: str, message: str) -> None:
        """Log `message` the first time this function hits the problem `what`."""
        if what not in self._warned:
            self._warned.add(what)
            import logging

            logging.getLogger("agentcache").warning(message)

    # -- coordinates --------------------------------------------------------------------------------------

    @property
    def cache(self) -> Cache:
        """The store this function uses (resolved on first call, so `configure()` still applies)."""
        cache = self._cache
        if cache is None:
            cache = self._cache = _cache.cache_for(self.policy.backend)
        return cache

    def namespace_for(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
        """The effective namespace: the `namespace()` scope, then the decorator's, nested."""
        scoped = _scoped_namespace()
        own = self.policy.namespace
        if own is not None and not isinstance(own, str):
            own = validate_namespace(str(own(*args, **kwargs)))
        if scoped and own:
            return f"{scoped}/{own}"
        return scoped or own or get_settings().namespace

    def key_fields(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The named values that identify a call (after `ignore=` and the layer's dropped fields)."""
        if self.policy.key is not None:
            return {"key": self.policy.key(*args, **kwargs)}
        return self.binder.bind(args, kwargs)

    def coordinates(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], *, even_disabled: bool = False
    ) -> tuple[str, str, dict[str, Any], Backend] | None:
        """``(key, namespace, key fields, store)`` of one call, everything a lookup needs; `None` while caching
        is disabled (``AGENTCACHE_DISABLED``), checked before anything is computed, unless `even_disabled`.

        This is the hit path, so it inlines what the common case needs: the namespace when the decorator sets
        none, the binder, the digest and the store already opened.

        Raises:
            KeyEncodingError: an argument cannot be encoded (the message names it and how to exclude it).
        """
        settings = _config._resolved or get_settings()
        if settings.disabled and not even_disabled:
            return None
        ns = self.namespace_for(args, kwargs) if self._own_namespace else (_scoped_namespace() or settings.namespace)
        fields = self.key_fields(args, kwargs) if self._keyed else self.binder.bind(args, kwargs)
        scope = self._scopes.get(ns)
        if scope is None or scope[2] is not settings:
            scope = self._scope(ns, settings)
        try:
            payload = fields_bytes(fields)
        except KeyEncodingError as exc:
            raise KeyEncodingError(f"{self.name}: {exc}") from None
        cache = self._cache
        store = None if cache is None else cache._store  # the opened store, without two property calls
        if store is None:
            store = self.cache.store
        return scope[1] + scope[0](payload), ns, fields, store

    def _scope(self, ns: str, settings: Settings) -> tuple[Callable[[bytes], str], str, Settings]:
        """The digest function and key prefix of namespace `ns` (made once per namespace and settings)."""
        if len(self._scopes) > 4096:  # a namespace per tenant: bounded, recomputing is cheap
            self._scopes.clear()
        scope = self._scopes[ns] = (
            scoped_digest((ns, self.layer, self.name, *self.identity(settings))),
            make_key(ns, self.layer, self.name, ""),
            settings,
        )
        return scope

    def identity(self, settings: Settings | None = None) -> tuple[str, ...]:
        """What identifies this function in its keys besides its name: ``(code, project)``, where code is
        ``"code:<digest of its code>"`` or ``"version:<version=>"`` and project is ``"path:<project root>"`` or
        ``"name:<project setting>"`` (see `agentcache._identity`). agentcache's own stand-ins (the SDK wrapper) have
        ``(version,)`` only. Computed on first use, then kept per project setting.

        Raises:
            KeyEncodingError: a value bound positionally by `functools.partial` cannot be encoded.
        """
        return self._identify(settings or get_settings())[1]

    @property
    def function_tag(self) -> str:
        """The tag every entry of this function carries (its name, and its project), so `cache_clear` finds them."""
        return self._identify(get_settings())[2]

    @property
    def _static_tags(self) -> tuple[str, ...] | None:
        """The tags of every entry when the decorator's tags are fixed; `None` when they depend on the call."""
        return None if callable(self.policy.tags) else (*self.policy.tags, self.function_tag)

    def _identify(self, settings: Settings) -> tuple[str | None, tuple[str, ...], str]:
        found = self._identity
        if found is not None and found[0] == settings.project:
            return found
        if self._internal:
            found = (settings.project, (self.policy.version or "",), FUNCTION_TAG + self.name)
        else:
            from ._identity import project_of

            project = f"name:{settings.project}" if settings.project else project_of(self.func)
            code = self._code
            if code is None:  # computed once: the code does not change with the project setting
                code = self._code = (
                    f"version:{self.policy.version}"
                    if self.policy.version is not None
                    else f"code:{self._code_digest()}"
                )
            found = (
                settings.project,
                (code, project),
                f"{FUNCTION_TAG}{self.name}@{digest(project.encode(errors='surrogateescape'))[:16]}",
            )
        self._identity = found
        return found

    def _code_digest(self) -> str:
        """`code_digest` of the function, plus the values a `functools.partial` binds positionally (they are
        arguments the signature no longer shows, so they must be in the key)."""
        from ._identity import code_digest

        code = code_digest(self.func)
        bound = self.func.args if isinstance(self.func, functools.partial) else ()
        if not bound:
            return code
        try:
            extra = canonical_bytes(list(bound), "partial")
        except KeyEncodingError:
            kinds = ", ".join(type(v).__qualname__ for v in bound)
            raise KeyEncodingError(
                f"{self.name}: functools.partial binds positional values ({kinds}) that cannot be part of a cache "
                f"key, and they decide the result: bind them by keyword and list them in ignore=, or give their "
                f"class a __cache_key__() method"
            ) from None
        return digest(code.encode() + b"\x00" + extra)

    def call_at(
        self, key: str, ns: str, fields: dict[str, Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> Call:
        """The full coordinates of a call that missed (tags, TTL, store and the store's in-process epoch now)."""
        tags = self._static_tags
        if tags is None:
            tags = (*self.policy.tags(*args, **kwargs), self.function_tag)  # type: ignore[operator]
        ttl = self.policy.ttl if self.policy.ttl_set else get_settings().ttl
        cache = self.cache
        return Call(key, ns, tags, ttl, cache, cache.store, cache.epoch, fields)

    def prepare(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
        """Resolve key, namespace, tags and TTL of one call (whether or not caching is disabled).

        Raises:
            KeyEncodingError: an argument cannot be encoded (the message names it and how to exclude it).
        """
        where = self.coordinates(args, kwargs, even_disabled=True)
        assert where is not None  # only a disabled lookup returns None
        key, ns, fields, _ = where
        return self.call_at(key, ns, fields, args, kwargs)

    # -- hits and stores ----------------------------------------------------------------------------------

    def hit(self, key: str, raw: bytes, kind: str = "value") -> Any:
        """The value of the entry `raw` read under `key` (the hit is counted), or `MISS` when it is unusable.

        A corrupt, foreign or unreadable entry is deleted (see `discard`); an entry of an earlier format or of the
        other kind (a stream read by a plain function or the reverse) is left alone.
        """
        try:
            found, value, duration, usage = decode_hit(key, raw)
        except SerializationError as exc:
            parts = self._unreadable(key, raw, exc)
            if parts is None:
                return MISS
            found, value, duration, usage = parts
        if found != kind:
            return MISS
        self.counters.hit(duration, usage)
        return value

    def _unreadable(self, key: str, raw: bytes, exc: SerializationError) -> tuple[Kind, Any, float, bytes] | None:
        """Retry once with the return annotation's classes registered; else drop the entry (`discard`)."""
        if not self._annotations_registered and type(exc) is SerializationError:
            self._register_annotations()
            try:
                return decode_parts(raw, key)
            except SerializationError as again:
                exc = again
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

    def encode(self, call: Call, value: Any, duration: float, kind: str = "value") -> bytes | None:
        """Entry bytes for a fresh result, or `None` when it must not be stored."""
        if call.ttl is not None and call.ttl <= 0:
            return None
        checked = value if kind == "value" else list(value)
        if self.policy.cache_if is not None and not self.policy.cache_if(checked):
            self.counters.add("not_stored")
            return None
        usage: Usage | None = None
        if self.policy.track_usage:
            usage = _stream_usage(value) if kind == "stream" else extract_usage(value)
        try:
            return encode_entry(checked, key=call.key, kind=kind, duration=duration, usage=usage)  # type: ignore[arg-type]
        except SerializationError as exc:
            self.counters.add("not_stored")
            self.warn_once(
                "serialize",
                f"agentcache: results of {self.name} are returned but not cached: {exc}. "
                "Return JSON-friendly data, dataclasses or pydantic models.",
            )
            return None

    def items(self, call: Call, raw: bytes) -> list[Item]:
        """The backend items to write for one entry."""
        from .backends.base import Item

        return [Item(call.key, raw, call.ttl, call.tags)]

    def miss_flow(self, call: Call, *, recheck: bool) -> Flow[tuple[Any, bytes | None]]:
        """The miss path, written once: recheck, cross-process lock, compute, store (if still valid).

        The fence of the write (see `agentcache.backends.generations`) is read with the last read before
        computing, so the store drops the write if an invalidation covering it happens meanwhile.
        """
        fence: object | None = None
        fenced = False
        locking = self.policy.single_flight and _supports_locking(call.store)
        if recheck:
            if locking:  # the fence is read after the lock is taken
                raw = yield Get(call.key)
            else:
                raw, fence = yield GetFenced(call.key, call.tags)
                fenced = True
            if raw is not None and (value := self.hit(call.key, raw)) is not MISS:
                return value, raw
        token: str | None = None
        lock_name = f"{call.key}:lock"
        if locking:
            deadline = time.monotonic() + self.policy.lock_wait
            delay = 0.005
            while (token := (yield Lock(lock_name, self.policy.lock_ttl))) is None:
                yield Sleep(delay)
                delay = min(delay * 2, 0.1)
                raw = yield Get(call.key)
                if raw is not None and (value := self.hit(call.key, raw)) is not MISS:
                    return value, raw
                if time.monotonic() > deadline:
                    break
        try:
            if token is not None:
                raw, fence = yield GetFenced(call.key, call.tags)
                fenced = True
                if raw is not None and (value := self.hit(call.key, raw)) is not MISS:
                    return value, raw
            if not fenced:
                fence = yield ReadFence((call.key,), call.tags)
            self.counters.add("misses")
            try:
                value, duration = yield Compute()
            except BaseException:
                self.counters.add("errors")
                raise
            raw = self.encode(call, value, duration)
            if raw is not None and self.may_store(call, fence):
                if (yield Store(self.items(call, raw), fence)):
                    self.counters.add("stores")
                else:
                    raw = OVERTAKEN
            maybe_flush()
            return value, raw
        finally:
            if token is not None:
                yield Unlock(lock_name, token)

    @staticmethod
    def may_store(call: Call, fence: object | None) -> bool:
        """Whether a result may be offered to the store: always under a fence (the store checks it); without
        generations (`None`), only if no invalidation went through this process's `Cache` since the call began."""
        return fence is not None or call.cache.epoch == call.epoch

    # -- single-flight --------------------------------------------------------------------------------------

    def join(self, key: str, epoch: int) -> tuple[_Flight, bool]:
        """Join the computation of `key` (thread face); returns the flight and whether we lead it."""
        with self._lock:
            flight = self._flights.get(key)
            if flight is None or flight.epoch != epoch:
                flight = self._flights[key] = _Flight(epoch)
                return flight, True
            return flight, False

    def leave(self, key: str, flight: _Flight) -> None:
        """Forget a finished flight."""
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]

    def ajoin(self, key: str, epoch: int) -> tuple[asyncio.Future[Any], bool]:
        """Join the computation of `key` (asyncio face); flights never cross event loops."""
        import asyncio

        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._aflights.get(key)
            if entry is None or entry[0] is not loop or entry[2] != epoch or entry[1].done():
                fut: asyncio.Future[Any] = loop.create_future()
                self._aflights[key] = (loop, fut, epoch)
                return fut, True
            return entry[1], False

    def aleave(self, key: str, fut: asyncio.Future[Any]) -> None:
        """Forget a finished asyncio flight."""
        with self._lock:
            entry = self._aflights.get(key)
            if entry is not None and entry[1] is fut:
                del self._aflights[key]

    def coalesce_sync(
        self,
        key: str,
        epoch: int,
        run: Callable[[], T],
        retry: Callable[[], Any],
        lead: Callable[[T], Any],
        follow: Callable[[T], Any],
    ) -> Any:
        """Single-flight for threads: the first caller of a missing key runs `run()` and returns `lead(outcome)`;
        concurrent callers wait and return `follow(outcome)`, re-raise its error, or `retry()` if it was abandoned.
        """
        flight, leader = self.join(key, epoch)
        if not leader:
            flight.event.wait()
            if flight.error is not None:
                raise flight.error
            if flight.outcome is _ABANDONED or _overtaken(flight.outcome):
                return retry()
            return follow(flight.outcome)
        try:
            flight.outcome = run()
            return lead(flight.outcome)
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            self.leave(key, flight)
            flight.event.set()

    async def coalesce_async(
        self,
        key: str,
        epoch: int,
        run: Callable[[], Awaitable[T]],
        retry: Callable[[], Awaitable[Any]],
        lead: Callable[[T], Any],
        follow: Callable[[T], Any],
    ) -> Any:
        """Single-flight for asyncio tasks, same contract as `coalesce_sync`; a cancelled leader abandons the
        flight, so the tasks waiting for it run the call themselves instead of inheriting the cancellation."""
        import asyncio

        fut, leader = self.ajoin(key, epoch)
        if not leader:
            outcome = await asyncio.shield(fut)
            if outcome is _ABANDONED or _overtaken(outcome):
                return await retry()
            return follow(outcome)
        try:
            outcome = await run()
        except asyncio.CancelledError:
            fut.set_result(_ABANDONED)
            raise
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: callers that waited re-raise it themselves
            raise
        else:
            fut.set_result(outcome)
            return lead(outcome)
        finally:
            self.aleave(key, fut)

    def follower_value(self, call: Call, value: Any, raw: bytes | None) -> Any:
        """What a caller that waited for another's computation gets: its own decoded copy when possible."""
        if raw is not None and raw is not OVERTAKEN:
            try:
                _, copy, duration, usage = decode_parts(raw, call.key)
            except SerializationError:
                pass
            else:
                self.counters.hit(duration, usage)
                return copy
        self.counters.hit(0.0)
        return value

    # -- misc -----------------------------------------------------------------------------------------------

    def _register_annotations(self) -> None:
        """Allow the classes named in the return annotation to be rebuilt from stored entries."""
        self._annotations_registered = True
        try:
            hints = inspect.get_annotations(self.func, eval_str=True)
        except Exception:
            return
        for cls in _classes_in(hints.get("return")):
            register_type(cls)

    def explain(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> KeyExplanation:
        """Which fields went into the key of this call, and which were left out and why."""
        call = self.prepare(args, kwargs)
        if self.policy.key is not None:
            excluded = {"*": "replaced by key="}
        else:
            bound = self.binder.bind(args, kwargs, keep_dropped=True)
            excluded = {
                n: (
                    "ignore="
                    if n in self.policy.ignore
                    else "a framework's injected context"
                    if n in self.binder.injected
                    else f"not part of a {self.layer} request's identity"
                )
                for n in bound
                if n in self.drop or n in self.binder.injected
            }
        return KeyExplanation(
            key=call.key,
            namespace=call.namespace,
            layer=self.layer,
            function=self.name,
            version=self.policy.version if self._internal else self.identity()[0],
            included={_field_label(k): preview(v) for k, v in sorted(call.fields.items(), key=_field_order)},
            excluded=excluded,
            tags=call.tags,
            ttl=call.ttl,
        )


def _overtaken(outcome: Any) -> bool:
    """Whether a flight's outcome is a miss whose write an invalidation refused (see `OVERTAKEN`)."""
    return type(outcome) is tuple and len(outcome) > 1 and outcome[1] is OVERTAKEN


def _field_label(name: Any) -> str:
    """A key field's name as `explain_key` shows it (``**name`` for a ``**kwargs`` entry kept apart)."""
    return name if isinstance(name, str) else f"{name[0]}{name[1]}"


def _field_order(item: tuple[Any, Any]) -> str:
    return _field_label(item[0])


def _classes_in(annotation: Any) -> list[type]:
    out: list[type] = []
    if isinstance(annotation, type):
        import dataclasses
        import enum

        if (
            dataclasses.is_dataclass(annotation)
            or issubclass(annotation, enum.Enum)
            or hasattr(annotation, "model_validate")
        ):
            out.append(annotation)
    for arg in getattr(annotation, "__args__", ()) or ():
        out.extend(_classes_in(arg))
    return out


_locking: dict[int, tuple[weakref.ref[Backend], bool]] = {}  # id(store) -> (the store, the answer)


def _supports_locking(store: Backend) -> bool:
    """Whether `store` (or the store it wraps) takes cross-process locks, asked once per store object: an
    `isinstance` against a runtime-checkable Protocol costs ~13 µs, 17% of a memory miss."""
    known = _locking.get(id(store))
    if known is not None and known[0]() is store:
        return known[1]
    from .backends.base import SupportsLocking

    answer = isinstance(getattr(store, "inner", store), SupportsLocking)
    key = id(store)

    def forget(_: object) -> None:
        _locking.pop(key, None)

    try:
        ref = weakref.ref(store, forget)
    except TypeError:  # a store that cannot be weakly referenced is asked every time
        return answer
    _locking[key] = (ref, answer)
    return answer


def _stream_usage(chunks: Any) -> Usage | None:
    for chunk in reversed(list(chunks)):
        usage = extract_usage(chunk)
        if usage is not None:
            return usage
    return None


@dataclass(frozen=True)
class KeyExplanation:
    """What `explain_key` reports: the key and the fields behind it. `str()` renders a table."""

    key: str
    namespace: str
    layer: str
    function: str
    version: str | None
    included: dict[str, str]
    excluded: dict[str, str]
    tags: tuple[str, ...]
    ttl: float | None

    def __str__(self) -> str:
        from .stats import format_table

        rows = [[name, "yes", value] for name, value in self.included.items()]
        rows += [[name, "no", reason] for name, reason in self.excluded.items()]
        head = (
            f"key       {self.key}\nnamespace {self.namespace}   layer {self.layer}   "
            f"function {self.function}   version {self.version or '-'}\n"
            f"tags      {', '.join(self.tags)}   ttl {self.ttl if self.ttl is not None else 'none'}\n"
        )
        return head + format_table(["field", "in key", "value / reason"], rows, align="lll")


def explain_key(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> KeyExplanation:
    """Show the key a cached function would use for these arguments, and which fields went into it.

    Example::

        # ask(messages, model="gpt-4o", temperature=0.0, **params), as in docs/response_cached.md
        print(agentcache.explain_key(ask, [{"role": "user", "content": "hi"}], timeout=30))
    """
    core = getattr(func, "__agentcache_core__", None)
    if not isinstance(core, Core):
        raise ConfigurationError(f"{func!r} is not a cached function (decorate it with an agentcache decorator)")
    return core.explain(args, kwargs)


def stats_report() -> StatsReport:
    """Sum the counters of every cached function in this process, plus backend errors of every store."""
    rows: list[tuple[str, str, Counters | Mapping[str, Any]]] = [
        (core.name, core.layer, core.counters) for core in list(_cores)
    ]
    for cache in _cache.open_caches():
        if cache.counters.backend_errors:
            rows.append((f"<store {cache.url}>", "backend", cache.counters))
    report = StatsReport.build(rows)
    prompt_cache = sys.modules.get("agentcache.prompt_cache")  # only once provider prompt caching is used
    if prompt_cache is not None:
        report.prompt_cache = prompt_cache.ledger.snapshot()
    return report


def reset_stats() -> None:
    """Zero every counter in this process."""
    for core in list(_cores):
        core.counters.reset()
    for cache in _cache.open_caches():
        cache.counters.reset()
    prompt_cache = sys.modules.get("agentcache.prompt_cache")
    if prompt_cache is not None:
        prompt_cache.ledger.reset()


# -- faces ----------------------------------------------------------------------------------------------------


def decorate(func: Callable[..., Any], policy: Policy) -> Any:
    """Wrap `func` with the face that fits it and attach the cache controls."""
    target = func
    while isinstance(target, functools.partial):
        target = target.func
    core = Core(func, policy)
    if inspect.isasyncgenfunction(target):
        face: Any = _async_gen_face(core)
    elif inspect.iscoroutinefunction(target):
        face = _async_face(core)
    elif inspect.isgeneratorfunction(target):
        face = _gen_face(core)
    else:
        face = _sync_face(core)
    return _attach(face, core, is_async=inspect.iscoroutinefunction(target))


def _first(outcome: tuple[Any, ...]) -> Any:
    return outcome[0]


def _sync_face(core: Core) -> Callable[..., Any]:
    func = core.func

    @functools.wraps(func)
    def cached(*args: Any, **kwargs: Any) -> Any:
        where = core.coordinates(args, kwargs)
        if where is None:  # caching is disabled
            return func(*args, **kwargs)
        key, ns, fields, store = where
        raw = store.get(key)
        if raw is not None and (value := core.hit(key, raw)) is not MISS:
            return value
        call = core.call_at(key, ns, fields, args, kwargs)

        def compute(_: Any) -> Any:
            return func(*args, **kwargs)

        if not core.policy.single_flight:
            return run_sync(core.miss_flow(call, recheck=False), call.store, compute)[0]
        return core.coalesce_sync(
            call.key,
            call.epoch,
            lambda: run_sync(core.miss_flow(call, recheck=True), call.store, compute),
            lambda: cached(*args, **kwargs),
            _first,
            lambda outcome: core.follower_value(call, *outcome),
        )

    return cached


def _async_face(core: Core) -> Callable[..., Any]:

    func = core.func

    @functools.wraps(func)
    async def cached(*args: Any, **kwargs: Any) -> Any:
        where = core.coordinates(args, kwargs)
        if where is None:  # caching is disabled
            return await func(*args, **kwargs)
        key, ns, fields, store = where
        raw = await store.aget(key)
        if raw is not None and (value := core.hit(key, raw)) is not MISS:
            return value
        call = core.call_at(key, ns, fields, args, kwargs)

        def compute(_: Any) -> Any:
            return func(*args, **kwargs)

        if not core.policy.single_flight:
            return (await run_async(core.miss_flow(call, recheck=False), call.store, compute))[0]
        return await core.coalesce_async(
            call.key,
            call.epoch,
            lambda: run_async(core.miss_flow(call, recheck=True), call.store, compute),
            lambda: cached(*args, **kwargs),
            _first,
            lambda outcome: core.follower_value(call, *outcome),
        )

    return cached


def _gen_face(core: Core) -> Callable[..., Any]:
    func = core.func

    @functools.wraps(func)
    def cached(*args: Any, **kwargs: Any) -> Iterator[Any]:
        where = core.coordinates(args, kwargs)
        if where is None:  # caching is disabled
            yield from func(*args, **kwargs)
            return
        key, ns, fields, store = where
        raw = store.get(key)
        if raw is not None and (chunks := core.hit(key, raw, "stream")) is not MISS:
            yield from chunks
            return
        call = core.call_at(key, ns, fields, args, kwargs)
        fence = _gen.read_fence(call.store, (call.key,), call.tags)
        core.counters.add("misses")
        recorded: list[Any] = []
        start = time.perf_counter()
        inner = func(*args, **kwargs)
        try:
            for chunk in inner:
                recorded.append(chunk)
                yield chunk
        except GeneratorExit:
            inner.close()  # the consumer stopped early: an incomplete stream is never stored
            raise
        except BaseException:
            core.counters.add("errors")
            raise
        stored = core.encode(call, recorded, time.perf_counter() - start, "stream")
        if (
            stored is not None
            and core.may_store(call, fence)
            and _gen.write_fenced(call.store, core.items(call, stored), fence)
        ):
            core.counters.add("stores")
        maybe_flush()

    return cached


def _async_gen_face(core: Core) -> Callable[..., Any]:
    func = core.func

    @functools.wraps(func)
    async def cached(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        where = core.coordinates(args, kwargs)
        if where is None:  # caching is disabled
            async for chunk in func(*args, **kwargs):
                yield chunk
            return
        key, ns, fields, store = where
        raw = await store.aget(key)
        if raw is not None and (chunks := core.hit(key, raw, "stream")) is not MISS:
            for chunk in chunks:
                yield chunk
            return
        call = core.call_at(key, ns, fields, args, kwargs)
        fence = await _gen.aread_fence(call.store, (call.key,), call.tags)
        core.counters.add("misses")
        recorded: list[Any] = []
        start = time.perf_counter()
        inner = func(*args, **kwargs)
        try:
            async for chunk in inner:
                recorded.append(chunk)
                yield chunk
        except GeneratorExit:
            await inner.aclose()  # the consumer stopped early: an incomplete stream is never stored
            raise
        except BaseException:
            core.counters.add("errors")
            raise
        stored = core.encode(call, recorded, time.perf_counter() - start, "stream")
        if (
            stored is not None
            and core.may_store(call, fence)
            and await _gen.awrite_fenced(call.store, core.items(call, stored), fence)
        ):
            core.counters.add("stores")
        maybe_flush()

    return cached


def _attach(face: Any, core: Core, *, is_async: bool) -> Any:
    def cache_info() -> CacheInfo:
        return core.counters.info()

    def cache_clear(*, namespace: NamespaceTarget = None) -> None:
        # scoped like agentcache.invalidate: inside a namespace() block, only that block's entries;
        # raises InvalidationError if it did not land
        if invalidation_scope(namespace) is None:  # stats are per function, not per tenant
            core.counters.reset()
        core.cache.invalidate(tags=[core.function_tag], namespace=namespace)

    def cache_key(*args: Any, **kwargs: Any) -> str:
        return core.prepare(args, kwargs).key

    if is_async:

        async def cache_invalidate(*args: Any, **kwargs: Any) -> bool:
            call = core.prepare(args, kwargs)
            return await call.cache.ainvalidate(keys=[call.key]) > 0

        face.cache_invalidate = cache_invalidate
    else:

        def cache_invalidate_sync(*args: Any, **kwargs: Any) -> bool:
            call = core.prepare(args, kwargs)
            return call.cache.invalidate(keys=[call.key]) > 0

        face.cache_invalidate = cache_invalidate_sync
    face.cache_info = cache_info
    face.cache_clear = cache_clear
    face.cache_key = cache_key
    face.__agentcache_core__ = core
    return face
