"""Public typing protocols: what a cached function looks like to a type checker."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, Protocol, TypeVar

from .scope import NamespaceTarget
from .stats import CacheInfo

__all__ = ["AsyncCachedFunction", "CachedFunction", "KeyBuilder"]

P = ParamSpec("P")
R_co = TypeVar("R_co", covariant=True)

KeyBuilder = Callable[..., object]
"""A ``key=`` function: receives the call's arguments, returns anything the canonical encoder accepts."""


class CachedFunction(Protocol[P, R_co]):
    """A cached plain function (or sync/async generator function): same parameters, plus cache controls."""

    __name__: str
    __qualname__: str

    @property
    def __wrapped__(self) -> Callable[P, R_co]: ...

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...

    def cache_info(self) -> CacheInfo:
        """Hits, misses, errors and savings of this function in this process."""
        ...

    def cache_clear(self, *, namespace: NamespaceTarget = None) -> None:
        """Delete this function's entries: inside a `namespace()` block only that block's (and nested ones'),
        elsewhere or with ``namespace=agentcache.ALL`` every namespace's (then its counters are reset too)."""
        ...

    def cache_key(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """The key these arguments map to (in the current namespace)."""
        ...

    def cache_invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Delete the entry of these arguments; return whether one existed."""
        ...


class AsyncCachedFunction(Protocol[P, R_co]):
    """A cached coroutine function: awaitable call and invalidation."""

    __name__: str
    __qualname__: str

    @property
    def __wrapped__(self) -> Callable[P, Coroutine[Any, Any, R_co]]: ...

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R_co]: ...

    def cache_info(self) -> CacheInfo:
        """Hits, misses, errors and savings of this function in this process."""
        ...

    def cache_clear(self, *, namespace: NamespaceTarget = None) -> None:
        """Delete this function's entries: inside a `namespace()` block only that block's (and nested ones'),
        elsewhere or with ``namespace=agentcache.ALL`` every namespace's (then its counters are reset too)."""
        ...

    def cache_key(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """The key these arguments map to (in the current namespace)."""
        ...

    async def cache_invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Delete the entry of these arguments; return whether one existed."""
        ...
