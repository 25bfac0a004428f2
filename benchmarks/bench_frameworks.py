"""LangChain and LangGraph through agentcache vs their own caches and vs no cache (local zero-latency server).

* LangChain: `ChatOpenAI.invoke` with `set_llm_cache(LLMCache(...))` (memory, SQLite) vs LangChain's own
  `InMemoryCache` and langchain-community's `SQLiteCache`, and vs no cache (one round trip to the local fake
  server, the cheapest miss there is).
* LangChain agent: a `create_agent` run of two model calls and one tool call, with `CacheMiddleware` vs without.
* LangGraph: `graph.invoke` of a one-node graph whose node has a `CachePolicy`, with `GraphCache` (memory,
  SQLite) vs LangGraph's own `InMemoryCache` and vs no cache.

Writes `benchmarks/results/frameworks.md`. Run: `.venv/bin/python benchmarks/bench_frameworks.py [--quick]`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any, TypedDict

from _harness import Case, fmt, machine_info, markdown_table, measure, ratio, write_report
from langchain.agents import create_agent
from langchain_core.caches import InMemoryCache
from langchain_core.globals import set_llm_cache
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.cache.memory import InMemoryCache as GraphInMemoryCache
from langgraph.graph import START, StateGraph
from langgraph.types import CachePolicy

from agentcache.integrations.langchain import CacheMiddleware, LLMCache
from agentcache.integrations.langgraph import GraphCache
from agentcache.testing.simulator import SimulatedLLM

RESULTS = Path(__file__).parent / "results" / "frameworks.md"
QUESTION = "What is the capital of France? Answer in one word."


def langchain_cases(sim: SimulatedLLM, tmp: str) -> tuple[list[Case], dict[str, Any]]:
    """One `invoke` per case, each with the global LLM cache it names set just before the call."""
    import warnings

    with warnings.catch_warnings():  # langchain-community announces its sunset on import
        warnings.simplefilter("ignore")
        from langchain_community.cache import SQLiteCache

    llm = ChatOpenAI(model="gpt-4o-mini", api_key="sk-bench", base_url=sim.openai_base_url, max_retries=0)  # type: ignore[arg-type]
    caches: dict[str, Any] = {
        "no cache (a round trip to the local server)": None,
        "LangChain InMemoryCache": InMemoryCache(),
        "langchain-community SQLiteCache": SQLiteCache(database_path=f"{tmp}/lc_peer.db"),
        "LLMCache(backend='memory://')": LLMCache(backend="memory://"),
        "LLMCache(backend='sqlite://...')": LLMCache(backend=f"sqlite://{tmp}/lc_ours.db"),
    }
    refs = {
        "LLMCache(backend='memory://')": "LangChain InMemoryCache",
        "LLMCache(backend='sqlite://...')": "langchain-community SQLiteCache",
        "LangChain InMemoryCache": "no cache (a round trip to the local server)",
        "langchain-community SQLiteCache": "no cache (a round trip to the local server)",
    }

    def case(cache: Any) -> Any:
        def run() -> Any:
            set_llm_cache(cache)
            return llm.invoke(QUESTION)

        return run

    for cache in caches.values():  # fill every cache
        case(cache)()
    return [Case(name, case(cache), ref=refs.get(name)) for name, cache in caches.items()], caches


def agent_cases(sim: SimulatedLLM, tmp: str) -> list[Case]:
    @tool
    def search(query: str) -> str:
        """Search the web."""
        return f"3 results for {query}"

    llm = ChatOpenAI(model="gpt-4o-mini", api_key="sk-bench", base_url=sim.openai_base_url, max_retries=0)  # type: ignore[arg-type]
    question = {"messages": [{"role": "user", "content": "llm caching"}]}
    agents = {
        "no cache (2 model requests + 1 tool)": create_agent(llm, tools=[search]),
        "CacheMiddleware(backend='memory://')": create_agent(
            llm, tools=[search], middleware=[CacheMiddleware(backend="memory://")]
        ),
        "CacheMiddleware(backend='sqlite://...')": create_agent(
            llm, tools=[search], middleware=[CacheMiddleware(backend=f"sqlite://{tmp}/agent.db")]
        ),
    }
    for agent in agents.values():
        agent.invoke(question)
    base = "no cache (2 model requests + 1 tool)"
    return [
        Case(name, (lambda a=agent: a.invoke(question)), ref=None if name == base else base)
        for name, agent in agents.items()
    ]


class State(TypedDict):
    x: int


def graph_cases(tmp: str) -> list[Case]:
    def node(state: State) -> dict[str, int]:
        return {"x": state["x"] * 2}

    def build(cache: Any) -> Any:
        builder = StateGraph(State)
        builder.add_node("node", node, cache_policy=CachePolicy(ttl=3600))
        builder.add_edge(START, "node")
        return builder.compile(cache=cache)

    graphs = {
        "no cache (the node runs)": build(None),
        "LangGraph InMemoryCache": build(GraphInMemoryCache()),
        "GraphCache(backend='memory://')": build(GraphCache(backend="memory://")),
        "GraphCache(backend='sqlite://...')": build(GraphCache(backend=f"sqlite://{tmp}/graph.db")),
    }
    refs = {
        "LangGraph InMemoryCache": "no cache (the node runs)",
        "GraphCache(backend='memory://')": "LangGraph InMemoryCache",
        "GraphCache(backend='sqlite://...')": "LangGraph InMemoryCache",
    }
    for graph in graphs.values():
        graph.invoke({"x": 21})
    return [Case(name, (lambda g=graph: g.invoke({"x": 21})), ref=refs.get(name)) for name, graph in graphs.items()]


def section(title: str, note: str, cases: list[Case], quick: bool) -> str:
    results = measure(cases, rounds=3 if quick else 7, round_seconds=0.05 if quick else 0.25, min_iters=5)
    by_name = {r.name: r for r in results}
    rows = [
        [
            r.name,
            fmt(r.median / 1000),
            fmt(r.p99 / 1000),
            ratio(r.median, by_name[r.case.ref].median if r.case.ref else None),
        ]
        for r in results
    ]
    table = markdown_table(["case", "median ms", "p99 ms", "vs the row it is compared with"], rows)
    return f"## {title}\n\n{note}\n\n{table}"


def main() -> None:
    import warnings

    warnings.filterwarnings("ignore", module="langchain_community")  # the peer's deprecation notices
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    sections = []
    with SimulatedLLM() as sim, tempfile.TemporaryDirectory() as tmp:
        cases, _ = langchain_cases(sim, tmp)
        sections.append(
            section(
                "LangChain: `ChatOpenAI.invoke` with a global LLM cache (hits)",
                "Each cached row is a hit. The ratio compares agentcache with LangChain's own cache of the same "
                "kind (a ratio above 1x: agentcache is slower by that factor), and LangChain's caches with no cache.",
                cases,
                args.quick,
            )
        )
        set_llm_cache(None)
        sections.append(
            section(
                "LangChain agent: `create_agent(...).invoke` of a tool-call turn, the tool and a text turn",
                "Cached rows serve both model calls and the tool call from the cache (0 requests).",
                agent_cases(sim, tmp),
                args.quick,
            )
        )
        sections.append(
            section(
                "LangGraph: `graph.invoke` of a one-node graph with `CachePolicy` (hits)",
                "The node itself is trivial: the rows show what each cache costs per node hit.",
                graph_cases(tmp),
                args.quick,
            )
        )
    packages = ["agentcache-py", "langchain", "langchain-core", "langchain-community", "langgraph", "langchain-openai"]
    write_report(args.out, "LangChain and LangGraph integrations", sections, machine_info(packages))
    print(args.out.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
