"""`@tool_cached`: results of expensive tools (search, SQL, HTTP) with a per-tool TTL."""

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

__all__ = ["tool_cached"]


@overload
def tool_cached(func: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncCachedFunction[P, R]: ...  # type: ignore[overload-overlap]
@overload
def tool_cached(func: Callable[P, R], /) -> CachedFunction[P, R]: ...
@overload
def tool_cached(**options: Unpack[CacheOptions]) -> CacheDecorator: ...
def tool_cached(func: Callable[..., Any] | None = None, /, **options: Unpack[CacheOptions]) -> Any:
    """Cache a tool's results: every argument is part of the key; errors are never cached.

    Works on ``def``, ``async def`` and (async) generator functions; concurrent calls with the same
    arguments share one execution. See `CacheOptions` for the options.

    Example::

        @agentcache.tool_cached(ttl="1h", tags=["search"])
        async def search_web(query: str) -> str: ...

        search_web.cache_info(); search_web.cache_invalidate("llm caching"); search_web.cache_clear()
    """
    return build("tool", func, options, {})
