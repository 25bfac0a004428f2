"""`Cache`: one store (a backend behind the fail-open wrapper) that decorators read and write.

Most users never build one: decorators use the default store from `agentcache.configure()` / the environment,
or the URL or backend given as ``backend=``. Stores are opened lazily on first use and shared by URL, so
every function decorated with ``backend="redis://..."`` uses one connection pool.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any

from .config import get_settings
from .errors import ConfigurationError
from .keys import KEY_PREFIX, namespace_prefixes
from .scope import ALL, NamespaceTarget, invalidation_scope
from .stats import Counters

if TYPE_CHECKING:
    from .backends.base import Backend

__all__ = ["Cache", "close_all", "default_cache"]

# Bumped by every invalidation: a computation that started before an invalidation does not store its result,
# so no caller can read a value computed from data that was invalidated while the call was running.
_epoch = itertools.count(1)
_epoch_now = 0


def bump_epoch() -> None:
    """Mark that an invalidation happened (see the comment on `_epoch`)."""
    global _epoch_now
    _epoch_now = next(_epoch)


def current_epoch() -> int:
    """The invalidation epoch now."""
    return _epoch_now


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
        check_spec(backend)
        self._setup(backend, fail_open)

    def _setup(self, backend: str | Backend | None, fail_open: bool) -> None:
        self._spec = backend
        self._fail_open = fail_open
        self._store: Backend | None = None
        self._lock = threading.Lock()
        self.counters = Counters()
        """Backend errors seen by this store (hits and misses are counted per function)."""
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
            from .backends.memory import MemoryBackend

            try:
                if spec is None or isinstance(spec, str):
                    url = _resolved_url(spec)
                    inner = open_backend(url)
                else:
                    inner = spec
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
            except Exception as exc:
                if not self._fail_open:
                    raise
                inner = _unopened(self, exc)
            self._store = inner
        from .invalidation import _publish_events
        from .stats_store import ensure_exit_flush

        _publish_events(self)
        ensure_exit_flush()  # a process that only ever hits still leaves its stats for `agentcache stats`
        return inner

    def _on_error(self, exc: BaseException) -> None:
        self.counters.add("backend_errors")

    # -- invalidation ---------------------------------------------------------------------------------------

    def invalidate(
        self, *, keys: Iterable[str] = (), tags: Collection[str] = (), namespace: NamespaceTarget = None
    ) -> int:
        """Delete entries by exact key, by tag, or a whole namespace (see `agentcache.invalidate` for how
        `namespace` and the current `namespace()` block scope it).

        Returns how many entries were deleted. When it returns, no caller in this process reads the old
        values (computations still running are not stored either).
        """
        prefixes, clear = _scope_of(keys, tags, namespace)
        bump_epoch()
        store = self.store
        deleted = 0
        keys = list(keys)
        if keys:
            deleted += store.delete_many(keys)
        if tags:
            for prefix in prefixes:
                deleted += store.delete_tags(list(tags), prefix)
        elif clear:
            for prefix in prefixes:
                deleted += store.clear(prefix)
        bump_epoch()
        return deleted

    async def ainvalidate(
        self, *, keys: Iterable[str] = (), tags: Collection[str] = (), namespace: NamespaceTarget = None
    ) -> int:
        """Awaitable `invalidate`."""
        prefixes, clear = _scope_of(keys, tags, namespace)
        bump_epoch()
        store = self.store
        deleted = 0
        keys = list(keys)
        if keys:
            deleted += await store.adelete_many(keys)
        if tags:
            for prefix in prefixes:
                deleted += await store.adelete_tags(list(tags), prefix)
        elif clear:
            for prefix in prefixes:
                deleted += await store.aclear(prefix)
        bump_epoch()
        return deleted

    def clear(self) -> int:
        """Delete every agentcache entry in this store (all namespaces, layers and internal records)."""
        bump_epoch()
        n = self.store.clear(KEY_PREFIX)
        bump_epoch()
        return n

    def close(self) -> None:
        """Close the backend; the next use reopens it."""
        with self._lock:
            store, self._store = self._store, None
        if store is not None:
            store.close()


def _scope_of(keys: Iterable[str], tags: Collection[str], namespace: NamespaceTarget) -> tuple[tuple[str, ...], bool]:
    """The key prefixes an invalidation covers, and whether it clears them whole (an explicit namespace without
    tags). Tags reach the current `namespace()` block only, unless `namespace` says otherwise."""
    if namespace is ALL and not tags and not keys:
        raise ConfigurationError(
            "invalidate(namespace=agentcache.ALL) needs tags=...; to empty a whole store use Cache.clear() "
            "or `agentcache clear --yes`"
        )
    target = invalidation_scope(namespace)
    return (("",) if target is None else namespace_prefixes(target)), isinstance(namespace, str)


def _resolved_url(spec: str | None) -> str:
    """The URL a string or default spec opens; ``sqlite://`` alone means the default file.

    Only the default file's directory (the platform cache dir or `AGENTCACHE_DIR`) is created; an explicit
    SQLite URL's directory must exist.
    """
    settings = get_settings()
    url = settings.backend_url if spec is None else spec
    if url.rstrip("/") in ("sqlite:", "sqlite:/"):
        url = f"sqlite://{settings.cache_dir / 'cache.db'}"
    elif spec is not None or settings.url is not None:
        return url
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    return url


def check_spec(spec: object) -> None:
    """Raise `ConfigurationError` now for a ``backend=`` URL that could never open (objects are not checked).

    The default SQLite form (``sqlite://``) is always valid: its directory is created on first use.
    """
    if isinstance(spec, str) and spec.rstrip("/") not in ("sqlite:", "sqlite:/"):
        from .backends import check_url

        check_url(spec)


def _unopened(cache: Cache, exc: Exception) -> Backend:
    """The stand-in for a store that cannot be opened: logged once, every call runs uncached."""
    import logging

    from .backends.memory import MemoryBackend

    cache.counters.add("backend_errors")
    logging.getLogger("agentcache").warning(
        "agentcache: cannot open the store %s (%s: %s); cached functions run uncached until "
        "agentcache.configure() is called again or the process restarts",
        cache.url,
        type(exc).__name__,
        exc,
    )
    return MemoryBackend(max_entries=0, max_bytes=0)  # stores nothing: every call is a miss


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
            # checked at decoration time: a URL that breaks later degrades when opened, never raises per call
            cache = _by_spec[ident] = unchecked(spec)
        return cache


def unchecked(spec: str | Backend | None, *, fail_open: bool = True) -> Cache:
    """A `Cache` whose URL is not checked now, only when it opens (see `Cache._open`)."""
    cache = Cache.__new__(Cache)
    cache._setup(spec, fail_open)
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
