"""The machinery behind `agentcache.wrap(client)`: a copy of the SDK client whose cached methods run on the engine.

`wrap` makes a sibling of the client with the SDK's own `copy()` (same class, same HTTP pool, same retry
settings), then replaces the resources that hold cached or counted methods (`chat`, `messages`, `beta`, ...) and
the client-level response forms by `ResourceProxy` objects; `with_options()` / `copy()` wrap their result again.
Every other attribute is the SDK's own, so `isinstance(wrapped, OpenAI)` and IDE completion keep working. Each
provider's `Coverage` says which SDK methods are passed through silently; the rest of what a proxy reaches is
cached (an `Endpoint`) or passed through with one warning and counted as a bypass.

`WrappedClient` holds what is particular to SDK requests (the key fields of a request, the conversions between
SDK objects and entries, prompt-cache accounting); each endpoint's `EndpointLayer` is an engine `CacheLayer`, so
lookup, single-flight (across processes too), admission, store and stats are the engine's. Hits are SDK objects
rebuilt with the SDK's schemas (`model_validate`) or SDK stream objects over recorded SSE bytes;
`is_cache_hit(obj)` tells them apart. Errors raised by the SDK propagate and are never stored; retries are the
SDK's own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from agentcache.codec.entries import Kind
from agentcache.decorators import prompt as pc
from agentcache.decorators.response import TRANSPORT_FIELDS
from agentcache.engine.control import resolve as resolve_control
from agentcache.engine.flow import no_acompute, no_compute, run_async, run_sync
from agentcache.engine.layer import MISS, CacheLayer, CallPlan, Policy, make_policy
from agentcache.engine.settings import get_settings
from agentcache.errors import AgentCacheError, SerializationError
from agentcache.integrations import _forms, _streams
from agentcache.integrations._hits import mark_hit
from agentcache.usage import Usage, extract_usage

if TYPE_CHECKING:
    from agentcache.integrations._semantic import Pending, SemanticEndpoint

__all__ = ["FORMS", "Coverage", "Endpoint", "EndpointLayer", "WrapOptions", "base_path", "wrap_client"]

# Fields that never change the answer, on top of the response layer's transport fields: the stream form
# (an entry serves streamed and non-streamed calls alike) and provider-cache routing hints.
IGNORED_FIELDS = TRANSPORT_FIELDS | {"stream", "stream_options", "prompt_cache_retention"}

_bypass_warned: set[tuple[str, str]] = set()  # (provider, method path): warned once per process
_bypass_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One cached SDK method: where it lives, how its results are rebuilt and streamed."""

    path: str
    """Attribute path from the client, e.g. ``chat.completions.create``."""
    provider: str
    """Stream flavour for `_streams` (``openai.chat``, ``anthropic.messages``, ...)."""
    url: str
    """API path, used as the URL of replayed responses."""
    result: Callable[[], type]
    """The SDK type non-streamed results are rebuilt with."""
    chunk: Callable[[], Any] | None = None
    """The SDK type of stream items (`None`: streamed calls pass through uncached)."""
    stream_cls: Callable[[bool], type] | None = None
    """`stream_cls(is_async)` -> the SDK's `Stream` / `AsyncStream` class."""
    rebuild: Callable[[dict[str, Any], Mapping[str, Any]], Any] | None = None
    """Custom rebuild from stored JSON and the request (e.g. `.parse()` re-parsing structured output)."""
    custom: Any = None
    """An object with `call(core, method, kwargs)` / `acall(...)` replacing the generic flow (embeddings)."""


@dataclass(frozen=True, slots=True)
class WrapOptions:
    """What `wrap(...)` was asked for."""

    namespace: str | None = None
    ttl: float | None = None
    backend: Any = None
    prompt_cache: bool | Literal["5m", "1h"] = False
    semantic: Any = None


FORMS = ("with_raw_response", "with_streaming_response")
"""The SDKs' response-form wrappers: `.with_raw_response.create(...)` and `.with_streaming_response.create(...)`."""


@dataclass(frozen=True, slots=True)
class Coverage:
    """How a wrapped client treats the SDK methods that are not cached endpoints.

    Paths are written without the response form: ``chat.completions.create`` stands for its
    ``with_raw_response`` and ``with_streaming_response`` twins too. A method in none of these sets (and not an
    endpoint) is passed through with one warning and counted as a bypass, like `uncached`.
    """

    helpers: frozenset[str] = frozenset()
    """Helper methods run over a cached endpoint (``chat.completions.stream``): cached too."""
    uncached: frozenset[str] = frozenset()
    """Methods that answer with model output but are not cached: passed through with one warning, counted."""
    passed: tuple[str, ...] = ()
    """Methods (exact paths, or subtrees ending in ``.``) that do not answer a prompt: passed through silently."""

    def is_passed(self, path: str) -> bool:
        """Whether the method (or subtree, ending in ``.``) at `path` is passed through without a warning."""
        return any(path == p or (p.endswith(".") and path.startswith(p)) for p in self.passed)


def base_path(path: str) -> str:
    """`path` without its response-form segments: ``chat.completions.with_raw_response.create`` ->
    ``chat.completions.create``."""
    return ".".join(part for part in path.split(".") if part not in FORMS)


def _is_sentinel(value: Any) -> bool:
    return type(value).__name__ in ("NotGiven", "Omit")


def _key_value(value: Any) -> Any:
    if isinstance(value, type):  # `.parse(response_format=MyModel)`: the schema decides the answer
        schema = getattr(value, "model_json_schema", None)
        return {"$type": f"{value.__module__}.{value.__qualname__}", "schema": schema() if schema else None}
    return value


def _record_or_pass(stream: Any, provider: str, done: Callable[..., Any]) -> Any:
    """The recording twin of `stream`, or `stream` itself (uncached) if this SDK's stream cannot be teed."""
    try:
        return _streams.record_stream(stream, provider, done)
    except Exception:
        return stream


def build_model(cls: Any, body: Any) -> Any:
    """Rebuild an SDK object from its stored JSON the way the SDK parses responses.

    `model_validate` when the JSON validates; otherwise the SDK's own lenient `construct` (the SDKs build
    responses without validation, so a real response may lack a field its schema calls required).
    """
    try:
        return cls.model_validate(body)
    except Exception:
        return cls.construct(**body)


class EndpointLayer(CacheLayer):
    """The engine layer of one cached SDK method: results are SDK objects, entries their JSON (or recorded SSE)."""

    core: WrappedClient
    endpoint: Endpoint

    def convert(self, kind: Kind, value: Any, want: Kind, request: Any) -> Any:
        """The SDK object (or replayed stream) the request wants, rebuilt from a stored body or stream."""
        try:
            result = self.core.rebuild(self.endpoint, kind, value, request)
        except Exception:  # an SDK schema change: recompute
            return MISS
        return MISS if result is None else mark_hit(result)

    def stored_form(self, value: Any, kind: Kind) -> tuple[Any, Usage | None]:
        """The JSON body of an SDK result, or the recorded events of a completed stream, and their usage."""
        try:
            if kind == "stream":
                events = list(value)
                usage = extract_usage(_streams.events_to_object(self.endpoint.provider, events))
                return [list(e) for e in events], usage
            body = value.model_dump(mode="json", exclude_unset=True, warnings=False)
        except Exception as exc:
            raise SerializationError(f"{self.name} result cannot be stored: {exc}") from exc
        return body, extract_usage(body)


def _endpoint_layer(core: WrappedClient, endpoint: Endpoint, policy: Policy) -> EndpointLayer:
    layer = EndpointLayer.from_policy(policy, policy.name or endpoint.path)
    assert isinstance(layer, EndpointLayer)
    layer.core = core
    layer.endpoint = endpoint
    return layer


CONTROL_FIELDS = ("cache_mode", "cache_max_age")
"""Keywords a wrapped client's cached methods accept and strip before calling the SDK: the per-call cache mode
(``"readwrite"``, ``"read"``, ``"write"``, ``"off"``) and maximum entry age (see `agentcache.mode`)."""


class WrappedClient:
    """Every decision of the wrapped client, shared by its sync and async faces: the key of a request and the
    conversions between SDK objects and entries. The cache pipeline is the engine's (`EndpointLayer`)."""

    def __init__(
        self, provider: str, base_url: str, options: WrapOptions, is_async: bool, raw: Any, endpoints: list[Endpoint]
    ) -> None:
        self.provider = provider
        self.base_url = base_url
        self.options = options
        self.is_async = is_async
        self.raw = raw
        # One layer per endpoint: its namespace/TTL rules, its store and its counters in `stats()`.
        self.layers = {
            e.path: _endpoint_layer(
                self,
                e,
                make_policy(
                    "response",
                    name=f"{provider}.{e.path}",
                    namespace=options.namespace,
                    ttl=options.ttl,
                    backend=options.backend,
                    track_usage=True,
                ),
            )
            for e in endpoints
        }
        self.endpoints = {e.path: e for e in endpoints}
        self.coverage = Coverage()
        self.bypass_layers: dict[str, CacheLayer] = {}
        self.form_classes: dict[str, type] = {}  # response form -> the SDK's response class seen on a real call
        self.semantic: dict[str, SemanticEndpoint] = {}
        if options.semantic is not None:
            from agentcache.integrations._semantic import SEMANTIC_QUERY, SemanticEndpoint

            base = {"namespace": options.namespace, "ttl": options.ttl, "backend": options.backend}
            self.semantic = {
                e.path: SemanticEndpoint(
                    f"{provider}.{e.path}", e.path, {**base, **options.semantic}, is_async=is_async
                )
                for e in endpoints
                if e.path in SEMANTIC_QUERY
            }

    # -- decisions ------------------------------------------------------------------------------------------

    def prepare(self, endpoint: Endpoint, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The request actually sent: provider prompt-caching hints added when asked for."""
        if not self.options.prompt_cache:
            return kwargs
        if endpoint.provider == "anthropic.messages":
            ttl: Literal["5m", "1h"] = "1h" if self.options.prompt_cache == "1h" else "5m"
            return pc.place_anthropic_breakpoints(kwargs, ttl=ttl)[0]
        if endpoint.provider in ("openai.chat", "openai.responses"):
            return pc.prepare_openai_request(kwargs)
        return kwargs

    def fields(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The fields of a request that decide the answer (plus the endpoint URL)."""
        fields = {k: _key_value(v) for k, v in kwargs.items() if k not in IGNORED_FIELDS and not _is_sentinel(v)}
        if fields.get("extra_body") is None:  # the SDK helpers pass `extra_body=None`: the same as leaving it out
            fields.pop("extra_body", None)
        fields["$endpoint"] = self.base_url
        return fields

    def locate(self, endpoint: Endpoint, fields: dict[str, Any]) -> tuple[str, str] | None:
        """``(key, namespace)`` of a request, or `None` when it must not be cached (kill switch, unencodable)."""
        if get_settings().disabled:
            return None
        layer = self.layers[endpoint.path]
        try:
            ns = layer.namespace_for((), {})
            return layer.key_in(ns, fields), ns
        except AgentCacheError:
            return None

    def key(self, endpoint: Endpoint, kwargs: Mapping[str, Any]) -> str | None:
        """The cache key of a request, or `None` when it must not be cached."""
        where = self.locate(endpoint, self.fields(kwargs))
        return None if where is None else where[0]

    def lookup(self, endpoint: Endpoint, key: str, raw: bytes | None, kwargs: Mapping[str, Any]) -> Any:
        """The hit for the bytes stored under `key` in the form the request wants, or `None`."""
        if raw is None:
            return None
        value = self.layers[endpoint.path].hit(key, raw, "value", kwargs)
        return None if value is MISS else value

    def semantic_result(self, endpoint: Endpoint, body: Any, pending: Pending) -> Any:
        """The answer of a semantic lookup: the SDK's own object after a miss, else the rebuilt hit (or `None`)."""
        if pending.result is not None:
            if body is not None:
                self.account(endpoint, pending.kwargs, extract_usage(body))
            return pending.result
        try:
            result = self.rebuild(endpoint, "value", body, pending.kwargs)
        except Exception:  # an SDK schema change: the caller recomputes
            return None
        return None if result is None else mark_hit(result)

    def rebuild(self, endpoint: Endpoint, kind: str, value: Any, kwargs: Mapping[str, Any]) -> Any:
        """The SDK result a request wants from a stored value of `kind` (`None`: cannot be served from it)."""
        wants_stream = bool(kwargs.get("stream")) and endpoint.chunk is not None
        include_usage = bool((kwargs.get("stream_options") or {}).get("include_usage"))
        if wants_stream:
            events: list[tuple[str | None, str]] | None
            if kind == "stream":
                events = [(e, d) for e, d in value]
                if endpoint.provider == "openai.chat":
                    has_usage = any('"usage":{' in d.replace(" ", "") for _, d in events)
                    if include_usage and not has_usage:
                        return None
                    if not include_usage and has_usage:
                        events = _streams.chat_events(
                            _streams.events_to_object(endpoint.provider, events), include_usage=False
                        )
            else:
                events = _streams.object_to_events(endpoint.provider, value, include_usage=include_usage)
                if events is None:
                    return None
            assert endpoint.stream_cls is not None
            assert endpoint.chunk is not None
            return _streams.replay_stream(
                endpoint.stream_cls(self.is_async),
                cast_to=endpoint.chunk(),
                client=self.raw,
                events=events,
                url=self.base_url.rstrip("/") + endpoint.url,
                is_async=self.is_async,
            )
        body = _streams.events_to_object(endpoint.provider, value) if kind == "stream" else value
        if endpoint.rebuild is not None:
            return endpoint.rebuild(body, kwargs)
        return build_model(endpoint.result(), body)

    def account(self, endpoint: Endpoint, kwargs: Mapping[str, Any], usage: Usage | None) -> None:
        """Record a real call's provider prompt-cache usage (and warn about busted prefixes)."""
        if usage is None or endpoint.provider not in ("anthropic.messages", "openai.chat", "openai.responses"):
            return
        stream = f"{self.provider}:{usage.model}:{self.layers[endpoint.path].namespace_for((), {})}"
        pc.ledger.record(usage, stream=stream, digest=pc.prefix_digest(kwargs))

    def bypass(self, path: str, shown: str) -> None:
        """Count a call of the SDK method at `path` that went to the API uncached (warned about once per method)."""
        warning = (self.provider, shown)
        with _bypass_lock:
            layer = self.layers.get(path) or self.bypass_layers.get(path)
            if layer is None:  # a row in `stats()` for this method, made on its first call
                name = f"{self.provider}.{path}"
                policy = make_policy("response", name=name, namespace=self.options.namespace)
                layer = self.bypass_layers[path] = CacheLayer.from_policy(policy, name)
            first = warning not in _bypass_warned
            _bypass_warned.add(warning)
        layer.bypass()
        if first:
            logging.getLogger("agentcache").warning(
                "agentcache: %s client.%s is not cached by wrap(): its calls go to the API (counted as bypasses "
                "in agentcache.stats())",
                self.provider,
                shown,
            )

    def plan(self, endpoint: Endpoint, kwargs: dict[str, Any]) -> _Plan:
        """What one call does: the request to send, its coordinates (`None`: pass it through) and its control."""
        control = resolve_control(kwargs.pop("cache_mode", None), kwargs.pop("cache_max_age", None))
        fields = self.fields(kwargs)
        where = self.locate(endpoint, fields)  # before the prompt-cache hints, which never change the answer
        sent = self.prepare(endpoint, kwargs)
        streaming = bool(sent.get("stream"))
        layer = self.layers[endpoint.path]
        if where is None or (streaming and endpoint.chunk is None):
            return _Plan(sent, None, None, fields, streaming)
        if control is not None and control.mode == "off":
            layer.bypass()
            return _Plan(sent, None, None, fields, streaming)
        key, ns = where
        call = layer.call_at(key, ns, fields, (), {}, control, request=sent)
        return _Plan(sent, call, layer, fields, streaming)

    # -- faces ----------------------------------------------------------------------------------------------

    def call(self, endpoint: Endpoint, method: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        """The blocking face: lookup, then the engine's miss path (or a recorded stream)."""
        if endpoint.custom is not None:
            return endpoint.custom.call(self, method, kwargs)
        plan = self.plan(endpoint, dict(kwargs))
        call, layer, sent = plan.call, plan.layer, plan.sent
        if call is None or layer is None:
            return method(**sent)
        semantic = None if plan.streaming or call.control is not None else self.semantic.get(endpoint.path)
        if semantic is not None and semantic.applies(plan.fields):
            body, pending = semantic.call(method, sent, plan.fields)
            answer = self.semantic_result(endpoint, body, pending)
            return answer if answer is not None else method(**sent)
        if call.control is None or call.control.reads:
            raw = call.store.get(call.key)
            if raw is not None and (hit := layer.hit(call.key, raw, "value", sent, call.max_age)) is not MISS:
                return hit
        if plan.streaming:  # a stream is consumed by its caller: followers could not share it
            fence = run_sync(layer.fence_flow(call), call.store, no_compute)
            start = time.perf_counter()
            try:
                stream = method(**sent)
            except BaseException:
                layer.counters.add("errors")
                raise

            def done(events: list[tuple[str | None, str]]) -> None:
                duration = time.perf_counter() - start
                self.account(endpoint, sent, extract_usage(_streams.events_to_object(endpoint.provider, events)))
                run_sync(layer.commit_flow(call, events, duration, fence, "stream"), call.store, no_compute)

            return _record_or_pass(stream, endpoint.provider, done)

        def compute(_: Any) -> Any:
            result = method(**sent)
            self.account(endpoint, sent, extract_usage(result))
            return result

        return layer.miss(call, compute, lambda: self.call(endpoint, method, kwargs))

    async def acall(self, endpoint: Endpoint, method: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        """The awaitable face: the same order as `call`, with awaited I/O."""
        if endpoint.custom is not None:
            return await endpoint.custom.acall(self, method, kwargs)
        plan = self.plan(endpoint, dict(kwargs))
        call, layer, sent = plan.call, plan.layer, plan.sent
        if call is None or layer is None:
            return await method(**sent)
        semantic = None if plan.streaming or call.control is not None else self.semantic.get(endpoint.path)
        if semantic is not None and semantic.applies(plan.fields):
            body, pending = await semantic.acall(method, sent, plan.fields)
            answer = self.semantic_result(endpoint, body, pending)
            return answer if answer is not None else await method(**sent)
        if call.control is None or call.control.reads:
            raw = await call.store.aget(call.key)
            if raw is not None and (hit := layer.hit(call.key, raw, "value", sent, call.max_age)) is not MISS:
                return hit
        if plan.streaming:
            fence = await run_async(layer.fence_flow(call), call.store, no_acompute)
            start = time.perf_counter()
            try:
                stream = await method(**sent)
            except BaseException:
                layer.counters.add("errors")
                raise

            async def done(events: list[tuple[str | None, str]]) -> None:
                duration = time.perf_counter() - start
                self.account(endpoint, sent, extract_usage(_streams.events_to_object(endpoint.provider, events)))
                await run_async(layer.commit_flow(call, events, duration, fence, "stream"), call.store, no_acompute)

            return _record_or_pass(stream, endpoint.provider, done)

        async def compute(_: Any) -> Any:
            result = await method(**sent)
            self.account(endpoint, sent, extract_usage(result))
            return result

        async def retry() -> Any:
            return await self.acall(endpoint, method, kwargs)

        return await layer.amiss(call, compute, retry)


@dataclass(frozen=True, slots=True)
class _Plan:
    sent: dict[str, Any]
    call: CallPlan | None
    layer: EndpointLayer | None
    fields: dict[str, Any]
    streaming: bool


def _is_resource(value: Any) -> bool:
    """An SDK resource (`client.chat`, `client.chat.completions`) or a response-form view of one."""
    cls = type(value)
    if cls.__name__.endswith(("WithRawResponse", "WithStreamingResponse")):
        return True
    return any(c.__name__ in ("SyncAPIResource", "AsyncAPIResource") for c in cls.__mro__)


class ResourceProxy:
    """A resource proxy: cached methods at the endpoint paths, bypass-counted methods where the SDK would answer a
    prompt uncached, the SDK's own attribute everywhere else.

    `form` is the response form this node stands in (``""``, ``with_raw_response``, ``with_streaming_response``):
    a cached endpoint reached through a form answers in that form, with the SDK's own response classes.
    """

    def __init__(self, real: Any, prefix: str, core: WrappedClient, form: str = "", shown: str | None = None) -> None:
        self._real = real
        self._prefix = prefix  # the base path of this resource (`chat.completions.`)
        self._shown = prefix if shown is None else shown  # as the caller wrote it (`with_raw_response.chat.`)
        self._core = core
        self._form = form

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._real, name)
        if name.startswith("_"):
            return target
        core = self._core
        path = self._prefix + name
        shown = self._shown + name
        endpoint = core.endpoints.get(path)
        value: Any
        if name in FORMS:
            value = ResourceProxy(target, self._prefix, core, name, shown + ".")
        elif endpoint is not None and (endpoint.custom is None or not self._form):
            value = _cached_method(core, endpoint, target, self._form)
        elif not callable(target):  # a sub-resource, or a plain value
            if not _is_resource(target) or core.coverage.is_passed(path + "."):
                return target
            value = ResourceProxy(target, path + ".", core, self._form, shown + ".")
        elif core.coverage.is_passed(path):
            return target
        else:
            value = _bypassing(core, path, shown, target)
        self.__dict__[name] = value
        return value

    def __repr__(self) -> str:
        return f"<agentcache cached {self._real!r}>"


_ROLE = "__agentcache_role__"


def mark_cached(method: Callable[..., Any]) -> Callable[..., Any]:
    """Tag `method` as a cached stand-in of an SDK method (see `role_of`)."""
    vars(method)[_ROLE] = "cached"
    return method


def role_of(method: Any) -> str | None:
    """``"cached"`` or ``"bypass"`` for the stand-ins a wrapped client hands out; `None` for the SDK's own."""
    role = getattr(method, _ROLE, None)
    return role if isinstance(role, str) else None


def _cached_method(
    core: WrappedClient, endpoint: Endpoint, target: Callable[..., Any], form: str
) -> Callable[..., Any]:
    """The cached stand-in of `target`, the endpoint's SDK method in response form `form`."""
    if form:
        return mark_cached(_forms.form_method(core, endpoint, target, form))
    if core.is_async:

        async def acached(**kwargs: Any) -> Any:
            return await core.acall(endpoint, target, kwargs)

        return mark_cached(acached)

    def cached(**kwargs: Any) -> Any:
        return core.call(endpoint, target, kwargs)

    return mark_cached(cached)


def _bypassing(core: WrappedClient, path: str, shown: str, target: Callable[..., Any]) -> Callable[..., Any]:
    """`target` passed through, warned about once and counted as a bypass of `path` (sync and async alike)."""

    def bypassed(*args: Any, **kwargs: Any) -> Any:
        core.bypass(path, shown)
        return target(*args, **kwargs)

    vars(bypassed)[_ROLE] = "bypass"
    return bypassed


def wrap_client(
    client: Any,
    provider: str,
    endpoints: list[Endpoint],
    options: WrapOptions,
    *,
    is_async: bool,
    coverage: Coverage | None = None,
    rewrap: Callable[[Any], Any] | None = None,
) -> Any:
    """A sibling of `client` (same class and HTTP pool) whose `endpoints` are cached.

    Every resource holding an endpoint or an `uncached` method of `coverage` becomes a `ResourceProxy`; so do the
    client's own `with_raw_response` / `with_streaming_response`. `with_options()` / `copy()` return a client
    wrapped again by `rewrap` (same cache options).
    """
    coverage = coverage or Coverage()
    twin = type(client).copy(client)  # the class's own copy: a wrapped `client` would wrap its copy again
    plain = type(client).copy(client)  # unwrapped, for the client-level response forms
    core = WrappedClient(provider, str(twin.base_url), options, is_async, twin, endpoints)
    core.coverage = coverage
    roots = {p.split(".", 1)[0] for p in [*core.endpoints, *coverage.uncached]}
    for root in sorted(roots):
        real = getattr(twin, root, None)
        if real is not None:  # an older SDK may lack a resource (openai < 1.66 has no `responses`)
            twin.__dict__[root] = ResourceProxy(real, root + ".", core)
    for form in FORMS:
        real = getattr(plain, form, None)
        if real is not None:
            twin.__dict__[form] = ResourceProxy(real, "", core, form, form + ".")
    if rewrap is not None:

        def derive(*args: Any, **kwargs: Any) -> Any:
            return rewrap(type(twin).copy(twin, *args, **kwargs))

        twin.__dict__["copy"] = twin.__dict__["with_options"] = derive
    twin.__dict__["_agentcache_core"] = core
    return twin


def core_of(client: Any) -> WrappedClient | None:
    """The core of a wrapped client (its counters, cache and options), or `None` for a plain client."""
    core = getattr(client, "__dict__", {}).get("_agentcache_core")
    return core if isinstance(core, WrappedClient) else None
