"""Cached endpoints reached through the SDKs' response forms: `.with_raw_response` and `.with_streaming_response`.

Frameworks call the SDKs this way to read response headers (LangChain's `ChatOpenAI` and `ChatAnthropic` call
`...with_raw_response.create(...)` and then `.parse()`). The lookup, single flight and store are the plain
endpoint's (`WrappedClient.call` / `WrappedClient.acall`), so one entry serves every form. A miss returns the SDK's
own response object; a hit is the SDK's own response class over a real HTTP response holding the stored JSON (or
the recorded SSE body), its `.parse()` answering with the rebuilt typed object.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from agentcache.integrations._hits import is_cache_hit, mark_hit

if TYPE_CHECKING:
    from agentcache.integrations._wrap import Endpoint, WrappedClient

__all__ = ["HIT_HEADER", "build_response", "form_method"]

HIT_HEADER = "x-agentcache"
"""Header of a response rebuilt from the cache (value ``hit``)."""

RAW = "with_raw_response"


def form_method(core: WrappedClient, endpoint: Endpoint, target: Callable[..., Any], form: str) -> Callable[..., Any]:
    """The cached stand-in of `target`, the SDK's `endpoint` method in response form `form`."""
    if form == RAW:
        if core.is_async:

            async def araw(**kwargs: Any) -> Any:
                captured: list[Any] = []
                result = await core.acall(endpoint, _aparsing(target, captured), kwargs)
                return _answer(core, endpoint, form, result, captured, kwargs)

            return araw

        def raw(**kwargs: Any) -> Any:
            captured: list[Any] = []
            result = core.call(endpoint, _parsing(target, captured), kwargs)
            return _answer(core, endpoint, form, result, captured, kwargs)

        return raw
    if core.is_async:

        def astreaming(**kwargs: Any) -> _AsyncStreaming:
            return _AsyncStreaming(core, endpoint, target, kwargs)

        return astreaming

    def streaming(**kwargs: Any) -> _Streaming:
        return _Streaming(core, endpoint, target, kwargs)

    return streaming


def _parsing(target: Callable[..., Any], captured: list[Any]) -> Callable[..., Any]:
    """The SDK call as the plain endpoint's miss sees it: the typed result, with the response kept aside."""

    def call(**kwargs: Any) -> Any:
        response = target(**kwargs)
        captured.append(response)
        return response.parse()

    return call


def _aparsing(target: Callable[..., Any], captured: list[Any]) -> Callable[..., Any]:
    async def call(**kwargs: Any) -> Any:
        response = await target(**kwargs)
        captured.append(response)
        parsed = response.parse()  # a coroutine for `AsyncAPIResponse`, a value for the legacy class
        return await parsed if inspect.isawaitable(parsed) else parsed

    return call


def _answer(
    core: WrappedClient, endpoint: Endpoint, form: str, result: Any, captured: list[Any], kwargs: Mapping[str, Any]
) -> Any:
    """The SDK's response from a real call (its `.parse()` giving `result`, e.g. the recording stream), else one
    rebuilt around `result`."""
    if captured and not is_cache_hit(result):
        response = captured[-1]
        core.form_classes[form] = type(response)
        parsed = getattr(response, "_parsed_by_type", None)  # `.parse()` answers from it (a stream: our recording)
        if isinstance(parsed, dict):
            parsed[getattr(response, "_cast_to", None)] = result
        return response
    return build_response(core, endpoint, form, result, kwargs)


def _response_class(core: WrappedClient, form: str) -> Any:
    """The class the SDK answers `form` with: the one seen on a real call, else the SDK's documented one."""
    seen = core.form_classes.get(form)
    if seen is not None:
        return seen
    if form == RAW:
        try:
            return importlib.import_module(f"{core.provider}._legacy_response").LegacyAPIResponse  # openai
        except ImportError:
            pass
    module = importlib.import_module(f"{core.provider}._response")
    return module.AsyncAPIResponse if core.is_async else module.APIResponse


def build_response(core: WrappedClient, endpoint: Endpoint, form: str, result: Any, kwargs: Mapping[str, Any]) -> Any:
    """The SDK's response object of `form` around `result` (a hit, or the object a waiting caller shares).

    Its HTTP response is real: the stored JSON (or, for a stream, the recorded SSE body) with status 200 and
    an ``x-agentcache: hit`` header, so `.parse(to=dict)`, `.json()`, `.headers` and `.status_code` work.
    """
    cls = _response_class(core, form)
    module = sys.modules[cls.__module__]
    http = getattr(module, "httpx2", None) or module.httpx
    streamed = bool(kwargs.get("stream")) and endpoint.chunk is not None
    url = core.base_url.rstrip("/") + endpoint.url
    if streamed:
        response = result.response
        response.headers[HIT_HEADER] = "hit"
    else:
        body = json.dumps(result.model_dump(mode="json", exclude_unset=True, warnings=False)).encode()
        headers = {"content-type": "application/json", HIT_HEADER: "hit"}
        response = http.Response(200, headers=headers, content=body, request=http.Request("POST", url))
    options = importlib.import_module(f"{core.provider}._models").FinalRequestOptions.construct(
        method="post", url=endpoint.url
    )
    cast_to = endpoint.result()
    stream_cls = endpoint.stream_cls(core.is_async) if streamed and endpoint.stream_cls is not None else None
    answer = cls(
        raw=response,
        cast_to=cast_to,
        client=core.raw,
        stream=streamed,
        stream_cls=stream_cls,
        options=options,
        retries_taken=0,
    )
    answer._parsed_by_type[cast_to] = result
    return mark_hit(answer) if is_cache_hit(result) else answer


class _Streaming:
    """`with client....with_streaming_response.create(...) as response:` over the cached endpoint."""

    def __init__(
        self, core: WrappedClient, endpoint: Endpoint, target: Callable[..., Any], kwargs: dict[str, Any]
    ) -> None:
        self._core, self._endpoint, self._target, self._kwargs = core, endpoint, target, kwargs
        self._manager: Any = None  # the SDK's context manager of a real call
        self._response: Any = None

    def __enter__(self) -> Any:
        captured: list[Any] = []

        def call(**kwargs: Any) -> Any:
            manager = self._target(**kwargs)
            response = manager.__enter__()
            self._manager = manager
            captured.append(response)
            try:
                return response.parse()
            except BaseException:
                self._manager = None
                manager.__exit__(*sys.exc_info())
                raise

        result = self._core.call(self._endpoint, call, self._kwargs)
        self._response = _answer(self._core, self._endpoint, "with_streaming_response", result, captured, self._kwargs)
        return self._response

    def __exit__(self, *exc: Any) -> Any:
        if self._manager is not None:
            return self._manager.__exit__(*exc)
        if self._response is not None:
            self._response.close()
        return None


class _AsyncStreaming:
    """`async with client....with_streaming_response.create(...) as response:` over the cached endpoint."""

    def __init__(
        self, core: WrappedClient, endpoint: Endpoint, target: Callable[..., Any], kwargs: dict[str, Any]
    ) -> None:
        self._core, self._endpoint, self._target, self._kwargs = core, endpoint, target, kwargs
        self._manager: Any = None
        self._response: Any = None

    async def __aenter__(self) -> Any:
        captured: list[Any] = []

        async def call(**kwargs: Any) -> Any:
            manager = self._target(**kwargs)
            response = await manager.__aenter__()
            self._manager = manager
            captured.append(response)
            try:
                return await response.parse()
            except BaseException:
                self._manager = None
                await manager.__aexit__(*sys.exc_info())
                raise

        result = await self._core.acall(self._endpoint, call, self._kwargs)
        self._response = _answer(self._core, self._endpoint, "with_streaming_response", result, captured, self._kwargs)
        return self._response

    async def __aexit__(self, *exc: Any) -> Any:
        if self._manager is not None:
            return await self._manager.__aexit__(*exc)
        if self._response is not None:
            await self._response.close()
        return None
