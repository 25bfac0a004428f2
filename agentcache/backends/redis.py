"""The Redis backend: a byte store shared by many processes and machines, on redis-py's sync + async clients.

Every operation is a pure flow from `agentcache.backends._redis_plan`; this module only drives flows with a
client (`_run` blocking, `_arun` awaited), creates the clients lazily and maps redis errors to `BackendError`
/ `BackendUnavailable`. Nothing connects before the first call.

URLs: `redis://[:password@]host:port/db`, `rediss://...` (TLS), `unix:///path/to.sock?db=0`,
`redis+cluster://host:port` (or `rediss+cluster://`). Query options understood here (the rest go to
redis-py): `prefix` (key prefix, no braces), `max_entries` (per-namespace LRU bound), `socket_timeout`,
`socket_connect_timeout` (or its alias `connect_timeout`; seconds), `max_connections`, `retries` (reconnect
attempts on a dropped pooled connection), and `l1`, `l1_ttl` (an in-process tier in front: see
`agentcache.backends.tiered`).

Bounded failures: redis-py retries nothing but an error on an established connection (reset, closed by the
server): a connect that fails (unresolvable host: one DNS look-up; refused; connect timeout) and a read that
times out are never retried, so one failing operation costs at most one DNS look-up, `socket_connect_timeout`
per address the host resolves to, and `socket_timeout` (see "When Redis fails" in docs/redis.md).
"""

from __future__ import annotations

import asyncio
import math
import secrets
import socket
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from agentcache import _fork
from agentcache.backends import _redis_plan as plan
from agentcache.backends._loop_clients import LoopClients
from agentcache.backends.base import Backend, EntryInfo, Item
from agentcache.errors import BackendError, BackendUnavailable, ConfigurationError, MissingDependencyError

if TYPE_CHECKING:
    from agentcache.backends._redis_plan import CommandFlow

__all__ = ["RedisBackend", "open_redis"]

DEFAULT_SOCKET_TIMEOUT = 0.5
DEFAULT_CONNECT_TIMEOUT = 0.25
_OUR_OPTIONS = {
    "prefix",
    "max_entries",
    "socket_timeout",
    "socket_connect_timeout",
    "connect_timeout",
    "max_connections",
    "retries",
}
# An error on an established connection that a reconnect can cure (the server restarted, an idle socket was cut).
_DROPPED = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)
_TIERED_OPTIONS = {"l1", "l1_ttl"}

Entry = tuple[bytes, float | None, tuple[str, ...]]


def _mapped(exc: Exception) -> Exception:
    """The agentcache error for a driver error: `BackendUnavailable` (cannot reach / timed out) or `BackendError`."""
    if isinstance(exc, BackendError):
        return exc
    from redis import exceptions as rx

    unavailable = (
        rx.ConnectionError,
        rx.TimeoutError,
        rx.ClusterDownError,
        rx.ClusterError,
        rx.RedisClusterException,
        rx.TryAgainError,
        OSError,
        asyncio.TimeoutError,
    )
    if isinstance(exc, unavailable):
        return BackendUnavailable(f"redis unavailable: {type(exc).__name__}: {exc}")
    if isinstance(exc, rx.RedisError):
        return BackendError(f"redis error: {type(exc).__name__}: {exc}")
    return exc


@contextmanager
def _map_errors() -> Iterator[None]:
    """Re-raise driver errors as `BackendUnavailable` or `BackendError` (see `_mapped`)."""
    try:
        yield
    except Exception as exc:
        mapped = _mapped(exc)
        if mapped is exc:
            raise
        raise mapped from exc


def _dropped_connection(error: BaseException) -> bool:
    """Whether a redis `ConnectionError` came from an established connection that broke (worth one reconnect).

    A failed connect (unresolvable host, refused, unreachable, connect timeout) carries the socket error that
    caused it: retrying it would only resolve and wait again, so it is not a dropped connection.
    """
    cause = error.__cause__ or error.__context__
    if cause is None:
        return True  # redis-py's own "Connection closed by server." has no socket error behind it
    return isinstance(cause, _DROPPED) and not isinstance(cause, socket.gaierror)


def _retry_policy(retries: int, *, asynchronous: bool) -> Any:
    """A redis-py `Retry` that reconnects at most `retries` times after a dropped connection, never after a
    failed connect or a timeout (see `_dropped_connection`)."""
    from redis import exceptions as rx
    from redis.backoff import NoBackoff

    if asynchronous:
        from redis.asyncio.retry import Retry as AsyncRetry

        class _AsyncDroppedOnly(AsyncRetry):
            async def call_with_retry(
                self, do: Any, fail: Any, is_retryable: Any = None, with_failure_count: bool = False
            ) -> Any:
                def retryable(error: Exception) -> bool:
                    return _dropped_connection(error) and (is_retryable is None or is_retryable(error))

                return await super().call_with_retry(do, fail, retryable, with_failure_count)

        return _AsyncDroppedOnly(NoBackoff(), retries, supported_errors=(rx.ConnectionError,))
    from redis.retry import Retry

    class _DroppedOnly(Retry):
        def call_with_retry(
            self, do: Any, fail: Any, is_retryable: Any = None, with_failure_count: bool = False
        ) -> Any:
            def retryable(error: Exception) -> bool:
                return _dropped_connection(error) and (is_retryable is None or is_retryable(error))

            return super().call_with_retry(do, fail, retryable, with_failure_count)

    return _DroppedOnly(NoBackoff(), retries, supported_errors=(rx.ConnectionError,))


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _seconds(name: str, value: object) -> float:
    """A positive, finite number of seconds, or a `ConfigurationError` that says so."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{name}={value!r}: expected a positive number of seconds, e.g. {name}=0.5")
    return float(value)


_INVALIDATE_CHANNEL = "__redis__:invalidate"


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _require_redis() -> None:
    try:
        import redis  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("redis", "redis") from exc


def _now_ms() -> int:
    return int(time.time() * 1000)


class RedisBackend:
    """`Backend`, `SupportsScan`, `SupportsLocking`, `SupportsGenerations` over Redis (standalone, TLS, unix, cluster).

    Values are stored in one hash per entry (`v` value, `t` tags, `c` created ms) with a PX expiry; tags are
    per-namespace sets; `max_entries` bounds each namespace with an LRU evicted atomically by a Lua script on
    write. Keys of one namespace share a cluster slot (see `_redis_plan`), so every script touches one slot
    and cross-namespace operations fan out per node. Clients are created on first use, pooled, with short
    timeouts: a dead or silent server fails a call within about `socket_timeout` (+ connect timeout).

    Args:
        url: a Redis URL (see the module docstring); or pass `client` / `async_client` instead.
        client: an existing `redis.Redis` or `redis.cluster.RedisCluster` (not closed by `close`).
        async_client: an existing `redis.asyncio.Redis` or `redis.asyncio.RedisCluster`.
        prefix: a prefix for every Redis key and the invalidation channel (isolates apps or tests).
        max_entries: per-namespace entry bound (LRU); `None` leaves bounding to Redis' `maxmemory`.
        socket_timeout / socket_connect_timeout: seconds, default 0.5 / 0.25 (positive and finite);
            `connect_timeout` is an alias of `socket_connect_timeout`.
        max_connections: pool size per client (default: redis-py's).
        retries: reconnect attempts on an established connection that broke (e.g. a server restart); a failed
            connect and a timeout are never retried.

    Example:
        >>> b = RedisBackend("redis://localhost:6379/0", prefix="myapp:", max_entries=10_000)
    """

    coalesce_reads = True
    """A read is a network round trip: concurrent callers of one key in a process share one read."""

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        async_client: Any = None,
        prefix: str = "",
        max_entries: int | None = None,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
        socket_connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_connections: int | None = None,
        retries: int = 1,
        connect_timeout: float | None = None,
    ) -> None:
        if url is None and client is None and async_client is None:
            raise ConfigurationError("RedisBackend needs a url, a client or an async_client")
        if connect_timeout is not None:
            socket_connect_timeout = connect_timeout
        socket_timeout = _seconds("socket_timeout", socket_timeout)
        socket_connect_timeout = _seconds("socket_connect_timeout", socket_connect_timeout)
        if not _whole(retries):
            raise ConfigurationError(f"retries={retries!r}: expected a whole number >= 0")
        try:
            self.layout = plan.KeyLayout(prefix, max_entries)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
        self.cluster = False
        self._url: str | None = None
        if url is not None:
            parts = urlsplit(url)
            scheme = parts.scheme
            if scheme.endswith("+cluster"):
                self.cluster, scheme = True, scheme[: -len("+cluster")]
            if scheme not in {"redis", "rediss", "unix"}:
                raise ConfigurationError(f"not a Redis URL: {url!r} (redis://, rediss://, unix://, +cluster)")
            self._url = scheme + url[len(parts.scheme) :]
        self._kwargs: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_connect_timeout,
        }
        if max_connections is not None:
            self._kwargs["max_connections"] = max_connections
        self._retries = retries
        self._client = client
        self._owns_client = client is None
        self._given_aclient = async_client
        # Our own asyncio clients: one per running event loop, closed when that loop shuts down.
        self._aclients: LoopClients[Any] = LoopClients(self._new_async, _aclose_client, _abandon_client)
        self._lock = threading.Lock()
        _fork.track(self)

    def _after_fork_in_child(self) -> None:
        """Abandon the parent's clients (kept referenced: their finalizers would take the pools' locks, which a
        parent thread may have held at fork); the child opens its own on first use."""
        _fork.renew(self, "_lock")
        if self._owns_client:
            _fork.keep(self._client)
            self._client = None
        self._aclients.abandon_all()

    def __repr__(self) -> str:
        where = "<client>"
        if self._url is not None:
            parts = urlsplit(self._url)
            where = f"{parts.scheme}://{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}"
            where += parts.path
        return f"RedisBackend({where!r}, prefix={self.layout.prefix!r}, max_entries={self.layout.max_entries!r})"

    # -- clients ---------------------------------------------------------------------------------------------

    def _client_kwargs(self, *, asynchronous: bool = False) -> dict[str, Any]:
        kwargs = dict(self._kwargs)
        # Reconnect only an established connection that broke (a pooled socket dropped by a restart); never a
        # failed connect or a timeout: a dead or silent server must cost one wait, not several.
        kwargs["retry"] = _retry_policy(self._retries, asynchronous=asynchronous)
        if self.cluster:
            kwargs.pop("max_connections", None)
        return kwargs

    def _sync(self) -> Any:
        client = self._client
        if client is not None:
            return client
        _require_redis()
        with self._lock:
            if self._client is None:
                if self._url is None:
                    raise BackendError("this RedisBackend was built with an async client only")
                if self.cluster:
                    from redis.cluster import RedisCluster

                    self._client = RedisCluster.from_url(self._url, **self._client_kwargs())
                else:
                    import redis

                    self._client = redis.Redis.from_url(self._url, **self._client_kwargs())
            return self._client

    def _async(self) -> Any:
        if self._given_aclient is not None:
            return self._given_aclient
        return self._aclients.get()

    def _new_async(self) -> Any:
        """A new asyncio client for the running loop (`LoopClients` calls it once per loop)."""
        _require_redis()
        if self._url is None:
            raise BackendError("this RedisBackend was built with a sync client only")
        if self.cluster:
            from redis.asyncio.cluster import RedisCluster as AsyncCluster

            return AsyncCluster.from_url(self._url, **self._client_kwargs(asynchronous=True))
        import redis.asyncio

        return redis.asyncio.Redis.from_url(self._url, **self._client_kwargs(asynchronous=True))

    # -- drivers ---------------------------------------------------------------------------------------------

    def _run(self, flow: CommandFlow) -> Any:
        with _map_errors():
            client = self._sync()
            reply: Any = None
            try:
                while True:
                    reply = self._execute(client, flow.send(reply))
            except StopIteration as stop:
                return stop.value

    async def _arun(self, flow: CommandFlow) -> Any:
        with _map_errors():
            client = self._async()
            reply: Any = None
            try:
                while True:
                    reply = await self._aexecute(client, flow.send(reply))
            except StopIteration as stop:
                return stop.value

    def _iterate(self, flow: CommandFlow) -> Iterator[EntryInfo]:
        reply: Any = None
        while True:
            with _map_errors():
                try:
                    op = flow.send(reply)
                except StopIteration:
                    return
                reply = None if isinstance(op, plan.Emit) else self._execute(self._sync(), op)
            if isinstance(op, plan.Emit):
                yield from op.entries

    def _execute(self, client: Any, op: Any) -> Any:
        if isinstance(op, plan.Batch):
            if len(op.calls) == 1:
                return [self._call_one(client, op.calls[0])]
            pipe = client.pipeline(transaction=False)
            for call in op.calls:
                pipe.execute_command(*call.args)
            replies = pipe.execute(raise_on_error=False)
            missing = _noscript(replies)
            if missing:
                for script in {op.calls[i].script for i in missing}:
                    assert script is not None
                    client.script_load(script.source)
                for i in missing:
                    replies[i] = client.execute_command(*op.calls[i].args)
            return _raise_first(replies)
        if isinstance(op, plan.Nodes):
            if not self.cluster:
                return [None]
            return [client.get_node_from_key(op.key)] if op.key is not None else client.get_primaries()
        assert isinstance(op, plan.ScanStep)
        args = ("SCAN", op.cursor, "MATCH", op.pattern, "COUNT", op.count)
        if op.node is None:
            return client.execute_command(*args)
        return _scan_reply(client.execute_command(*args, target_nodes=op.node))

    def _call_one(self, client: Any, call: plan.Command) -> Any:
        from redis.exceptions import NoScriptError

        try:
            return client.execute_command(*call.args)
        except NoScriptError:
            assert call.script is not None
            client.script_load(call.script.source)
            return client.execute_command(*call.args)

    async def _aexecute(self, client: Any, op: Any) -> Any:
        if isinstance(op, plan.Batch):
            if len(op.calls) == 1:
                return [await self._acall_one(client, op.calls[0])]
            pipe = client.pipeline(transaction=False)
            for call in op.calls:
                pipe.execute_command(*call.args)
            replies = await pipe.execute(raise_on_error=False)
            missing = _noscript(replies)
            if missing:
                for script in {op.calls[i].script for i in missing}:
                    assert script is not None
                    await client.script_load(script.source)
                for i in missing:
                    replies[i] = await client.execute_command(*op.calls[i].args)
            return _raise_first(replies)
        if isinstance(op, plan.Nodes):
            if not self.cluster:
                return [None]
            await client.initialize()
            return [client.get_node_from_key(op.key)] if op.key is not None else client.get_primaries()
        assert isinstance(op, plan.ScanStep)
        args = ("SCAN", op.cursor, "MATCH", op.pattern, "COUNT", op.count)
        if op.node is None:
            return await client.execute_command(*args)
        return _scan_reply(await client.execute_command(*args, target_nodes=op.node))

    async def _acall_one(self, client: Any, call: plan.Command) -> Any:
        from redis.exceptions import NoScriptError

        try:
            return await client.execute_command(*call.args)
        except NoScriptError:
            assert call.script is not None
            await client.script_load(call.script.source)
            return await client.execute_command(*call.args)

    # -- sync face -------------------------------------------------------------------------------------------

    def get(self, key: str, /) -> bytes | None:
        """Return the value stored under `key`, or `None` when it is missing or expired.

        Without `max_entries` a hit is one plain command on a pooled connection: no pipeline, no flow.
        """
        if self.layout.max_entries is not None:
            value: bytes | None = self._run(plan.get_flow(self.layout, (key,), _now_ms()))[0]
            return value
        try:
            value = self._sync().execute_command(*plan.get_command(self.layout, key))
        except Exception as exc:
            mapped = _mapped(exc)
            if mapped is exc:
                raise
            raise mapped from exc
        return value

    def get_many(self, keys: Sequence[str], /) -> list[bytes | None]:
        """Return the values of `keys`, in order (one pipelined round trip)."""
        if not keys:
            return []
        values: list[bytes | None] = self._run(plan.get_flow(self.layout, keys, _now_ms()))
        return values

    def get_entries(self, keys: Sequence[str], /) -> list[Entry | None]:
        """Return `(value, ttl_left_seconds, tags)` per key, or None when missing (used by the L1 tier)."""
        entries: list[Entry | None] = self._run(plan.get_entries_flow(self.layout, keys, _now_ms()))
        return entries

    def set_many(self, items: Sequence[Item], /) -> None:
        """Store every item, replacing values, TTLs and tags atomically per namespace (one Lua call each)."""
        self._run(plan.set_flow(self.layout, items, _now_ms()))

    def read_fence(self, keys: Sequence[str], tags: Collection[str], /) -> object:
        """The generations a write of `keys` tagged `tags` depends on (registers their groups; one round trip)."""
        return self._run(plan.fence_flow(self.layout, keys, tags, secrets.token_hex(8)))

    def get_fenced(self, key: str, tags: Collection[str], /) -> tuple[bytes | None, object]:
        """`get(key)` and `read_fence([key], tags)` in one round trip."""
        found: tuple[bytes | None, object] = self._run(
            plan.get_fenced_flow(self.layout, key, tags, _now_ms(), secrets.token_hex(8))
        )
        return found

    def set_many_fenced(self, items: Sequence[Item], fence: object, /) -> bool:
        """`set_many` unless an invalidation moved `fence`: compared inside each group's write script."""
        if not isinstance(fence, plan.RedisFence):
            return False
        wrote: bool = self._run(plan.set_flow(self.layout, items, _now_ms(), fence))
        return wrote

    def delete_many(self, keys: Sequence[str], /) -> int:
        """Delete `keys`; return how many existed."""
        count: int = self._run(plan.delete_flow(self.layout, keys))
        return count

    def delete_tags(self, tags: Collection[str], /, prefix: str = "") -> int:
        """Delete every entry tagged with any of `tags` whose key starts with `prefix`; return the count."""
        count: int = self._run(plan.delete_tags_flow(self.layout, tags, prefix))
        return count

    def clear(self, prefix: str = "", /) -> int:
        """Delete every entry whose key starts with `prefix` (SCAN + UNLINK, never KEYS/FLUSHDB)."""
        count: int = self._run(plan.clear_flow(self.layout, prefix))
        return count

    def scan(self, prefix: str = "", /, *, tag: str | None = None) -> Iterator[EntryInfo]:
        """Yield every live entry whose key starts with `prefix` (and carries `tag`, when given)."""
        return self._iterate(plan.scan_flow(self.layout, prefix, tag, time.time()))

    def keys(self, prefix: str = "", /) -> list[str]:
        """The keys starting with `prefix`, unordered (`scan` without its per-entry reads)."""
        found: list[str] = self._run(plan.keys_flow(self.layout, prefix))
        return found

    def acquire_lock(self, name: str, ttl: float, /) -> str | None:
        """Try once to take lock `name` for `ttl` seconds (SET NX PX); return the owner token or `None`."""
        token: str | None = self._run(plan.acquire_flow(self.layout, name, ttl, secrets.token_hex(16)))
        return token

    def release_lock(self, name: str, token: str, /) -> bool:
        """Release `name` if `token` still owns it (Lua compare-and-delete); return whether it did."""
        released: bool = self._run(plan.release_flow(self.layout, name, token))
        return released

    def lock_get(
        self, key: str, name: str, ttl: float, tags: Collection[str], /, *, force: bool = False, wait: float = 0.0
    ) -> tuple[str | None, bytes | None, object | None]:
        """The recheck, lock and fence of a miss in one round trip: read `key`; when it is missing (or `force`),
        try to take lock `name` for `ttl` seconds and read the fence of writing `key` tagged `tags`. With `wait`,
        first block until the lock's owner releases it (its release wakes us: no polling), at most `wait` seconds
        and at most half `socket_timeout` (the reply must come before the socket times out), in the same round
        trip. Returns `(owner token or None, value or None, fence or None)`; the fence comes with the token."""
        flow = self._lock_get_flow(key, name, ttl, tags, force, wait)
        found: tuple[str | None, bytes | None, object | None] = self._run(flow)
        return found

    def _lock_get_flow(
        self, key: str, name: str, ttl: float, tags: Collection[str], force: bool, wait: float
    ) -> CommandFlow:
        return plan.lock_get_flow(
            self.layout,
            key,
            name,
            ttl,
            tags,
            force=force,
            wait=min(wait, self._kwargs["socket_timeout"] / 2),
            now_ms=_now_ms(),
            token=secrets.token_hex(16),
            fence_id=secrets.token_hex(8),
        )

    def store_unlock(self, items: Sequence[Item], fence: object, name: str, token: str, /) -> bool:
        """`set_many_fenced(items, fence)` and `release_lock(name, token)` in one round trip (the release wakes
        the lock's waiters); returns whether the write went through. The lock is released in any case."""
        if not isinstance(fence, plan.RedisFence):
            self.release_lock(name, token)
            return False
        wrote: bool = self._run(plan.set_unlock_flow(self.layout, items, _now_ms(), fence, name, token))[0]
        return wrote

    def publish(self, message: bytes, /) -> None:
        """Publish a message on this backend's channel (`channel()`; the L1 tier uses invalidation tracking)."""
        self._run(plan.publish_flow(self.layout, message))

    def close(self) -> None:
        """Release the connections this backend opened (asyncio ones on their own loop when it still runs).

        A later call reconnects lazily. Clients passed in by the caller are left open.
        """
        with self._lock:
            client = self._client
            if self._owns_client:
                self._client = None
        if client is not None and self._owns_client:
            client.close()
        self._aclients.close()

    # -- async face ------------------------------------------------------------------------------------------

    async def aget(self, key: str, /) -> bytes | None:
        """Awaitable `get` (the same single-command hit)."""
        if self.layout.max_entries is not None:
            value: bytes | None = (await self._arun(plan.get_flow(self.layout, (key,), _now_ms())))[0]
            return value
        try:
            value = await self._async().execute_command(*plan.get_command(self.layout, key))
        except Exception as exc:
            mapped = _mapped(exc)
            if mapped is exc:
                raise
            raise mapped from exc
        return value

    async def aget_many(self, keys: Sequence[str], /) -> list[bytes | None]:
        """Awaitable `get_many`."""
        if not keys:
            return []
        values: list[bytes | None] = await self._arun(plan.get_flow(self.layout, keys, _now_ms()))
        return values

    async def aget_entries(self, keys: Sequence[str], /) -> list[Entry | None]:
        """Awaitable `get_entries`."""
        entries: list[Entry | None] = await self._arun(plan.get_entries_flow(self.layout, keys, _now_ms()))
        return entries

    async def aset_many(self, items: Sequence[Item], /) -> None:
        """Awaitable `set_many`."""
        await self._arun(plan.set_flow(self.layout, items, _now_ms()))

    async def aread_fence(self, keys: Sequence[str], tags: Collection[str], /) -> object:
        """Awaitable `read_fence`."""
        return await self._arun(plan.fence_flow(self.layout, keys, tags, secrets.token_hex(8)))

    async def aget_fenced(self, key: str, tags: Collection[str], /) -> tuple[bytes | None, object]:
        """Awaitable `get_fenced`."""
        found: tuple[bytes | None, object] = await self._arun(
            plan.get_fenced_flow(self.layout, key, tags, _now_ms(), secrets.token_hex(8))
        )
        return found

    async def aset_many_fenced(self, items: Sequence[Item], fence: object, /) -> bool:
        """Awaitable `set_many_fenced`."""
        if not isinstance(fence, plan.RedisFence):
            return False
        wrote: bool = await self._arun(plan.set_flow(self.layout, items, _now_ms(), fence))
        return wrote

    async def adelete_many(self, keys: Sequence[str], /) -> int:
        """Awaitable `delete_many`."""
        count: int = await self._arun(plan.delete_flow(self.layout, keys))
        return count

    async def adelete_tags(self, tags: Collection[str], /, prefix: str = "") -> int:
        """Awaitable `delete_tags`."""
        count: int = await self._arun(plan.delete_tags_flow(self.layout, tags, prefix))
        return count

    async def aclear(self, prefix: str = "", /) -> int:
        """Awaitable `clear`."""
        count: int = await self._arun(plan.clear_flow(self.layout, prefix))
        return count

    async def aacquire_lock(self, name: str, ttl: float, /) -> str | None:
        """Awaitable `acquire_lock`."""
        token: str | None = await self._arun(plan.acquire_flow(self.layout, name, ttl, secrets.token_hex(16)))
        return token

    async def arelease_lock(self, name: str, token: str, /) -> bool:
        """Awaitable `release_lock`."""
        released: bool = await self._arun(plan.release_flow(self.layout, name, token))
        return released

    async def alock_get(
        self, key: str, name: str, ttl: float, tags: Collection[str], /, *, force: bool = False, wait: float = 0.0
    ) -> tuple[str | None, bytes | None, object | None]:
        """Awaitable `lock_get`."""
        flow = self._lock_get_flow(key, name, ttl, tags, force, wait)
        found: tuple[str | None, bytes | None, object | None] = await self._arun(flow)
        return found

    async def astore_unlock(self, items: Sequence[Item], fence: object, name: str, token: str, /) -> bool:
        """Awaitable `store_unlock`."""
        if not isinstance(fence, plan.RedisFence):
            await self.arelease_lock(name, token)
            return False
        wrote: bool = (await self._arun(plan.set_unlock_flow(self.layout, items, _now_ms(), fence, name, token)))[0]
        return wrote

    async def apublish(self, message: bytes, /) -> None:
        """Awaitable `publish`."""
        await self._arun(plan.publish_flow(self.layout, message))

    async def aclose(self) -> None:
        """Awaitable `close`: awaits the closing of this loop's asyncio client, closes the others."""
        await self._aclients.aclose()
        with self._lock:
            client = self._client
            if self._owns_client:
                self._client = None
        if client is not None and self._owns_client:
            client.close()

    # -- for the L1 tier: server-assisted client-side caching -------------------------------------------------

    def tracking_connections(self) -> list[Any]:
        """Connected redis-py connections (one per primary) that receive every change of our keys.

        Each runs `CLIENT TRACKING ON REDIRECT <its own id> BCAST PREFIX ...` over this backend's key prefixes
        and is subscribed to `__redis__:invalidate`, so the server pushes the name of every key written,
        deleted, expired or evicted under them (Redis >= 6). They never reconnect by themselves: a lost
        connection means lost invalidations, which the caller must treat as "flush everything".
        """
        with _map_errors():
            client, _ = self.subscriber_client(resp2=True)
            nodes = [client]
            if self.cluster:
                nodes = [client.get_redis_connection(node) for node in client.get_primaries()]
            prefixes: list[str] = []
            for prefix in self.layout.tracking_prefixes():
                prefixes += ["PREFIX", prefix]
            conns = []
            try:
                for node in nodes:
                    conn = node.connection_pool.make_connection()
                    conns.append(conn)
                    conn.connect()
                    conn.send_command("CLIENT", "ID")
                    ident = conn.read_response()
                    conn.send_command("CLIENT", "TRACKING", "ON", "REDIRECT", ident, "BCAST", *prefixes)
                    if _text(conn.read_response()) != "OK":
                        raise BackendError("CLIENT TRACKING was refused")
                    conn.send_command("SUBSCRIBE", _INVALIDATE_CHANNEL)
                    conn.read_response()
            except BaseException:
                for conn in conns:
                    conn.disconnect()
                raise
            return conns

    def invalidated_keys(self, message: Any) -> list[str] | None:
        """The core keys a tracking message names (metadata dropped), or None when it means "flush all"."""
        if not isinstance(message, list) or len(message) < 3 or _text(message[0]) != "message":
            return []
        keys = message[2]
        if keys is None:
            return None
        out = []
        for key in keys:
            logical = self.layout.logical_key(key)
            if logical is not None:
                out.append(logical)
        return out

    def channel(self) -> str:
        """This backend's pub/sub channel (`<prefix>ac:inv`)."""
        return self.layout.channel()

    def subscriber_client(self, *, resp2: bool = False) -> tuple[Any, bool]:
        """A blocking client for a pub/sub subscriber, and whether the caller owns (and closes) it.

        It never reconnects by itself: a dropped subscription must surface, because messages sent while it
        was down are lost and the subscriber has to flush what it caches. `resp2` pins the RESP2 protocol
        (redis-py 8 defaults to RESP3, where pushes bypass `read_response`).
        """
        with _map_errors():
            if self._url is None:
                return self._sync(), False
            _require_redis()
            kwargs = self._client_kwargs()
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            kwargs["retry"] = Retry(NoBackoff(), 0)
            if resp2:
                kwargs["protocol"] = 2
            if self.cluster:
                from redis.cluster import RedisCluster

                return RedisCluster.from_url(self._url, **kwargs), True
            import redis

            return redis.Redis.from_url(self._url, **kwargs), True


async def _aclose_client(client: Any) -> None:
    await client.aclose()


def _abandon_client(client: Any) -> None:
    """Close the sockets of an asyncio client whose event loop closed before the client could be closed.

    Nothing can await on a closed loop, so the transports are shut by hand (the last resort: `LoopClients`
    normally closes clients during the loop's shutdown), which also keeps the garbage collector quiet.
    """
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        connections = [*pool._available_connections, *pool._in_use_connections]
    else:
        nodes = client.nodes_manager.nodes_cache.values()
        connections = [conn for node in nodes for conn in node._connections]
    for conn in connections:
        writer = conn._writer
        conn._reader = conn._writer = None
        if writer is None:
            continue
        transport = writer.transport
        sock = transport._sock
        transport._closing = True
        transport._sock = None
        if sock is not None:
            sock.close()


def _scan_reply(reply: Any) -> tuple[int, list[bytes]]:
    """A cluster client answers a one-node SCAN as `({node: cursor}, keys)`; unwrap the cursor."""
    cursor, keys = reply
    if isinstance(cursor, dict):
        (cursor,) = cursor.values()
    return int(cursor), list(keys)


def _noscript(replies: list[Any]) -> list[int]:
    from redis.exceptions import NoScriptError

    return [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]


def _raise_first(replies: list[Any]) -> list[Any]:
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def _split_options(url: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """Remove our query options from `url`: return (url for redis-py, backend options, tier options)."""
    parts = urlsplit(url)
    ours: dict[str, str] = {}
    tier: dict[str, str] = {}
    rest: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in _OUR_OPTIONS:
            ours[name] = value
        elif name in _TIERED_OPTIONS:
            tier[name] = value
        else:
            rest.append((name, value))
    base = url.split("?", 1)[0]
    return (f"{base}?{urlencode(rest)}" if rest else base), ours, tier


def _coerce(options: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in options.items():
        try:
            if name == "prefix":
                out[name] = value
            elif value.lower() in {"", "none"}:
                out[name] = None
            elif name in {"max_entries", "max_connections", "retries", "l1"}:
                out[name] = int(value)
            else:
                out[name] = float(value)
        except ValueError as exc:
            kind = "whole number" if name in {"max_entries", "max_connections", "retries", "l1"} else "number"
            raise ConfigurationError(f"bad Redis URL option {name}={value!r}: expected a {kind}") from exc
    return out


def open_redis(url: str, **options: Any) -> Backend:
    """Open a Redis backend from `url` (see the module docstring); keyword `options` override the query.

    `?l1=N` (optionally `&l1_ttl=S`) puts an in-process LRU of N entries in front, kept coherent across
    processes by Redis invalidation tracking (`agentcache.backends.tiered.TieredBackend`).
    """
    _require_redis()
    clean, ours, tier = _split_options(url)
    merged = {**_coerce(ours), **_coerce(tier), **options}
    l1 = merged.pop("l1", None)
    l1_ttl = merged.pop("l1_ttl", None)
    backend = RedisBackend(clean, **merged)
    if l1 is None:
        return backend
    from agentcache.backends.memory import MemoryBackend
    from agentcache.backends.tiered import TieredBackend

    return TieredBackend(MemoryBackend(max_entries=int(l1)), backend, l1_ttl=l1_ttl)
