"""01 · Tool cache: `@agentcache.tool_cached` in front of a slow tool (search, SQL, HTTP).

Shows: a miss then a hit, a TTL written as "2s", tags, `cache_info()` / `cache_invalidate()` / `cache_clear()`,
`cache_if=` (store only good results) and errors, which are never cached.

Runs offline in a few seconds on a throwaway SQLite file: `python examples/01_tool_cache.py`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from typing import Any

import agentcache

runs = {"search": 0, "lookup": 0}  # how many times each tool body really ran


@agentcache.tool_cached(ttl="2s", tags=["search"])
def search(query: str, limit: int = 3) -> list[str]:
    """A slow web search (~200 ms). Entries expire 2 s after they are stored and carry the tag "search"."""
    runs["search"] += 1
    time.sleep(0.2)
    if not query.strip():
        raise ValueError("empty query")
    return [f"result {i} for {query!r}" for i in range(limit)]


@agentcache.tool_cached(cache_if=lambda rows: len(rows) > 0)
def lookup_customer(email: str) -> list[dict[str, Any]]:
    """A slow SQL lookup (~100 ms). `cache_if`: an empty result (customer not created yet) is not stored."""
    runs["lookup"] += 1
    time.sleep(0.1)
    return [{"email": email, "plan": "pro"}] if email.endswith("@acme.com") else []


def timed(label: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Call `fn(*args)` and print how long it took and whether the cache answered."""
    info = fn.cache_info()  # type: ignore[attr-defined]
    start = time.perf_counter()
    note = ""
    try:
        result = fn(*args)
    except Exception as exc:
        result, note = None, f", raised {type(exc).__name__}: {exc}"
    ms = (time.perf_counter() - start) * 1000
    verdict = "hit  (from the cache)" if fn.cache_info().hits > info.hits else "miss (the tool ran)"  # type: ignore[attr-defined]
    print(f"  {label:<34} {ms:7.1f} ms  {verdict}{note}")
    return result


def summary(fn: Any) -> str:
    """The interesting fields of `fn.cache_info()`."""
    i = fn.cache_info()
    return (
        f"hits={i.hits} misses={i.misses} errors={i.errors} hit rate={i.hit_rate:.0%} time saved={i.time_saved:.3f} s"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        agentcache.configure(url=f"sqlite://{tmp}/cache.db")  # a throwaway store, not your real cache
        print(f"store: {agentcache.get_settings().backend_url}\n")

        print("1. the first call runs the tool, the same call again is a hit:")
        timed('search("llm caching")', search, "llm caching")
        timed('search("llm caching")', search, "llm caching")
        timed('search("llm caching", 5)', search, "llm caching", 5)  # another argument: another entry
        print(f"  search.cache_info(): {summary(search)}\n")

        print('2. ttl="2s": after two seconds the entry is gone and the tool runs again:')
        time.sleep(2.1)
        timed('search("llm caching")', search, "llm caching")
        timed('search("llm caching")', search, "llm caching")
        print()

        print("3. invalidation:")
        existed = search.cache_invalidate("llm caching")
        print(f'  search.cache_invalidate("llm caching") -> {existed} (one entry deleted)')
        timed('search("llm caching")', search, "llm caching")
        timed('search("vector databases")', search, "vector databases")
        deleted = agentcache.invalidate(tags=["search"])
        print(f'  agentcache.invalidate(tags=["search"]) -> {deleted} entries deleted (every entry tagged "search")')
        timed('search("vector databases")', search, "vector databases")
        search.cache_clear()
        print(f"  search.cache_clear() -> every entry of search() gone, counters reset: {summary(search)}\n")

        print("4. errors are never cached: a failing call fails again, for real, each time:")
        timed('search("   ")', search, "   ")
        timed('search("   ")', search, "   ")
        print(f"  search.cache_info(): {summary(search)}\n")

        print("5. cache_if: only results the predicate accepts are stored (here: non-empty ones):")
        timed('lookup_customer("new@startup.io")', lookup_customer, "new@startup.io")
        timed('lookup_customer("new@startup.io")', lookup_customer, "new@startup.io")
        timed('lookup_customer("ann@acme.com")', lookup_customer, "ann@acme.com")
        timed('lookup_customer("ann@acme.com")', lookup_customer, "ann@acme.com")
        print()

        print(f"tool bodies really ran: search {runs['search']}x, lookup_customer {runs['lookup']}x")
        print(agentcache.stats())
        agentcache.reset()  # close the store before the temporary directory goes away


if __name__ == "__main__":
    main()
