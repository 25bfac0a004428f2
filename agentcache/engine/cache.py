"""`Cache`: one store (a backend behind the fail-open wrapper) that decorators read and write.

Most users never build one: decorators use the default store from `agentcache.configure()` / the environment,
or the URL or backend given as ``backend=``. Stores are opened lazily on first use and shared by URL, so
every function decorated with ``backend="redis://..."`` uses one connection pool.
"""

from __future__ import annotations

import os
import sys
import threading
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager

from agentcache import _fork
from agentcache.engine.settings import get_settings, on_change
from agentcache.errors import ConfigurationError
from agentcache.keys.encoding import KEY_PREFIX, namespace_prefixes
from agentcache.keys.namespaces import ALL, invalidation_scope
from agentcache.stats.counters import Counters

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from agentcache.backends._fence import Fence, Invalidation
    from agentcache.backends.base import Backend
    from agentcache.errors import InvalidationError
    from agentcache.keys.namespaces import NamespaceTarget

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
        check_spec(backend)
        self._setup(backend, fail_open)

    def _setup(self, backend: str | Backend | None, fail_open: bool) -> None:
        self._spec = backend
        self._fail_open = fail_open
        self._store: Backend | None = None
        self._fence: Fence | None = None  # pending invalidations, kept across close() and reopen
        self._lock = threading.Lock()
        self.counters = Counters()
        """Backend errors seen by this store (hits and misses are counted per function)."""
        self._clock = 0  # counts invalidations made through this object
        self._floor = 0  # the last invalidation that covered everything (a clear, a namespace, an overflow)
        self._last: dict[str, int] = {}  # key or tag -> the last invalidation that covered it
        """See `epoch_of`: invalidations are remembered per key and per tag, so an unrelated one (another
        function's `cache_clear()`) never stops a miss from being stored."""
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
    def opened(self) -> Backend | None:
        """The backend if it is open (no opening: for callers that must not create a store)."""
        return self._store

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
            from agentcache.backends import open_backend
            from agentcache.backends.resilient import ResilientBackend

            spec = self._spec
            inner: Backend
            try:
                if spec is None or isinstance(spec, str):
                    url = _resolved_url(spec)
                    inner = open_backend(url)
                else:
                    inner = spec
                # An in-process dict has no outage to survive: skip the wrapper's cost on every memory hit.
                if self._fail_open and not _is_memory(inner):
                    from agentcache.backends._fence import Fence

                    s = get_settings()
                    if self._fence is None:
                        self._fence = Fence()
                    inner = ResilientBackend(
                        inner,
                        retries=s.retries,
                        failure_threshold=s.failure_threshold,
                        cooldown=s.cooldown,
                        on_error=self._on_error,
                        fence=self._fence,
                    )
            except Exception as exc:
                if not self._fail_open:
                    raise
                inner = _unopened(self, exc)
            self._store = inner
        for hook in list(_open_hooks):  # event rules are published, the exit snapshot is scheduled
            hook(self)
        return inner

    def is_missing_file(self) -> bool:
        """Whether this store is an embedded SQLite file that does not exist (and was never opened here)."""
        if self._store is not None or not isinstance(self._spec, (str, type(None))):
            return False
        url = _url_of(self._spec)[0]
        if not url.startswith("sqlite://"):
            return False
        rest = url[len("sqlite://") :].split("?", 1)[0]
        return bool(rest) and not os.path.exists(os.path.expanduser(rest))

    def _on_error(self, exc: BaseException) -> None:
        self.counters.add("backend_errors")

    def epoch_of(self, key: str, tags: Collection[str]) -> int:
        """The last invalidation made through this object (in this process) that covers an entry under `key`
        with `tags`: a call that starts after it never joins a computation that started before it, and on a
        store without generations (see `agentcache.backends.generations`) a miss whose epoch moved while it
        computed is not stored."""
        last = self._last
        epoch = self._floor
        seen = last.get(key, 0)
        if seen > epoch:
            epoch = seen
        for tag in tags:
            seen = last.get(tag, 0)
            if seen > epoch:
                epoch = seen
        return epoch

    def epoch_of_many(self, keys: Collection[str], tags: Collection[str]) -> int:
        """`epoch_of` for a batch of entries sharing `tags`."""
        return max((self.epoch_of(key, tags) for key in keys), default=self.epoch_of("", tags))

    @property
    def epoch(self) -> int:
        """The last invalidation made through this object, whatever it covered."""
        return self._clock

    def bump(self, keys: Iterable[str] = (), tags: Iterable[str] = (), *, everything: bool = True) -> None:
        """Record an invalidation of `keys` and `tags` (of everything when `everything`; see `epoch_of`)."""
        with self._lock:
            self._clock += 1
            now = self._clock
            scopes = [*keys, *tags]
            if everything or len(self._last) + len(scopes) > _EPOCH_SCOPES:
                self._floor = now  # bounded memory: forgetting scopes is safe, it only over-approximates
                self._last.clear()
                return
            for scope in scopes:
                self._last[scope] = now

    @contextmanager
    def invalidating(
        self, keys: Collection[str] = (), tags: Collection[str] = (), *, everything: bool = True
    ) -> Iterator[Backend]:
        """The store, for an invalidation of `keys`/`tags` (everything if `everything`): its epoch is bumped
        before and after it."""
        self.bump(keys, tags, everything=everything)
        try:
            yield self.store
        finally:
            self.bump(keys, tags, everything=everything)

    # -- invalidation ---------------------------------------------------------------------------------------

    def invalidate(
        self, *, keys: Iterable[str] = (), tags: Collection[str] = (), namespace: NamespaceTarget = None
    ) -> int:
        """Delete entries by exact key, by tag, or a whole namespace (see `agentcache.invalidate` for how
        `namespace` and the current `namespace()` block scope it).

        Returns how many entries were deleted. When it returns, no caller in this process reads the old
        values, and computations still running do not store theirs (in any process, on a store with
        generations: see `agentcache.backends.generations`).

        Raises:
            InvalidationError: the store could not be reached (after bounded retries, whatever the circuit
                breaker's state). The invalidation is kept pending and retried in the background until it
                lands; until then this process neither serves nor stores the entries it may cover.
        """
        keys = list(keys)
        plan = _plan(keys, tags, namespace)  # a bad argument raises before anything is bumped
        with self.invalidating(keys, tags, everything=not keys and not tags):
            return self._apply(plan)

    async def ainvalidate(
        self, *, keys: Iterable[str] = (), tags: Collection[str] = (), namespace: NamespaceTarget = None
    ) -> int:
        """Awaitable `invalidate` (raises `InvalidationError` the same way)."""
        keys = list(keys)
        plan = _plan(keys, tags, namespace)
        with self.invalidating(keys, tags, everything=not keys and not tags):
            return await self._aapply(plan)

    def clear(self) -> int:
        """Delete every agentcache entry in this store (all namespaces, layers and internal records).

        Raises:
            InvalidationError: as `invalidate` does.
        """
        from agentcache.backends._fence import Invalidation

        with self.invalidating():
            return self._apply([Invalidation.of_prefix(KEY_PREFIX)])

    def _apply(self, plan: list[Invalidation]) -> int:
        from agentcache.backends.resilient import ResilientBackend

        store = self.store
        if isinstance(store, ResilientBackend):
            return store.invalidate(plan)  # bypasses the breaker; keeps failures pending, then raises
        deleted, error = 0, None
        for invalidation in plan:
            try:
                deleted += invalidation.apply(store)
            except Exception as exc:
                error = exc
        if error is not None:
            raise _unfenced_failure(store, deleted, error)
        return deleted

    async def _aapply(self, plan: list[Invalidation]) -> int:
        from agentcache.backends.resilient import ResilientBackend

        store = self.store
        if isinstance(store, ResilientBackend):
            return await store.ainvalidate(plan)
        deleted, error = 0, None
        for invalidation in plan:
            try:
                deleted += await invalidation.aapply(store)
            except Exception as exc:
                error = exc
        if error is not None:
            raise _unfenced_failure(store, deleted, error)
        return deleted

    @property
    def pending_invalidations(self) -> int:
        """How many invalidations that failed are still pending (retried in the background) on this store."""
        fence = self._fence
        return 0 if fence is None else len(fence.pending)

    def close(self) -> None:
        """Close the backend; the next use reopens it (waits for a background thread using it to finish)."""
        with background_use:
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


def _is_memory(store: Backend) -> bool:
    """Whether `store` is a `MemoryBackend` (its module is not imported to find out: none exists before it is)."""
    memory = sys.modules.get("agentcache.backends.memory")
    return memory is not None and isinstance(store, memory.MemoryBackend)


def _resolved_url(spec: str | None) -> str:
    """The URL a string or default spec opens; ``sqlite://`` alone means the default file.

    Only the default file's directory (the platform cache dir or `AGENTCACHE_DIR`) is created; an explicit
    SQLite URL's directory must exist.
    """
    url, default_file = _url_of(spec)
    if default_file:
        get_settings().cache_dir.mkdir(parents=True, exist_ok=True)
    return url


def _url_of(spec: str | None) -> tuple[str, bool]:
    """The URL a spec opens, and whether it is the default SQLite file (whose directory is created on open)."""
    settings = get_settings()
    url = settings.backend_url if spec is None else spec
    if url.rstrip("/") in ("sqlite:", "sqlite:/"):
        return f"sqlite://{settings.cache_dir / 'cache.db'}", True
    return url, spec is None and settings.url is None


def check_spec(spec: object) -> None:
    """Raise `ConfigurationError` now for a ``backend=`` URL that could never open (objects are not checked).

    The default SQLite form (``sqlite://``) is always valid: its directory is created on first use.
    """
    if isinstance(spec, str) and spec.rstrip("/") not in ("sqlite:", "sqlite:/"):
        from agentcache.backends import check_url

        check_url(spec)


def _unopened(cache: Cache, exc: Exception) -> Backend:
    """The stand-in for a store that cannot be opened: logged once, every call runs uncached."""
    import logging

    from agentcache.backends.memory import MemoryBackend

    cache.counters.add("backend_errors")
    logging.getLogger("agentcache").warning(
        "agentcache: cannot open the store %s (%s: %s); cached functions run uncached until "
        "agentcache.configure() is called again or the process restarts",
        cache.url,
        type(exc).__name__,
        exc,
    )
    return MemoryBackend(max_entries=0, max_bytes=0)  # stores nothing: every call is a miss


def _plan(keys: Iterable[str], tags: Collection[str], namespace: NamespaceTarget) -> list[Invalidation]:
    """The store operations one `invalidate(...)` call makes (scoped as `_scope_of` says)."""
    from agentcache.backends._fence import Invalidation

    keys = list(keys)
    prefixes, clear = _scope_of(keys, tags, namespace)
    plan: list[Invalidation] = []
    if keys:
        plan.append(Invalidation.of_keys(keys))
    if tags:
        plan.extend(Invalidation.of_tags(list(tags), prefix) for prefix in prefixes)
    elif clear:
        plan.extend(Invalidation.of_prefix(prefix) for prefix in prefixes)
    return plan


def _unfenced_failure(store: Backend, deleted: int, error: Exception) -> InvalidationError:
    from agentcache.errors import InvalidationError

    failure = InvalidationError(
        f"an invalidation did not reach cache backend {store!r} ({type(error).__name__}: {error}); "
        "this store is not fail-open, so nothing is kept pending: retry the invalidation",
        deleted=deleted,
    )
    failure.__cause__ = error
    return failure


background_use = threading.RLock()
"""Held by background threads (stats snapshots, the semantic index refresher) while they use an open store, and by
`Cache.close`: a store is never closed under a statement another thread is running (a SQLite connection closed
mid-statement can crash the interpreter)."""
_EPOCH_SCOPES = 4096  # keys and tags whose last invalidation a Cache remembers
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


_open_hooks: list[Callable[[Cache], None]] = []


def on_open(hook: Callable[[Cache], None]) -> Callable[[Cache], None]:
    """Call `hook` with every store when it opens (after a `close()` too)."""
    _open_hooks.append(hook)
    return hook


@on_change
def _settings_changed(changed: frozenset[str]) -> None:
    """`configure()` closes only the stores a change affects; they reopen with the new settings on next use."""
    if changed & {"retries", "failure_threshold", "cooldown"}:
        close_all()  # every store is wrapped with these
    elif changed & {"url", "dir"}:
        close_default()  # the default store (and `sqlite://` alone) now lives elsewhere


def close_default() -> None:
    """Close the default store and the stores opened as plain ``sqlite://`` (the default file): they reopen
    with the settings then in force."""
    with _registry_lock:
        caches = [] if _default is None else [_default]
        caches += [c for spec, c in _by_spec.items() if isinstance(spec, str) and spec.rstrip("/") == "sqlite:"]
    for cache in caches:
        cache.close()


def close_all() -> None:
    """Close every store (they reopen on next use with the settings then in force)."""
    for cache in open_caches():
        cache.close()


def forget_all() -> None:
    """Close every store and drop the registry (used by `agentcache.reset`)."""
    global _default
    for cache in open_caches():
        if cache._fence is not None:
            cache._fence.stop()  # a reset forgets pending invalidations too
    close_all()
    with _registry_lock:
        _default = None
        _by_spec.clear()
        _every.clear()


@_fork.at_fork
def _after_fork_in_child() -> None:
    global _registry_lock, background_use
    _registry_lock = threading.Lock()
    background_use = threading.RLock()
    for cache in list(_every):
        _fork.renew(cache, "_lock")
        _fork.renew(cache.counters, "_lock")
