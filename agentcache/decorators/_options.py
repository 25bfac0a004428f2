"""The options every cache decorator accepts, typed once.

The decorators import it for type checkers only: its classes need `typing`, which a first hit never loads (#13).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Coroutine
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypedDict, TypeVar, overload

from agentcache.durations import TTL

if TYPE_CHECKING:
    from agentcache.backends.base import Backend
    from agentcache.decorators.protocols import AsyncCachedFunction, CachedFunction
    from agentcache.engine.cache import Cache

P = ParamSpec("P")
R = TypeVar("R")


class CacheOptions(TypedDict, total=False):
    """Keyword options of `tool_cached`, `response_cached` and the other decorators.

    ttl: seconds, a `timedelta`, or ``"30s"``/``"5m"``/``"1h"``/``"2d"``; `None` never expires; ``0`` stores
        nothing.
    tags: tags to invalidate by (``agentcache.invalidate(tags=[...])``), or a callable receiving the call's
        arguments and returning them.
    namespace: a namespace, or a callable receiving the call's arguments and returning one; nested inside any
        ``agentcache.namespace(...)`` block.
    key: a callable receiving the call's arguments and returning what identifies the call (replaces them).
    ignore: names of parameters left out of the key (e.g. ``("request_id",)`` or ``("self",)``).
    backend: a URL, a backend object or an `agentcache.Cache`; default: the configured store.
    cache_if: a predicate on the result; only results for which it is true are stored.
    version: bump it to stop reading entries written by an older version of the function.
    name: the function's name in keys and stats (default ``module.qualname``).
    single_flight: concurrent callers of one missing key share one call (default true).
    lock_ttl: how long a cross-process single-flight lock may be held (backends with locking, e.g. Redis).
    """

    ttl: TTL
    tags: Collection[str] | Callable[..., Collection[str]]
    namespace: str | Callable[..., str] | None
    key: Callable[..., object] | None
    ignore: Collection[str]
    backend: str | Backend | Cache | None
    cache_if: Callable[[Any], bool] | None
    version: str | int | None
    name: str | None
    single_flight: bool
    lock_ttl: TTL


class CacheDecorator(Protocol):
    """What a decorator called with options returns: it accepts sync and async functions alike."""

    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, func: Callable[P, Coroutine[Any, Any, R]], /
    ) -> AsyncCachedFunction[P, R]: ...

    @overload
    def __call__(self, func: Callable[P, R], /) -> CachedFunction[P, R]: ...
