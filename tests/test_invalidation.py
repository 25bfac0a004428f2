"""Invalidation by key, tag, namespace and event, in this process and across processes sharing a store."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import agentcache


def counting(backend_url: str, **options: Any) -> tuple[Any, list[str]]:
    """A cached tool that records its calls."""
    calls: list[str] = []

    @agentcache.tool_cached(backend=backend_url, **options)
    def tool(q: str) -> str:
        calls.append(q)
        return f"{q}#{len(calls)}"

    return tool, calls


class TestInvalidate:
    def test_by_tag(self, backend_url: str) -> None:
        """Entries with the tag are gone; others stay."""
        search, s_calls = counting(backend_url, tags=["search"], name="search")
        sql, q_calls = counting(backend_url, tags=["sql"], name="sql")
        search("a"), sql("a")
        assert agentcache.invalidate(tags=["search"]) == 1
        search("a"), sql("a")
        assert (len(s_calls), len(q_calls)) == (2, 1)

    def test_dynamic_tags(self, backend_url: str) -> None:
        """A tags callable tags each entry by its arguments."""
        tool, calls = counting(backend_url, tags=lambda q: [f"doc:{q}"])
        tool("a"), tool("b")
        agentcache.invalidate(tags=["doc:a"])
        tool("a"), tool("b")
        assert calls == ["a", "b", "a"]

    def test_by_tag_within_a_namespace(self, backend_url: str) -> None:
        """A namespace limits a tag invalidation to that tenant (and its nested namespaces)."""
        tool, calls = counting(backend_url, tags=["t"])
        for ns in ("t1", "t1/sub", "t2"):
            with agentcache.namespace(ns):
                tool("q")
        assert agentcache.invalidate(tags=["t"], namespace="t1") == 2
        for ns in ("t1", "t1/sub", "t2"):
            with agentcache.namespace(ns):
                tool("q")
        assert len(calls) == 5

    def test_by_namespace(self, backend_url: str) -> None:
        """Clearing tenant-4 leaves tenant-42 alone."""
        tool, calls = counting(backend_url)
        for ns in ("tenant-4", "tenant-42"):
            with agentcache.namespace(ns):
                tool("q")
        agentcache.invalidate(namespace="tenant-4")
        for ns in ("tenant-4", "tenant-42"):
            with agentcache.namespace(ns):
                tool("q")
        assert len(calls) == 3

    def test_by_key(self, backend_url: str) -> None:
        """An exact key from cache_key() is deleted."""
        tool, calls = counting(backend_url)
        tool("a")
        assert agentcache.invalidate(keys=[tool.cache_key("a")]) == 1
        tool("a")
        assert len(calls) == 2

    async def test_async_invalidate(self, backend_url: str) -> None:
        """ainvalidate and aemit work from a running loop."""
        tool, calls = counting(backend_url, tags=["x"])
        tool("a")
        assert await agentcache.ainvalidate(tags=["x"]) == 1
        agentcache.on("x.changed", tags=["x"])
        tool("a")
        assert await agentcache.aemit("x.changed") == 1
        tool("a")
        assert len(calls) == 3

    def test_tags_must_be_a_list(self) -> None:
        """A bare string is refused instead of being read as single characters."""
        with pytest.raises(agentcache.ConfigurationError):
            agentcache.invalidate(tags="search")  # type: ignore[arg-type]


class TestEvents:
    def test_emit_invalidates_mapped_tags_and_calls_handlers(self, backend_url: str) -> None:
        """on() maps an event to tags and handlers; emit() applies them."""
        tool, calls = counting(backend_url, tags=["search"])
        seen: list[str] = []
        agentcache.on("docs.reindexed", tags=["search"], handler=seen.append)
        tool("a")
        assert agentcache.emit("docs.reindexed") == 1
        tool("a")
        assert len(calls) == 2 and seen == ["docs.reindexed"]
        assert agentcache.emit("nobody.listens") == 0

    @pytest.mark.slow
    def test_event_registered_in_one_process_emitted_in_another(self, tmp_path: Path) -> None:
        """The rule is recorded in the shared store, so another process can emit it."""
        url = f"sqlite://{tmp_path / 'shared.db'}"
        agentcache.configure(url=url)
        tool, calls = counting(url, tags=["kb"])
        agentcache.on("kb.updated", tags=["kb"])
        tool("a")
        script = textwrap.dedent(
            f"""
            import agentcache
            agentcache.configure(url={url!r})
            print(agentcache.emit("kb.updated"))
            """
        )
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "1"
        tool("a")
        assert len(calls) == 2


class TestCrossProcess:
    @pytest.mark.slow
    def test_invalidation_in_another_process_is_seen(self, tmp_path: Path) -> None:
        """With a shared SQLite file, an invalidation elsewhere means the next call here recomputes."""
        url = f"sqlite://{tmp_path / 'shared.db'}"
        tool, calls = counting(url, tags=["shared"], name="shared_tool")
        tool("a")
        tool("a")
        script = textwrap.dedent(
            f"""
            import agentcache
            agentcache.configure(url={url!r})
            print(agentcache.invalidate(tags=["shared"]))
            """
        )
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "1"
        tool("a")
        assert len(calls) == 2
