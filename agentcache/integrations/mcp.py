"""MCP (the `mcp` SDK): cached tool calls for clients, and a shared store for the SDK's own response cache.

Client side::

    from mcp import Client
    from agentcache.integrations.mcp import cache_tools

    async with Client("http://localhost:8000/mcp") as client:
        tools = cache_tools(client)                  # or a `ClientSession`
        result = await tools.call_tool("search", {"query": "agentcache"})

`cache_tools` returns a proxy of the client whose `call_tool` answers from the cache when the server's tool
annotations allow it: ``readOnlyHint`` or ``idempotentHint`` true. A tool that is neither is always called
(unless named in ``allow=``); ``deny=`` names tools never cached. A TTL hint in the tool's ``_meta``
(``ttlMs``, milliseconds; ``0`` means do not cache) overrides ``ttl=``. Entries are partitioned by the server's
identity (its URL without credentials, its command line, or its name and version; ``server=`` sets it), so
two servers never share entries. Results flagged ``isError`` are never stored. Every other attribute is the
client's own, so the proxy can stand in for the client in a framework.

The SDK's response cache (``Client(cache=CacheConfig(store=...))``, protocol 2026-07-28) can keep its entries
in an agentcache store, shared between processes: ``CacheConfig(store=ResponseStore(), partition=user_id)``.

Server side: decorate the tool function with ``@agentcache.tool_cached(...)`` *under* ``@server.tool()``, so
the server registers the cached function and keeps its schema.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

from agentcache.durations import TTL, parse_ttl

__all__ = ["CachedTools", "ResponseStore", "cache_tools", "tool_policy"]


def _field(obj: Any, *names: str) -> Any:
    """The first present attribute (or mapping key) of `obj` among `names` (SDK 2.x snake_case, 1.x camelCase)."""
    for name in names:
        value = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
        if value is not None:
            return value
    return None


def tool_policy(tool: Any) -> tuple[bool, float | None]:
    """``(cacheable, ttl seconds or None)`` from an MCP `Tool`'s annotations and ``_meta`` TTL hint."""
    annotations = _field(tool, "annotations")
    read_only = annotations is not None and _field(annotations, "read_only_hint", "readOnlyHint") is True
    idempotent = annotations is not None and _field(annotations, "idempotent_hint", "idempotentHint") is True
    meta = _field(tool, "meta", "_meta") or {}
    hint = _field(meta, "ttlMs", "ttl_ms") if isinstance(meta, Mapping) else None
    ttl = None if hint is None else max(float(hint), 0.0) / 1000.0
    return read_only or idempotent, ttl


def _identity(session: Any, server: str | None) -> str:
    """The server identity entries are partitioned by: `server`, else derived from the client."""
    if server is not None:
        return server
    target = getattr(session, "server", None)
    if isinstance(target, str):  # `mcp.Client(url)`: the URL without user info
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(target)
        host = parts.hostname or ""
        netloc = host + (f":{parts.port}" if parts.port else "")
        return "url:" + urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    command = getattr(target, "command", None)
    if isinstance(command, str):  # `StdioServerParameters`
        return "stdio:" + " ".join([command, *map(str, getattr(target, "args", []) or [])])
    info = getattr(session, "server_info", None)
    if info is None:
        info = getattr(getattr(session, "session", None), "server_info", None)
    name = _field(info, "name") if info is not None else None
    if name:
        return f"server:{name}@{_field(info, 'version') or ''}"
    from agentcache.errors import ConfigurationError

    raise ConfigurationError("cache_tools() cannot tell which server this is: pass server='<a stable id>'")


def _ok(value: Any) -> bool:
    """Tool errors are answers too, but never stored."""
    return isinstance(value, dict) and not value.get("isError")


class CachedTools:
    """A proxy of an MCP `Client` / `ClientSession` whose `call_tool` is cached as the tool annotations allow."""

    def __init__(
        self,
        session: Any,
        *,
        server: str | None = None,
        namespace: str | None = None,
        ttl: TTL = None,
        backend: Any = None,
        tags: Iterable[str] = (),
        allow: Iterable[str] = (),
        deny: Iterable[str] = (),
        name: str = "mcp.call_tool",
    ) -> None:
        from agentcache import CacheLayer

        self._session = session
        self._server = server
        self._ttl = parse_ttl(ttl)
        self._allow = frozenset(allow)
        self._deny = frozenset(deny)
        self._tools: dict[str, Any] = {}
        self._layer = CacheLayer(
            name, layer="mcp", namespace=namespace, backend=backend, tags=tuple(tags), cache_if=_ok
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    @property
    def layer(self) -> Any:
        """The `agentcache.CacheLayer` holding the tool results (its `info()`, `invalidate()`, `clear()`)."""
        return self._layer

    async def list_tools(self, *args: Any, **kwargs: Any) -> Any:
        """The client's `list_tools`, remembering each tool's annotations."""
        result = await self._session.list_tools(*args, **kwargs)
        for tool in result.tools:
            self._tools[tool.name] = tool
        return result

    async def _all_tools(self) -> None:
        cursor: str | None = None
        while True:
            result = await (self.list_tools(**self._page(cursor)) if cursor else self.list_tools())
            cursor = _field(result, "next_cursor", "nextCursor")
            if not cursor:
                return

    def _page(self, cursor: str) -> dict[str, Any]:
        """The next page's argument: ``params=`` for a `ClientSession` (2.x takes nothing else), ``cursor=`` for a
        2.x `Client`."""
        if "params" not in inspect.signature(self._session.list_tools).parameters:
            return {"cursor": cursor}
        from mcp.types import PaginatedRequestParams

        return {"params": PaginatedRequestParams(cursor=cursor)}

    async def policy(self, name: str) -> tuple[bool, float | None]:
        """``(cacheable, ttl)`` for the tool `name` (listing the server's tools the first time it is seen)."""
        if name in self._deny:
            return False, None
        if name not in self._tools:
            await self._all_tools()
        tool = self._tools.get(name)
        cacheable, ttl = tool_policy(tool) if tool is not None else (False, None)
        if ttl is None:
            ttl = self._ttl
        elif ttl <= 0:
            return False, None
        return cacheable or name in self._allow, ttl

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None, *args: Any, **kwargs: Any) -> Any:
        """`call_tool`, answered from the cache for read-only or idempotent tools (same arguments, same server)."""
        cacheable, ttl = await self.policy(name)
        if not cacheable:
            return await self._session.call_tool(name, arguments, *args, **kwargs)
        request = {"server": _identity(self._session, self._server), "tool": name, "arguments": arguments or {}}
        kind: list[type] = []

        async def compute() -> Any:
            result = await self._session.call_tool(name, arguments, *args, **kwargs)
            kind.append(type(result))
            return result.model_dump(mode="json", by_alias=True, exclude_none=True)

        value = await self._layer.acall(request, compute, ttl=ttl)
        cls: Any = kind[0] if kind else _result_type("CallToolResult")
        return cls.model_validate(value)


def cache_tools(
    session: Any,
    *,
    server: str | None = None,
    namespace: str | None = None,
    ttl: TTL = None,
    backend: Any = None,
    tags: Iterable[str] = (),
    allow: Iterable[str] = (),
    deny: Iterable[str] = (),
) -> CachedTools:
    """Wrap an MCP `Client` or `ClientSession` so `call_tool` answers read-only / idempotent tools from the cache.

    Args:
        session: an entered `mcp.Client` or an initialized `mcp.ClientSession`.
        server: a stable identity of the server (default: its URL without credentials, its command line, or
            its name and version).
        namespace, ttl, backend, tags: as for `@agentcache.tool_cached` (a tool's ``ttlMs`` hint wins over ``ttl``).
        allow: tools to cache although their annotations do not say they are safe to.
        deny: tools never to cache.
    """
    return CachedTools(
        session, server=server, namespace=namespace, ttl=ttl, backend=backend, tags=tags, allow=allow, deny=deny
    )


def _result_type(name: str) -> Any:
    import mcp.types

    cls = getattr(mcp.types, name, None)
    if not isinstance(cls, type) or not hasattr(cls, "model_validate"):
        raise LookupError(name)
    return cls


class ResponseStore:
    """A `mcp.client.caching.ResponseCacheStore` over an agentcache store (memory, SQLite or Redis).

    ``Client(url, cache=CacheConfig(store=ResponseStore(), partition=user_id))``: the SDK's response cache
    (``tools/list``, ``resources/read``, ... with the server's ``ttlMs``/``cacheScope`` hints) then survives
    restarts and is shared by every process using the store. Values are stored as JSON (never pickled) and
    rebuilt with the SDK's result models; entries expire when the SDK said they go stale.
    """

    def __init__(
        self, *, namespace: str | None = None, backend: Any = None, name: str = "mcp.responses", clock: Any = None
    ) -> None:
        from agentcache import CacheLayer

        self._layer = CacheLayer(name, layer="mcp", namespace=namespace, backend=backend)
        self._clock = clock or time.time

    @staticmethod
    def _request(key: Any) -> list[str]:
        return [key.method, key.params_key, key.partition]

    async def get(self, key: Any) -> Any:
        """The entry stored under `key`, or `None`."""
        from mcp.client.caching import CacheEntry

        stored = await self._layer.aget(self._request(key))
        if not isinstance(stored, dict):
            return None
        value = _result_type(stored["type"]).model_validate(stored["value"])
        return CacheEntry(value=value, scope=stored["scope"], expires_at=stored["expires_at"])

    async def set(self, key: Any, entry: Any) -> None:
        """Store `entry` until its ``expires_at``."""
        if entry.expires_at is None:
            return
        ttl = entry.expires_at - self._clock()
        if ttl <= 0:
            await self.delete(key)
            return
        stored = {
            "type": type(entry.value).__name__,
            "value": entry.value.model_dump(mode="json", by_alias=True, exclude_none=True),
            "scope": entry.scope,
            "expires_at": entry.expires_at,
        }
        await self._layer.aset(self._request(key), stored, ttl=math.ceil(ttl))

    async def delete(self, key: Any) -> None:
        """Forget the entry under `key`."""
        await self._layer.adelete(self._request(key))

    async def clear(self) -> None:
        """Forget every entry of this store's layer."""
        await self._layer.aclear()
