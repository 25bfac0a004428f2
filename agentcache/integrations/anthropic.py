"""Cached `anthropic.Anthropic` / `anthropic.AsyncAnthropic` clients: `agentcache.wrap(Anthropic())`.

Cached: `messages.create`, streamed (`stream=True`, replayed as the SDK's `Stream` of raw events) or not,
and the `messages.stream(...)` helper (the SDK's own `MessageStreamManager` over the cached stream). With
`prompt_cache=True` (or `"1h"`), `cache_control` breakpoints are placed for you (`agentcache.prompt_cache`).
"""

from __future__ import annotations

from typing import Any

from agentcache.integrations._wrap import Endpoint, WrapOptions, wrap_client

__all__ = ["ENDPOINTS", "wrap_anthropic"]


def _message() -> type:
    from anthropic.types import Message

    return Message


def _event() -> Any:
    from anthropic.types import RawMessageStreamEvent

    return RawMessageStreamEvent


def _stream_cls(is_async: bool) -> type:
    import anthropic

    return anthropic.AsyncStream if is_async else anthropic.Stream


ENDPOINTS = [Endpoint("messages.create", "anthropic.messages", "/v1/messages", _message, _event, _stream_cls)]


def wrap_anthropic(client: Any, options: WrapOptions) -> Any:
    """Return a cached sibling of an `anthropic.Anthropic` / `AsyncAnthropic` client."""
    import anthropic

    is_async = isinstance(client, anthropic.AsyncAnthropic)
    twin = wrap_client(client, "anthropic", ENDPOINTS, options, is_async=is_async)
    messages = twin.__dict__["messages"]
    messages.__dict__["stream"] = _stream_helper(messages, is_async)
    return twin


def _stream_helper(messages: Any, is_async: bool) -> Any:
    """`messages.stream(...)` over the cached `messages.create(stream=True)`: the SDK's own stream manager."""
    from anthropic.lib.streaming import AsyncMessageStreamManager, MessageStreamManager

    real = messages._real.stream

    def stream(**kwargs: Any) -> Any:
        if kwargs.get("output_format") is not None:  # the SDK rewrites it into `output_config`: not cached
            return real(**kwargs)
        kwargs.pop("output_format", None)
        if is_async:
            return AsyncMessageStreamManager(messages.create(**kwargs, stream=True))
        return MessageStreamManager(lambda: messages.create(**kwargs, stream=True), **extra)

    extra = _manager_extras(MessageStreamManager)
    return stream


def _manager_extras(manager: type) -> dict[str, Any]:
    """`output_format=NOT_GIVEN` for SDKs whose `MessageStreamManager` takes it (anthropic >= 0.74 or so)."""
    import inspect

    from anthropic import NOT_GIVEN

    return {"output_format": NOT_GIVEN} if "output_format" in inspect.signature(manager).parameters else {}
