"""Cached `openai.OpenAI` / `openai.AsyncOpenAI` clients: `agentcache.wrap(OpenAI())`.

Cached: `chat.completions.create` and `responses.create` (streamed or not), `chat.completions.parse` (and the same
under `beta.chat.completions`), and `embeddings.create`, per input text through the `@embedding_cached` store: a
batch sends only the texts not cached yet. The `chat.completions.stream(...)` and `responses.stream(...)` helpers
run the SDK's own stream managers over the cached streams; `.with_raw_response` / `.with_streaming_response`
reach the same entries (`_forms`). `COVERAGE` classifies every other SDK method.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agentcache.integrations._hits import mark_hit
from agentcache.integrations._wrap import (
    Coverage,
    Endpoint,
    ResourceProxy,
    WrapOptions,
    build_model,
    mark_cached,
    wrap_client,
)

if TYPE_CHECKING:
    from agentcache.engine.layer import CacheLayer
    from agentcache.integrations._wrap import WrappedClient

__all__ = ["COVERAGE", "ENDPOINTS", "wrap_openai"]


def _chat_completion() -> type:
    from openai.types.chat import ChatCompletion

    return ChatCompletion


def _chat_chunk() -> type:
    from openai.types.chat import ChatCompletionChunk

    return ChatCompletionChunk


def _response() -> type:
    from openai.types.responses import Response

    return Response


def _response_event() -> Any:
    from openai.types.responses import ResponseStreamEvent

    return ResponseStreamEvent


def _embeddings() -> type:
    from openai.types import CreateEmbeddingResponse

    return CreateEmbeddingResponse


def _stream_cls(is_async: bool) -> type:
    import openai

    return openai.AsyncStream if is_async else openai.Stream


def _strip_parsed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_parsed(v) for k, v in value.items() if k not in ("parsed", "parsed_arguments")}
    if isinstance(value, list):
        return [_strip_parsed(v) for v in value]
    return value


def _rebuild_parsed(body: dict[str, Any], request: Mapping[str, Any]) -> Any:
    """Re-run the SDK's own structured-output parsing over the stored completion."""
    from openai import NOT_GIVEN
    from openai.lib._parsing._completions import parse_chat_completion
    from openai.types.chat import ChatCompletion

    completion = ChatCompletion.model_validate(_strip_parsed(body))
    return parse_chat_completion(
        response_format=request.get("response_format", NOT_GIVEN),
        input_tools=request.get("tools", NOT_GIVEN),
        chat_completion=completion,
    )


class _Embeddings:
    """`embeddings.create` through the embedding layer: one float32 entry per (model, text, dimensions)."""

    def __init__(self) -> None:
        self._layers: dict[tuple[int, str], CacheLayer] = {}

    def _layer(self, core: WrappedClient, model: str) -> CacheLayer:
        found = self._layers.get((id(core), model))
        if found is None:
            from agentcache.engine.layer import CacheLayer, make_policy

            options = core.options
            policy = make_policy(
                "embedding",
                name=f"openai.embeddings.create.{model}",
                namespace=options.namespace,
                ttl=options.ttl,
                backend=options.backend,
            )
            found = self._layers[(id(core), model)] = CacheLayer.from_policy(policy, policy.name or model)
        return found

    def plan(self, core: WrappedClient, kwargs: dict[str, Any]) -> tuple[CacheLayer, list[str], list[str]] | None:
        """The embedding core, texts and per-text keys of a request; `None` when it is not per-text cacheable."""
        from agentcache.engine.settings import get_settings

        texts = kwargs.get("input")
        if get_settings().disabled or not isinstance(kwargs.get("model"), str):
            return None
        batch = [texts] if isinstance(texts, str) else texts
        if not isinstance(batch, list) or not batch or not all(isinstance(t, str) for t in batch):
            return None  # token arrays pass through
        from agentcache.decorators.embedding import text_keys

        layer = self._layer(core, kwargs["model"])
        dims = kwargs.get("dimensions")
        others = {"dimensions": dims if isinstance(dims, int) else None, "$endpoint": core.base_url}
        keys = text_keys(layer.policy.version, kwargs["model"], layer.namespace_for((), {}), batch, others)
        return layer, batch, keys

    def call(self, core: WrappedClient, method: Any, kwargs: dict[str, Any]) -> Any:
        """The blocking face."""
        from agentcache.decorators.embedding import batch_flow
        from agentcache.engine.control import current
        from agentcache.engine.flow import run_sync

        planned = self.plan(core, kwargs)
        if planned is None:
            return method(**kwargs)
        ecore, batch, keys = planned
        fresh: list[Any] = []

        def compute(missing: list[str]) -> list[list[float]]:
            fresh.append(method(**{**kwargs, "input": missing}))
            return _vectors(fresh[-1])

        vectors = run_sync(batch_flow(ecore, keys, batch, current()), ecore.cache.store, compute)
        return _assemble(kwargs, batch, vectors, fresh)

    async def acall(self, core: WrappedClient, method: Any, kwargs: dict[str, Any]) -> Any:
        """The awaitable face."""
        from agentcache.decorators.embedding import batch_flow
        from agentcache.engine.control import current
        from agentcache.engine.flow import run_async

        planned = self.plan(core, kwargs)
        if planned is None:
            return await method(**kwargs)
        ecore, batch, keys = planned
        fresh: list[Any] = []

        async def compute(missing: list[str]) -> list[list[float]]:
            fresh.append(await method(**{**kwargs, "input": missing}))
            return _vectors(fresh[-1])

        vectors = await run_async(batch_flow(ecore, keys, batch, current()), ecore.cache.store, compute)
        return _assemble(kwargs, batch, vectors, fresh)


def _texts_stub(texts: list[str]) -> Any:
    """Stands for `embeddings.create` in the embedding core (never called)."""
    raise NotImplementedError


def _vectors(response: Any) -> list[list[float]]:
    return [_floats(d.embedding) for d in sorted(response.data, key=lambda d: d.index)]


def _floats(embedding: Any) -> list[float]:
    """A vector as floats; `encoding_format="base64"` answers carry packed little-endian float32."""
    if isinstance(embedding, str):
        import base64
        import struct

        raw = base64.b64decode(embedding)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    return list(embedding)


def _encoded(vector: list[float], encoding_format: Any) -> Any:
    """The vector as the request asked for it: floats, or base64 float32 for `encoding_format="base64"`."""
    if encoding_format != "base64":
        return vector
    import base64
    import struct

    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def _assemble(kwargs: dict[str, Any], batch: list[str], vectors: list[list[float]], fresh: list[Any]) -> Any:
    """The SDK's own response when every text was computed in one call; else one assembled from the parts."""
    if fresh and len(_vectors(fresh[0])) == len(batch) == len(set(batch)):
        return fresh[0]
    from openai.types import CreateEmbeddingResponse

    tokens = sum(r.usage.prompt_tokens for r in fresh if r.usage is not None)
    body = {
        "object": "list",
        "model": fresh[0].model if fresh else kwargs["model"],
        "data": [
            {"object": "embedding", "index": i, "embedding": _encoded(v, kwargs.get("encoding_format"))}
            for i, v in enumerate(vectors)
        ],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    result = build_model(CreateEmbeddingResponse, body)  # base64 vectors are `str`, as the SDK builds them
    return result if fresh else mark_hit(result)


ENDPOINTS = [
    Endpoint(
        "chat.completions.create",
        "openai.chat",
        "/chat/completions",
        _chat_completion,
        _chat_chunk,
        _stream_cls,
    ),
    Endpoint("chat.completions.parse", "openai.chat", "/chat/completions", _chat_completion, rebuild=_rebuild_parsed),
    # `client.beta.chat.completions` is the same resource class (LangChain streams structured output through it)
    Endpoint(
        "beta.chat.completions.create",
        "openai.chat",
        "/chat/completions",
        _chat_completion,
        _chat_chunk,
        _stream_cls,
    ),
    Endpoint(
        "beta.chat.completions.parse", "openai.chat", "/chat/completions", _chat_completion, rebuild=_rebuild_parsed
    ),
    Endpoint("responses.create", "openai.responses", "/responses", _response, _response_event, _stream_cls),
    Endpoint("embeddings.create", "openai.embeddings", "/embeddings", _embeddings, custom=_Embeddings()),
]

COVERAGE = Coverage(
    helpers=frozenset({"chat.completions.stream", "beta.chat.completions.stream", "responses.stream"}),
    # Answers to prompts that are not cached: one warning per method, counted as bypasses.
    uncached=frozenset(
        {
            "completions.create",
            "responses.parse",
            "responses.compact",
            "beta.responses.create",
            "beta.responses.compact",
            "images.generate",
            "images.edit",
            "images.create_variation",
            "audio.speech.create",
            "audio.transcriptions.create",
            "audio.translations.create",
            "moderations.create",
            "decisions.create",
            "videos.create",
            "videos.create_and_poll",
            "videos.edit",
            "videos.extend",
            "videos.remix",
        }
    ),
    # Stored objects, account management and live sessions (no request/answer pair to cache): silent.
    passed=(
        "chat.completions.delete",
        "chat.completions.list",
        "chat.completions.retrieve",
        "chat.completions.update",
        "chat.completions.messages.",
        "beta.chat.completions.delete",
        "beta.chat.completions.list",
        "beta.chat.completions.retrieve",
        "beta.chat.completions.update",
        "beta.chat.completions.messages.",
        "responses.cancel",
        "responses.delete",
        "responses.retrieve",
        "responses.connect",
        "responses.input_items.",
        "responses.input_tokens.",
        "beta.responses.cancel",
        "beta.responses.delete",
        "beta.responses.retrieve",
        "beta.responses.connect",
        "beta.responses.input_items.",
        "beta.responses.input_tokens.",
        "beta.agents.",
        "beta.assistants.",
        "beta.chatkit.",
        "beta.realtime.",
        "beta.threads.",
        "audio.voice_consents.",
        "audio.voices.",
        "videos.create_character",
        "videos.delete",
        "videos.download_content",
        "videos.get_character",
        "videos.list",
        "videos.poll",
        "videos.retrieve",
        "admin.",
        "batches.",
        "containers.",
        "content_provenance_checks.",
        "conversations.",
        "evals.",
        "files.",
        "fine_tuning.",
        "live.",
        "models.",
        "realtime.",
        "safety.",
        "skills.",
        "uploads.",
        "vector_stores.",
        "webhooks.",
    ),
)


def wrap_openai(client: Any, options: WrapOptions) -> Any:
    """Return a cached sibling of an `openai.OpenAI` / `AsyncOpenAI` client."""
    import openai

    is_async = isinstance(client, openai.AsyncOpenAI)
    twin = wrap_client(
        client,
        "openai",
        ENDPOINTS,
        options,
        is_async=is_async,
        coverage=COVERAGE,
        rewrap=lambda copy: wrap_openai(copy, options),
    )
    for chat in (twin.chat, getattr(getattr(twin, "beta", None), "chat", None)):
        completions = getattr(chat, "completions", None)
        if isinstance(completions, ResourceProxy):  # older SDKs have no `beta.chat`
            completions.__dict__["stream"] = mark_cached(_stream_helper(completions, is_async))
    responses = twin.__dict__.get("responses")
    if responses is not None and hasattr(type(responses._real), "stream"):
        responses.__dict__["stream"] = mark_cached(_over_cached_create(responses, "stream"))
    return twin


def _over_cached_create(node: Any, name: str) -> Any:
    """The SDK's own helper method `name`, run with the cached resource as `self`, so its `create` is cached."""
    helper = getattr(type(node._real), name)

    def run(*args: Any, **kwargs: Any) -> Any:
        return helper(node, *args, **kwargs)

    return run


def _stream_helper(completions: Any, is_async: bool) -> Any:
    """`chat.completions.stream(...)` over the cached `create(stream=True)`: the SDK's own stream manager."""
    from openai import NOT_GIVEN
    from openai.lib._parsing._completions import type_to_response_format_param
    from openai.lib.streaming.chat import AsyncChatCompletionStreamManager, ChatCompletionStreamManager

    def stream(**kwargs: Any) -> Any:
        response_format = kwargs.pop("response_format", NOT_GIVEN)
        tools = kwargs.get("tools", NOT_GIVEN)
        if response_format is not NOT_GIVEN:
            kwargs["response_format"] = type_to_response_format_param(response_format)
        if is_async:
            return AsyncChatCompletionStreamManager(
                completions.create(**kwargs, stream=True), response_format=response_format, input_tools=tools
            )
        return ChatCompletionStreamManager(
            lambda: completions.create(**kwargs, stream=True), response_format=response_format, input_tools=tools
        )

    return stream
