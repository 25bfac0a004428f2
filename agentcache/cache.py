"""`Cache`: one store (a backend behind the fail-open wrapper) that decorators read and write.

Most users never build one: decorators use the default store from `agentcache.configure()` / the environment,
or the URL or backend given as ``backend=``. Stores are opened lazily on first use and shared by URL, so
every function decorated with ``backend="redis://..."`` uses one connection pool.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from . import _fork
from .config import get_settings
from .keys import KEY_PREFIX, namespace_prefixes
from .stats import Counters

if TYPE_CHECKING:
    from .backends.base import Backend

__all__ = ["Cache", "bump_epoch", "close_all", "default_cache"]


def bump_epoch() -> None:
    """Mark, in every open store, that an invalidation is happening in this process.

    Stores with generations (memory, SQLite, Redis) do not need it: their invalidations fence writes
    themselves. It serves in-process single-flight and the fallback for stores without generations (see
    `Cache.epoch`); invalidations through `Cache` methods bump their own store.
    """
    for cache in open_caches():
        cache.bump()


class Cache:
    """A store that cached functions share.

    Args:
        backend: a backend URL (``memory://``, ``sqlite:///path.db``, ``redis://host:6379/0``), a backend
            object implementing `agentcache.backends.Backend`, or `None` for the configured default.
        fail_open: wrap the backend so that its failures become misses (the default; turn off only in tests
            that want to see backend errors).

    Example::

        shared = agentcache.Cache("redis://localhost:6379/0")

        @agentcache.tool_cached(ttl="10m", backend=shared)
        def search(q: str) -> str: ...
    """

    def __init__(self, backend: str | Backend | None = None, *, fail_open: bool = True) -> None:
        self._spec = backend
        self._fail_open = fail_open
        self._store: Backend | None = None
        self._lock = threading.Lock()
        self.counters = Counters()
        """Backend errors seen by this store (hits and misses are counted per function)."""
        self._epochs = itertools.count(1)
        self.epoch = 0
        """Bumped before and after every invalidation made through this object (in this process). A call that
        starts after a bump never joins a computation that started before it; and on a store without
        generations (see `agentcache.backends.generations`) a miss that overlapped a bump is not stored."""
        _every.add(self)

    def __repr__(self) -> str:
        return f"Cache({self.url!r})"

    @property
    def url(self) -> str:
        """The URL this store opens (or the backend's class name)."""
        if self._spec is None:
            return get_settings().backend_url
        if isinstance(self._spec, str):
            return self._spec
        return f"<{type(self._spec).__name__}>"

    @property
    def store(self) -> Backend:
        """The backend, opened on first use, behind the fail-open wrapper."""
        store = self._store
        if store is None:
            store = self._open()
        return store

    def _open(self) -> Backend:
        with self._lock:
            if self._store is not None:
                return self._store
            from .backends import open_backend
            from .backends.resilient import ResilientBackend

            spec = self._spec
            inner: Backend
            if spec is None or isinstance(spec, str):
                url = get_settings().backend_url if spec is None else spec
                if url.rstrip("/") in ("sqlite:", "sqlite:/"):
                    url = f"sqlite://{get_settings().cache_dir / 'cache.db'}"
                inner = open_backend(url)
            else:
                inner = spec
            from .backends.memory import MemoryBackend

            # An in-process dict has no outage to survive: skip the wrapper's cost on every memory hit.
            if self._fail_open and not isinstance(inner, MemoryBackend):
                s = get_settings()
                inner = ResilientBackend(
                    inner,
                    retries=s.retries,
                    failure_threshold=s.failure_threshold,
                    cooldown=s.cooldown,
                    on_error=self._on_error,
                )
            self._store = inner
        from .invalidation import _publish_events
        from .stats_store import ensure_exit_flush

        _publish_events(self)
        ensure_exit_flush()  # a process that only ever hits still leaves its stats for `agentcache stats`
        return inner

    def _on_error(self, exc: BaseException) -> None:
        self.counters.add("backend_errors")

    def bump(self) -> None:
        """Advance `epoch` (see there)."""
        self.epoch = next(self._epochs)

    @contextmanager
    def invalidating(self) -> Iterator[Backend]:
        """The store, for an invalidation: `epoch` is bumped before and after it."""
        self.bump()
        try:
            yield self.store
        finally:
            self.bump()

    # -- invalidation ---------------------------------------------------------------------------------------

    def invalidate(self, *, keys: Iterable[str] = (), tags: Collection[str] = (), namespace: str | None = None) -> int:
        """Delete entries by exact key, by tag (within `namespace` when given), or a whole namespace.

        Returns how many entries were deleted. When it returns, no caller in this process reads the old
        values, and computations still running do not store theirs (in any process, on a store with
        generations: see `agentcache.backends.generations`).
        """
        deleted = 0
        keys = list(keys)
        with self.invalidating() as store:
            if keys:
                deleted += store.delete_many(keys)
            prefixes = namespace_prefixes(namespace) if namespace is not None else ("",)
            if tags:
                for prefix in prefixes:
                    deleted += store.delete_tags(list(tags), prefix)
            elif namespace is not None:
                for prefix in prefixes:
                    deleted += store.clear(prefix)
        return deleted

    async def ainvalidate(
        self, *, keys: Iterable[str] = (), tags: Collection[str] = (), namespace: str | None = None
    ) -> int:
        """Awaitable `invalidate`."""
        deleted = 0
        keys = list(keys)
        with self.invalidating() as store:
            if keys:
                deleted += await store.adelete_many(keys)
            prefixes = namespace_prefixes(namespace) if namespace is not None else ("",)
            if tags:
                for prefix in prefixes:
                    deleted += await store.adelete_tags(list(tags), prefix)
            elif namespace is not None:
                for prefix in prefixes:
                    deleted += await store.aclear(prefix)
        return deleted

    def clear(self) -> int:
        """Delete every agentcache entry in this store (all namespaces, layers and internal records)."""
        with self.invalidating() as store:
            return store.clear(KEY_PREFIX)

    def close(self) -> None:
        """Close the backend; the next use reopens it."""
        with self._lock:
            store, self._store = self._store, None
        if store is not None:
            store.close()


_registry_lock = threading.Lock()
_every: weakref.WeakSet[Cache] = weakref.WeakSet()
_default: Cache | None = None
_by_spec: dict[Any, Cache] = {}


def default_cache() -> Cache:
    """The store configured by `configure()` / `AGENTCACHE_URL` / the SQLite default."""
    global _default
    cache = _default
    if cache is None:
        with _registry_lock:
            if _default is None:
                _default = Cache()
            cache = _default
    return cache


def cache_for(spec: str | Backend | Cache | None) -> Cache:
    """The shared `Cache` for a decorator's ``backend=`` value."""
    if spec is None:
        return default_cache()
    if isinstance(spec, Cache):
        return spec
    ident: Any = spec if isinstance(spec, str) else id(spec)
    with _registry_lock:
        cache = _by_spec.get(ident)
        if cache is None:
            cache = _by_spec[ident] = Cache(spec)
        return cache


def open_caches() -> list[Cache]:
    """Every store this process has created, default first."""
    with _registry_lock:
        caches = [] if _default is None else [_default]
        caches.extend(c for c in list(_every) if c is not _default)
        return caches


def close_all() -> None:
    """Close every store (they reopen on next use with the settings then in force)."""
    for cache in open_caches():
        cache.close()


def forget_all() -> None:
    """Close every store and drop the registry (used by `agentcache.reset`)."""
    global _default
    close_all()
    with _registry_lock:
        _default = None
        _by_spec.clear()
        _every.clear()


@_fork.at_fork
def _after_fork_in_child() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()
    for cache in list(_every):
        _fork.renew(cache, "_lock")
        _fork.renew(cache.counters, "_lock")
