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

from . import cache as _cache
from ._flow import Compute, Flow, Get, Lock, Sleep, Store, Unlock, run_async, run_sync
from .config import get_settings
from .durations import TTL, parse_ttl
from .errors import ConfigurationError, KeyEncodingError, SerializationError
from .keys import function_name, make_key, mapping_digest, preview, validate_namespace
from .scope import current_namespace
from .serialization import decode_parts, encode_entry, register_type
from .stats import CacheInfo, Counters, StatsReport
from .stats_store import maybe_flush
from .usage import Usage, extract_usage

if TYPE_CHECKING:
    import asyncio

    from .backends.base import Backend, Item
    from .cache import Cache

T = TypeVar("T")

MISS: Any = object()
_ABANDONED: Any = object()
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


class _Binder:
    """Maps a call's arguments to parameter names, with a fast path for plain signatures."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.sig = inspect.signature(func)
        params = list(self.sig.parameters.values())
        self.positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        self.defaults = {p.name: p.default for p in params if p.default is not p.empty}
        self.var_keyword = next((p.name for p in params if p.kind is p.VAR_KEYWORD), None)
        # The fast path covers plain parameters, optionally followed by **kwargs (`def chat(messages, **params)`).
        self.simple = all(p.kind in (p.POSITIONAL_OR_KEYWORD, p.VAR_KEYWORD) for p in params)
        self.names = frozenset(self.positional)
        self.params = frozenset(self.sig.parameters)
        self.only_var_keyword = not self.positional and self.var_keyword is not None and len(params) == 1

    def bind(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Named arguments with defaults applied; ``**kwargs`` contents are flattened in.

        Raises `TypeError` exactly when calling the function with these arguments would.
        """
        if self.only_var_keyword and not args and self.var_keyword not in kwargs:
            return dict(kwargs)  # `def chat(**request)`: the keywords are the request
        if self.simple and len(args) <= len(self.positional):
            bound = dict(zip(self.positional, args, strict=False))
            for name, value in kwargs.items():
                if name in bound or (name not in self.names and (self.var_keyword is None or name in self.params)):
                    break
                bound[name] = value
            else:
                for name in self.positional[len(args) :]:
                    if name not in bound:
                        if name not in self.defaults:
                            break
                        bound[name] = self.defaults[name]
                else:
                    return bound
        ba = self.sig.bind(*args, **kwargs)
        ba.apply_defaults()
        out = dict(ba.arguments)
        if self.var_keyword is not None:
            out.update(out.pop(self.var_keyword, {}))
        return out


class Core:
    """Every decision for one cached function."""

    def __init__(self, func: Callable[..., Any], policy: Policy) -> None:
        self.func = func
        self.policy = policy
        self.name = policy.name or function_name(func)
        self.layer = policy.layer
        self.counters = Counters()
        self.binder = _Binder(func)
        self.is_generator = inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func)
        drop = set(policy.drop | policy.ignore)
        if self.is_generator:
            drop |= policy.drop_when_streaming
        self.drop = frozenset(drop)
        self.function_tag = FUNCTION_TAG + self.name
        self._version = policy.version or ""
        self._static_tags = None if callable(policy.tags) else (*policy.tags, self.function_tag)
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}
        self._aflights: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], int]] = {}
        self._annotations_registered = False
        self._cache: Cache | None = None
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
        scoped = current_namespace()
        own = self.policy.namespace
        if own is not None and not isinstance(own, str):
            own = validate_namespace(str(own(*args, **kwargs)))
        if scoped and own:
            return f"{scoped}/{own}"
        return scoped or own or get_settings().namespace

    def key_fields(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The named values that identify a call (after `ignore=` and the layer's dropped fields)."""
        if self.policy.key is not None:
            return {"key": self.policy.key(*args, **kwargs)}
        bound = self.binder.bind(args, kwargs)
        if self.drop:
            for name in self.drop.intersection(bound):
                del bound[name]
        return bound

    def prepare(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Call:
        """Resolve key, namespace, tags and TTL of one call.

        Raises:
            KeyEncodingError: an argument cannot be encoded (the message names it and how to exclude it).
        """
        ns = self.namespace_for(args, kwargs)
        fields = self.key_fields(args, kwargs)
        try:
            d = mapping_digest(fields, scope=(ns, self.layer, self.name, self._version))
        except KeyEncodingError as exc:
            raise KeyEncodingError(f"{self.name}: {exc}") from None
        tags = self._static_tags
        if tags is None:
            tags = (*self.policy.tags(*args, **kwargs), self.function_tag)  # type: ignore[operator]
        ttl = self.policy.ttl if self.policy.ttl_set else get_settings().ttl
        cache = self.cache
        return Call(
            make_key(ns, self.layer, self.name, d),
            ns,
            tags,
            ttl,
            cache,
            cache.store,
            _cache.current_epoch(),
            fields,
        )

    # -- hits and stores ----------------------------------------------------------------------------------

    def decode(self, call: Call, raw: bytes) -> tuple[str, Any, float, dict[str, Any] | None, Any] | None:
        """Decode stored bytes (`decode_parts`); a corrupt or foreign entry is deleted and reads as `None`."""
        try:
            return decode_parts(raw)
        except SerializationError as exc:
            if not self._annotations_registered:
                self._register_annotations()
                try:
                    return decode_parts(raw)
                except SerializationError:
                    pass
            self.warn_once("corrupt", f"agentcache: dropped an unreadable entry of {self.name}: {exc}")
            self.counters.add("errors")
            try:
                call.store.delete_many([call.key])
            except Exception:  # noqa: S110 - the store already fails open; nothing else to do
                pass
            return None

    def hit(self, call: Call, raw: bytes, kind: str = "value") -> Any:
        """The value of a hit (counted), or `MISS` when the bytes are unusable."""
        parts = self.decode(call, raw)
        if parts is None or parts[0] != kind:
            return MISS
        self.counters.hit(parts[2], parts[3])
        return parts[1]

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
            return encode_entry(checked, kind=kind, duration=duration, usage=usage)  # type: ignore[arg-type]
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
        """The miss path, written once: recheck, cross-process lock, compute, store (if still valid)."""
        if recheck:
            raw = yield Get(call.key)
            if raw is not None and (value := self.hit(call, raw)) is not MISS:
                return value, raw
        token: str | None = None
        lock_name = f"{call.key}:lock"
        if self.policy.single_flight and _supports_locking(call.store):
            deadline = time.monotonic() + self.policy.lock_wait
            delay = 0.005
            while (token := (yield Lock(lock_name, self.policy.lock_ttl))) is None:
                yield Sleep(delay)
                delay = min(delay * 2, 0.1)
                raw = yield Get(call.key)
                if raw is not None and (value := self.hit(call, raw)) is not MISS:
                    return value, raw
                if time.monotonic() > deadline:
                    break
        try:
            if token is not None:
                raw = yield Get(call.key)
                if raw is not None and (value := self.hit(call, raw)) is not MISS:
                    return value, raw
            self.counters.add("misses")
            try:
                value, duration = yield Compute()
            except BaseException:
                self.counters.add("errors")
                raise
            raw = self.encode(call, value, duration)
            if raw is not None and _cache.current_epoch() == call.epoch:
                yield Store(self.items(call, raw))
                self.counters.add("stores")
            maybe_flush()
            return value, raw
        finally:
            if token is not None:
                yield Unlock(lock_name, token)

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
            if flight.outcome is _ABANDONED:
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
            if outcome is _ABANDONED:
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
        if raw is not None:
            parts = self.decode(call, raw)
            if parts is not None:
                self.counters.hit(parts[2], parts[3])
                return parts[1]
        self.counters.hit(0.0, None)
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

    def explain(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> KeyExplanation:
        """Which fields went into the key of this call, and which were left out and why."""
        call = self.prepare(args, kwargs)
        if self.policy.key is not None:
            excluded = {"*": "replaced by key="}
        else:
            bound = self.binder.bind(args, kwargs)
            excluded = {
                n: ("ignore=" if n in self.policy.ignore else f"not part of a {self.layer} request's identity")
                for n in bound
                if n in self.drop
            }
        return KeyExplanation(
            key=call.key,
            namespace=call.namespace,
            layer=self.layer,
            function=self.name,
            version=self.policy.version,
            included={k: preview(v) for k, v in sorted(call.fields.items())},
            excluded=excluded,
            tags=call.tags,
            ttl=call.ttl,
        )


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


def _supports_locking(store: Backend) -> bool:
    from .backends.base import SupportsLocking

    inner = getattr(store, "inner", store)
    return isinstance(inner, SupportsLocking)


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


def _disabled() -> bool:
    return get_settings().disabled


def _sync_face(core: Core) -> Callable[..., Any]:
    func = core.func

    @functools.wraps(func)
    def cached(*args: Any, **kwargs: Any) -> Any:
        if _disabled():
            return func(*args, **kwargs)
        call = core.prepare(args, kwargs)
        raw = call.store.get(call.key)
        if raw is not None and (value := core.hit(call, raw)) is not MISS:
            return value

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
        if _disabled():
            return await func(*args, **kwargs)
        call = core.prepare(args, kwargs)
        raw = await call.store.aget(call.key)
        if raw is not None and (value := core.hit(call, raw)) is not MISS:
            return value

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
        if _disabled():
            yield from func(*args, **kwargs)
            return
        call = core.prepare(args, kwargs)
        raw = call.store.get(call.key)
        if raw is not None and (chunks := core.hit(call, raw, "stream")) is not MISS:
            yield from chunks
            return
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
        if stored is not None and _cache.current_epoch() == call.epoch:
            call.store.set_many(core.items(call, stored))
            core.counters.add("stores")
        maybe_flush()

    return cached


def _async_gen_face(core: Core) -> Callable[..., Any]:
    func = core.func

    @functools.wraps(func)
    async def cached(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        if _disabled():
            async for chunk in func(*args, **kwargs):
                yield chunk
            return
        call = core.prepare(args, kwargs)
        raw = await call.store.aget(call.key)
        if raw is not None and (chunks := core.hit(call, raw, "stream")) is not MISS:
            for chunk in chunks:
                yield chunk
            return
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
        if stored is not None and _cache.current_epoch() == call.epoch:
            await call.store.aset_many(core.items(call, stored))
            core.counters.add("stores")
        maybe_flush()

    return cached


def _attach(face: Any, core: Core, *, is_async: bool) -> Any:
    def cache_info() -> CacheInfo:
        return core.counters.info()

    def cache_clear() -> None:
        _cache.bump_epoch()
        core.cache.store.delete_tags([core.function_tag])
        _cache.bump_epoch()
        core.counters.reset()

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
