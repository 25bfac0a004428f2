"""Public typing protocols: what a cached function looks like to a type checker.

A cached function defined in a class is a method at run time: read through an instance (``svc.lookup``) it is
bound like any function, so it is called without ``self``. Its ``__get__`` overloads say so: through an instance
it is a `CachedMethod` (or `AsyncCachedMethod`) whose call drops the first parameter, through the class it is the
`CachedFunction` itself, called with an explicit instance. The cache controls are the function's own, not bound:
``svc.lookup.cache_invalidate(svc, "k")`` takes the instance first, like ``Svc.lookup.cache_invalidate(svc, "k")``.

Every cached function, sync or async, has both forms of its management methods: ``cache_clear`` and
``cache_invalidate`` block until the store answered (usable anywhere), ``acache_clear`` and ``acache_invalidate``
are awaitable (use them on an event loop). A type checker flags an awaited blocking form (a `bool` is not
awaitable) and an awaitable form left un-awaited (``unused-coroutine``).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, overload

from agentcache.keys.namespaces import NamespaceTarget
from agentcache.stats.info import CacheInfo

__all__ = ["AsyncCachedFunction", "AsyncCachedMethod", "CachedFunction", "CachedMethod", "KeyBuilder"]

P = ParamSpec("P")
R_co = TypeVar("R_co", covariant=True)
S_contra = TypeVar("S_contra", contravariant=True)
# Fresh variables for the self-types of `__get__` (reusing the class's own P and R_co there defeats pyright).
_Q = ParamSpec("_Q")
_S = TypeVar("_S")
_T = TypeVar("_T")

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

    async def acache_clear(self, *, namespace: NamespaceTarget = None) -> None:
        """Awaitable `cache_clear`."""
        ...

    def cache_key(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """The key these arguments map to (in the current namespace)."""
        ...

    def cache_invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Delete the entry of these arguments; return whether one existed."""
        ...

    async def acache_invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Awaitable `cache_invalidate`."""
        ...

    @overload
    def __get__(self, instance: None, owner: type[Any], /) -> CachedFunction[P, R_co]: ...
    @overload
    def __get__(
        self: CachedFunction[Concatenate[_S, _Q], _T], instance: _S, owner: type[Any] | None = None, /
    ) -> CachedMethod[_S, _Q, _T]: ...
    @overload
    def __get__(self, instance: object, owner: type[Any] | None = None, /) -> CachedFunction[P, R_co]: ...
    def __get__(self, instance: object, owner: type[Any] | None = None, /) -> Any:
        """Through an instance: a `CachedMethod` without the first parameter; through the class: itself.

        The last overload keeps a ``@staticmethod`` over a cached function callable through an instance.
        """
        ...


class CachedMethod(Protocol[S_contra, P, R_co]):
    """A cached function read through an instance (``svc.lookup``): called without ``self``.

    ``cache_key`` and ``cache_invalidate`` are the function's own and take the instance first.
    """

    __name__: str
    __qualname__: str

    @property
    def __wrapped__(self) -> Callable[Concatenate[S_contra, P], R_co]: ...

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...

    def cache_info(self) -> CacheInfo:
        """Hits, misses, errors and savings of this function in this process (all instances)."""
        ...

    def cache_clear(self) -> None:
        """Delete every entry of this function (all instances and namespaces) and reset its counters."""
        ...

    async def acache_clear(self) -> None:
        """Awaitable `cache_clear`."""
        ...

    def cache_key(self, instance: S_contra, /, *args: P.args, **kwargs: P.kwargs) -> str:
        """The key of a call on `instance` with these arguments (in the current namespace)."""
        ...

    def cache_invalidate(self, instance: S_contra, /, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Delete the entry of a call on `instance` with these arguments; return whether one existed."""
        ...

    async def acache_invalidate(self, instance: S_contra, /, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Awaitable `cache_invalidate`."""
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

    async def acache_clear(self, *, namespace: NamespaceTarget = None) -> None:
        """Awaitable `cache_clear`."""
        ...

    def cache_key(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """The key these arguments map to (in the current namespace)."""
        ...

    def cache_invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Delete the entry of these arguments; return whether one existed."""
        ...

    async def acache_invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Awaitable `cache_invalidate`."""
        ...

    @overload
    def __get__(self, instance: None, owner: type[Any], /) -> AsyncCachedFunction[P, R_co]: ...
    @overload
    def __get__(
        self: AsyncCachedFunction[Concatenate[_S, _Q], _T], instance: _S, owner: type[Any] | None = None, /
    ) -> AsyncCachedMethod[_S, _Q, _T]: ...
    @overload
    def __get__(self, instance: object, owner: type[Any] | None = None, /) -> AsyncCachedFunction[P, R_co]: ...
    def __get__(self, instance: object, owner: type[Any] | None = None, /) -> Any:
        """Through an instance: an `AsyncCachedMethod` without the first parameter; through the class: itself."""
        ...


class AsyncCachedMethod(Protocol[S_contra, P, R_co]):
    """A cached coroutine function read through an instance: called without ``self``.

    ``cache_key`` and ``cache_invalidate`` are the function's own and take the instance first.
    """

    __name__: str
    __qualname__: str

    @property
    def __wrapped__(self) -> Callable[Concatenate[S_contra, P], Coroutine[Any, Any, R_co]]: ...

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R_co]: ...

    def cache_info(self) -> CacheInfo:
        """Hits, misses, errors and savings of this function in this process (all instances)."""
        ...

    def cache_clear(self) -> None:
        """Delete every entry of this function (all instances and namespaces) and reset its counters."""
        ...

    async def acache_clear(self) -> None:
        """Awaitable `cache_clear`."""
        ...

    def cache_key(self, instance: S_contra, /, *args: P.args, **kwargs: P.kwargs) -> str:
        """The key of a call on `instance` with these arguments (in the current namespace)."""
        ...

    def cache_invalidate(self, instance: S_contra, /, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Delete the entry of a call on `instance` with these arguments; return whether one existed."""
        ...

    async def acache_invalidate(self, instance: S_contra, /, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Awaitable `cache_invalidate`."""
        ...
