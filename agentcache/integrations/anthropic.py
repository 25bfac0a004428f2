"""Cached `anthropic.Anthropic` / `anthropic.AsyncAnthropic` clients: `agentcache.wrap(Anthropic())`.

Cached: `messages.create` and `beta.messages.create`, streamed (`stream=True`, replayed as the SDK's `Stream` of
raw events) or not, also through `.with_raw_response` / `.with_streaming_response`, and the `messages.stream(...)`
/ `beta.messages.stream(...)` helpers (the SDK's own stream managers over the cached stream). With
`prompt_cache=True` (or `"1h"`), `cache_control` breakpoints are placed for you (`agentcache.decorators.prompt`).
"""

from __future__ import annotations

from typing import Any

from agentcache.integrations._wrap import Coverage, Endpoint, ResourceProxy, WrapOptions, mark_cached, wrap_client

__all__ = ["COVERAGE", "ENDPOINTS", "wrap_anthropic"]


def _message() -> type:
    from anthropic.types import Message

    return Message


def _event() -> Any:
    from anthropic.types import RawMessageStreamEvent

    return RawMessageStreamEvent


def _beta_message() -> type:
    from anthropic.types.beta import BetaMessage

    return BetaMessage


def _beta_event() -> Any:
    from anthropic.types.beta import BetaRawMessageStreamEvent

    return BetaRawMessageStreamEvent


def _stream_cls(is_async: bool) -> type:
    import anthropic

    return anthropic.AsyncStream if is_async else anthropic.Stream


ENDPOINTS = [
    Endpoint("messages.create", "anthropic.messages", "/v1/messages", _message, _event, _stream_cls),
    # `betas=[...]` is part of the key; the beta types rebuild the answer (Pydantic AI and LangChain call this)
    Endpoint(
        "beta.messages.create", "anthropic.messages", "/v1/messages?beta=true", _beta_message, _beta_event, _stream_cls
    ),
]

COVERAGE = Coverage(
    helpers=frozenset({"messages.stream", "beta.messages.stream"}),
    # Answers to prompts that are not cached: one warning per method, counted as bypasses.
    uncached=frozenset({"messages.parse", "beta.messages.parse", "beta.messages.thread", "beta.messages.tool_runner"}),
    # Token counting, batches, stored objects, account management and agent sessions: silent.
    passed=(
        "messages.count_tokens",
        "messages.batches.",
        "beta.messages.count_tokens",
        "beta.messages.batches.",
        "beta.agents.",
        "beta.compliance.",
        "beta.deployment_runs.",
        "beta.deployments.",
        "beta.dreams.",
        "beta.environments.",
        "beta.files.",
        "beta.memory_stores.",
        "beta.models.",
        "beta.organization.",
        "beta.sessions.",
        "beta.skills.",
        "beta.tunnels.",
        "beta.user_profiles.",
        "beta.vaults.",
        "beta.webhooks.",
        "files.",
        "models.",
        "organization.",
        "skills.",
        "user_profiles.",
    ),
)


def wrap_anthropic(client: Any, options: WrapOptions) -> Any:
    """Return a cached sibling of an `anthropic.Anthropic` / `AsyncAnthropic` client."""
    import anthropic
    from anthropic.lib import streaming

    is_async = isinstance(client, anthropic.AsyncAnthropic)
    twin = wrap_client(
        client,
        "anthropic",
        ENDPOINTS,
        options,
        is_async=is_async,
        coverage=COVERAGE,
        rewrap=lambda copy: wrap_anthropic(copy, options),
    )
    messages = twin.__dict__["messages"]
    messages.__dict__["stream"] = mark_cached(
        _stream_helper(messages, is_async, streaming.MessageStreamManager, streaming.AsyncMessageStreamManager)
    )
    beta = getattr(twin.__dict__.get("beta"), "messages", None)
    if isinstance(beta, ResourceProxy) and hasattr(streaming, "BetaMessageStreamManager"):
        beta.__dict__["stream"] = mark_cached(
            _stream_helper(beta, is_async, streaming.BetaMessageStreamManager, streaming.BetaAsyncMessageStreamManager)
        )
    return twin


def _stream_helper(messages: Any, is_async: bool, manager: type, amanager: type) -> Any:
    """`messages.stream(...)` over the cached `messages.create(stream=True)`: the SDK's own stream manager."""
    real = messages._real.stream
    core = messages._core
    path = messages._prefix + "stream"

    def stream(**kwargs: Any) -> Any:
        if kwargs.get("output_format") is not None:  # the SDK rewrites it into `output_config`: not cached
            core.bypass(path, path + "(output_format=...)")
            return real(**kwargs)
        kwargs.pop("output_format", None)
        if is_async:
            return amanager(messages.create(**kwargs, stream=True))
        return manager(lambda: messages.create(**kwargs, stream=True), **extra)

    extra = _manager_extras(manager)
    return stream


def _manager_extras(manager: type) -> dict[str, Any]:
    """`output_format=NOT_GIVEN` for SDKs whose `MessageStreamManager` takes it (anthropic >= 0.74 or so)."""
    import inspect

    from anthropic import NOT_GIVEN

    return {"output_format": NOT_GIVEN} if "output_format" in inspect.signature(manager).parameters else {}
