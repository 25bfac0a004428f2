"""The fail-open policy, in one place: a wrapper that turns any store failure into a cache miss.

```
closed --(a timeout or connection failure, or failure_threshold consecutive other failures)--> open
   ^                                                                                             | cooldown s
   +------------------------------ probe succeeded -------- half-open (one probe call) <---------+
                                                             | probe failed: open again
```

Worst case of one operation on a dead or hung store (the bound `docs/redis.md` states): one attempt. A timeout
or a connection failure (`BackendUnavailable`) is never retried and opens the circuit at once, so the rest of
the call (and every call for `cooldown` seconds) skips the store. Only other errors are retried, at most
`retries` times, and no retry starts once `RETRY_BUDGET` seconds have passed since the *first* attempt began.
A write the store refused because another writer held its lock (`BackendBusy`, SQLite) is skipped, and so
are further writes for `cooldown` seconds; reads go on.

Invalidations are not fail-open: `invalidate()` bypasses the breaker, retries within `INVALIDATION_BUDGET`,
and when it still fails keeps the invalidation pending in the store's `Fence` (retried in the background until
it lands; meanwhile this process neither serves nor stores what it may cover) and raises `InvalidationError`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence

from agentcache import _fork
from agentcache.backends import flight
from agentcache.backends._fence import Fence, Invalidation
from agentcache.backends.base import LOCKING_METHODS, SCAN_METHODS, EntryInfo, Item, supports
from agentcache.backends.generations import UNKNOWN_FENCE
from agentcache.errors import BackendBusy, BackendUnavailable, InvalidationError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    from typing import Any, TypeVar

    from agentcache.backends.base import Backend, SupportsLocking, SupportsScan

    _T = TypeVar("_T")

__all__ = ["FAIL_OPEN_TOKEN", "INVALIDATION_BUDGET", "RETRY_BUDGET", "ResilientBackend"]


def _logger() -> logging.Logger:
    """The "agentcache" logger; `logging` is imported on first use (~3 ms of a process's first hit, #13)."""
    import logging

    return logging.getLogger("agentcache")


_CLOSED = "closed"
_OPEN = "open"
_PROBING = "half-open"  # one probe call is in flight
RETRY_BUDGET = 0.25
"""Seconds after the first attempt of an operation began, after which no retry starts."""
INVALIDATION_BUDGET = 1.0
"""Seconds after the first attempt of an invalidation began, after which it is kept pending instead."""
# Errors that say the store cannot be reached right now: retrying at once would only pay the same wait again.
_UNREACHABLE = (BackendUnavailable, TimeoutError, ConnectionError)

_WRITES = frozenset({"set_many", "delete_many", "delete_tags", "clear"})  # operations that take the write lock

_POLL = 0.05  # how long a wait lasts on an inner store that cannot wake waiters (`flight.lock_get`)

FAIL_OPEN_TOKEN = "agentcache:fail-open"  # noqa: S105 (a sentinel, not a secret)
"""The lock token `acquire_lock` returns when the store failed: proceed uncoordinated (never a real owner)."""


def _retryable(exc: BaseException) -> bool:
    """Whether an operation that failed with `exc` may be tried again at once (not when the store is out of reach)."""
    return not isinstance(exc, _UNREACHABLE)


def _invalidation_retryable(exc: BaseException) -> bool:
    """Whether an invalidation that failed with `exc` may be tried again (not after a whole lock wait)."""
    return not isinstance(exc, BackendBusy)


def _retry_options(
    exc: Exception, started: float, *, attempts: int, budget: float, retryable: Callable[[BaseException], bool]
) -> dict[str, Any] | None:
    """tenacity options for the retries left after a first attempt that began at `started` failed with `exc`:
    at most `attempts` more, none starting once `budget` seconds have passed since `started`, jittered waits of at
    most 50 ms. `None` when no retry may start at all."""
    left = budget - (time.monotonic() - started)
    if attempts < 1 or left <= 0 or not retryable(exc):
        return None
    from tenacity import retry_if_exception, stop_after_attempt, stop_after_delay, wait_random_exponential

    return {
        "stop": stop_after_attempt(attempts) | stop_after_delay(left),
        "wait": wait_random_exponential(multiplier=0.005, max=0.05),
        "retry": retry_if_exception(retryable),
        "reraise": True,
    }


class ResilientBackend:
    """Wrap a `Backend` so that its failures degrade to misses instead of raising.

    Any exception from the inner store (a `BackendError` or not) makes `get` return `None`, `get_many`
    return `[None] * len(keys)`, `set_many` do nothing, and `delete_many` / `delete_tags` / `clear` return 0
    (a failed delete is kept pending in `fence`, see below). Each failing call is counted once via
    `on_error(exc)`.

    Retries: a timeout or connection failure (`BackendUnavailable`, `TimeoutError`, `ConnectionError`) is
    not retried, and it opens the circuit at once. Other errors are retried up to `retries` times with tiny
    jittered waits (the async face sleeps with `asyncio.sleep`, never blocking the loop), as long as less
    than `RETRY_BUDGET` (0.25 s) has passed since the first attempt began; after `failure_threshold`
    consecutive failed calls of that kind the circuit opens too. While it is open, calls return the miss at
    once without touching the store (and without calling `on_error`). After `cooldown` seconds one probe
    call is let through (`state` reads "half-open"); its success closes the circuit, its failure re-opens it.
    `BackendBusy` (another writer held SQLite's lock) does not open the circuit: that write is skipped, and so
    are writes for the next `cooldown` seconds, while reads go on.

    Invalidations: `invalidate([...])` / `ainvalidate` bypass the breaker, retry within `INVALIDATION_BUDGET`
    (1 s), and raise `InvalidationError` when an invalidation still did not land; it then stays pending in
    `fence`, retried by a background thread until it lands, and meanwhile reads of keys it may cover miss and
    writes of items it covers are dropped. The plain `delete_many` / `delete_tags` / `clear` do the same but
    stay fail-open (return 0, no exception) and, while the circuit is open, only record the invalidation as
    pending.

    An outage is logged once: a warning when it starts, and one info line when an operation of a kind that
    failed during it succeeds again (a store that still serves reads but refuses writes is one outage).

    `scan` (when the inner store has it) passes through and raises: it serves the CLI, not cached calls.
    Locking methods (when the inner store has them) are fail-open too: on failure `acquire_lock` returns
    `FAIL_OPEN_TOKEN`, meaning "go ahead uncoordinated", and releasing that token is a no-op.

    Example:
        >>> from agentcache.backends.memory import MemoryBackend
        >>> cache = ResilientBackend(MemoryBackend(), failure_threshold=3, cooldown=1.0)
        >>> cache.get("missing") is None, cache.state
        (True, 'closed')
    """

    inner: Backend

    def __new__(
        cls,
        inner: Backend,
        *,
        retries: int = 2,
        failure_threshold: int = 5,
        cooldown: float = 5.0,
        on_error: Callable[[BaseException], None] | None = None,
        fence: Fence | None = None,
    ) -> ResilientBackend:
        # Pick the subclass whose optional powers match the inner store's, so isinstance checks stay true.
        if cls is ResilientBackend:
            cls = _VARIANTS[supports(inner, SCAN_METHODS), supports(inner, LOCKING_METHODS)]
        return object.__new__(cls)

    def __init__(
        self,
        inner: Backend,
        *,
        retries: int = 2,
        failure_threshold: int = 5,
        cooldown: float = 5.0,
        on_error: Callable[[BaseException], None] | None = None,
        fence: Fence | None = None,
    ) -> None:
        if retries < 0 or failure_threshold < 1 or cooldown < 0:
            raise ValueError("retries >= 0, failure_threshold >= 1 and cooldown >= 0 are required")
        self.inner = inner
        self.retries = retries
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self.on_error = on_error
        self._state = _CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._failing: set[str] = set()  # operations that failed during the current outage
        self._writes_paused_until = 0.0
        self._troubled = False  # whether a success has anything to reset (keeps the success path to one test)
        self._lock = threading.Lock()
        self._owns_fence = fence is None
        self.fence = Fence() if fence is None else fence
        """The invalidations still pending on this store (see the class docstring)."""
        self.fence.bind(self._retry_pending, repr(inner))
        _fork.track(self)

    def _after_fork_in_child(self) -> None:
        _fork.renew(self, "_lock")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r}, state={self.state!r})"

    @property
    def state(self) -> str:
        """The breaker's state: "closed", "open" or "half-open" (cooldown over, or a probe in flight)."""
        if self._state == _OPEN and time.monotonic() - self._opened_at >= self.cooldown:
            return _PROBING
        return self._state

    # -- the policy, shared by both faces --------------------------------------------------------------------

    def _admit(self) -> bool:
        """Called when the breaker is not closed: let exactly one probe through once the cooldown is over."""
        with self._lock:
            if self._state == _OPEN and time.monotonic() - self._opened_at >= self.cooldown:
                self._state = _PROBING
                return True
            return self._state == _CLOSED

    def _succeeded(self, op: str) -> None:
        with self._lock:
            self._failures = 0
            self._state = _CLOSED
            recovered = op in self._failing
            if recovered:
                self._failing.clear()
            if op in _WRITES:  # a write went through: the lock that paused writes is free again
                self._writes_paused_until = 0.0
            self._troubled = bool(self._failing) or self._writes_paused_until > 0
        if recovered:
            _logger().info("agentcache: cache backend %r recovered; caching resumed", self.inner)

    def _failed(self, op: str, exc: Exception) -> None:
        with self._lock:
            now = time.monotonic()
            if isinstance(exc, BackendBusy):  # reachable, but another writer holds the lock
                if op == "set_many":
                    self._writes_paused_until = now + self.cooldown
                if self._state == _PROBING:
                    self._state = _CLOSED
            else:
                self._failures += 1
                if self._state == _PROBING or isinstance(exc, _UNREACHABLE) or self._failures >= self.failure_threshold:
                    self._state = _OPEN
                    self._opened_at = now
            started = not self._failing
            self._failing.add(op)
            self._troubled = True
        if started:
            _logger().warning(
                "agentcache: cache backend %r failed in %s (%s: %s); calls go on uncached until it is back",
                self.inner,
                op,
                type(exc).__name__,
                exc,
            )
        self._report(exc)

    def _report(self, exc: BaseException) -> None:
        if self.on_error is not None:
            try:
                self.on_error(exc)
            except Exception:
                _logger().debug("agentcache: on_error callback raised", exc_info=True)

    def _abandon_probe(self) -> None:
        """The probe was interrupted (cancelled, KeyboardInterrupt): allow another probe at once."""
        with self._lock:
            if self._state == _PROBING:
                self._state = _OPEN

    def _writes_paused(self) -> bool:
        return bool(self._writes_paused_until) and time.monotonic() < self._writes_paused_until

    # -- the two faces: only the call order and the I/O differ -----------------------------------------------

    def _call(self, op: str, default: _T, fn: Callable[..., _T], *args: Any) -> _T:
        probe = self._state != _CLOSED
        if probe and not self._admit():
            return default
        started = time.monotonic()  # the first attempt counts against the retry budget
        try:
            try:
                result = fn(*args)
            except Exception as exc:
                options = None if probe else self._retries_after(exc, started)
                if options is None:
                    raise
                from tenacity import Retrying

                result = Retrying(**options)(fn, *args)
        except Exception as exc:
            self._failed(op, exc)
            return default
        except BaseException:
            if probe:
                self._abandon_probe()
            raise
        if self._troubled:
            self._succeeded(op)
        return result

    async def _acall(self, op: str, default: _T, fn: Callable[..., Awaitable[_T]], *args: Any) -> _T:
        probe = self._state != _CLOSED
        if probe and not self._admit():
            return default
        started = time.monotonic()
        try:
            try:
                result = await fn(*args)
            except Exception as exc:
                options = None if probe else self._retries_after(exc, started)
                if options is None:
                    raise
                from tenacity import AsyncRetrying

                result = await AsyncRetrying(**options)(fn, *args)
        except Exception as exc:
            self._failed(op, exc)
            return default
        except BaseException:
            if probe:
                self._abandon_probe()
            raise
        if self._troubled:
            self._succeeded(op)
        return result

    def _retries_after(self, exc: Exception, started: float) -> dict[str, Any] | None:
        """The retries a fail-open operation may still make (never for a store out of reach or a probe)."""
        return _retry_options(exc, started, attempts=self.retries, budget=RETRY_BUDGET, retryable=_retryable)

    # -- invalidations ---------------------------------------------------------------------------------------

    def _invalidation_retries_after(self, exc: Exception, started: float) -> dict[str, Any] | None:
        return _retry_options(
            exc,
            started,
            attempts=max(self.retries, 1),
            budget=INVALIDATION_BUDGET,
            retryable=_invalidation_retryable,
        )

    def _invalidate_one(self, invalidation: Invalidation) -> int:
        started = time.monotonic()
        try:
            try:
                count = invalidation.apply(self.inner)
            except Exception as exc:
                options = self._invalidation_retries_after(exc, started)
                if options is None:
                    raise
                from tenacity import Retrying

                count = Retrying(**options)(invalidation.apply, self.inner)
        except Exception as exc:
            self._failed(invalidation.op, exc)
            raise
        if self._troubled:
            self._succeeded(invalidation.op)
        return count

    async def _ainvalidate_one(self, invalidation: Invalidation) -> int:
        started = time.monotonic()
        try:
            try:
                count = await invalidation.aapply(self.inner)
            except Exception as exc:
                options = self._invalidation_retries_after(exc, started)
                if options is None:
                    raise
                from tenacity import AsyncRetrying

                count = await AsyncRetrying(**options)(invalidation.aapply, self.inner)
        except Exception as exc:
            self._failed(invalidation.op, exc)
            raise
        if self._troubled:
            self._succeeded(invalidation.op)
        return count

    def _retry_pending(self, invalidation: Invalidation) -> None:
        """The fence's background retry: one attempt, breaker bypassed; a failure is not counted again."""
        invalidation.apply(self.inner)
        if self._troubled:
            self._succeeded(invalidation.op)

    def _give_up(self, failed: list[Invalidation], deleted: int, error: BaseException | None) -> None:
        """Keep `failed` pending, then raise `InvalidationError`."""
        self.fence.add(failed)
        raise InvalidationError(
            f"{len(failed)} invalidation(s) did not reach cache backend {self.inner!r} "
            f"({type(error).__name__}: {error}); until they land (retried in the background) this process "
            "neither serves nor stores the entries they may cover",
            deleted=deleted,
            pending=tuple(str(inv) for inv in failed),
        ) from error

    def invalidate(self, invalidations: Sequence[Invalidation], /) -> int:
        """Apply `invalidations` whatever the breaker's state; return the count deleted.

        Raises:
            InvalidationError: some did not land within `INVALIDATION_BUDGET`; they stay pending (see `fence`).
        """
        deleted, failed, error = 0, [], None
        for invalidation in invalidations:
            try:
                deleted += self._invalidate_one(invalidation)
            except Exception as exc:
                failed.append(invalidation)
                error = exc
        if failed:
            self._give_up(failed, deleted, error)
        return deleted

    async def ainvalidate(self, invalidations: Sequence[Invalidation], /) -> int:
        """Awaitable `invalidate`."""
        deleted, failed, error = 0, [], None
        for invalidation in invalidations:
            try:
                deleted += await self._ainvalidate_one(invalidation)
            except Exception as exc:
                failed.append(invalidation)
                error = exc
        if failed:
            self._give_up(failed, deleted, error)
        return deleted

    def _fail_open_invalidation(self, invalidation: Invalidation) -> int:
        probe = self._state != _CLOSED
        if probe and not self._admit():
            self.fence.add([invalidation])  # the store is believed down: do not pay its timeout now
            return 0
        try:
            return self._invalidate_one(invalidation)
        except Exception:
            self.fence.add([invalidation])
            return 0
        except BaseException:
            if probe:
                self._abandon_probe()
            raise

    async def _afail_open_invalidation(self, invalidation: Invalidation) -> int:
        probe = self._state != _CLOSED
        if probe and not self._admit():
            self.fence.add([invalidation])
            return 0
        try:
            return await self._ainvalidate_one(invalidation)
        except Exception:
            self.fence.add([invalidation])
            return 0
        except BaseException:
            if probe:
                self._abandon_probe()
            raise

    def _fenced(self, key: str) -> bool:
        self.fence.ensure_running()
        return self.fence.blocks(key)

    def _unfenced(self, keys: Sequence[str], values: list[bytes | None]) -> list[bytes | None]:
        self.fence.ensure_running()
        blocks = self.fence.blocks
        return [None if value is not None and blocks(key) else value for key, value in zip(keys, values, strict=True)]

    # -- SyncBackend -----------------------------------------------------------------------------------------

    def get(self, key: str, /) -> bytes | None:
        """`inner.get`, or `None` when the store fails or a pending invalidation may cover `key`."""
        if self.fence.pending and self._fenced(key):
            return None
        return self._call("get", None, self.inner.get, key)

    def get_many(self, keys: Sequence[str], /) -> list[bytes | None]:
        """`inner.get_many`, or all `None` when the store fails (`None` too where a pending invalidation may cover)."""
        miss: list[bytes | None] = [None] * len(keys)
        values = self._call("get_many", miss, self.inner.get_many, keys)
        return self._unfenced(keys, values) if self.fence.pending else values

    def set_many(self, items: Sequence[Item], /) -> None:
        """`inner.set_many` (without items a pending invalidation covers), or nothing when the store fails."""
        if self.fence.pending:
            items = self.fence.allowed(items)
            if not items:
                return
        if self._writes_paused_until and self._writes_paused():
            return
        self._call("set_many", None, self.inner.set_many, items)

    def delete_many(self, keys: Sequence[str], /) -> int:
        """`inner.delete_many`, or 0 when the store fails (then kept pending in `fence`)."""
        return self._fail_open_invalidation(Invalidation.of_keys(keys))

    def delete_tags(self, tags: Collection[str], /, prefix: str = "") -> int:
        """`inner.delete_tags`, or 0 when the store fails (then kept pending in `fence`)."""
        return self._fail_open_invalidation(Invalidation.of_tags(list(tags), prefix))

    def clear(self, prefix: str = "", /) -> int:
        """`inner.clear`, or 0 when the store fails (then kept pending in `fence`)."""
        return self._fail_open_invalidation(Invalidation.of_prefix(prefix))

    # -- generations (passed through; see agentcache.backends.generations) -----------------------------------

    def read_fence(self, keys: Sequence[str], tags: Collection[str], /) -> object:
        """`inner.read_fence`; `None` when the inner store has no generations; `UNKNOWN_FENCE` when it fails."""
        reader = getattr(self.inner, "read_fence", None)
        if reader is None:
            return None
        fence: object = self._call("read_fence", UNKNOWN_FENCE, reader, keys, tags)
        return fence

    def get_fenced(self, key: str, tags: Collection[str], /) -> tuple[bytes | None, object]:
        """`inner.get_fenced` when it has one, else `get` then `read_fence`; a failure reads as a miss."""
        fused = getattr(self.inner, "get_fenced", None)
        if fused is None:
            return self.get(key), self.read_fence((key,), tags)
        failed: tuple[bytes | None, object] = (None, UNKNOWN_FENCE)
        return self._call("get", failed, fused, key, tags)

    def _writable(self, items: Sequence[Item], fence: object) -> Sequence[Item]:
        """The items a write may carry now: none for an unknown fence or while writes are paused (a locked
        SQLite file), none that a pending invalidation covers."""
        if fence is UNKNOWN_FENCE or (self._writes_paused_until and self._writes_paused()):
            return ()
        return self.fence.allowed(items) if self.fence.pending else items

    def set_many_fenced(self, items: Sequence[Item], fence: object, /) -> bool:
        """`inner.set_many_fenced` of the items `set_many` would write; `False` when nothing was written."""
        items = self._writable(items, fence)
        if not items:
            return False
        return self._call("set_many", False, self.inner.set_many_fenced, items, fence)  # type: ignore[attr-defined]

    async def aread_fence(self, keys: Sequence[str], tags: Collection[str], /) -> object:
        """Awaitable `read_fence`."""
        reader = getattr(self.inner, "aread_fence", None)
        if reader is None:
            return None
        fence: object = await self._acall("read_fence", UNKNOWN_FENCE, reader, keys, tags)
        return fence

    async def aget_fenced(self, key: str, tags: Collection[str], /) -> tuple[bytes | None, object]:
        """Awaitable `get_fenced`."""
        fused = getattr(self.inner, "aget_fenced", None)
        if fused is None:
            return await self.aget(key), await self.aread_fence((key,), tags)
        failed: tuple[bytes | None, object] = (None, UNKNOWN_FENCE)
        return await self._acall("get", failed, fused, key, tags)

    async def aset_many_fenced(self, items: Sequence[Item], fence: object, /) -> bool:
        """Awaitable `set_many_fenced`."""
        items = self._writable(items, fence)
        if not items:
            return False
        return await self._acall("set_many", False, self.inner.aset_many_fenced, items, fence)  # type: ignore[attr-defined]

    def close(self) -> None:
        """Close the inner store, whatever the breaker's state; a failure is only reported."""
        if self._owns_fence:
            self.fence.stop()
        try:
            self.inner.close()
        except Exception as exc:
            self._report_close(exc)

    # -- AsyncBackend ----------------------------------------------------------------------------------------

    async def aget(self, key: str, /) -> bytes | None:
        """`inner.aget`, or `None` when the store fails or a pending invalidation may cover `key`."""
        if self.fence.pending and self._fenced(key):
            return None
        return await self._acall("get", None, self.inner.aget, key)

    async def aget_many(self, keys: Sequence[str], /) -> list[bytes | None]:
        """`inner.aget_many`, or all `None` when the store fails."""
        miss: list[bytes | None] = [None] * len(keys)
        values = await self._acall("get_many", miss, self.inner.aget_many, keys)
        return self._unfenced(keys, values) if self.fence.pending else values

    async def aset_many(self, items: Sequence[Item], /) -> None:
        """`inner.aset_many` (without covered items), or nothing when the store fails."""
        if self.fence.pending:
            items = self.fence.allowed(items)
            if not items:
                return
        if self._writes_paused_until and self._writes_paused():
            return
        await self._acall("set_many", None, self.inner.aset_many, items)

    async def adelete_many(self, keys: Sequence[str], /) -> int:
        """`inner.adelete_many`, or 0 when the store fails (then kept pending in `fence`)."""
        return await self._afail_open_invalidation(Invalidation.of_keys(keys))

    async def adelete_tags(self, tags: Collection[str], /, prefix: str = "") -> int:
        """`inner.adelete_tags`, or 0 when the store fails (then kept pending in `fence`)."""
        return await self._afail_open_invalidation(Invalidation.of_tags(list(tags), prefix))

    async def aclear(self, prefix: str = "", /) -> int:
        """`inner.aclear`, or 0 when the store fails (then kept pending in `fence`)."""
        return await self._afail_open_invalidation(Invalidation.of_prefix(prefix))

    async def aclose(self) -> None:
        """Close the inner store, whatever the breaker's state; a failure is only reported."""
        if self._owns_fence:
            self.fence.stop()
        try:
            await self.inner.aclose()
        except Exception as exc:
            self._report_close(exc)

    def _report_close(self, exc: Exception) -> None:
        _logger().debug("agentcache: closing cache backend %r failed", self.inner, exc_info=exc)
        self._report(exc)


class _Scanning(ResilientBackend):
    """A `ResilientBackend` over a store that supports `scan`."""

    def scan(self, prefix: str = "", /, *, tag: str | None = None) -> Iterator[EntryInfo]:
        """`inner.scan`, passed through: errors are raised (the CLI, not a cached call, uses it)."""
        inner: SupportsScan = self.inner  # type: ignore[assignment]  # this variant's inner store scans
        return inner.scan(prefix, tag=tag)


class _Locking(ResilientBackend):
    """A `ResilientBackend` over a store with cross-process locks; failures yield `FAIL_OPEN_TOKEN`."""

    def acquire_lock(self, name: str, ttl: float, /) -> str | None:
        """`inner.acquire_lock`, or `FAIL_OPEN_TOKEN` when the store fails."""
        fail_open: str | None = FAIL_OPEN_TOKEN
        inner: SupportsLocking = self.inner  # type: ignore[assignment]  # this variant's inner store locks
        return self._call("acquire_lock", fail_open, inner.acquire_lock, name, ttl)

    def release_lock(self, name: str, token: str, /) -> bool:
        """`inner.release_lock`, or `False` when the store fails or `token` is `FAIL_OPEN_TOKEN`."""
        if token == FAIL_OPEN_TOKEN:
            return False
        inner: SupportsLocking = self.inner  # type: ignore[assignment]
        return self._call("release_lock", False, inner.release_lock, name, token)

    async def aacquire_lock(self, name: str, ttl: float, /) -> str | None:
        """Awaitable `acquire_lock`."""
        fail_open: str | None = FAIL_OPEN_TOKEN
        inner: SupportsLocking = self.inner  # type: ignore[assignment]  # this variant's inner store locks
        return await self._acall("acquire_lock", fail_open, inner.aacquire_lock, name, ttl)

    async def arelease_lock(self, name: str, token: str, /) -> bool:
        """Awaitable `release_lock`."""
        if token == FAIL_OPEN_TOKEN:
            return False
        inner: SupportsLocking = self.inner  # type: ignore[assignment]
        return await self._acall("release_lock", False, inner.arelease_lock, name, token)

    # -- fused miss steps (see agentcache.backends.flight) ----------------------------------------------------

    def lock_get(
        self, key: str, name: str, ttl: float, tags: Collection[str], /, *, force: bool = False, wait: float = 0.0
    ) -> tuple[str | None, bytes | None, object | None]:
        """`flight.lock_get` on the inner store; a failure proceeds uncoordinated (`FAIL_OPEN_TOKEN`, no value,
        `UNKNOWN_FENCE`, so nothing is stored). A key a pending invalidation may cover is never served: the lock
        is taken over whatever is stored, as for an unusable entry."""
        blocked = bool(self.fence.pending) and self._fenced(key)
        inner = self.inner
        failed: tuple[str | None, bytes | None, object | None] = (FAIL_OPEN_TOKEN, None, UNKNOWN_FENCE)
        token, raw, fence = self._call(
            "acquire_lock",
            failed,
            lambda: flight.lock_get(inner, key, name, ttl, tags, force or blocked, wait, _POLL),
        )
        return token, None if blocked else raw, fence

    def store_unlock(self, items: Sequence[Item], fence: object, name: str, token: str, /) -> bool:
        """`flight.store_unlock` of the items `set_many` would write; when it fails, the lock is released on its
        own (the waiters of other processes must not wait for it to expire)."""
        items = self._writable(items, fence)
        if not items or token == FAIL_OPEN_TOKEN:
            wrote = bool(items) and self.set_many_fenced(items, fence)
            self.release_lock(name, token)
            return wrote
        inner = self.inner
        wrote_or_failed: bool | None = self._call(
            "set_many", None, lambda: flight.store_unlock(inner, items, fence, name, token)
        )
        if wrote_or_failed is None:
            self.release_lock(name, token)
            return False
        return wrote_or_failed

    async def alock_get(
        self, key: str, name: str, ttl: float, tags: Collection[str], /, *, force: bool = False, wait: float = 0.0
    ) -> tuple[str | None, bytes | None, object | None]:
        """Awaitable `lock_get`."""
        blocked = bool(self.fence.pending) and self._fenced(key)
        inner = self.inner
        failed: tuple[str | None, bytes | None, object | None] = (FAIL_OPEN_TOKEN, None, UNKNOWN_FENCE)
        token, raw, fence = await self._acall(
            "acquire_lock",
            failed,
            lambda: flight.alock_get(inner, key, name, ttl, tags, force or blocked, wait, _POLL),
        )
        return token, None if blocked else raw, fence

    async def astore_unlock(self, items: Sequence[Item], fence: object, name: str, token: str, /) -> bool:
        """Awaitable `store_unlock`."""
        items = self._writable(items, fence)
        if not items or token == FAIL_OPEN_TOKEN:
            wrote = bool(items) and await self.aset_many_fenced(items, fence)
            await self.arelease_lock(name, token)
            return wrote
        inner = self.inner
        wrote_or_failed: bool | None = await self._acall(
            "set_many", None, lambda: flight.astore_unlock(inner, items, fence, name, token)
        )
        if wrote_or_failed is None:
            await self.arelease_lock(name, token)
            return False
        return wrote_or_failed


class _ScanningLocking(_Scanning, _Locking):
    """A `ResilientBackend` over a store with both `scan` and locks."""


_VARIANTS: dict[tuple[bool, bool], type[ResilientBackend]] = {
    (False, False): ResilientBackend,
    (True, False): _Scanning,
    (False, True): _Locking,
    (True, True): _ScanningLocking,
}
