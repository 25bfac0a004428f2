"""`graph.compile(cache=GraphCache(...))`: LangGraph's cache protocol over agentcache stores, `CachePolicy` per
node, clear by node, TTL, no pickle, stats, and two processes sharing node results (#11.4, #11.9)."""

from __future__ import annotations

import asyncio
import operator
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import START, StateGraph
from langgraph.types import CachePolicy

import agentcache
from agentcache.errors import KeyEncodingError
from agentcache.integrations.langgraph import GraphCache, node_key

KINDS = ["memory", "sqlite", "redis"]


@pytest.fixture(params=KINDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class State(TypedDict):
    x: int
    calls: Annotated[list[str], operator.add]


def build(runs: list[str], policy: CachePolicy | None = None) -> StateGraph:
    def slow(state: State) -> dict[str, Any]:
        runs.append(f"slow:{state['x']}")
        return {"x": state["x"] * 2, "calls": ["slow"]}

    def fast(state: State) -> dict[str, Any]:
        runs.append(f"fast:{state['x']}")
        return {"x": state["x"] + 1, "calls": ["fast"]}

    builder = StateGraph(State)
    builder.add_node("slow", slow, cache_policy=policy or CachePolicy())
    builder.add_node("fast", fast)
    builder.add_edge(START, "slow")
    builder.add_edge("slow", "fast")
    return builder


def test_cached_node_runs_once(backend_url: str) -> None:
    """The node with a `CachePolicy` runs once per input; the node without one runs every time."""
    runs: list[str] = []
    graph = build(runs).compile(cache=GraphCache(backend=backend_url))
    first = graph.invoke({"x": 3, "calls": []})
    second = graph.invoke({"x": 3, "calls": []})
    assert first == second == {"x": 7, "calls": ["slow", "fast"]}
    assert runs == ["slow:3", "fast:6", "fast:6"]
    graph.invoke({"x": 4, "calls": []})
    assert runs[-2:] == ["slow:4", "fast:8"]


def test_streamed_graph(backend_url: str) -> None:
    """`graph.stream` (and `astream`) read the same cache: the second stream does not run the node."""
    runs: list[str] = []
    graph = build(runs).compile(cache=GraphCache(backend=backend_url))
    first = list(graph.stream({"x": 6, "calls": []}, stream_mode="values"))

    async def astream() -> list[Any]:
        return [chunk async for chunk in graph.astream({"x": 6, "calls": []}, stream_mode="values")]

    second = asyncio.run(astream())
    assert first == second
    assert runs.count("slow:6") == 1


def test_async_graph(backend_url: str) -> None:
    runs: list[str] = []
    graph = build(runs).compile(cache=GraphCache(backend=backend_url))

    async def main() -> list[Any]:
        return [await graph.ainvoke({"x": 5, "calls": []}) for _ in range(2)]

    first, second = asyncio.run(main())
    assert first == second
    assert runs.count("slow:5") == 1
    graph.invoke({"x": 5, "calls": []})  # the sync face reads what the async one stored
    assert runs.count("slow:5") == 1


def test_clear_cache_by_node(backend_url: str) -> None:
    """`graph.clear_cache(["slow"])` clears that node's entries; another graph's cache in the store is left."""
    runs: list[str] = []
    other_runs: list[str] = []
    graph = build(runs).compile(cache=GraphCache(backend=backend_url))
    other = build(other_runs).compile(cache=GraphCache(backend=backend_url, name="other"))
    graph.invoke({"x": 1, "calls": []})
    other.invoke({"x": 1, "calls": []})
    graph.clear_cache(["slow"])
    graph.invoke({"x": 1, "calls": []})
    other.invoke({"x": 1, "calls": []})
    assert runs.count("slow:1") == 2
    assert other_runs.count("slow:1") == 1
    graph.clear_cache()
    graph.invoke({"x": 1, "calls": []})
    assert runs.count("slow:1") == 3


def test_functional_api_task(backend_url: str) -> None:
    """`@task(cache_policy=...)` inside an `@entrypoint(cache=GraphCache(...))`: each input computed once."""
    from langgraph.func import entrypoint, task

    runs: list[int] = []

    @task(cache_policy=CachePolicy(ttl=600))
    def square(n: int) -> int:
        runs.append(n)
        return n * n

    @entrypoint(cache=GraphCache(backend=backend_url))
    def total(numbers: list[int]) -> int:
        return sum(f.result() for f in [square(n) for n in numbers])

    assert total.invoke([1, 2, 3]) == 14
    assert total.invoke([3, 2, 1, 4]) == 30
    assert sorted(runs) == [1, 2, 3, 4]


def test_protocol_batches(backend_url: str) -> None:
    """`get` of several keys returns the stored ones only; `set` with several namespaces and TTLs; `clear` of
    one namespace leaves the other; the async faces see the same entries."""
    cache: GraphCache[Any] = GraphCache(backend=backend_url)
    a, b = ("__pregel_ns_writes", "mod:f", "a"), ("__pregel_ns_writes", "mod:g", "b")
    cache.set({(a, "k1"): ({"v": 1}, None), (a, "k2"): ([1, 2], 3600), (b, "k1"): ("text", 60)})
    assert cache.get([(a, "k1"), (a, "k2"), (b, "k1"), (b, "missing")]) == {
        (a, "k1"): {"v": 1},
        (a, "k2"): [1, 2],
        (b, "k1"): "text",
    }
    assert cache.get([]) == {}
    cache.clear([a])
    assert cache.get([(a, "k1"), (b, "k1")]) == {(b, "k1"): "text"}

    async def main() -> dict[Any, Any]:
        await cache.aset({(a, "k3"): (b"bytes", None)})
        found = await cache.aget([(a, "k3"), (b, "k1")])
        await cache.aclear()
        return {"found": found, "after": await cache.aget([(a, "k3"), (b, "k1")])}

    out = asyncio.run(main())
    assert out == {"found": {(a, "k3"): b"bytes", (b, "k1"): "text"}, "after": {}}


def test_ttl_reaches_the_store(tmp_path: Path) -> None:
    """Each entry keeps the TTL of its `CachePolicy`; a 1 s entry is gone after it."""
    url = f"sqlite://{tmp_path / 'ttl.db'}"
    cache: GraphCache[Any] = GraphCache(backend=url)
    ns = ("__pregel_ns_writes", "mod:f", "n")
    cache.set({(ns, "long"): ("l", 3600), (ns, "short"): ("s", 1), (ns, "default"): ("d", None)})
    from agentcache.backends import open_backend

    store = open_backend(url)
    try:
        spans = [e.expires_at - e.created_at for e in store.scan() if e.expires_at and e.created_at]  # type: ignore[attr-defined]
    finally:
        store.close()
    assert any(3500 < s <= 3600 for s in spans)
    time.sleep(1.5)
    assert cache.get([(ns, "long"), (ns, "short"), (ns, "default")]) == {(ns, "long"): "l", (ns, "default"): "d"}


def test_pickle_is_never_stored(url: str) -> None:
    """A serializer that falls back to pickle: such a value is not stored (the node runs again)."""
    cache: GraphCache[Any] = GraphCache(backend=url, serde=JsonPlusSerializer(pickle_fallback=True))
    ns = ("__pregel_ns_writes", "mod:f", "n")
    encoding, _ = cache.serde.dumps_typed(Opaque(1))
    assert encoding == "pickle"
    cache.set({(ns, "k"): (Opaque(1), None), (ns, "ok"): ({"a": 1}, None)})
    assert cache.get([(ns, "k"), (ns, "ok")]) == {(ns, "ok"): {"a": 1}}
    cache.layer.set([list(ns), "forged"], ["pickle", b"\x80\x04K\x01."])  # written by someone else
    assert cache.get([(ns, "forged")]) == {}


class Opaque:
    """Neither msgpack nor JSON: LangGraph's serializer pickles it when allowed to."""

    def __init__(self, n: int) -> None:
        self.n = n


def test_node_key_is_canonical() -> None:
    """`node_key`: equal inputs, equal keys (dict order aside); different types differ; hidden state refused."""
    assert node_key({"a": 1, "b": [1, 2]}) == node_key({"b": [1, 2], "a": 1})
    assert node_key({"a": (1, 2)}) != node_key({"a": [1, 2]})

    class Hidden:
        __slots__ = ("secret",)

        def __init__(self) -> None:
            self.secret = 1

    with pytest.raises(KeyEncodingError):
        node_key({"a": Hidden()})


def test_cache_policy_with_node_key_and_stats(url: str) -> None:
    runs: list[str] = []
    graph = build(runs, CachePolicy(key_func=node_key, ttl=600)).compile(cache=GraphCache(backend=url))
    for _ in range(3):
        graph.invoke({"x": 2, "calls": []})
    assert runs.count("slow:2") == 1
    assert agentcache.stats().by_layer["langgraph"].hits == 2


WORKER = textwrap.dedent(
    """
    import operator, os, sys
    from typing import Annotated, TypedDict
    from langgraph.graph import START, StateGraph
    from langgraph.types import CachePolicy
    from agentcache.integrations.langgraph import GraphCache

    class State(TypedDict):
        x: int
        pid: int

    def slow(state: State) -> dict:
        with open(sys.argv[2], "a") as f:
            f.write(f"{os.getpid()}\\n")
        return {"x": state["x"] * 2, "pid": os.getpid()}

    builder = StateGraph(State)
    builder.add_node("slow", slow, cache_policy=CachePolicy(ttl=600))
    builder.add_edge(START, "slow")
    graph = builder.compile(cache=GraphCache(backend=sys.argv[1]))
    print(graph.invoke({"x": 21, "pid": 0})["pid"])
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_two_processes_share_node_results(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Process 2 gets the node result process 1 computed (its pid), and the node body ran once in all."""
    if kind == "redis":
        from support.backends import with_query

        url = with_query(request.getfixturevalue("redis_server"), prefix=f"t{tmp_path.name[-24:]}:")
    else:
        url = f"sqlite://{tmp_path / 'shared.db'}"
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    log = tmp_path / "runs.log"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    pids = [
        subprocess.run(
            [sys.executable, str(script), url, str(log)], capture_output=True, text=True, check=True, env=env
        ).stdout.strip()
        for _ in range(2)
    ]
    assert pids[0] == pids[1] != ""
    assert log.read_text().split() == [pids[0]]


def test_concurrent_identical_runs_are_not_coalesced(url: str) -> None:
    """LangGraph reads its cache before a step and writes it after each node, so two identical runs at once both
    run the node (what docs/frameworks.md says); the node's own work can be coalesced with `@tool_cached`, whose
    single flight holds: the expensive function inside runs once."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    inside = threading.Barrier(2, timeout=60)  # both runs are in the node at once: nothing made one wait
    runs: list[int] = []

    @agentcache.tool_cached(backend=url)
    def expensive(x: int) -> int:
        runs.append(x)
        return x * 2

    def node(state: State) -> dict[str, Any]:
        inside.wait()
        return {"x": expensive(state["x"]), "calls": ["node"]}

    builder = StateGraph(State)
    builder.add_node("node", node, cache_policy=CachePolicy())
    builder.add_edge(START, "node")
    graph = builder.compile(cache=GraphCache(backend=url))
    with ThreadPoolExecutor(2) as pool:
        results = [f.result(timeout=120) for f in [pool.submit(graph.invoke, {"x": 4, "calls": []}) for _ in range(2)]]
    assert [r["x"] for r in results] == [8, 8]
    assert runs == [4]
