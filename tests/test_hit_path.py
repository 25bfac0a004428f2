"""The hit path: every hit is a copy the caller may mutate, never a stale value, and is counted exactly."""

from __future__ import annotations

import copy
import dataclasses
import threading
from typing import Any

import pytest
from test_decorators import call, make

import agentcache
from agentcache.backends.base import Item
from agentcache.codec import entries as serialization
from agentcache.codec.entries import encode_entry
from agentcache.usage import Usage

NESTED: dict[str, Any] = {
    "a": {"b": [1, {"c": "d"}], "e": None},
    "xs": [[1, 2], [3]],
    "s": "text",
    "f": 0.5,
}


@dataclasses.dataclass
class Doc:
    title: str
    tags: list[str]


class TestCopies:
    async def test_nested_mutations_never_reach_later_hits(self, face: str, backend_url: str) -> None:
        """Changing any dict or list inside a returned value, on a miss or a hit, leaves later hits intact."""
        calls: list[int] = []

        def tool(q: str) -> dict[str, Any]:
            calls.append(1)
            return copy.deepcopy(NESTED)

        fn = make(face, tool, agentcache.tool_cached(backend=backend_url))
        for _ in range(4):
            value = await call(fn, "q")
            assert value == NESTED
            value["a"]["b"][1]["c"] = "changed"
            value["a"]["b"].append(9)
            value["xs"][0].append(5)
            value["s"] = "changed"
            value["new"] = True
        assert calls == [1]

    async def test_mutable_typed_values_are_rebuilt_on_every_hit(self, face: str, backend_url: str) -> None:
        """A dataclass holding a list comes back as a new object each time."""

        def tool(q: str) -> Doc:
            return Doc("t", ["a"])

        fn = make(face, tool, agentcache.tool_cached(backend=backend_url))
        await call(fn, "q")
        for _ in range(3):
            doc = await call(fn, "q")
            assert doc == Doc("t", ["a"])
            doc.tags.append("changed")

    async def test_an_entry_replaced_in_the_store_is_served_as_it_is_now(self, face: str, backend: Any) -> None:
        """Another writer replacing the bytes under a key (another process, say) is seen on the next hit."""

        def tool(q: str) -> dict[str, int]:
            return {"v": 1}

        fn = make(face, tool, agentcache.tool_cached(backend=backend, name="replaced"))
        assert await call(fn, "q") == {"v": 1}
        assert await call(fn, "q") == {"v": 1}
        for v in (2, 3):
            key = fn.cache_key("q")
            backend.set_many([Item(key, encode_entry({"v": v}, key=key))])
            assert await call(fn, "q") == {"v": v}
            assert await call(fn, "q") == {"v": v}


class TestCounting:
    def test_hits_are_counted_exactly_from_many_threads(self) -> None:
        """8 threads x 300 hits: every hit, second and token is counted (the hit log has no lock)."""
        usage = {"prompt_tokens": 100, "completion_tokens": 20}

        @agentcache.response_cached(backend="memory://")
        def ask(prompt: str, model: str = "gpt-4o") -> dict[str, Any]:
            return {"model": model, "text": "hi", "usage": usage}

        ask("x")
        start = threading.Barrier(8)

        def work() -> None:
            start.wait()
            for _ in range(300):
                ask("x")

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        info = ask.cache_info()
        assert (info.hits, info.misses) == (2400, 1)
        assert info.tokens_saved == 2400 * 120
        assert info.usd_saved == pytest.approx(2400 * Usage(100, 20, model="gpt-4o").cost())
        assert info.time_saved > 0
        assert agentcache.stats().by_function[ask.__agentcache_layer__.name].hits == 2400  # type: ignore[attr-defined]

    def test_cache_clear_zeroes_counts_logged_but_not_folded(self) -> None:
        """Hits still waiting in the log are part of what `cache_clear` resets."""

        @agentcache.tool_cached(backend="memory://")
        def tool(q: str) -> str:
            return q

        tool("a")
        for _ in range(5):
            tool("a")
        tool.cache_clear()
        assert tool.cache_info().hits == 0
        tool("a")
        tool("a")
        assert tool.cache_info().hits == 1


class TestDecodedTemplates:
    def test_kept_templates_stay_within_their_byte_budget(self) -> None:
        """Hitting many distinct entries never keeps more decoded entries than the budget allows."""
        agentcache.configure(decoded_bytes=20_000)

        @agentcache.tool_cached(backend="memory://")
        def tool(i: int) -> dict[str, str]:
            return {"i": str(i), "pad": "x" * 1000}

        for i in range(100):
            tool(i)
            assert tool(i) == {"i": str(i), "pad": "x" * 1000}
        entries, size = serialization.decoded_footprint()
        assert 0 < size <= 20_000 and entries < 100

    def test_a_zero_budget_parses_every_hit(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """``AGENTCACHE_DECODED_BYTES=0`` keeps nothing decoded; hits still return copies."""
        monkeypatch.setenv("AGENTCACHE_DECODED_BYTES", "0")

        @agentcache.tool_cached(backend="memory://")
        def tool(q: str) -> dict[str, list[int]]:
            return {"xs": [1]}

        tool("q")
        tool("q")["xs"].append(2)
        assert tool("q") == {"xs": [1]}
        assert serialization.decoded_footprint() == (0, 0)

    def test_a_bad_budget_is_refused_with_what_to_write(self) -> None:
        """A negative or non-numeric budget raises ConfigurationError naming the setting."""
        with pytest.raises(agentcache.ConfigurationError, match="decoded_bytes"):
            agentcache.configure(decoded_bytes=-1)

    def test_large_entries_are_parsed_every_time(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An entry over the per-entry limit is never kept decoded, and still hits."""
        monkeypatch.setattr(serialization, "MEMO_ENTRY_MAX", 100)

        @agentcache.tool_cached(backend="memory://")
        def tool(q: str) -> str:
            return "x" * 500

        tool("q")
        assert tool("q") == "x" * 500
        assert serialization.decoded_footprint() == (0, 0)
