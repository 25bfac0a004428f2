"""`@response_cached`: exact LLM responses, keyed on everything that changes the output."""

from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine

from agentcache.decorators._build import build

TYPE_CHECKING = False
if not TYPE_CHECKING:
    from agentcache.decorators._overload import overload
else:
    from typing import Any, ParamSpec, TypeVar, overload

    if sys.version_info >= (3, 11):
        from typing import Unpack
    else:
        from typing_extensions import Unpack

    from agentcache.decorators._options import CacheDecorator, CacheOptions
    from agentcache.decorators.protocols import AsyncCachedFunction, CachedFunction

    P = ParamSpec("P")
    R = TypeVar("R")

__all__ = ["TRANSPORT_FIELDS", "response_cached"]


# Request fields that change how a request travels or is billed, never what the model answers. They are left
# out of the key; everything else (model, messages with tool calls and images, tools, tool_choice, temperature,
# top_p, max_tokens, stop, seed, response_format, n, logprobs, reasoning effort, extra_body, ...) is in it.
TRANSPORT_FIELDS = frozenset(
    {
        "timeout",
        "request_timeout",
        "user",
        "metadata",
        "extra_headers",
        "extra_query",
        "api_key",
        "api_base",
        "base_url",
        "organization",
        "project",
        "idempotency_key",
        "request_id",
        "max_retries",
        "service_tier",
        "prompt_cache_key",
        "safety_identifier",
        "store",
    }
)


@overload
def response_cached(func: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncCachedFunction[P, R]: ...  # type: ignore[overload-overlap]
@overload
def response_cached(func: Callable[P, R], /) -> CachedFunction[P, R]: ...
@overload
def response_cached(**options: Unpack[CacheOptions]) -> CacheDecorator: ...
def response_cached(func: Callable[..., Any] | None = None, /, **options: Unpack[CacheOptions]) -> Any:
    """Cache exact LLM responses of a function that takes a request (messages, model, parameters).

    Every argument is part of the key except transport-only fields (`TRANSPORT_FIELDS`: timeouts, ``user``,
    ``metadata``, extra headers, API keys, ...). ``stream`` is left out only for generator functions, whose
    result is a stream either way. Parameters the function does not receive stay out of the key: an omitted
    provider parameter never collides with an explicit value. Usage found on results (OpenAI and Anthropic
    shapes, SDK objects or dicts) is recorded, so hits report tokens and dollars saved. Entries do not expire
    unless ``ttl=`` (or ``AGENTCACHE_TTL``) says so.

    Example::

        @agentcache.response_cached()
        def ask(messages: list[dict], model: str = "gpt-4o", temperature: float = 0.0) -> dict: ...
    """
    return build(
        "response",
        func,
        options,
        {"drop": TRANSPORT_FIELDS, "drop_when_streaming": {"stream"}, "track_usage": True},
    )
