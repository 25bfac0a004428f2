"""The fail-open policy, in one place: a wrapper that turns any store failure into a cache miss.

```
closed --(failure_threshold consecutive failed calls)--> open --(cooldown s)--> half-open
   ^                                                       ^                      | one probe call
   +------------------------- probe succeeded -------------+---- probe failed ----+
```
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from typing import Any, TypeVar, cast

from agentcache import _fork
from agentcache.backends.base import Backend, EntryInfo, Item, SupportsLocking, SupportsScan
from agentcache.backends.generations import UNKNOWN_FENCE

__all__ = ["FAIL_OPEN_TOKEN", "ResilientBackend"]

logger = logging.getLogger("agentcache")

_T = TypeVar("_T")

_CLOSED = "closed"
_OPEN = "open"
_PROBING = "half-open"  # one probe call is in flight
_RETRY_BUDGET = 0.25  # seconds after which no further retry attempt starts

FAIL_OPEN_TOKEN = "agentcache:fail-open"  # noqa: S105 (a sentinel, not a secret)
"""The lock token `acquire_lock` returns when the store failed: proceed uncoordinated (never a real owner)."""


class ResilientBackend:
    """Wrap a `Backend` so that its failures degrade to misses instead of raising.

    Any exception from the inner store (a `BackendError` or not) makes `get` return `None`, `get_many`
    return `[None] * len(keys)`, `set_many` do nothing, and `delete_many` / `delete_tags` / `clear` return 0.
    A failed invalidation therefore shows up only as a returned 0 and a call of `on_error`: callers that
    must know should check `on_error` counts (the cache's stats do).

    Each failing call is retried up to `retries` times with tiny jittered waits (at most ~0.25 s of retrying
    in all; the async face sleeps with `asyncio.sleep`, never blocking the loop), then counted once via
    `on_error(exc)`. After `failure_threshold` consecutive failed calls the circuit opens: calls return the
    miss at once without touching the store (and without calling `on_error`), so a dead store does not cost
    its timeout on every call. After `cooldown` seconds one probe call is let through (`state` reads
    "half-open"); its success closes the circuit, its failure re-opens it for another `cooldown`.

    An outage is logged once, as a warning on the `agentcache` logger when it starts, and once at info level
    when the store recovers.

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
    ) -> ResilientBackend:
        # Pick the subclass whose optional powers match the inner store's, so isinstance checks stay true.
        if cls is ResilientBackend:
            cls = _VARIANTS[isinstance(inner, SupportsScan), isinstance(inner, SupportsLocking)]
        return object.__new__(cls)

    def __init__(
        self,
        inner: Backend,
        *,
        retries: int = 2,
        failure_threshold: int = 5,
        cooldown: float = 5.0,
        on_error: Callable[[BaseException], None] | None = None,
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
        self._outage = False
        self._lock = threading.Lock()
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

    def _retry_options(self) -> dict[str, Any]:
        from tenacity import stop_after_attempt, stop_after_delay, wait_random_exponential

        return {
            "stop": stop_after_attempt(self.retries) | stop_after_delay(_RETRY_BUDGET),
            "wait": wait_random_exponential(multiplier=0.005, max=0.05),
            "reraise": True,
        }

    def _succeeded(self) -> None:
        with self._lock:
            self._failures = 0
            self._state = _CLOSED
            recovered, self._outage = self._outage, False
        if recovered:
            logger.info("agentcache: cache backend %r recovered; caching resumed", self.inner)

    def _failed(self, op: str, exc: Exception) -> None:
        with self._lock:
            self._failures += 1
            if self._state == _PROBING or self._failures >= self.failure_threshold:
                self._state = _OPEN
                self._opened_at = time.monotonic()
            started, self._outage = not self._outage, True
        if started:
            logger.warning(
                "agentcache: cache backend %r failed in %s (%s: %s); calls go on uncached until it is back",
                self.inner,
                op,
                type(exc).__name__,
                exc,
            )
        if self.on_error is not None:
            try:
                self.on_error(exc)
            except Exception:
                logger.debug("agentcache: on_error callback raised", exc_info=True)

    def _abandon_probe(self) -> None:
        """The probe was interrupted (cancelled, KeyboardInterrupt): allow another probe at once."""
        with self._lock:
            if self._state == _PROBING:
                self._state = _OPEN

    # -- the two faces: only the call order and the I/O differ -----------------------------------------------

    def _call(self, op: str, default: _T, fn: Callable[..., _T], *args: Any) -> _T:
        probe = self._state != _CLOSED
        if probe and not self._admit():
            return default
        try:
            try:
                result = fn(*args)
            except Exception:
                if probe or not self.retries:
                    raise
                from tenacity import Retrying

                result = Retrying(**self._retry_options())(fn, *args)
        except Exception as exc:
            self._failed(op, exc)
            return default
        except BaseException:
            if probe:
                self._abandon_probe()
            raise
        if self._failures:
            self._succeeded()
        return result

    async def _acall(self, op: str, default: _T, fn: Callable[..., Awaitable[_T]], *args: Any) -> _T:
        probe = self._state != _CLOSED
        if probe and not self._admit():
            return default
        try:
            try:
                result = await fn(*args)
            except Exception:
                if probe or not self.retries:
                    raise
                from tenacity import AsyncRetrying

                result = await AsyncRetrying(**self._retry_options())(fn, *args)
        except Exception as exc:
            self._failed(op, exc)
            return default
        except BaseException:
            if probe:
                self._abandon_probe()
            raise
        if self._failures:
            self._succeeded()
        return result

    # -- SyncBackend -----------------------------------------------------------------------------------------

    def get(self, key: str, /) -> bytes | None:
        """`inner.get`, or `None` when the store fails."""
        return self._call("get", None, self.inner.get, key)

    def get_many(self, keys: Sequence[str], /) -> list[bytes | None]:
        """`inner.get_many`, or all `None` when the store fails."""
        return self._call("get_many", [None] * len(keys), self.inner.get_many, keys)

    def set_many(self, items: Sequence[Item], /) -> None:
        """`inner.set_many`, or nothing when the store fails."""
        self._call("set_many", None, self.inner.set_many, items)

    def delete_many(self, keys: Sequence[str], /) -> int:
        """`inner.delete_many`, or 0 when the store fails (reported via `on_error`)."""
        return self._call("delete_many", 0, self.inner.delete_many, keys)

    def delete_tags(self, tags: Collection[str], /, prefix: str = "") -> int:
        """`inner.delete_tags`, or 0 when the store fails (reported via `on_error`)."""
        return self._call("delete_tags", 0, self.inner.delete_tags, tags, prefix)

    def clear(self, prefix: str = "", /) -> int:
        """`inner.clear`, or 0 when the store fails (reported via `on_error`)."""
        return self._call("clear", 0, self.inner.clear, prefix)

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

    def set_many_fenced(self, items: Sequence[Item], fence: object, /) -> bool:
        """`inner.set_many_fenced`, or `False` when the store fails or `fence` is `UNKNOWN_FENCE`."""
        if fence is UNKNOWN_FENCE:
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
        if fence is UNKNOWN_FENCE:
            return False
        return await self._acall("set_many", False, self.inner.aset_many_fenced, items, fence)  # type: ignore[attr-defined]

    def close(self) -> None:
        """Close the inner store, whatever the breaker's state; a failure is only reported."""
        try:
            self.inner.close()
        except Exception as exc:
            self._report_close(exc)

    # -- AsyncBackend ----------------------------------------------------------------------------------------

    async def aget(self, key: str, /) -> bytes | None:
        """`inner.aget`, or `None` when the store fails."""
        return await self._acall("get", None, self.inner.aget, key)

    async def aget_many(self, keys: Sequence[str], /) -> list[bytes | None]:
        """`inner.aget_many`, or all `None` when the store fails."""
        return await self._acall("get_many", [None] * len(keys), self.inner.aget_many, keys)

    async def aset_many(self, items: Sequence[Item], /) -> None:
        """`inner.aset_many`, or nothing when the store fails."""
        await self._acall("set_many", None, self.inner.aset_many, items)

    async def adelete_many(self, keys: Sequence[str], /) -> int:
        """`inner.adelete_many`, or 0 when the store fails (reported via `on_error`)."""
        return await self._acall("delete_many", 0, self.inner.adelete_many, keys)

    async def adelete_tags(self, tags: Collection[str], /, prefix: str = "") -> int:
        """`inner.adelete_tags`, or 0 when the store fails (reported via `on_error`)."""
        return await self._acall("delete_tags", 0, self.inner.adelete_tags, tags, prefix)

    async def aclear(self, prefix: str = "", /) -> int:
        """`inner.aclear`, or 0 when the store fails (reported via `on_error`)."""
        return await self._acall("clear", 0, self.inner.aclear, prefix)

    async def aclose(self) -> None:
        """Close the inner store, whatever the breaker's state; a failure is only reported."""
        try:
            await self.inner.aclose()
        except Exception as exc:
            self._report_close(exc)

    def _report_close(self, exc: Exception) -> None:
        logger.debug("agentcache: closing cache backend %r failed", self.inner, exc_info=exc)
        if self.on_error is not None:
            try:
                self.on_error(exc)
            except Exception:
                logger.debug("agentcache: on_error callback raised", exc_info=True)


class _Scanning(ResilientBackend):
    """A `ResilientBackend` over a store that supports `scan`."""

    def scan(self, prefix: str = "", /, *, tag: str | None = None) -> Iterator[EntryInfo]:
        """`inner.scan`, passed through: errors are raised (the CLI, not a cached call, uses it)."""
        return cast(SupportsScan, self.inner).scan(prefix, tag=tag)


class _Locking(ResilientBackend):
    """A `ResilientBackend` over a store with cross-process locks; failures yield `FAIL_OPEN_TOKEN`."""

    def acquire_lock(self, name: str, ttl: float, /) -> str | None:
        """`inner.acquire_lock`, or `FAIL_OPEN_TOKEN` when the store fails."""
        fail_open: str | None = FAIL_OPEN_TOKEN
        inner = cast(SupportsLocking, self.inner)
        return self._call("acquire_lock", fail_open, inner.acquire_lock, name, ttl)

    def release_lock(self, name: str, token: str, /) -> bool:
        """`inner.release_lock`, or `False` when the store fails or `token` is `FAIL_OPEN_TOKEN`."""
        if token == FAIL_OPEN_TOKEN:
            return False
        return self._call("release_lock", False, cast(SupportsLocking, self.inner).release_lock, name, token)

    async def aacquire_lock(self, name: str, ttl: float, /) -> str | None:
        """Awaitable `acquire_lock`."""
        fail_open: str | None = FAIL_OPEN_TOKEN
        inner = cast(SupportsLocking, self.inner)
        return await self._acall("acquire_lock", fail_open, inner.aacquire_lock, name, ttl)

    async def arelease_lock(self, name: str, token: str, /) -> bool:
        """Awaitable `release_lock`."""
        if token == FAIL_OPEN_TOKEN:
            return False
        return await self._acall("release_lock", False, cast(SupportsLocking, self.inner).arelease_lock, name, token)


class _ScanningLocking(_Scanning, _Locking):
    """A `ResilientBackend` over a store with both `scan` and locks."""


_VARIANTS: dict[tuple[bool, bool], type[ResilientBackend]] = {
    (False, False): ResilientBackend,
    (True, False): _Scanning,
    (False, True): _Locking,
    (True, True): _ScanningLocking,
}
