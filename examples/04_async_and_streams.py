"""04 · Async: coroutine functions, streamed responses replayed from the cache, and single-flight.

Shows: `async def` functions cached with the same decorators (and `await fn.acache_invalidate(...)`); an async
generator that streams a response, recorded chunk by chunk on the first call and replayed on the next; and
single-flight: 10 concurrent tasks asking for the same missing key make one call and share its result.

Runs offline in a few seconds on a throwaway SQLite file: `python examples/04_async_and_streams.py`.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncGenerator
from typing import Any

import agentcache

calls = {"fetch": 0, "fetch_uncoalesced": 0}


@agentcache.tool_cached(ttl="10m")
async def fetch_page(url: str) -> str:
    """An HTTP fetch that takes ~300 ms."""
    calls["fetch"] += 1
    await asyncio.sleep(0.3)
    return f"<html>{url}</html>"


@agentcache.tool_cached(ttl="10m", single_flight=False)
async def fetch_page_uncoalesced(url: str) -> str:
    """The same fetch with single-flight turned off, for comparison."""
    calls["fetch_uncoalesced"] += 1
    await asyncio.sleep(0.3)
    return f"<html>{url}</html>"


@agentcache.response_cached()
async def stream_answer(
    prompt: str, model: str = "gpt-4o-mini", stream: bool = True
) -> AsyncGenerator[dict[str, Any], None]:
    """A simulated streamed completion: 5 chunks 80 ms apart, usage on the last one (like OpenAI's)."""
    words = ["Caching", " makes", " agents", " cheaper", "."]
    for i, word in enumerate(words):
        await asyncio.sleep(0.08)
        chunk: dict[str, Any] = {"model": model, "delta": word}
        if i == len(words) - 1:
            chunk["usage"] = {"prompt_tokens": 900, "completion_tokens": len(words), "total_tokens": 905}
        yield chunk


async def consume(label: str, prompt: str) -> None:
    """Read a whole stream; print time to first chunk, total time and whether it was replayed."""
    hits = stream_answer.cache_info().hits
    start = time.perf_counter()
    first = 0.0
    text = ""
    async for chunk in stream_answer(prompt):
        first = first or time.perf_counter() - start
        text += chunk["delta"]
    total = time.perf_counter() - start
    verdict = "hit (replayed)" if stream_answer.cache_info().hits > hits else "miss (live)"
    print(
        f"  {label:<9} first chunk {first * 1000:6.1f} ms, whole stream {total * 1000:6.1f} ms  {verdict:15} {text!r}"
    )


async def main() -> None:
    print("1. an async tool: miss, hit, then `await fetch_page.acache_invalidate(url)`")
    for verdict in ("miss", "hit"):
        start = time.perf_counter()
        await fetch_page("https://example.com/a")
        print(f"  await fetch_page(url)   {(time.perf_counter() - start) * 1000:6.1f} ms  {verdict}")
    print(
        f"  await fetch_page.acache_invalidate(url) -> {await fetch_page.acache_invalidate('https://example.com/a')}\n"
    )

    print("2. single-flight: 10 tasks ask for the same missing page at the same moment")
    for fn, name in ((fetch_page, "fetch"), (fetch_page_uncoalesced, "fetch_uncoalesced")):
        before, info = calls[name], fn.cache_info()
        start = time.perf_counter()
        pages = await asyncio.gather(*(fn("https://example.com/b") for _ in range(10)))
        took = (time.perf_counter() - start) * 1000
        after = fn.cache_info()
        print(
            f"  {fn.__name__:<23} {len(pages)} results in {took:5.1f} ms; fetched {calls[name] - before:2}x "
            f"({after.misses - info.misses} misses, {after.hits - info.hits} hits)"
        )
    print("  with single_flight (the default) the 9 followers wait for the leader and reuse its result\n")

    print("3. a streamed response (async generator): recorded on the first call, replayed on the next")
    await consume("call 1", "why cache?")
    await consume("call 2", "why cache?")
    partial = stream_answer("stop early")
    async for _ in partial:
        break  # the caller stops after the first chunk
    await partial.aclose()
    print("  a stream abandoned half-way is never stored, so the next call runs for real:")
    await consume("call 3", "stop early")
    info = stream_answer.cache_info()
    print(f"  usage on the last chunk is counted: {info.tokens_saved} tokens saved, ${info.usd_saved:.6f}\n")

    print(agentcache.stats())


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        agentcache.configure(url=f"sqlite://{tmp}/cache.db")  # a throwaway store, not your real cache
        asyncio.run(main())
        agentcache.reset()  # close the store before the temporary directory goes away
