"""Tenants: invalidations made inside `agentcache.namespace()` stay inside it, on every backend kind.

Before, `invalidate(tags=...)`, `fn.cache_clear()`, `emit()` and `invalidate_similar()` called inside
``with namespace("b")`` wiped every tenant (and every semantic partition).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import pytest
from support.embedders import SameVector

import agentcache
from agentcache.decorators.semantic import invalidate_similar, semantic_cached
from agentcache.keys.encoding import validate_namespace

TENANTS = ("a", "a/sub", "b", "b/sub", "c")
OUTSIDE = None  # the configured default namespace, outside any block


def run_in(tenant: str | None, fn: Callable[[], Any]) -> Any:
    """Call `fn` inside the tenant's namespace block (or outside any block)."""
    if tenant is None:
        return fn()
    with agentcache.namespace(tenant):
        return fn()


class Tool:
    """A cached tool tagged "t", and which tenants recomputed since the last `fill`."""

    def __init__(self, backend_url: str, name: str = "tool") -> None:
        self.ran: list[str | None] = []

        @agentcache.tool_cached(backend=backend_url, tags=["t"], name=name)
        def tool(q: str) -> str:
            self.ran.append(agentcache.current_namespace())
            return f"{agentcache.current_namespace()}:{q}"

        self.fn = tool

    def fill(self, tenants: Sequence[str | None] = (*TENANTS, OUTSIDE)) -> None:
        """Cache one entry per tenant, then forget who computed."""
        for t in tenants:
            run_in(t, lambda: self.fn("q"))
        self.ran.clear()

    def recomputed(self, tenants: Sequence[str | None] = (*TENANTS, OUTSIDE)) -> set[str | None]:
        """Call again in every tenant: the set of tenants whose entry was gone."""
        self.ran.clear()
        for t in tenants:
            run_in(t, lambda: self.fn("q"))
        return set(self.ran)


class TestScopedInsideABlock:
    def test_tag_invalidation_reaches_only_the_tenant(self, backend_url: str) -> None:
        """`invalidate(tags=...)` inside b deletes b and b/sub only (5 other tenants keep theirs)."""
        tool = Tool(backend_url)
        tool.fill()
        with agentcache.namespace("b"):
            assert agentcache.invalidate(tags=["t"]) == 2
        assert tool.recomputed() == {"b", "b/sub"}

    def test_cache_clear_reaches_only_the_tenant(self, backend_url: str) -> None:
        """`fn.cache_clear()` inside a/sub deletes only a/sub; outside a block it deletes every tenant."""
        tool = Tool(backend_url)
        tool.fill()
        with agentcache.namespace("a"), agentcache.namespace("sub"):
            tool.fn.cache_clear()
        assert tool.recomputed() == {"a/sub"}
        assert tool.fn.cache_info().hits > 0  # a scoped clear keeps the function's stats
        tool.fn.cache_clear()
        assert tool.recomputed() == {*TENANTS, OUTSIDE}
        assert tool.fn.cache_info().hits == 0  # ... a clear of every namespace resets them

    def test_a_name_given_inside_a_block_is_nested_in_it(self, backend_url: str) -> None:
        """Inside b, namespace="sub" means b/sub, and namespace="a" can never reach tenant a."""
        tool = Tool(backend_url)
        tool.fill()
        with agentcache.namespace("b"):
            assert agentcache.invalidate(namespace="a") == 0
            assert agentcache.invalidate(tags=["t"], namespace="sub") == 1
        assert tool.recomputed() == {"b/sub"}
        with agentcache.namespace("b"):
            tool.fn.cache_clear(namespace="sub")
            assert agentcache.invalidate(namespace="sub") == 0  # already gone
        assert tool.recomputed() == {"b/sub"}

    def test_all_namespaces_must_be_explicit(self, backend_url: str) -> None:
        """`namespace=agentcache.ALL` reaches every tenant from inside a block, for every API."""
        tool = Tool(backend_url)
        tool.fill()
        with agentcache.namespace("b"):
            assert agentcache.invalidate(tags=["t"], namespace=agentcache.ALL) == 6
        assert tool.recomputed() == {*TENANTS, OUTSIDE}
        with agentcache.namespace("c"):
            tool.fn.cache_clear(namespace=agentcache.ALL)
        assert tool.recomputed() == {*TENANTS, OUTSIDE}
        with agentcache.namespace("c"), pytest.raises(agentcache.ConfigurationError, match="needs tags"):
            agentcache.invalidate(namespace=agentcache.ALL)
        assert repr(agentcache.ALL) == "agentcache.ALL"

    def test_outside_any_block_every_namespace_is_reached(self, backend_url: str) -> None:
        """Without a block, `invalidate(tags=...)` keeps its documented meaning: every namespace."""
        tool = Tool(backend_url)
        tool.fill()
        assert agentcache.invalidate(tags=["t"]) == 6
        assert tool.recomputed() == {*TENANTS, OUTSIDE}

    def test_exact_keys_are_deleted_wherever_they_are(self, backend_url: str) -> None:
        """An exact key names one entry: it is deleted even from inside another tenant's block."""
        tool = Tool(backend_url)
        tool.fill()
        with agentcache.namespace("a"):
            key = tool.fn.cache_key("q")
        with agentcache.namespace("b"):
            assert agentcache.invalidate(keys=[key]) == 1
        assert tool.recomputed() == {"a"}

    async def test_async_invalidation_is_scoped_too(self, backend_url: str) -> None:
        """`ainvalidate` and `aemit` follow the same rules."""
        tool = Tool(backend_url)
        tool.fill()
        agentcache.on("tenant-event", tags=["t"])
        with agentcache.namespace("c"):
            assert await agentcache.ainvalidate(tags=["t"]) == 1
        assert tool.recomputed() == {"c"}
        with agentcache.namespace("a"):
            assert await agentcache.aemit("tenant-event") == 2
        assert tool.recomputed() == {"a", "a/sub"}
        with agentcache.namespace("a"):
            assert await agentcache.aemit("tenant-event", namespace=agentcache.ALL) == 6
        assert tool.recomputed() == {*TENANTS, OUTSIDE}


class TestEvents:
    def test_emit_inside_a_block_applies_the_rule_to_the_tenant(self, backend_url: str) -> None:
        """A rule's tags reach only the block's tenant and its namespaces are nested in the block."""
        tool = Tool(backend_url)
        tool.fill()
        handled: list[str] = []
        agentcache.on("reindexed", tags=["t"], namespaces=["sub"], handler=handled.append)
        with agentcache.namespace("b"):
            assert agentcache.emit("reindexed") == 2  # b by tag, b/sub by tag (its namespace then is empty)
        assert tool.recomputed() == {"b", "b/sub"}
        assert agentcache.emit("reindexed", namespace="a") == 2  # as if emitted inside a block "a"
        assert tool.recomputed() == {"a", "a/sub"}
        with agentcache.namespace("c"):
            assert agentcache.emit("reindexed", namespace=agentcache.ALL) == 6
        assert tool.recomputed() == {*TENANTS, OUTSIDE}
        assert handled == ["reindexed"] * 3

    def test_event_namespaces_must_be_valid(self) -> None:
        """A rule's namespaces are checked when it is registered."""
        with pytest.raises(agentcache.ConfigurationError, match="invalid namespace"):
            agentcache.on("bad", namespaces=["a/.."])


class TestSemantic:
    @staticmethod
    def make(backend_url: str) -> tuple[Any, list[str]]:
        calls: list[str] = []

        @semantic_cached(backend=backend_url, embedder=SameVector(), guards=(), judge=False, name="tenants.answer")
        def answer(question: str, model: str) -> str:
            calls.append(f"{agentcache.current_namespace()}|{model}")
            return f"{agentcache.current_namespace()}|{model}|{question}"

        return answer, calls

    def test_invalidate_similar_inside_a_block_spares_other_tenants(self, backend_url: str) -> None:
        """Inside b, `invalidate_similar` removes b's entries (both partitions) and no one else's."""
        answer, calls = self.make(backend_url)
        tenants = ("a", "b", "b/sub", "c")
        for t in tenants:
            for model in ("m1", "m2"):  # two semantic partitions per tenant
                run_in(t, partial(answer, "first question", model))
        assert len(calls) == 8
        calls.clear()
        with agentcache.namespace("b"):
            deleted = invalidate_similar("anything", threshold=0.5, embedder=SameVector(), backend=backend_url)
        assert deleted == 4  # b and b/sub, two partitions each
        for t in tenants:
            for model in ("m1", "m2"):
                assert run_in(t, partial(answer, "a paraphrase", model)).startswith(f"{t}|{model}|")
        assert sorted(calls) == ["b/sub|m1", "b/sub|m2", "b|m1", "b|m2"]

    def test_invalidate_similar_everywhere_needs_all_inside_a_block(self, backend_url: str) -> None:
        """`namespace=agentcache.ALL` reaches every tenant's semantic entries; outside a block, so does None."""
        answer, _ = self.make(backend_url)

        def fill() -> None:
            for t in ("a", "b"):
                run_in(t, lambda: answer("first question", "m1"))

        def similar(**scope: Any) -> int:
            return invalidate_similar("x", threshold=0.5, embedder=SameVector(), backend=backend_url, **scope)

        fill()
        with agentcache.namespace("b"):
            assert similar(namespace="zz") == 0  # b/zz: empty
            assert similar(namespace=agentcache.ALL) == 2
        fill()
        assert similar() == 2

    def test_tag_invalidation_of_semantic_entries_is_scoped(self, backend_url: str) -> None:
        """`cache_clear()` of a semantic function inside a block leaves other tenants' paraphrase hits."""
        answer, calls = self.make(backend_url)
        for t in ("a", "b"):
            run_in(t, lambda: answer("first question", "m1"))
        calls.clear()
        with agentcache.namespace("a"):
            answer.cache_clear()
        assert run_in("b", lambda: answer("a paraphrase", "m1")) == "b|m1|first question"
        assert run_in("a", lambda: answer("a paraphrase", "m1")) == "a|m1|a paraphrase"
        assert calls == ["a|m1"]


@pytest.mark.parametrize("name", ["a/..", "..", "./x", "a/./b", "a/../b", ".", "a//b", "a/", "/a", "a/.hidden"])
def test_path_like_namespaces_are_refused(name: str) -> None:
    """Each "/"-separated part starts with a letter or digit, so no "..", "." or empty part gets in."""
    with pytest.raises(agentcache.ConfigurationError, match="each '/'-separated part starts with a letter or digit"):
        validate_namespace(name)
    with pytest.raises(agentcache.ConfigurationError), agentcache.namespace(name):
        pass


@pytest.mark.parametrize("name", ["a", "tenant-42/search", "a/b.c", "u@example.com/x=1+2", "x" * 200])
def test_ordinary_namespaces_are_accepted(name: str) -> None:
    """Names users actually use still pass."""
    assert validate_namespace(name) == name
