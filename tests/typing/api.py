"""Never executed: `mypy --strict` checks that decorated functions keep their exact signatures."""

from __future__ import annotations

from typing import Any

from typing_extensions import assert_type

import agentcache


@agentcache.tool_cached(ttl="1h", tags=["search"])
async def search_web(query: str, limit: int = 5) -> list[str]:
    return [query] * limit


@agentcache.tool_cached
def lookup(key: str) -> int:
    return len(key)


@agentcache.response_cached()
def ask(messages: list[dict[str, Any]], model: str = "gpt-4o", temperature: float = 0.0) -> dict[str, Any]:
    return {}


async def check_async() -> None:
    result = await search_web("q", limit=2)
    assert_type(result, list[str])
    assert_type(await search_web.acache_invalidate("q"), bool)
    assert_type(search_web.cache_invalidate("q"), bool)  # the blocking form works on async functions too
    await search_web.acache_clear()
    assert_type(search_web.cache_key("q"), str)
    # the checker says which form to use: a blocking form awaited, an awaitable form left un-awaited
    await search_web.cache_invalidate("q")  # type: ignore[misc]
    search_web.acache_invalidate("q")  # type: ignore[unused-coroutine]


def check_sync() -> None:
    assert_type(lookup("k"), int)
    assert_type(lookup.cache_invalidate("k"), bool)
    assert_type(lookup.cache_info().hits, int)
    assert_type(ask([{"role": "user", "content": "hi"}], model="m"), dict[str, Any])
    lookup.cache_clear()


def check_rejections() -> None:
    lookup(1)  # type: ignore[arg-type]
    lookup("k", extra=2)  # type: ignore[call-arg]
    lookup.cache_invalidate(3)  # type: ignore[arg-type]
