"""An HTTP transport that caches model calls, for any SDK built on `httpx` or `httpx2`.

```python
from openai import OpenAI, AsyncOpenAI
import agentcache

client = OpenAI(http_client=agentcache.http_client())
aclient = AsyncOpenAI(http_client=agentcache.async_http_client())
```

The same works for Anthropic (``Anthropic(http_client=...)``) and any SDK that takes an httpx client. A
request is answered from the cache when it is a ``POST`` to a model-answering path (`DEFAULT_PATHS`, or
``paths=``); everything else goes to the network untouched. The key is the server's origin (scheme, host, port),
the method, the path, the sorted query, the API-version headers and the canonical JSON body without transport-only
fields (``user``, ``metadata``, ``store``, ...), partitioned by a hash of the API key: two keys never share
entries, and no secret is stored.

Each cached request goes through one `agentcache.CacheLayer` (``layer="http"``): lookup, single-flight,
send, store, stats. JSON answers are stored when the status is 2xx. Server-sent event streams reach the caller
as they arrive while their bytes are recorded; the recording is stored only once the stream completed
without an error event, so an abandoned, cut or failed stream is never stored. Identical streamed requests made
meanwhile wait for that recording and replay it (`agentcache.integrations._handoff`); a failed stream releases
them to send their own. Hits carry an ``x-agentcache: hit`` header.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from agentcache.engine.control import resolve as resolve_control
from agentcache.engine.flow import no_acompute, no_compute, run_async, run_sync
from agentcache.engine.layer import CacheLayer, CallPlan
from agentcache.engine.settings import get_settings
from agentcache.errors import KeyEncodingError
from agentcache.integrations import _http
from agentcache.integrations._handoff import Handoff
from agentcache.integrations._http import DEFAULT_PATHS
from agentcache.usage import Usage, extract_usage

__all__ = ["DEFAULT_PATHS", "async_http_client", "cache_transport", "http_client"]

_DEFAULT_PORTS = {"http": 80, "https": 443}

Library = Literal["httpx", "httpx2"]

HIT_HEADER = "x-agentcache"
_SSE = "text/event-stream"


def _library(name: Library | None) -> Any:
    """The httpx-compatible module to build clients with: `name`, else ``httpx2`` when installed, else ``httpx``."""
    if name is not None:
        return importlib.import_module(name)
    try:
        return importlib.import_module("httpx2")
    except ImportError:
        pass
    try:
        return importlib.import_module("httpx")
    except ImportError:
        from agentcache.errors import MissingDependencyError

        raise MissingDependencyError("httpx2", "openai") from None  # the SDK extras bring httpx2


def _storable(value: Any) -> bool:
    """Only 2xx answers are stored (a live stream once its recorder saw it complete)."""
    return isinstance(value, dict) and 200 <= int(value.get("status", 0)) < 300


@dataclass
class _Core:
    """Every decision of the transport, shared by its sync and async faces."""

    layer: CacheLayer
    paths: tuple[str, ...]
    per_api_key: bool
    http: Any
    cassette_of: Callable[[], Any] = field(default=lambda: None)
    streams: Handoff = field(init=False)
    """Single flight for streamed misses: followers wait for the leading stream's recording and replay it."""

    def __post_init__(self) -> None:
        self.streams = Handoff(self.layer, self.layer.policy.lock_ttl, self.layer.policy.cache_if)

    def view(self, request: Any) -> dict[str, Any] | None:
        """The cache's view of `request` (`None`: not a cached request, send it as it is)."""
        method, path = request.method, request.url.path
        if not _http.is_cached_path(method, path, self.paths):
            return None
        try:
            body = request.content
        except Exception:  # a streamed upload (never a model call's JSON): send it as it is
            return None
        query = request.url.params.multi_items() if request.url.query else []
        return _http.describe(method, path, query, request.headers.multi_items(), body)

    def key_request(self, view: dict[str, Any], request: Any) -> dict[str, Any]:
        """The request the layer keys on: the view plus the server it goes to and the credential partition.

        The origin (scheme, host, port) is in the key, as ``wrap()`` keys hold the client's base URL: two servers
        that accept the same path and body (a local model server and a provider, staging and production) answer
        differently, and a shared dummy key must not make them share entries. Cassettes match on the view alone.
        """
        url = request.url
        keyed = {**view, "origin": f"{url.scheme}://{url.host}:{url.port or _DEFAULT_PORTS.get(url.scheme, 0)}"}
        if not self.per_api_key:
            return keyed
        query = url.params.multi_items() if url.query else []
        return {**keyed, "partition": _http.partition(request.headers.multi_items(), query)}

    def value_of(self, response: Any, body: bytes, *, sse: bool) -> dict[str, Any]:
        """The stored form of an answer: status, replayed headers and the body (SSE text for streams)."""
        headers = [[k, v] for k, v in response.headers.multi_items() if k.lower() in _http.REPLAYED_HEADERS]
        value: dict[str, Any] = {"status": response.status_code, "headers": headers}
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            value["body"] = body
            return value
        value["sse" if sse else "body"] = text
        return value

    def response_of(self, value: dict[str, Any], request: Any) -> Any:
        """A response rebuilt from a stored value (a hit)."""
        headers = [(k, v) for k, v in value.get("headers", [])]
        headers.append((HIT_HEADER, "hit"))
        if "sse" in value:
            stream = self.http.ByteStream(value["sse"].encode())
            return self.http.Response(value["status"], headers=headers, stream=stream, request=request)
        body = value.get("body", b"")
        content = body.encode() if isinstance(body, str) else body
        return self.http.Response(value["status"], headers=headers, content=content, request=request)

    def is_sse(self, response: Any) -> bool:
        """Whether `response` is a successful server-sent event stream."""
        return bool(200 <= response.status_code < 300 and response.headers.get("content-type", "").startswith(_SSE))

    @staticmethod
    def streaming(view: dict[str, Any]) -> bool:
        """Whether the request asks for a streamed answer (``"stream": true``, Gemini's stream endpoints)."""
        body = view.get("body")
        if isinstance(body, dict) and body.get("stream") is True:
            return True
        return str(view.get("path", "")).endswith(":streamGenerateContent")

    def plan(self, key: dict[str, Any]) -> CallPlan | None:
        """The coordinates of a streamed call (`None`: the kill switch or ``mode("off")``: go around the cache)."""
        control = resolve_control()
        if get_settings().disabled:
            return None
        if control is not None and control.mode == "off":
            self.layer.bypass()
            return None
        try:
            where, ns, fields = self.layer.place(key)
        except KeyEncodingError:
            return None
        call: CallPlan = self.layer.call_at(where, ns, fields, (key,), {}, control)
        return call

    @staticmethod
    def recorded(cassette: Any, view: dict[str, Any], value: Any) -> None:
        """Hand a finished 2xx answer to the recording cassette, if any."""
        if cassette is not None and _storable(value):
            cassette.record(view, value)

    def teed(self, response: Any, request: Any, body: Any) -> Any:
        """The response handed to the caller for a live stream: `response` with its body read through `body`."""
        return self.http.Response(
            response.status_code,
            headers=_live_headers(response),
            stream=body,
            request=request,
            extensions=response.extensions,
        )


class _HttpLayer(CacheLayer):
    """The transport's layer: entries report the tokens of the answer they hold, so hits count what they saved."""

    def stored_form(self, value: Any, kind: Any) -> tuple[Any, Usage | None]:
        """The value as is, with the usage found in its JSON body or stream events."""
        try:
            return value, _usage_of(value)
        except Exception:  # usage is accounting only: an odd body never stops a store
            return value, None


def _usage_of(value: Any) -> Usage | None:
    import json

    if not isinstance(value, dict):
        return None
    if isinstance(value.get("body"), str):
        return extract_usage(json.loads(value["body"]))
    if not isinstance(value.get("sse"), str):
        return None
    from agentcache.integrations import _streams

    events = _streams.parse_sse(value["sse"].encode())
    names = {e for e, _ in events}
    if "message_start" in names:
        provider = "anthropic.messages"
    elif any(d.startswith('{"type":"response.') or '"type": "response.' in d[:40] for _, d in events):
        provider = "openai.responses"
    else:
        provider = "openai.chat"
    return extract_usage(_streams.events_to_object(provider, events))


def _sync_face(http: Any) -> type:
    class CacheTransport(http.BaseTransport):  # type: ignore[misc]
        """An `httpx.BaseTransport` answering model calls from the cache (see `agentcache.http_client`)."""

        def __init__(self, inner: Any, core: _Core) -> None:
            self._inner = inner
            self._core = core

        def handle_request(self, request: Any) -> Any:
            core = self._core
            view = core.view(request)
            if view is None:
                return self._inner.handle_request(request)
            cassette = core.cassette_of()
            if cassette is not None and cassette.replaying:
                return cassette.replay(view, request, core)
            key = core.key_request(view, request)
            if core.streaming(view):
                return self._stream(request, key, view, cassette)
            sent: list[Any] = []

            def send() -> dict[str, Any]:
                response = self._inner.handle_request(request)
                try:
                    body = response.read()
                finally:
                    response.close()
                sent.append(response)
                return core.value_of(response, body, sse=core.is_sse(response))

            try:
                value = core.layer.call(key, send)
            except KeyEncodingError:  # a body the key cannot encode (NaN): sent uncached, never failed
                if sent:
                    raise
                return self._inner.handle_request(request)
            core.recorded(cassette, view, value)
            return sent[0] if sent else core.response_of(value, request)

        def _stream(self, request: Any, key: dict[str, Any], view: dict[str, Any], cassette: Any) -> Any:
            """A streamed request: a hit replays the recorded events; a miss is teed to its caller and stored once
            complete. Concurrent identical streams wait for the leading one's recording and replay it; if it
            fails (cut, abandoned, an error event), each sends its own request."""
            core = self._core
            try:
                value, lead = core.streams.start(key)
            except KeyEncodingError:
                return self._inner.handle_request(request)
            if value is not None:
                core.recorded(cassette, view, value)
                return core.response_of(value, request)
            if lead is None:
                return self._alone(request, key, view, cassette)
            try:
                response = self._inner.handle_request(request)
            except BaseException:
                lead.abandon()
                raise

            def done(value: dict[str, Any] | None) -> None:
                if value is None:
                    lead.abandon()
                    return
                lead.finish(value)
                core.recorded(cassette, view, value)

            return self._relay(response, request, done)

        def _relay(self, response: Any, request: Any, done: Callable[[dict[str, Any] | None], None]) -> Any:
            """The caller's response: an event stream teed to `done`, or anything else read whole."""
            core = self._core
            if core.is_sse(response):
                return core.teed(response, request, _SyncTee(http, response, core, done))
            try:  # an error status, or a JSON answer to a streamed request
                body = response.read()
            finally:
                response.close()
            done(core.value_of(response, body, sse=False))
            return response

        def _alone(self, request: Any, key: dict[str, Any], view: dict[str, Any], cassette: Any) -> Any:
            """A streamed request sent on its own (the stream it waited for failed), stored once complete."""
            core, layer = self._core, self._core.layer
            call = core.plan(key)
            if call is None:
                return self._inner.handle_request(request)
            fence = run_sync(layer.fence_flow(call), call.store, no_compute)
            start = time.perf_counter()
            try:
                response = self._inner.handle_request(request)
            except BaseException:
                layer.counters.add("errors")
                raise

            def done(value: dict[str, Any] | None) -> None:
                if value is None:
                    return
                duration = time.perf_counter() - start
                run_sync(layer.commit_flow(call, value, duration, fence, "value"), call.store, no_compute)
                core.recorded(cassette, view, value)

            return self._relay(response, request, done)

        def close(self) -> None:
            self._inner.close()

    return CacheTransport


def _async_face(http: Any) -> type:
    class AsyncCacheTransport(http.AsyncBaseTransport):  # type: ignore[misc]
        """An `httpx.AsyncBaseTransport` answering model calls from the cache (see `agentcache.async_http_client`)."""

        def __init__(self, inner: Any, core: _Core) -> None:
            self._inner = inner
            self._core = core

        async def handle_async_request(self, request: Any) -> Any:
            core = self._core
            view = core.view(request)
            if view is None:
                return await self._inner.handle_async_request(request)
            cassette = core.cassette_of()
            if cassette is not None and cassette.replaying:
                return cassette.replay(view, request, core)
            key = core.key_request(view, request)
            if core.streaming(view):
                return await self._stream(request, key, view, cassette)
            sent: list[Any] = []

            async def send() -> dict[str, Any]:
                response = await self._inner.handle_async_request(request)
                try:
                    body = await response.aread()
                finally:
                    await response.aclose()
                sent.append(response)
                return core.value_of(response, body, sse=core.is_sse(response))

            try:
                value = await core.layer.acall(key, send)
            except KeyEncodingError:
                if sent:
                    raise
                return await self._inner.handle_async_request(request)
            core.recorded(cassette, view, value)
            return sent[0] if sent else core.response_of(value, request)

        async def _stream(self, request: Any, key: dict[str, Any], view: dict[str, Any], cassette: Any) -> Any:
            core = self._core
            try:
                value, lead = await core.streams.astart(key)
            except KeyEncodingError:
                return await self._inner.handle_async_request(request)
            if value is not None:
                core.recorded(cassette, view, value)
                return core.response_of(value, request)
            if lead is None:
                return await self._alone(request, key, view, cassette)
            try:
                response = await self._inner.handle_async_request(request)
            except BaseException:
                lead.abandon()
                raise

            async def done(value: dict[str, Any] | None) -> None:
                if value is None:
                    lead.abandon()
                    return
                await lead.afinish(value)
                core.recorded(cassette, view, value)

            return await self._relay(response, request, done)

        async def _relay(
            self, response: Any, request: Any, done: Callable[[dict[str, Any] | None], Awaitable[None]]
        ) -> Any:
            core = self._core
            if core.is_sse(response):
                return core.teed(response, request, _AsyncTee(http, response, core, done))
            try:
                body = await response.aread()
            finally:
                await response.aclose()
            await done(core.value_of(response, body, sse=False))
            return response

        async def _alone(self, request: Any, key: dict[str, Any], view: dict[str, Any], cassette: Any) -> Any:
            core, layer = self._core, self._core.layer
            call = core.plan(key)
            if call is None:
                return await self._inner.handle_async_request(request)
            fence = await run_async(layer.fence_flow(call), call.store, no_acompute)
            start = time.perf_counter()
            try:
                response = await self._inner.handle_async_request(request)
            except BaseException:
                layer.counters.add("errors")
                raise

            async def done(value: dict[str, Any] | None) -> None:
                if value is None:
                    return
                duration = time.perf_counter() - start
                await run_async(layer.commit_flow(call, value, duration, fence, "value"), call.store, no_acompute)
                core.recorded(cassette, view, value)

            return await self._relay(response, request, done)

        async def aclose(self) -> None:
            await self._inner.aclose()

    return AsyncCacheTransport


_HOP = frozenset({"content-encoding", "content-length", "transfer-encoding"})


def _live_headers(response: Any) -> list[tuple[str, str]]:
    """The headers of a teed response: the body we pass on is already decoded and unframed."""
    return [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _HOP]


class _Recorder:
    """The recording half of a tee: judges completion and builds the value to store."""

    def __init__(self, source: Any, core: _Core) -> None:
        self.source = source
        self.core = core
        self.recorded = bytearray()
        self.failed = False
        self.exhausted = False

    def finished(self) -> dict[str, Any] | None:
        if self.failed:
            return None
        try:
            text = bytes(self.recorded).decode("utf-8")
        except UnicodeDecodeError:
            return None
        if not _http.sse_complete(text, exhausted=self.exhausted):
            return None
        return self.core.value_of(self.source, bytes(self.recorded), sse=True)


def _SyncTee(http: Any, source: Any, core: _Core, done: Callable[[dict[str, Any] | None], None]) -> Any:
    class Tee(http.SyncByteStream):  # type: ignore[misc]
        def __init__(self) -> None:
            self._rec = _Recorder(source, core)
            self._run = self._pump()
            self._reported = False

        def __iter__(self) -> Iterator[bytes]:
            return self._run

        def _pump(self) -> Generator[bytes, None, None]:
            rec = self._rec
            try:
                for chunk in source.iter_bytes():
                    rec.recorded += chunk
                    yield chunk
                rec.exhausted = True
            except GeneratorExit:
                raise
            except BaseException:
                rec.failed = True
                raise
            finally:
                self._report()

        def _report(self) -> None:
            if self._reported:
                return
            self._reported = True
            done(self._rec.finished())  # None: incomplete, never stored

        def close(self) -> None:
            self._run.close()
            source.close()

    return Tee()


def _AsyncTee(http: Any, source: Any, core: _Core, done: Callable[[dict[str, Any] | None], Any]) -> Any:
    class Tee(http.AsyncByteStream):  # type: ignore[misc]
        def __init__(self) -> None:
            self._rec = _Recorder(source, core)
            self._run = self._pump()
            self._reported = False

        def __aiter__(self) -> AsyncIterator[bytes]:
            return self._run

        async def _pump(self) -> AsyncGenerator[bytes, None]:
            rec = self._rec
            try:
                async for chunk in source.aiter_bytes():
                    rec.recorded += chunk
                    yield chunk
                rec.exhausted = True
            except GeneratorExit:
                raise
            except BaseException:
                rec.failed = True
                raise
            finally:
                await self._report()

        async def _report(self) -> None:
            if self._reported:
                return
            self._reported = True
            await done(self._rec.finished())

        async def aclose(self) -> None:
            await self._run.aclose()
            await source.aclose()

    return Tee()


_faces: dict[tuple[str, bool], type] = {}


def _face(http: Any, is_async: bool) -> type:
    key = (http.__name__, is_async)
    cls = _faces.get(key)
    if cls is None:
        cls = _faces[key] = _async_face(http) if is_async else _sync_face(http)
    return cls


def _core(
    http: Any,
    *,
    name: str,
    namespace: str | None,
    ttl: Any,
    backend: Any,
    tags: Sequence[str],
    paths: Sequence[str],
    per_api_key: bool,
) -> _Core:
    from agentcache.integrations import cassette

    layer = _HttpLayer(
        name, layer="http", namespace=namespace, ttl=ttl, backend=backend, tags=tuple(tags), cache_if=_storable
    )
    return _Core(layer, tuple(paths), per_api_key, http, cassette.current)


def cache_transport(
    inner: Any,
    *,
    name: str = "http",
    namespace: str | None = None,
    ttl: Any = None,
    backend: Any = None,
    tags: Sequence[str] = (),
    paths: Sequence[str] = DEFAULT_PATHS,
    per_api_key: bool = True,
) -> Any:
    """Wrap an httpx/httpx2 transport (sync or async) so model calls are answered from the cache.

    For clients you build yourself: ``httpx2.Client(transport=cache_transport(httpx2.HTTPTransport()))``.
    The options are those of `http_client`.
    """
    http = importlib.import_module(type(inner).__module__.split(".", 1)[0])
    is_async = isinstance(inner, http.AsyncBaseTransport)
    core = _core(
        http, name=name, namespace=namespace, ttl=ttl, backend=backend, tags=tags, paths=paths, per_api_key=per_api_key
    )
    return _face(http, is_async)(inner, core)


# Options of the library's HTTPTransport that its Client does not take: only a transport you build carries them.
_TRANSPORT_ONLY = ("retries", "uds", "local_address", "socket_options")


def _client(
    is_async: bool,
    *,
    name: str,
    namespace: str | None,
    ttl: Any,
    backend: Any,
    tags: Sequence[str],
    paths: Sequence[str],
    per_api_key: bool,
    library: Library | None,
    transport: Any,
    client_options: dict[str, Any],
) -> Any:
    http = _library(library)
    given = sorted(set(_TRANSPORT_ONLY) & client_options.keys())
    if given:
        from agentcache.errors import ConfigurationError

        kind = "AsyncHTTPTransport" if is_async else "HTTPTransport"
        raise ConfigurationError(
            f"{', '.join(given)}: options of {http.__name__}.{kind}, not of its client; pass "
            f"transport={http.__name__}.{kind}({given[0]}=...) (that transport is then used for every request: "
            "no environment proxies)"
        )
    core = _core(
        http, name=name, namespace=namespace, ttl=ttl, backend=backend, tags=tags, paths=paths, per_api_key=per_api_key
    )
    # The SDKs' own defaults for their clients: long model calls, redirects followed.
    client_options.setdefault("timeout", http.Timeout(600.0, connect=5.0))
    client_options.setdefault("follow_redirects", True)
    cls = http.AsyncClient if is_async else http.Client
    client = cls(transport=transport, **client_options)
    _cache_routes(client, _face(http, is_async), core)
    return client


def _cache_routes(client: Any, face: type, core: _Core) -> None:
    """Wrap every transport the client routes through: the default one and each mount.

    The client is built from all the options as the library would build it (``verify``, ``limits``, ``proxy``,
    ``mounts``, environment proxies per ``trust_env``, ...), then each of its routes gets the cache in front;
    one core, so every route shares the same entries. The library keeps its routes in private attributes, present
    in httpx 0.28-0.29 and httpx2 2.x: their absence fails here, never a client that silently caches nothing.
    """
    routes = vars(client)
    if not isinstance(routes.get("_mounts"), dict) or "_transport" not in routes:
        from agentcache.errors import ConfigurationError

        raise ConfigurationError(f"{type(client).__module__}: unknown client layout, cannot cache its routes")
    routes["_transport"] = face(routes["_transport"], core)
    routes["_mounts"] = {
        pattern: None if inner is None else face(inner, core) for pattern, inner in routes["_mounts"].items()
    }


def http_client(
    *,
    name: str = "http",
    namespace: str | None = None,
    ttl: Any = None,
    backend: Any = None,
    tags: Sequence[str] = (),
    paths: Sequence[str] = DEFAULT_PATHS,
    per_api_key: bool = True,
    library: Library | None = None,
    transport: Any = None,
    **client_options: Any,
) -> Any:
    """An ``httpx2.Client`` (or ``httpx.Client``) whose model calls are answered from the cache.

    Pass it to any httpx-based SDK: ``OpenAI(http_client=agentcache.http_client())``,
    ``Anthropic(http_client=agentcache.http_client())``.

    Args:
        name: the name of the cache layer (its row in `agentcache.stats()`).
        namespace, ttl, backend, tags: as for the decorators (``ttl=None``: no expiry).
        paths: fnmatch patterns of the ``POST`` paths answered from the cache (default `DEFAULT_PATHS`: chat
            completions, responses, messages, embeddings, ...); other requests go to the network untouched.
        per_api_key: partition entries by a hash of the request's API key (default). Turn off only when every
            key reaching this client belongs to the same tenant.
        library: ``"httpx2"`` (the default when installed: current OpenAI and Anthropic SDKs) or ``"httpx"``
            (older SDKs, which reject an ``httpx2.Client``).
        transport: the transport that sends misses. Default: the ones the library builds from the client options,
            as without agentcache (``verify``, ``cert``, ``http1``, ``http2``, ``limits``, ``proxy``, environment
            proxies when ``trust_env``); ``retries``/``uds``/``local_address``/``socket_options`` need your own
            ``transport=``.
        client_options: passed to the client (``timeout``, ``headers``, ``verify``, ``limits``, ``proxy``,
            ``mounts``, ...). Every route is cached: the default transport, proxies and each ``mounts`` transport.
    """
    return _client(
        False,
        name=name,
        namespace=namespace,
        ttl=ttl,
        backend=backend,
        tags=tags,
        paths=paths,
        per_api_key=per_api_key,
        library=library,
        transport=transport,
        client_options=client_options,
    )


def async_http_client(
    *,
    name: str = "http",
    namespace: str | None = None,
    ttl: Any = None,
    backend: Any = None,
    tags: Sequence[str] = (),
    paths: Sequence[str] = DEFAULT_PATHS,
    per_api_key: bool = True,
    library: Library | None = None,
    transport: Any = None,
    **client_options: Any,
) -> Any:
    """The ``AsyncClient`` twin of `http_client`: ``AsyncOpenAI(http_client=agentcache.async_http_client())``."""
    return _client(
        True,
        name=name,
        namespace=namespace,
        ttl=ttl,
        backend=backend,
        tags=tags,
        paths=paths,
        per_api_key=per_api_key,
        library=library,
        transport=transport,
        client_options=client_options,
    )
