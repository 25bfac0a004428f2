"""03 · Tenants and invalidation: namespaces keep customers apart; tags and events say what to forget.

Shows: `with agentcache.namespace("acme"):` (each tenant reads and writes only its own entries), a namespace
computed from the call's arguments (`namespace=lambda ...`), invalidating a tag inside one namespace, clearing a
whole namespace, and named events (`agentcache.on` / `agentcache.emit`) mapped to tags and namespaces.

Runs offline in a few seconds on a throwaway SQLite file: `python examples/03_tenants_and_invalidation.py`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from typing import Any

import agentcache

KNOWLEDGE = {"acme": "ACME refunds within 30 days", "globex": "Globex never refunds"}


@agentcache.tool_cached(tags=["kb"])
def search_kb(query: str) -> str:
    """Search the knowledge base of the tenant whose namespace we are in (~100 ms)."""
    time.sleep(0.1)
    tenant = (agentcache.current_namespace() or "?").split("/")[0]
    return f"{KNOWLEDGE.get(tenant, 'no documents')} (for {query!r})"


@agentcache.tool_cached(tags=["billing"], namespace=lambda tenant, month: tenant)
def invoice_total(tenant: str, month: str) -> float:
    """A slow billing query (~100 ms); its namespace is the `tenant` argument, no `with` block needed."""
    time.sleep(0.1)
    return 1234.5 if tenant == "acme" else 99.0


def timed(label: str, fn: Callable[..., Any], *args: Any) -> None:
    """Call `fn(*args)`; print hit or miss, the time and the result."""
    hits = fn.cache_info().hits  # type: ignore[attr-defined]
    start = time.perf_counter()
    result = fn(*args)
    ms = (time.perf_counter() - start) * 1000
    verdict = "hit " if fn.cache_info().hits > hits else "miss"  # type: ignore[attr-defined]
    print(f"  {label:<44} {ms:6.1f} ms  {verdict}  -> {result}")


def ask_both(query: str) -> None:
    """Run the same search as each tenant."""
    for tenant in ("acme", "globex"):
        with agentcache.namespace(tenant):
            timed(f"[{tenant}] search_kb({query!r})", search_kb, query)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        agentcache.configure(url=f"sqlite://{tmp}/cache.db")  # a throwaway store, not your real cache

        print("1. the same call in two namespaces: two entries, and neither tenant sees the other's answer")
        ask_both("refund policy")
        ask_both("refund policy")
        with agentcache.namespace("acme"):
            print(f"  acme's key:   {search_kb.cache_key('refund policy')}")
        with agentcache.namespace("globex"):
            print(f"  globex's key: {search_kb.cache_key('refund policy')}\n")

        print("2. a namespace computed from the arguments: namespace=lambda tenant, month: tenant")
        timed("invoice_total('acme', '2025-06')", invoice_total, "acme", "2025-06")
        timed("invoice_total('acme', '2025-06')", invoice_total, "acme", "2025-06")
        print(f"  key: {invoice_total.cache_key('acme', '2025-06')}\n")

        print('3. acme re-indexed its documents: invalidate(tags=["kb"], namespace="acme")')
        deleted = agentcache.invalidate(tags=["kb"], namespace="acme")
        print(f"  {deleted} entry deleted; acme recomputes, globex still hits:")
        ask_both("refund policy")
        print()

        print('4. acme leaves: invalidate(namespace="acme") deletes all its entries (and acme/... nested ones)')
        deleted = agentcache.invalidate(namespace="acme")
        print(f"  {deleted} entries deleted (the search and the invoice); globex is untouched:")
        timed("invoice_total('acme', '2025-06')", invoice_total, "acme", "2025-06")
        ask_both("refund policy")
        print()

        print("5. events: name what happened once, decide what it invalidates in one place")
        agentcache.on("kb.reindexed", tags=["kb"], handler=lambda event: print(f"  (handler saw {event!r})"))
        agentcache.on("globex.offboarded", namespaces=["globex"])
        print(f'  emit("kb.reindexed") -> {agentcache.emit("kb.reindexed")} entries deleted (tag "kb", every tenant)')
        ask_both("refund policy")
        print(f'  emit("globex.offboarded") -> {agentcache.emit("globex.offboarded")} deleted (globex\'s namespace)')
        print(f'  emit("nobody.listens") -> {agentcache.emit("nobody.listens")} (an unregistered event does nothing)')
        print("  rules are also recorded in the store: `agentcache invalidate --event kb.reindexed` works too\n")

        print(agentcache.stats())
        agentcache.reset()  # close the store (and forget the event rules) before the directory goes away


if __name__ == "__main__":
    main()
