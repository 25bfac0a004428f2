"""The adapter from a Python function to the engine: what every caching decorator builds on.

`FunctionLayer` is a `CacheLayer` that keys a call by the function's bound arguments (`ignore=` and the layer's
dropped fields left out), identifies the function by its code and project, and rebuilds the classes its return
annotation names. `decorate` gives the function the face that fits it (sync, async, sync generator, async
generator): a face only orders the I/O (read, hit, or hand the miss to the engine); every decision is the
layer's.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Callable, Iterator

from agentcache._record import Frozen
from agentcache.codec.entries import decode_parts, register_type
from agentcache.engine import control as _control
from agentcache.engine.flow import no_acompute, no_compute, run_async, run_sync
from agentcache.engine.layer import ENTRY_TAG, MISS, CacheLayer, CallPlan, Policy
from agentcache.engine.settings import get_settings
from agentcache.errors import ConfigurationError, KeyEncodingError, SerializationError
from agentcache.keys.binding import Binder
from agentcache.keys.encoding import canonical_bytes, digest, fields_bytes, preview
from agentcache.keys.identity import function_name
from agentcache.keys.namespaces import current_namespace, invalidation_scope
from agentcache.keys.signature import code_flag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from agentcache.backends.base import Backend
    from agentcache.codec.entries import Kind
    from agentcache.engine.control import Control
    from agentcache.engine.settings import Settings
    from agentcache.keys.namespaces import NamespaceTarget

__all__ = ["FunctionLayer", "KeyExplanation", "decorate", "explain_key", "layer_of"]

_scoped_namespace = current_namespace
_control_now = _control.current


class FunctionLayer(CacheLayer):
    """A `CacheLayer` for one Python function: keys from its bound arguments, identity from its code."""

    def __init__(self, func: Callable[..., Any], policy: Policy) -> None:
        self._setup(policy, policy.name or function_name(func))
        self.func = func
        self.is_generator = code_flag(func, "generator") or code_flag(func, "asyncgen")
        drop = set(policy.drop | policy.ignore)
        if self.is_generator:
            drop |= policy.drop_when_streaming
        self.drop = frozenset(drop)
        self.binder = Binder(func, self.drop)
        from agentcache.keys.identity import is_internal  # not at import time: `import agentcache` stays light

        self._internal = is_internal(func)
        self._identity: tuple[str | None, tuple[str, ...], str] | None = None  # see `identity`
        self._code: str | None = None
        self._annotations_registered = False
        self._keyed = policy.key is not None

    # -- coordinates --------------------------------------------------------------------------------------

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
        settings = get_settings()
        if settings.disabled and not even_disabled:
            return None
        ns = self.namespace_for(args, kwargs) if self._own_namespace else (_scoped_namespace() or settings.namespace)
        fields = self.key_fields(args, kwargs) if self._keyed else self.binder.bind(args, kwargs)
        scope = self._scopes.get(ns)
        if scope is None or scope[2] is not settings:
            scope = self.scope(ns, settings)
        try:
            payload = fields_bytes(fields)
        except KeyEncodingError as exc:
            raise KeyEncodingError(f"{self.name}: {exc}") from None
        cache = self._cache
        store = None if cache is None else cache.opened
        if store is None:
            store = self.cache.store
        return scope[1] + scope[0](payload), ns, fields, store

    def identity(self, settings: Settings | None = None) -> tuple[str, ...]:
        """What identifies this function in its keys besides its name: ``(code, project)``, where code is
        ``"code:<digest of its code>"`` or ``"version:<version=>"`` and project is ``"path:<project root>"`` or
        ``"name:<project setting>"`` (see `agentcache.keys.identity`). agentcache's own functions have
        ``(version,)`` only. Computed on first use, then kept per project setting.

        Raises:
            KeyEncodingError: a value bound positionally by `functools.partial` cannot be encoded.
        """
        return self._identify(settings or get_settings())[1]

    @property
    def entry_tag(self) -> str:
        """The tag every entry of this function carries (its name, and its project), so `cache_clear` finds
        them."""
        return self._identify(get_settings())[2]

    def _identify(self, settings: Settings) -> tuple[str | None, tuple[str, ...], str]:
        found = self._identity
        if found is not None and found[0] == settings.project:
            return found
        if self._internal:
            found = (settings.project, (self.policy.version or "",), ENTRY_TAG + self.name)
        else:
            from agentcache.keys.identity import project_of

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
                f"{ENTRY_TAG}{self.name}@{digest(project.encode(errors='surrogateescape'))[:16]}",
            )
        self._identity = found
        return found

    def _code_digest(self) -> str:
        """`code_digest` of the function, plus the values a `functools.partial` binds positionally (they are
        arguments the signature no longer shows, so they must be in the key)."""
        from agentcache.keys.identity import code_digest

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

    def prepare(self, args: tuple[Any, ...], kwargs: dict[str, Any], control: Control | None = None) -> CallPlan:
        """Resolve key, namespace, tags and TTL of one call (whether or not caching is disabled).

        Raises:
            KeyEncodingError: an argument cannot be encoded (the message names it and how to exclude it).
        """
        where = self.coordinates(args, kwargs, even_disabled=True)
        assert where is not None  # only a disabled lookup returns None
        key, ns, fields, _ = where
        return self.call_at(key, ns, fields, args, kwargs, control)

    def keys_of(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
        """The keys a call's entries live under (one for most layers; `cache_invalidate` deletes them all)."""
        return [self.prepare(args, kwargs).key]

    # -- hits -------------------------------------------------------------------------------------------------

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

    def _register_annotations(self) -> None:
        """Allow the classes named in the return annotation to be rebuilt from stored entries."""
        self._annotations_registered = True
        import inspect

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


class KeyExplanation(Frozen):
    """What `explain_key` reports: the key and the fields behind it. `str()` renders a table."""

    __match_args__ = ("key", "namespace", "layer", "function", "version", "included", "excluded", "tags", "ttl")
    __slots__ = __match_args__

    key: str
    namespace: str
    layer: str
    function: str
    version: str | None
    included: dict[str, str]
    excluded: dict[str, str]
    tags: tuple[str, ...]
    ttl: float | None

    def __init__(
        self,
        key: str,
        namespace: str,
        layer: str,
        function: str,
        version: str | None,
        included: dict[str, str],
        excluded: dict[str, str],
        tags: tuple[str, ...],
        ttl: float | None,
    ) -> None:
        self._fill(key, namespace, layer, function, version, included, excluded, tags, ttl)

    def __str__(self) -> str:
        from agentcache.stats.counters import format_table

        rows = [[name, "yes", value] for name, value in self.included.items()]
        rows += [[name, "no", reason] for name, reason in self.excluded.items()]
        head = (
            f"key       {self.key}\nnamespace {self.namespace}   layer {self.layer}   "
            f"function {self.function}   version {self.version or '-'}\n"
            f"tags      {', '.join(self.tags)}   ttl {self.ttl if self.ttl is not None else 'none'}\n"
        )
        return head + format_table(["field", "in key", "value / reason"], rows, align="lll")


def layer_of(func: Callable[..., Any]) -> FunctionLayer:
    """The engine layer behind a cached function.

    Raises:
        ConfigurationError: `func` is not a cached function.
    """
    layer = getattr(func, "__agentcache_layer__", None)
    if not isinstance(layer, FunctionLayer):
        raise ConfigurationError(f"{func!r} is not a cached function (decorate it with an agentcache decorator)")
    return layer


def explain_key(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> KeyExplanation:
    """Show the key a cached function would use for these arguments, and which fields went into it.

    Example::

        # ask(messages, model="gpt-4o", temperature=0.0, **params), as in docs/response_cached.md
        print(agentcache.explain_key(ask, [{"role": "user", "content": "hi"}], timeout=30))
    """
    return layer_of(func).explain(args, kwargs)


# -- faces ----------------------------------------------------------------------------------------------------


def decorate(func: Callable[..., Any], policy: Policy) -> Any:
    """Wrap `func` with the face that fits it and attach the cache controls."""
    target = func
    while isinstance(target, functools.partial):
        target = target.func
    layer = FunctionLayer(func, policy)
    if code_flag(target, "asyncgen"):
        face: Any = _async_gen_face(layer)
    elif code_flag(target, "coroutine"):
        face = _async_face(layer)
    elif code_flag(target, "generator"):
        face = _gen_face(layer)
    else:
        face = _sync_face(layer)
    return attach(face, layer)


def _stream_control(layer: FunctionLayer) -> Any:
    """The control in force for a call (`None` most of the time); counts a bypass under ``mode("off")``."""
    control = _control_now()
    if control is not None and control.mode == "off":
        layer.bypass()
    return control


def _sync_face(layer: FunctionLayer) -> Callable[..., Any]:
    func = layer.func

    @functools.wraps(func)
    def cached(*args: Any, **kwargs: Any) -> Any:
        where = layer.coordinates(args, kwargs)
        if where is None:  # caching is disabled
            return func(*args, **kwargs)
        key, ns, fields, store = where
        control = _control_now()
        if control is None:
            if layer.reads_shared if store is layer.reads_shared_on else layer.shares_reads(store):
                # Redis: the read is part of the shared flight, so concurrent callers of this key read once
                return layer.miss(
                    layer.call_at(key, ns, fields, args, kwargs),
                    lambda _: func(*args, **kwargs),
                    lambda: cached(*args, **kwargs),
                    read=True,
                )
            raw = store.get(key)
            if raw is not None and (value := layer.hit(key, raw)) is not MISS:
                return value
        elif control.mode == "off":
            layer.bypass()
            return func(*args, **kwargs)
        elif control.reads:
            raw = store.get(key)
            if raw is not None and (value := layer.hit(key, raw, "value", None, control.max_age)) is not MISS:
                return value
        return layer.miss(
            layer.call_at(key, ns, fields, args, kwargs, control),
            lambda _: func(*args, **kwargs),
            lambda: cached(*args, **kwargs),
        )

    return cached


def _async_face(layer: FunctionLayer) -> Callable[..., Any]:
    func = layer.func

    @functools.wraps(func)
    async def cached(*args: Any, **kwargs: Any) -> Any:
        where = layer.coordinates(args, kwargs)
        if where is None:  # caching is disabled
            return await func(*args, **kwargs)
        key, ns, fields, store = where
        control = _control_now()
        if control is None:
            if layer.reads_shared if store is layer.reads_shared_on else layer.shares_reads(store):
                # Redis: the read is part of the shared flight, so concurrent callers of this key read once
                return await layer.amiss(
                    layer.call_at(key, ns, fields, args, kwargs),
                    lambda _: func(*args, **kwargs),
                    lambda: cached(*args, **kwargs),
                    read=True,
                )
            raw = await store.aget(key)
            if raw is not None and (value := layer.hit(key, raw)) is not MISS:
                return value
        elif control.mode == "off":
            layer.bypass()
            return await func(*args, **kwargs)
        elif control.reads:
            raw = await store.aget(key)
            if raw is not None and (value := layer.hit(key, raw, "value", None, control.max_age)) is not MISS:
                return value
        return await layer.amiss(
            layer.call_at(key, ns, fields, args, kwargs, control),
            lambda _: func(*args, **kwargs),
            lambda: cached(*args, **kwargs),
        )

    return cached


def _gen_face(layer: FunctionLayer) -> Callable[..., Any]:
    func = layer.func

    @functools.wraps(func)
    def cached(*args: Any, **kwargs: Any) -> Iterator[Any]:
        where = layer.coordinates(args, kwargs)
        control = None if where is None else _stream_control(layer)
        if where is None or (control is not None and control.mode == "off"):
            yield from func(*args, **kwargs)
            return
        key, ns, fields, store = where
        if control is None or control.reads:
            raw = store.get(key)
            max_age = None if control is None else control.max_age
            if raw is not None and (chunks := layer.hit(key, raw, "stream", None, max_age)) is not MISS:
                yield from chunks
                return
        call = layer.call_at(key, ns, fields, args, kwargs, control)
        fence = run_sync(layer.fence_flow(call), call.store, no_compute)
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
            layer.counters.add("errors")
            raise
        flow = layer.commit_flow(call, recorded, time.perf_counter() - start, fence, "stream")
        run_sync(flow, call.store, no_compute)

    return cached


def _async_gen_face(layer: FunctionLayer) -> Callable[..., Any]:
    func = layer.func

    @functools.wraps(func)
    async def cached(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        where = layer.coordinates(args, kwargs)
        control = None if where is None else _stream_control(layer)
        if where is None or (control is not None and control.mode == "off"):
            async for chunk in func(*args, **kwargs):
                yield chunk
            return
        key, ns, fields, store = where
        if control is None or control.reads:
            raw = await store.aget(key)
            max_age = None if control is None else control.max_age
            if raw is not None and (chunks := layer.hit(key, raw, "stream", None, max_age)) is not MISS:
                for chunk in chunks:
                    yield chunk
                return
        call = layer.call_at(key, ns, fields, args, kwargs, control)
        fence = await run_async(layer.fence_flow(call), call.store, no_acompute)
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
            layer.counters.add("errors")
            raise
        flow = layer.commit_flow(call, recorded, time.perf_counter() - start, fence, "stream")
        await run_async(flow, call.store, no_acompute)

    return cached


def attach(face: Any, layer: FunctionLayer) -> Any:
    """Give `face` the cache controls of `layer`: ``cache_info``, ``cache_clear``/``acache_clear``,
    ``cache_key``, ``cache_invalidate``/``acache_invalidate`` (the blocking and the awaitable forms exist on
    every cached function, sync or async; the type checker tells them apart)."""

    def cache_info() -> Any:
        return layer.counters.info()

    def _scope_stats(namespace: NamespaceTarget) -> None:
        if invalidation_scope(namespace) is None:  # stats are per function, not per tenant
            layer.counters.reset()

    def cache_clear(*, namespace: NamespaceTarget = None) -> None:
        # scoped like agentcache.invalidate; raises InvalidationError if it did not land
        _scope_stats(namespace)
        layer.cache.invalidate(tags=[layer.entry_tag], namespace=namespace)

    async def acache_clear(*, namespace: NamespaceTarget = None) -> None:
        _scope_stats(namespace)
        await layer.cache.ainvalidate(tags=[layer.entry_tag], namespace=namespace)

    def cache_key(*args: Any, **kwargs: Any) -> str:
        keys = layer.keys_of(args, kwargs)
        if len(keys) != 1:
            raise ConfigurationError(
                f"{layer.name}: this call has {len(keys)} entries (one per text); cache_key() takes a call with one"
            )
        return keys[0]

    def cache_invalidate(*args: Any, **kwargs: Any) -> bool:
        return layer.cache.invalidate(keys=layer.keys_of(args, kwargs)) > 0

    async def acache_invalidate(*args: Any, **kwargs: Any) -> bool:
        return await layer.cache.ainvalidate(keys=layer.keys_of(args, kwargs)) > 0

    face.cache_info = cache_info
    face.cache_clear = cache_clear
    face.acache_clear = acache_clear
    face.cache_key = cache_key
    face.cache_invalidate = cache_invalidate
    face.acache_invalidate = acache_invalidate
    face.__agentcache_layer__ = layer
    return face
