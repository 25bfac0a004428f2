"""LangChain: ``set_llm_cache(LLMCache())``, a semantic variant, and an agent middleware for ``create_agent``.

* `LLMCache` implements LangChain's `BaseCache` (``lookup``/``update``/``clear`` and their async faces) over an
  agentcache store: every chat model and LLM that honours LangChain's cache is served from it. The key is the
  pair ``(prompt, llm_string)``: LangChain's serialized messages and its string of the model's parameters, so
  two models, temperatures or tool sets never share an entry.
* `SemanticLLMCache` adds paraphrase hits (`@semantic_cached`): the last human message is the query, everything
  else (the model's parameters, earlier messages) must match exactly.
* `CacheMiddleware` is a LangChain v1 agent middleware: ``create_agent(model, tools, middleware=[CacheMiddleware()])``
  caches each model call (tool-call turns included) and each tool call, through ``wrap_model_call`` and
  ``wrap_tool_call``.

Everything goes through `agentcache.CacheLayer` (keys, namespaces, TTL, tags, stats, single flight). Values are
stored as LangChain's own dict forms (``message_to_dict``, ``Generation.model_dump``) and rebuilt by class name
from a fixed list of LangChain classes: never pickled, never ``langchain_core.load`` (which can build any
allowed class with any arguments).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.caches import BaseCache
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage, messages_from_dict
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation, GenerationChunk

import agentcache
from agentcache.durations import TTL, parse_ttl
from agentcache.engine.layer import MISS
from agentcache.errors import KeyEncodingError, MissingDependencyError
from agentcache.integrations import _handoff

if TYPE_CHECKING:
    from langchain.agents.middleware import ModelRequest, ModelResponse
    from langgraph.prebuilt.tool_node import ToolCallRequest
    from langgraph.types import Command

__all__ = ["CacheMiddleware", "LLMCache", "SemanticLLMCache"]

log = logging.getLogger("agentcache")

RETURN_VAL_TYPE = Sequence[Generation]
_GENERATIONS: dict[str, type[Generation]] = {
    "Generation": Generation,
    "GenerationChunk": GenerationChunk,
    "ChatGeneration": ChatGeneration,
    "ChatGenerationChunk": ChatGenerationChunk,
}


# -- values ------------------------------------------------------------------------------------------------


def encode_message(message: BaseMessage) -> dict[str, Any]:
    """A message as JSON data (``message_to_dict`` in JSON mode), without its run-specific ``id``."""
    data = message.model_dump(mode="json")
    data.pop("id", None)
    return {"type": message.type, "data": data}


def encode_generations(generations: Sequence[Generation]) -> list[dict[str, Any]]:
    """LangChain generations as JSON data: ``{"kind", "text", "generation_info", "message"}`` each."""
    out: list[dict[str, Any]] = []
    for g in generations:
        entry: dict[str, Any] = {"kind": type(g).__name__, "generation_info": g.generation_info}
        if isinstance(g, ChatGeneration):
            entry["message"] = encode_message(g.message)
        else:
            entry["text"] = g.text
        out.append(entry)
    return out


def decode_generations(data: Any) -> list[Generation]:
    """Rebuild what `encode_generations` stored; raises `ValueError`/`TypeError`/`KeyError` on anything else."""
    out: list[Generation] = []
    for entry in data:
        cls = _GENERATIONS[entry["kind"]]
        if issubclass(cls, ChatGeneration):
            (message,) = messages_from_dict([entry["message"]])
            out.append(cls(message=message, generation_info=entry["generation_info"]))
        else:
            out.append(cls(text=entry["text"], generation_info=entry["generation_info"]))
    return out


def _refused(message: BaseMessage) -> bool:
    """A refusal or a malformed tool call: never stored (a retry may do better)."""
    if not isinstance(message, AIMessage):
        return False
    return bool(message.additional_kwargs.get("refusal")) or bool(message.invalid_tool_calls)


def _cacheable_generations(generations: Sequence[Generation]) -> bool:
    return bool(generations) and not any(isinstance(g, ChatGeneration) and _refused(g.message) for g in generations)


def _stored_form(generations: Sequence[Generation]) -> list[dict[str, Any]] | None:
    """What `LLMCache` stores for an update (`None`: nothing: a refusal or a malformed tool call)."""
    return encode_generations(generations) if _cacheable_generations(generations) else None


def _decoded(data: Any, what: str) -> list[Generation] | None:
    if data is None:
        return None
    try:
        return decode_generations(data)
    except (KeyError, TypeError, ValueError) as exc:  # an entry of another version: a miss, never an error
        log.warning("agentcache: ignoring a %s entry that does not decode as LangChain generations: %s", what, exc)
        return None


# -- set_llm_cache --------------------------------------------------------------------------------------------


class LLMCache(BaseCache):
    """LangChain's LLM cache on an agentcache store: ``set_llm_cache(LLMCache(backend="redis://..."))``.

    Args:
        backend: a URL (``"sqlite:///path.db"``, ``"redis://..."``, ``"memory://"``), backend object or
            `agentcache.Cache`; default: the configured store.
        namespace: the namespace of the entries (default: the current `agentcache.namespace()`).
        ttl: entry lifetime (seconds, timedelta or ``"1h"``); default: the configured TTL.
        tags: tags every entry carries, for ``agentcache.invalidate(tags=[...])``.
        version: bump it to stop reading older entries.
        name: the name of this cache in keys and stats.
        single_flight: concurrent identical calls make one request (see below).
        lock_ttl: the longest the others wait for that request (seconds, ``"2m"``; default 60 s).

    Single flight: LangChain looks up, calls the model on a miss, then updates. A lookup that misses while an
    identical call is in flight (in this process; across processes on Redis) waits for that call's update and
    returns its generations; a call that fails (LangChain's ``on_llm_error``, or the end of its asyncio task)
    releases its waiters at once, and each calls the model itself. So a miss is a promise: code calling
    ``lookup`` by hand must ``update`` after a miss (or pass ``single_flight=False``).

    ``clear()`` removes this cache's entries only (in its namespace), never the rest of the store.
    """

    def __init__(
        self,
        *,
        backend: Any = None,
        namespace: str | None = None,
        ttl: TTL = None,
        tags: Collection[str] = (),
        version: str | int | None = None,
        name: str = "langchain.llm_cache",
        single_flight: bool = True,
        lock_ttl: TTL = 60.0,
    ) -> None:
        self.namespace = namespace
        self.layer = agentcache.CacheLayer(
            name,
            layer="langchain",
            namespace=namespace,
            version=version,
            backend=backend,
            ttl=ttl,
            tags=tuple(tags),
            cache_if=_is_value,
            single_flight=single_flight,
            lock_ttl=lock_ttl,
        )
        policy = self.layer.policy
        self._handoff = _handoff.Handoff(self.layer, policy.lock_ttl, policy.cache_if) if single_flight else None
        if single_flight:
            _report_errors()

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """The cached generations of this prompt and model configuration (or those of an identical call in
        flight, once it finished), or `None`."""
        request = (prompt, llm_string)
        data = self.layer.get(request) if self._handoff is None else self._handoff.lookup(request)
        return _decoded(data, "LLMCache")

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Store the generations (refusals and malformed tool calls are not stored)."""
        data = _stored_form(return_val)
        if self._handoff is not None:
            self._handoff.update((prompt, llm_string), data)
        elif data is not None:
            self.layer.set((prompt, llm_string), data)

    def clear(self, **kwargs: Any) -> None:
        """Remove every entry of this cache (its name and namespace)."""
        self.layer.clear(namespace=self.namespace)

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """Async `lookup`."""
        request = (prompt, llm_string)
        data = await (self.layer.aget(request) if self._handoff is None else self._handoff.alookup(request))
        return _decoded(data, "LLMCache")

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Async `update`."""
        data = _stored_form(return_val)
        if self._handoff is not None:
            await self._handoff.aupdate((prompt, llm_string), data)
        elif data is not None:
            await self.layer.aset((prompt, llm_string), data)

    async def aclear(self, **kwargs: Any) -> None:
        """Async `clear`."""
        await self.layer.aclear(namespace=self.namespace)


def _is_value(value: Any) -> bool:
    return value is not None


class _ErrorReporter(BaseCallbackHandler):
    """Added to every LangChain run once an `LLMCache` exists: a model call that failed gave no update, so the
    lookups waiting for it are released (they call the model themselves)."""

    run_inline = True  # called on the failed call's own thread (and event loop), where its lookup was made
    ignore_chain = ignore_agent = ignore_retriever = ignore_chat_model = ignore_retry = ignore_custom_event = True

    def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        """Release the lookups waiting for calls led here (this thread, this task, this context's leader)."""
        _handoff.abandon_here()


_reporting: list[_ErrorReporter] = []


def _report_errors() -> None:
    """Register `_ErrorReporter` with LangChain's callback configuration (once per process)."""
    if _reporting:
        return
    from contextvars import ContextVar

    from langchain_core.tracers.context import register_configure_hook

    reporter = _ErrorReporter()
    _reporting.append(reporter)
    register_configure_hook(ContextVar("agentcache_llm_errors", default=reporter), inheritable=False)


# -- semantic variant -----------------------------------------------------------------------------------------


_NOT_FOUND = {"agentcache": "not found"}  # what a lookup's compute returns: in mode("read") it is never stored


def _split_prompt(prompt: str) -> tuple[str, str]:
    """``(query, context)`` of a LangChain prompt: the last human message's text and everything before it.

    A chat model's prompt is ``dumps(messages)``; an LLM's is the text itself (all query, no context).
    """
    import json

    try:
        data = json.loads(prompt)
    except ValueError:
        return prompt, ""
    if not isinstance(data, list):
        return prompt, ""
    for i in range(len(data) - 1, -1, -1):
        item = data[i]
        if not isinstance(item, dict) or (item.get("id") or [""])[-1] not in ("HumanMessage", "HumanMessageChunk"):
            continue
        content = (item.get("kwargs") or {}).get("content")
        if not isinstance(content, str):
            break  # multimodal content: compared exactly
        kwargs = {k: v for k, v in (item.get("kwargs") or {}).items() if k != "content"}
        rest = [*data[:i], {**item, "kwargs": kwargs}, *data[i + 1 :]]
        return content, json.dumps(rest, sort_keys=True)
    return prompt, ""


class SemanticLLMCache(BaseCache):
    """`LLMCache` with paraphrase hits: a question worded differently gets the cached answer.

    The last human message is the query (embedded and compared); the model's configuration and every other
    message must be exactly the same. Takes `LLMCache`'s options plus ``threshold`` and the other options of
    `agentcache.semantic_cached` (``embedder``, ``guards``, ``judge``, ``max_wrong``, ...).

    Single flight, as in `LLMCache`: a lookup that misses while an identical prompt (same query text, same
    configuration and earlier messages) is being answered waits for that call's update, in this process
    (`lock_ttl` at most), and a call that fails releases its waiters. As there, a miss is a promise: code calling
    ``lookup`` by hand must ``update`` after a miss (or pass ``single_flight=False``). Concurrent paraphrases do
    not coalesce: neither is cached yet.
    """

    def __init__(
        self,
        *,
        backend: Any = None,
        namespace: str | None = None,
        ttl: TTL = None,
        tags: Collection[str] = (),
        version: str | int | None = None,
        threshold: float | None = None,
        name: str = "langchain.semantic_llm_cache",
        single_flight: bool = True,
        lock_ttl: TTL = 60.0,
        **semantic_options: Any,
    ) -> None:
        def answer(query: str, llm_string: str, context: str, compute: Callable[[], Any]) -> Any:
            return compute()

        async def aanswer(query: str, llm_string: str, context: str, compute: Callable[[], Any]) -> Any:
            result = compute()
            return (await result) if inspect.isawaitable(result) else result

        options: dict[str, Any] = {
            "threshold": threshold,
            "query": "query",
            "ignore": ("compute",),
            "backend": backend,
            "namespace": namespace,
            "ttl": ttl,
            "tags": tuple(tags),
            "version": version if version is not None else 1,
            "cache_if": _is_value,
            "single_flight": single_flight,
            "lock_ttl": lock_ttl,
            **semantic_options,
        }
        self._name = name
        self.namespace = namespace
        self._answer = agentcache.semantic_cached(name=name, **options)(answer)
        self._aanswer = agentcache.semantic_cached(name=name, **options)(aanswer)
        self._target = _AnswerTarget(self._answer, self._aanswer)
        self._handoff = (
            _handoff.Handoff(self._target, parse_ttl(lock_ttl) or 60.0, _is_value) if single_flight else None
        )
        if single_flight:
            _report_errors()

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """The generations cached for this prompt or a paraphrase of it (or those of an identical call in
        flight, once it finished), or `None`."""
        request = _semantic_request(prompt, llm_string)
        data = self._target.read(request) if self._handoff is None else self._handoff.lookup(request)
        return _decoded(data, "SemanticLLMCache")

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Store the generations under this prompt (and its vector)."""
        request = _semantic_request(prompt, llm_string)
        encoded = encode_generations(return_val) if _cacheable_generations(return_val) else None
        if self._handoff is not None:
            self._handoff.update(request, encoded)
        elif encoded is not None:
            self._target.set(request, encoded)

    def clear(self, **kwargs: Any) -> None:
        """Remove every entry of this cache."""
        self._answer.cache_clear(namespace=self.namespace)

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """Async `lookup`."""
        request = _semantic_request(prompt, llm_string)
        data = await (self._target.aread(request) if self._handoff is None else self._handoff.alookup(request))
        return _decoded(data, "SemanticLLMCache")

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Async `update`."""
        request = _semantic_request(prompt, llm_string)
        encoded = encode_generations(return_val) if _cacheable_generations(return_val) else None
        if self._handoff is not None:
            await self._handoff.aupdate(request, encoded)
        elif encoded is not None:
            await self._target.aset(request, encoded)

    async def aclear(self, **kwargs: Any) -> None:
        """Async `clear`."""
        await self._aanswer.acache_clear(namespace=self.namespace)


_SemanticRequest = tuple[str, str, str]  # (query, llm_string, context)


def _semantic_request(prompt: str, llm_string: str) -> _SemanticRequest:
    query, context = _split_prompt(prompt)
    return query, llm_string, context


def _not_found() -> Any:
    return _NOT_FOUND


class _AnswerTarget:
    """`SemanticLLMCache`'s decorated functions, read and written by request, and as a `Handoff` target.

    ``peek`` finds nothing: the ``call`` itself looks up (exact, then paraphrases) and is counted once, where a
    separate read would count a second miss.
    """

    def __init__(self, answer: Any, aanswer: Any) -> None:
        self.answer = answer
        self.aanswer = aanswer

    def read(self, request: _SemanticRequest) -> Any:
        """The cached value of `request` or a paraphrase of it, or `None` (nothing stored)."""
        with agentcache.mode("read"):
            data = self.answer(*request, _not_found)
        return None if data == _NOT_FOUND else data

    async def aread(self, request: _SemanticRequest) -> Any:
        """Async `read`."""
        with agentcache.mode("read"):
            data = await self.aanswer(*request, _not_found)
        return None if data == _NOT_FOUND else data

    def peek(self, request: _SemanticRequest) -> Any:
        return MISS

    async def apeek(self, request: _SemanticRequest) -> Any:
        return MISS

    def call(self, request: _SemanticRequest, compute: Callable[[], Any]) -> Any:
        return self.answer(*request, compute)

    async def acall(self, request: _SemanticRequest, compute: Callable[[], Awaitable[Any]]) -> Any:
        return await self.aanswer(*request, compute)

    def set(self, request: _SemanticRequest, value: Any) -> None:
        with agentcache.mode("write"):
            self.answer(*request, lambda: value)

    async def aset(self, request: _SemanticRequest, value: Any) -> None:
        with agentcache.mode("write"):
            await self.aanswer(*request, lambda: value)


# -- agent middleware -----------------------------------------------------------------------------------------


_SKIP = {"agentcache": "not stored"}  # what a compute returns for a result that must not be stored


def _not_skipped(value: Any) -> bool:
    return bool(value != _SKIP)


_schemas: dict[int, tuple[Any, Any]] = {}  # id(tool) -> (the tool, its schema): kept alive, so ids are not reused


def _tool_schema(tool: Any) -> Any:
    """A tool's OpenAI-style schema (what the model sees of it), made once per tool object: converting costs
    ~0.3 ms, a third of a cached model call."""
    if isinstance(tool, dict):
        return tool
    found = _schemas.get(id(tool))
    if found is not None and found[0] is tool:
        return found[1]
    from langchain_core.utils.function_calling import convert_to_openai_tool

    schema = convert_to_openai_tool(tool)
    if len(_schemas) >= 1024:  # tools made per request: bounded, converting again is cheap enough
        _schemas.clear()
    _schemas[id(tool)] = (tool, schema)
    return schema


def model_request_key(request: ModelRequest[Any]) -> dict[str, Any]:
    """What identifies a model call of an agent: the model's configuration (LangChain's ``llm_string``), the
    system message, the messages (without their ids), the tools' schemas, ``tool_choice`` and model settings."""
    llm_string = request.model._get_llm_string()
    return {
        "model": llm_string,
        "system": None if request.system_message is None else encode_message(request.system_message),
        "messages": [encode_message(m) for m in request.messages],
        "tools": [_tool_schema(t) for t in request.tools],
        "tool_choice": request.tool_choice,
        "settings": request.model_settings,
    }


if TYPE_CHECKING:
    from langchain.agents.middleware import AgentMiddleware as _AgentMiddleware
else:
    try:
        from langchain.agents.middleware import AgentMiddleware as _AgentMiddleware
    except ImportError:  # langchain-core alone: LLMCache works, CacheMiddleware says what it needs
        _AgentMiddleware = object


class CacheMiddleware(_AgentMiddleware[Any, Any, Any]):
    """A LangChain v1 agent middleware caching model calls and tool calls.

    ``create_agent(model, tools, middleware=[CacheMiddleware(backend="sqlite:///agent.db")])``: a model call
    with the same model configuration, system prompt, messages, tools and settings is answered from the cache
    (tool-call turns included); a tool call with the same name and arguments gets the stored `ToolMessage`
    (answering the current ``tool_call_id``). Refusals, malformed tool calls, error tool messages, ``Command``
    results and structured-output calls are never stored.

    Args:
        backend, namespace, ttl, tags, version: as for `LLMCache`.
        models: cache model calls (default true).
        tools: cache tool calls: true for every tool, false for none, or the names of the tools to cache
            (leave out tools with side effects).
        tool_ttl: lifetime of tool results (default: `ttl`).
    """

    def __init__(
        self,
        *,
        backend: Any = None,
        namespace: str | None = None,
        ttl: TTL = None,
        tags: Collection[str] = (),
        version: str | int | None = None,
        models: bool = True,
        tools: bool | Collection[str] = True,
        tool_ttl: TTL = None,
    ) -> None:
        if _AgentMiddleware is object:
            raise MissingDependencyError("langchain", "langchain")  # LangChain v1 agents
        common: dict[str, Any] = {"namespace": namespace, "version": version, "backend": backend, "tags": tuple(tags)}
        self.model_layer = agentcache.CacheLayer(
            "langchain.agent.model", layer="langchain", ttl=ttl, cache_if=_not_skipped, **common
        )
        self.tool_layer = agentcache.CacheLayer(
            "langchain.agent.tool",
            layer="tool",
            ttl=tool_ttl if tool_ttl is not None else ttl,
            cache_if=_not_skipped,
            **common,
        )
        self.cache_models = models
        self.cache_tools = tools

    # -- model calls ---------------------------------------------------------------------------------------

    def _model_key(self, request: ModelRequest[Any]) -> dict[str, Any] | None:
        if not self.cache_models or request.response_format is not None:
            return None  # a structured response is parsed by the agent from the call: not replayed here
        if not hasattr(request.model, "_get_llm_string"):  # not a LangChain chat model: nothing identifies it
            _warn_once("model call", KeyEncodingError(f"{type(request.model).__name__} has no LLM string"))
            return None
        return model_request_key(request)

    @staticmethod
    def _encode_response(response: Any) -> Any:
        from langchain.agents.middleware import ModelResponse

        if type(response) is not ModelResponse or response.structured_response is not None:
            return _SKIP
        if not response.result or any(_refused(m) for m in response.result):
            return _SKIP
        return {"messages": [encode_message(m) for m in response.result]}

    @staticmethod
    def _decode_response(data: Any) -> ModelResponse[Any]:
        from langchain.agents.middleware import ModelResponse

        return ModelResponse(result=messages_from_dict(data["messages"]))

    def wrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], ModelResponse[Any]]
    ) -> Any:
        """Serve the model call from the cache, or call the model and store its answer."""
        key = self._model_key(request)
        if key is None:
            return handler(request)
        attempt = _Attempt(lambda: handler(request), self._encode_response)
        try:
            data = self.model_layer.call(key, attempt.compute)
        except KeyEncodingError as exc:
            return attempt.uncached(exc, "model call")
        return attempt.result if attempt.ran else self._decode_response(data)

    async def awrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]]
    ) -> Any:
        """Async `wrap_model_call`."""
        key = self._model_key(request)
        if key is None:
            return await handler(request)
        attempt = _AsyncAttempt(lambda: handler(request), self._encode_response)
        try:
            data = await self.model_layer.acall(key, attempt.compute)
        except KeyEncodingError as exc:
            return await attempt.uncached(exc, "model call")
        return attempt.result if attempt.ran else self._decode_response(data)

    # -- tool calls ----------------------------------------------------------------------------------------

    def _tool_key(self, request: ToolCallRequest) -> dict[str, Any] | None:
        call = request.tool_call
        name = call["name"]
        tools = self.cache_tools
        if tools is False or (tools is not True and name not in tools):
            return None
        return {"tool": name, "args": call["args"]}

    @staticmethod
    def _encode_tool_result(result: Any) -> Any:
        if type(result) is not ToolMessage or result.status == "error":
            return _SKIP  # a Command changes the graph's state: it is not a value to replay
        data = result.model_dump(mode="json")
        for field in ("id", "tool_call_id"):
            data.pop(field, None)
        return data

    @staticmethod
    def _decode_tool_result(data: Any, request: ToolCallRequest) -> ToolMessage:
        return ToolMessage(**{**data, "tool_call_id": request.tool_call["id"]})

    def wrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], ToolMessage | Command[Any]]
    ) -> ToolMessage | Command[Any]:
        """Serve the tool call from the cache, or run the tool and store its message."""
        key = self._tool_key(request)
        if key is None:
            return handler(request)
        attempt = _Attempt(lambda: handler(request), self._encode_tool_result)
        try:
            data = self.tool_layer.call(key, attempt.compute)
        except KeyEncodingError as exc:
            out: ToolMessage | Command[Any] = attempt.uncached(exc, "tool call")
            return out
        if attempt.ran:
            out = attempt.result
            return out
        return self._decode_tool_result(data, request)

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
    ) -> ToolMessage | Command[Any]:
        """Async `wrap_tool_call`."""
        key = self._tool_key(request)
        if key is None:
            return await handler(request)
        attempt = _AsyncAttempt(lambda: handler(request), self._encode_tool_result)
        try:
            data = await self.tool_layer.acall(key, attempt.compute)
        except KeyEncodingError as exc:
            out: ToolMessage | Command[Any] = await attempt.uncached(exc, "tool call")
            return out
        if attempt.ran:
            out = attempt.result
            return out
        return self._decode_tool_result(data, request)


_warned: set[str] = set()


class _Attempt:
    """One cached call through a middleware hook: the real call as the layer's compute (its result kept, so a
    miss returns LangChain's own object), or the real call alone when the request has no key."""

    def __init__(self, run: Callable[[], Any], encode: Callable[[Any], Any]) -> None:
        self.run = run
        self.encode = encode
        self.started = False
        self.ran = False
        self.result: Any = None

    def compute(self) -> Any:
        self.started = True
        self.result = self.run()
        self.ran = True
        return self.encode(self.result)

    def uncached(self, exc: KeyEncodingError, what: str) -> Any:
        """After `KeyEncodingError`: raise it if the call itself raised it, else make the call uncached."""
        if self.started:
            raise exc
        _warn_once(what, exc)
        return self.run()


class _AsyncAttempt(_Attempt):
    """`_Attempt` for the async hooks."""

    run: Callable[[], Awaitable[Any]]

    async def compute(self) -> Any:
        self.started = True
        self.result = await self.run()
        self.ran = True
        return self.encode(self.result)

    async def uncached(self, exc: KeyEncodingError, what: str) -> Any:
        if self.started:
            raise exc
        _warn_once(what, exc)
        return await self.run()


def _warn_once(what: str, exc: KeyEncodingError) -> None:
    if what not in _warned:
        _warned.add(what)
        log.warning("agentcache: CacheMiddleware passes a %s through uncached: %s", what, exc)
