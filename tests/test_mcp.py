"""MCP with the real `mcp` SDK (client and in-process server): cached `call_tool` following the server's tool
annotations, partitioned by server; the SDK's response cache on an agentcache store; `@tool_cached` server tools,
including ones taking the server's injected `Context`. Counters inside the tools prove how many calls reached them.

Runs against mcp 2.x (the main environment: `Client(server)`, `MCPServer`) and mcp 1.x (`.venv-compat`, where
CrewAI pins mcp < 2: an initialized `ClientSession` from the SDK's in-memory transport, `FastMCP`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import agentcache

mcp = pytest.importorskip("mcp")
from mcp import types as mcp_types  # noqa: E402
from mcp.types import ToolAnnotations  # noqa: E402

from agentcache.errors import ConfigurationError  # noqa: E402
from agentcache.integrations.mcp import ResponseStore, cache_tools, tool_policy  # noqa: E402

MCP2 = hasattr(mcp, "Client")
if MCP2:
    from mcp import Client
    from mcp.server.mcpserver import Context
    from mcp.server.mcpserver import MCPServer as Server
else:
    from mcp.server.fastmcp import Context  # type: ignore[no-redef]
    from mcp.server.fastmcp import FastMCP as Server  # type: ignore[no-redef]
    from mcp.shared.memory import create_connected_server_and_client_session


@asynccontextmanager
async def connect(server: Any) -> AsyncIterator[Any]:
    """A connected client of the in-process `server`: 2.x `Client`, 1.x an initialized `ClientSession`."""
    if MCP2:
        async with Client(server) as client:
            yield client
    else:
        async with create_connected_server_and_client_session(server) as session:
            yield session


def cached(client: Any, name: str, **options: Any) -> Any:
    """`cache_tools(client)`; a 1.x `ClientSession` keeps no server info, so there the identity is given."""
    if not MCP2:
        options.setdefault("server", name)
    return cache_tools(client, **options)


def wire(model: Any) -> dict[str, Any]:
    """An SDK model as on the wire (camelCase in both SDK versions)."""
    return dict(model.model_dump(mode="json", by_alias=True))


def make_server(name: str = "weather", runs: Counter[str] | None = None, **options: Any) -> tuple[Any, Counter[str]]:
    """A server with one tool per annotation case; `runs` counts the calls each tool body received."""
    runs = Counter() if runs is None else runs
    server = Server(name, **options)

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def forecast(city: str) -> str:
        """Read-only."""
        runs["forecast"] += 1
        return f"sunny in {city} #{runs['forecast']}"

    @server.tool(annotations=ToolAnnotations(readOnlyHint=False, idempotentHint=True))
    def set_flag(flag: str) -> str:
        """Idempotent."""
        runs["set_flag"] += 1
        return f"{flag} set"

    @server.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True))
    def send_email(to: str) -> str:
        """Neither read-only nor idempotent."""
        runs["send_email"] += 1
        return f"sent to {to} #{runs['send_email']}"

    @server.tool()
    def plain(x: int) -> int:
        """No annotations."""
        runs["plain"] += 1
        return x

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True), meta={"ttlMs": 0})
    def live_price(symbol: str) -> str:
        """Read-only, but its TTL hint says never reuse."""
        runs["live_price"] += 1
        return f"{symbol}: {runs['live_price']}"

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True), meta={"ttlMs": 1})
    def short_lived(q: str) -> str:
        """Read-only with a 1 ms TTL hint."""
        runs["short_lived"] += 1
        return f"{q} #{runs['short_lived']}"

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def flaky(q: str) -> str:
        """Read-only, fails on its first call."""
        runs["flaky"] += 1
        if runs["flaky"] == 1:
            raise ValueError("upstream down")
        return f"{q} ok"

    return server, runs


def paged_server(runs: Counter[str]) -> Any:
    """A low-level server listing two read-only tools one per `tools/list` page."""
    from mcp.server.lowlevel import Server as LowLevelServer

    types = mcp_types

    listed = [
        types.Tool(name=name, inputSchema={"type": "object"}, annotations=ToolAnnotations(readOnlyHint=True))
        for name in ("first", "second")
    ]

    def page(cursor: str | None) -> Any:
        at = int(cursor or 0)
        return types.ListToolsResult(tools=[listed[at]], nextCursor=str(at + 1) if at + 1 < len(listed) else None)

    def answer(name: str) -> list[Any]:
        runs[name] += 1
        return [types.TextContent(type="text", text=name)]

    if MCP2:

        async def on_list_tools(ctx: Any, params: Any) -> Any:
            return page(params.cursor if params else None)

        async def on_call_tool(ctx: Any, params: Any) -> Any:
            return types.CallToolResult(content=answer(params.name))

        return LowLevelServer("paged", on_list_tools=on_list_tools, on_call_tool=on_call_tool)
    server = LowLevelServer("paged")

    @server.list_tools()  # type: ignore[misc, untyped-decorator]
    async def list_tools(request: mcp_types.ListToolsRequest) -> mcp_types.ListToolsResult:
        return page(request.params.cursor if request.params else None)  # type: ignore[no-any-return]

    @server.call_tool()  # type: ignore[misc, untyped-decorator]
    async def call_tool(name: str, arguments: dict[str, Any]) -> list[Any]:
        return answer(name)

    return server


def _text(result: Any) -> str:
    return str(result.content[0].text)


class TestCachedCallTool:
    """`cache_tools(client).call_tool` follows the tool annotations."""

    async def test_read_only_and_idempotent_tools_are_cached(self) -> None:
        """A read-only and an idempotent tool run once for two identical calls; other arguments run again."""
        server, runs = make_server()
        async with connect(server) as client:
            tools = cached(client, "weather")
            first = await tools.call_tool("forecast", {"city": "Paris"})
            second = await tools.call_tool("forecast", {"city": "Paris"})
            assert _text(second) == _text(first) == "sunny in Paris #1"
            assert type(second) is type(first)
            await tools.call_tool("forecast", {"city": "Lima"})
            await tools.call_tool("set_flag", {"flag": "x"})
            await tools.call_tool("set_flag", {"flag": "x"})
        assert runs == Counter({"forecast": 2, "set_flag": 1})

    async def test_other_tools_always_run(self) -> None:
        """A tool neither read-only nor idempotent (or without annotations) runs every time."""
        server, runs = make_server()
        async with connect(server) as client:
            tools = cached(client, "weather")
            for _ in range(2):
                await tools.call_tool("send_email", {"to": "a@b.c"})
                await tools.call_tool("plain", {"x": 1})
        assert runs == Counter({"send_email": 2, "plain": 2})

    async def test_allow_and_deny(self) -> None:
        """`allow=` caches a tool the annotations do not clear; `deny=` never caches one they do."""
        server, runs = make_server()
        async with connect(server) as client:
            tools = cached(client, "weather", allow=["plain"], deny=["forecast"])
            for _ in range(2):
                await tools.call_tool("plain", {"x": 1})
                await tools.call_tool("forecast", {"city": "Oslo"})
        assert runs == Counter({"plain": 1, "forecast": 2})

    async def test_ttl_hints(self) -> None:
        """A ``ttlMs: 0`` hint turns caching off; a 1 ms hint expires the entry."""
        server, runs = make_server()
        async with connect(server) as client:
            tools = cached(client, "weather", ttl="1h")
            await tools.call_tool("live_price", {"symbol": "X"})
            await tools.call_tool("live_price", {"symbol": "X"})
            await tools.call_tool("short_lived", {"q": "a"})
            time.sleep(1.1)  # generous: TTLs may be kept in whole seconds
            await tools.call_tool("short_lived", {"q": "a"})
        assert runs == Counter({"live_price": 2, "short_lived": 2})

    async def test_errors_never_stored(self) -> None:
        """An ``isError`` result is returned, not stored: the next call runs the tool."""
        server, runs = make_server()
        async with connect(server) as client:
            tools = cached(client, "weather")
            failed = await tools.call_tool("flaky", {"q": "a"})
            assert wire(failed)["isError"]
            ok = await tools.call_tool("flaky", {"q": "a"})
            again = await tools.call_tool("flaky", {"q": "a"})
            assert not wire(ok)["isError"] and _text(again) == "a ok"
        assert runs["flaky"] == 2

    async def test_partitioned_by_server(self, tmp_path: Path) -> None:
        """Two servers never share entries, even on one shared store; the same server does across clients."""
        store = f"sqlite://{tmp_path / 'mcp.db'}"
        runs: Counter[str] = Counter()
        weather, _ = make_server("weather", runs)
        other, _ = make_server("other-weather", runs)
        for server, name in ((weather, "weather"), (other, "other-weather"), (weather, "weather")):
            async with connect(server) as client:
                await cached(client, name, backend=store).call_tool("forecast", {"city": "Rome"})
        assert runs["forecast"] == 2
        async with connect(weather) as client:  # an explicit identity is its own partition
            await cache_tools(client, backend=store, server="weather-eu").call_tool("forecast", {"city": "Rome"})
        assert runs["forecast"] == 3

    @pytest.mark.skipif(MCP2, reason="a 2.x client knows its server")
    async def test_session_without_server_info_needs_an_identity(self) -> None:
        """A 1.x `ClientSession` keeps nothing that names its server: a cached call asks for `server=`, and
        the tool is not run under a made-up identity."""
        server, runs = make_server()
        async with connect(server) as client:
            with pytest.raises(ConfigurationError, match="server="):
                await cache_tools(client).call_tool("forecast", {"city": "Rome"})
            await cache_tools(client).call_tool("send_email", {"to": "a@b.c"})  # never cached: no identity needed
        assert runs == Counter({"send_email": 1})

    async def test_proxy_keeps_the_client(self) -> None:
        """Everything but `call_tool` is the client's own."""
        server, _ = make_server()
        async with connect(server) as client:
            tools = cached(client, "weather")
            listed = await tools.list_tools()
            assert "forecast" in {t.name for t in listed.tools}
            capabilities = "server_info" if MCP2 else "get_server_capabilities"
            assert getattr(tools, capabilities) == getattr(client, capabilities)

    async def test_tools_listed_over_pages(self) -> None:
        """A tool on the second `tools/list` page is found and cached, whichever client pages: a 2.x `Client`
        (`cursor=`) or a `ClientSession` (`params=`, 1.x and 2.x)."""
        runs: Counter[str] = Counter()
        async with connect(paged_server(runs)) as client:
            for session in (client, client.session) if MCP2 else (client,):
                tools = cache_tools(session, server="paged", namespace=type(session).__name__)
                for _ in range(2):
                    assert _text(await tools.call_tool("second", {})) == "second"
        assert runs == Counter({"second": 2 if MCP2 else 1})

    def test_policy_reads_both_sdk_spellings(self) -> None:
        """Annotations are read in the 2.x (snake_case) and 1.x (camelCase) spellings."""
        assert tool_policy({"annotations": {"readOnlyHint": True}, "_meta": {"ttlMs": 2500}}) == (True, 2.5)
        assert tool_policy({"annotations": {"idempotentHint": True}}) == (True, None)
        assert tool_policy({"annotations": {"destructiveHint": False}}) == (False, None)
        assert tool_policy({}) == (False, None)


class TestServerTools:
    """`@tool_cached` under `@server.tool()`."""

    async def test_cached_server_tool_keeps_schema(self) -> None:
        """The server lists the cached tool with its real parameters, and its body runs once per arguments."""
        runs: Counter[str] = Counter()
        server = Server("calc")

        @server.tool()
        @agentcache.tool_cached()
        def double(x: int, label: str = "n") -> str:
            """Double a number."""
            runs["double"] += 1
            return f"{label}={x * 2}"

        @server.tool()
        @agentcache.tool_cached()
        async def triple(x: int) -> int:
            """Triple a number (async)."""
            runs["triple"] += 1
            return x * 3

        async with connect(server) as client:
            listed = {t.name: wire(t) for t in (await client.list_tools()).tools}
            assert set(listed["double"]["inputSchema"]["properties"]) == {"x", "label"}
            assert listed["double"]["inputSchema"]["required"] == ["x"]
            for _ in range(2):
                assert _text(await client.call_tool("double", {"x": 4})) == "n=8"
                assert _text(await client.call_tool("triple", {"x": 2})) == "6"
        assert runs == Counter({"double": 1, "triple": 1})

    async def test_injected_context_is_left_out_of_the_key(self, url: str) -> None:
        """A tool taking the server's `ctx: Context` under `@server.tool()`, called twice through a real client
        (two different request contexts): it runs once (#11.6)."""
        runs: list[str] = []
        server = Server("test")

        @server.tool()
        @agentcache.tool_cached(backend=url)
        async def lookup(city: str, ctx: Context) -> str:
            """Look a city up."""
            runs.append(city)
            return f"{city}: sunny"

        async with connect(server) as client:
            listed = {t.name: wire(t) for t in (await client.list_tools()).tools}
            assert set(listed["lookup"]["inputSchema"]["properties"]) == {"city"}
            results = [await client.call_tool("lookup", {"city": "Paris"}) for _ in range(2)]
        assert [_text(r) for r in results] == ["Paris: sunny", "Paris: sunny"]
        assert runs == ["Paris"]


@pytest.mark.skipif(not MCP2, reason="the SDK's response cache is new in mcp 2.x")
class TestResponseStore:
    """The SDK's own response cache on an agentcache store."""

    async def test_listing_served_from_a_shared_store(self, tmp_path: Path) -> None:
        """A second client (new process state, same store) is served the listing the first one stored."""
        from mcp.client.caching import CacheConfig
        from mcp.server.caching import CacheHint

        store = f"sqlite://{tmp_path / 'responses.db'}"
        server, _ = make_server(cache_hints={"tools/list": CacheHint(ttl_ms=60_000)})
        config = CacheConfig(store=ResponseStore(backend=store), partition="user-1", target_id="weather")
        async with Client(server, cache=config) as client:
            first = {t.name for t in (await client.list_tools()).tools}

        @server.tool()
        def added_later() -> str:
            """Not in the cached listing."""
            return "x"

        agentcache.reset()  # forget everything in memory: only the SQLite file remains
        config = CacheConfig(store=ResponseStore(backend=store), partition="user-1", target_id="weather")
        async with Client(server, cache=config) as client:
            cached = {t.name for t in (await client.list_tools()).tools}
            fresh = {t.name for t in (await client.list_tools(cache_mode="refresh")).tools}
        assert cached == first
        assert fresh == first | {"added_later"}

    async def test_store_protocol(self) -> None:
        """get/set/delete/clear round-trip SDK result models with their scope and expiry."""
        from mcp.client.caching import CacheEntry, CacheKey
        from mcp.types import ListToolsResult, Tool

        now = [1000.0]
        store = ResponseStore(clock=lambda: now[0])
        key = CacheKey("tools/list", "", '["private","2026-07-28","arm","p"]')
        value = ListToolsResult(tools=[Tool(name="t", input_schema={"type": "object"})], ttl_ms=5000)
        await store.set(key, CacheEntry(value=value, scope="private", expires_at=now[0] + 5))
        entry = await store.get(key)
        assert entry is not None and entry.value == value and entry.scope == "private" and entry.expires_at == 1005.0
        assert await store.get(CacheKey("tools/list", "", "other")) is None
        await store.delete(key)
        assert await store.get(key) is None
        await store.set(key, CacheEntry(value=value, scope="public", expires_at=now[0] + 5))
        await store.clear()
        assert await store.get(key) is None
        await store.set(key, CacheEntry(value=value, scope="public", expires_at=now[0] - 1))  # already stale
        assert await store.get(key) is None
