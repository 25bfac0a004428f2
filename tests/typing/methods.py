"""Never executed: cached methods type-check at their call sites (`Svc().lookup(1)`), sync and async.

Checked by `mypy --strict` (warn_unused_ignores: an ignore that stops being needed fails the check, so the
rejections below stay rejections).
"""

from __future__ import annotations

from typing import Any

from typing_extensions import assert_type

import agentcache
from agentcache.decorators.embedding import embedding_cached
from agentcache.decorators.semantic import semantic_cached


class Service:
    @agentcache.tool_cached(ignore=["self"])
    def lookup(self, key: int, *, verbose: bool = False) -> str:
        return str(key)

    @agentcache.tool_cached(ttl="1h", ignore=["self"])
    async def search(self, query: str, limit: int = 5) -> list[str]:
        return [query] * limit

    @agentcache.response_cached(ignore=["self"])
    def ask(self, messages: list[dict[str, Any]], model: str = "gpt-4o") -> dict[str, Any]:
        return {}

    @agentcache.response_cached(ignore=["self"])
    async def aask(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {}

    @semantic_cached(ignore=["self"])
    def faq(self, question: str) -> str:
        return question

    @embedding_cached(model="m", ignore=["self"])
    def embed(self, texts: list[str]) -> list[list[float]]:
        return [[0.0] for _ in texts]

    @staticmethod
    @agentcache.tool_cached
    def helper(key: int) -> int:
        return key

    def uses_self(self) -> str:
        return self.lookup(1)


class Child(Service):
    pass


def check_instance_calls() -> None:
    svc = Service()
    assert_type(svc.lookup(1), str)
    assert_type(svc.lookup(1, verbose=True), str)
    assert_type(Child().lookup(2), str)
    assert_type(svc.ask([{"role": "user", "content": "hi"}], model="m"), dict[str, Any])
    assert_type(svc.faq("q"), str)
    assert_type(svc.embed(["a"]), list[list[float]])
    assert_type(svc.lookup.cache_info().hits, int)
    assert_type(svc.lookup.cache_key(svc, 1), str)
    assert_type(svc.lookup.cache_invalidate(svc, 1), bool)
    assert_type(svc.lookup.__wrapped__(svc, 1), str)
    svc.lookup.cache_clear()


async def check_async_instance_calls() -> None:
    svc = Service()
    assert_type(await svc.search("q", limit=2), list[str])
    assert_type(await svc.aask([]), dict[str, Any])
    assert_type(await svc.search.acache_invalidate(svc, "q"), bool)
    assert_type(svc.search.cache_key(svc, "q"), str)


def check_class_calls() -> None:
    svc = Service()
    assert_type(Service.lookup(svc, 1), str)
    assert_type(Service.lookup.cache_invalidate(svc, 1), bool)
    assert_type(Service.lookup.cache_key(svc, 1, verbose=True), str)
    assert_type(Service.helper(3), int)
    assert_type(Service.helper.cache_invalidate(3), bool)


def check_plain_functions_keep_their_signature() -> None:
    @agentcache.tool_cached
    def first_param_is_data(key: int) -> int:
        return key

    assert_type(first_param_is_data(1), int)
    assert_type(first_param_is_data.cache_key(1), str)


def check_rejections() -> None:
    svc = Service()
    svc.lookup("not an int")  # type: ignore[arg-type]
    svc.lookup(1, quiet=True)  # type: ignore[call-arg]
    svc.lookup.cache_invalidate(1)  # type: ignore[arg-type, call-arg]
    Service.lookup(1)  # type: ignore[arg-type, call-arg]
    svc.faq(1)  # type: ignore[arg-type]
    svc.embed("a")  # type: ignore[arg-type]


async def check_async_rejections() -> None:
    svc = Service()
    await svc.search(1)  # type: ignore[arg-type]
    await svc.search.acache_invalidate("q")  # type: ignore[arg-type, call-arg]
