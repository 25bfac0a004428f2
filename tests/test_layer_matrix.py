"""One behaviour suite for every cache layer, over every backend and both faces (issue #10, item 8).

The layers: `@tool_cached`, `@response_cached`, `@semantic_cached`, `@embedding_cached`, `wrap()` (the real
`openai.OpenAI` / `AsyncOpenAI` talking HTTP to the local fake server) and the low-level `CacheLayer`. Each runs
over the backend matrix (`backend_kind`: memory, sqlite, redis, tiered) and the `face` fixture (sync, async).

A layer is driven through a `Subject`: its upstream (a counted function body, or the fake server's request count)
and its own calls and management methods. Every upstream answer carries a serial number, so a test tells a hit
(an earlier answer's serial) from a fresh call without looking at clocks.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from support.embedders import SameVector, TopicVector

import agentcache

LAYERS = ["tool", "response", "semantic", "embedding", "wrap", "lowlevel"]
TAG = "matrix-tag"


class Upstream(RuntimeError):
    """The error a counted function body raises when told to fail."""


async def _settle(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


def _faced(face: str, body: Callable[..., Any]) -> Callable[..., Any]:
    """`body` itself, or a coroutine function with the same name and signature."""
    if face == "sync":
        return body

    @functools.wraps(body)
    async def async_body(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0)
        return body(*args, **kwargs)

    return async_body


class Subject:
    """One cache layer over one backend and face, and the upstream it saves calls to."""

    layer = ""  # its row in `agentcache.stats().by_layer`
    error: type[BaseException] = Upstream
    records = 1  # records one stored call writes (a semantic answer also writes its vector record)
    ages = True  # whether a `max_age` applies (vectors never go stale: embeddings ignore it, as documented)

    def __init__(self, face: str, name: str) -> None:
        self.face = face
        self.name = name  # its row in `agentcache.stats().by_function`
        self.calls = 0
        self.failing = 0

    @property
    def upstream(self) -> int:
        """How many calls reached the upstream (failed ones included)."""
        return self.calls

    def fail_next(self) -> None:
        """Make the next upstream call fail."""
        self.failing += 1

    def answer(self) -> int:
        """Count an upstream call and return its serial (or raise, when told to fail)."""
        self.calls += 1
        if self.failing:
            self.failing -= 1
            raise Upstream("upstream 503")
        return self.calls

    async def call(self, q: str, v: int = 0) -> Any:
        """Ask the layer `q` (with another argument `v`) through the current face."""
        raise NotImplementedError

    def serial(self, value: Any) -> Any:
        """The serial of the upstream answer `value` came from."""
        raise NotImplementedError

    async def invalidate(self, q: str, v: int = 0, *, awaitable: bool) -> bool:
        """Delete the entry of one call with the blocking or the awaitable form; whether one existed."""
        raise NotImplementedError

    async def clear(self, *, awaitable: bool) -> None:
        """Delete every entry of this layer with the blocking or the awaitable form."""
        raise NotImplementedError

    async def close(self) -> None:
        """Release what the subject opened."""

    def info(self) -> Any:
        """The layer's own counters: `cache_info()` of a cached function, `info()` of a layer."""
        raise NotImplementedError


class Decorated(Subject):
    """A decorated function: cache_invalidate / acache_invalidate / cache_clear / acache_clear on the function."""

    def __init__(self, face: str, name: str, fn: Any) -> None:
        super().__init__(face, name)
        self.fn = fn

    def request(self, q: str, v: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The function's arguments for question `q` and other argument `v`."""
        return (q,), {"v": v}

    async def call(self, q: str, v: int = 0) -> Any:
        args, kwargs = self.request(q, v)
        return await _settle(self.fn(*args, **kwargs))

    async def invalidate(self, q: str, v: int = 0, *, awaitable: bool) -> bool:
        args, kwargs = self.request(q, v)
        if awaitable:
            return bool(await self.fn.acache_invalidate(*args, **kwargs))
        return bool(self.fn.cache_invalidate(*args, **kwargs))

    async def clear(self, *, awaitable: bool) -> None:
        if awaitable:
            await self.fn.acache_clear()
        else:
            self.fn.cache_clear()

    def info(self) -> Any:
        return self.fn.cache_info()


class Tool(Decorated):
    layer = "tool"

    def __init__(self, face: str, url: str, name: str, **options: Any) -> None:
        def search(q: str, v: int = 0) -> dict[str, Any]:
            return {"q": q, "v": v, "n": self.answer()}

        super().__init__(face, name, agentcache.tool_cached(backend=url, name=name, **options)(_faced(face, search)))

    def serial(self, value: Any) -> Any:
        return value["n"]


class Response(Decorated):
    layer = "response"

    def __init__(self, face: str, url: str, name: str, **options: Any) -> None:
        def ask(messages: list[dict[str, str]], model: str = "gpt-4o-mini", temperature: float = 0.0) -> Any:
            n = self.answer()
            return {
                "id": f"resp-{n}",
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f"re: {messages[-1]['content']}"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            }

        fn = agentcache.response_cached(backend=url, name=name, **options)(_faced(face, ask))
        super().__init__(face, name, fn)

    def request(self, q: str, v: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return ([{"role": "user", "content": q}],), {"temperature": float(v)}

    def serial(self, value: Any) -> Any:
        return value["id"]


class Semantic(Decorated):
    layer = "semantic"
    records = 2

    def __init__(self, face: str, url: str, name: str, embedder: Any = None, **options: Any) -> None:
        def answer(question: str, v: int = 0) -> str:
            return f"{question}|{v}|#{self.answer()}"

        fn = agentcache.semantic_cached(
            backend=url, name=name, embedder=embedder or TopicVector(), guards=(), judge=False, **options
        )(_faced(face, answer))
        super().__init__(face, name, fn)

    def serial(self, value: Any) -> Any:
        return int(value.rsplit("#", 1)[1])


class Embedding(Decorated):
    layer = "embedding"
    ages = False

    def __init__(self, face: str, url: str, name: str, **options: Any) -> None:
        def embed(texts: list[str], dimensions: int = 3) -> list[list[float]]:
            return [[float(self.answer()), float(len(t)), float(dimensions)] for t in texts]

        # Functions embedding with one model share its vectors: each subject is its own model (vector space).
        fn = agentcache.embedding_cached(model=name, backend=url, name=name, **options)(_faced(face, embed))
        super().__init__(face, name, fn)

    def request(self, q: str, v: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return ([q],), {"dimensions": 3 + v}

    async def call(self, q: str, v: int = 0) -> Any:
        vectors = await super().call(q, v)
        assert len(vectors) == 1
        return vectors[0]

    def serial(self, value: Any) -> Any:
        return int(value[0])


class Wrapped(Subject):
    """`agentcache.wrap()` of the real OpenAI SDK client; the upstream is the fake server's request count."""

    layer = "response"
    path = "chat.completions.create"

    def __init__(self, face: str, url: str, server: Any, **options: Any) -> None:
        import openai

        from agentcache.integrations import core_of

        super().__init__(face, "openai." + self.path)
        self.server = server
        self.error = openai.InternalServerError
        client_class = openai.AsyncOpenAI if face == "async" else openai.OpenAI
        plain = client_class(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
        self.client = agentcache.wrap(plain, backend=url, **options)  # shares `plain`'s HTTP pool
        core = core_of(self.client)
        assert core is not None
        self.core = core

    @property
    def upstream(self) -> int:
        return int(self.server.calls["chat.completions"])

    def fail_next(self) -> None:
        self.server.fail_next(500, endpoint="chat.completions")

    def request(self, q: str, v: int) -> dict[str, Any]:
        return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": q}], "temperature": float(v)}

    async def call(self, q: str, v: int = 0) -> Any:
        return await _settle(self.client.chat.completions.create(**self.request(q, v)))

    def serial(self, value: Any) -> Any:
        return value.id

    async def invalidate(self, q: str, v: int = 0, *, awaitable: bool) -> bool:
        key = self.core.key(self.core.endpoints[self.path], self.request(q, v))
        assert key is not None
        if awaitable:
            return await agentcache.ainvalidate(keys=[key]) > 0
        return agentcache.invalidate(keys=[key]) > 0

    async def clear(self, *, awaitable: bool) -> None:
        layer = self.core.layers[self.path]
        await layer.aclear() if awaitable else layer.clear()

    async def close(self) -> None:
        await _settle(self.client.close())

    def info(self) -> Any:
        return self.core.layers[self.path].info()


class LowLevel(Subject):
    """`agentcache.CacheLayer.call` / `acall` around a counted computation."""

    layer = "custom"

    def __init__(self, face: str, url: str, name: str, **options: Any) -> None:
        super().__init__(face, name)
        self.cache = agentcache.CacheLayer(name, backend=url, **options)

    async def call(self, q: str, v: int = 0) -> Any:
        request = {"q": q, "v": v}
        if self.face == "sync":
            return self.cache.call(request, lambda: {"q": q, "v": v, "n": self.answer()})

        async def compute() -> dict[str, Any]:
            await asyncio.sleep(0)
            return {"q": q, "v": v, "n": self.answer()}

        return await self.cache.acall(request, compute)

    def serial(self, value: Any) -> Any:
        return value["n"]

    async def invalidate(self, q: str, v: int = 0, *, awaitable: bool) -> bool:
        request = {"q": q, "v": v}
        return await self.cache.adelete(request) if awaitable else self.cache.delete(request)

    async def clear(self, *, awaitable: bool) -> None:
        await self.cache.aclear() if awaitable else self.cache.clear()

    def info(self) -> Any:
        return self.cache.info()


SUBJECTS: dict[str, Any] = {
    "tool": Tool,
    "response": Response,
    "semantic": Semantic,
    "embedding": Embedding,
    "lowlevel": LowLevel,
}

Make = Callable[..., Subject]


@pytest.fixture(params=LAYERS)
def kind(request: pytest.FixtureRequest) -> str:
    """Each cache layer in turn."""
    return str(request.param)


@pytest.fixture
async def make(kind: str, face: str, backend_url: str, request: pytest.FixtureRequest) -> AsyncIterator[Make]:
    """`make(name=None, **options)`: a subject of the current layer, backend and face (closed after the test)."""
    server = request.getfixturevalue("server") if kind == "wrap" else None
    made: list[Subject] = []

    def build(name: str | None = None, **options: Any) -> Subject:
        subject: Subject
        if kind == "wrap":
            subject = Wrapped(face, backend_url, server, **options)
        else:
            subject = SUBJECTS[kind](face, backend_url, name or f"matrix.{kind}", **options)
        made.append(subject)
        return subject

    yield build
    for subject in made:
        await subject.close()


def _neighbour(face: str, backend_url: str) -> LowLevel:
    """An entry of another layer on the same store: what a layer's own invalidation must leave alone."""
    return LowLevel(face, backend_url, "matrix.neighbour")


async def _together(subject: Subject, q: str, n: int) -> list[Any]:
    """`n` identical calls at once: tasks on the async face, threads (released by a barrier) on the sync face."""
    if subject.face == "async":
        return list(await asyncio.gather(*(subject.call(q) for _ in range(n))))
    barrier = threading.Barrier(n)

    def one() -> Any:
        barrier.wait(30)
        return asyncio.run(subject.call(q))  # the sync face: the coroutine only wraps blocking calls

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: one(), range(n)))


class TestHitsAndKeys:
    async def test_miss_then_hit_and_arguments_never_share(self, make: Make) -> None:
        """The second identical call is served from the store (the upstream ran once, the value is equal), and
        concurrent identical calls share one computation; another question or another argument is its own entry
        and serves its own answer afterwards."""
        s = make()
        first = await s.call("alpha")
        second = await s.call("alpha")
        assert s.upstream == 1
        assert s.serial(first) == s.serial(second)
        assert second == first
        together = await _together(s, "gamma", 4)
        assert len({s.serial(v) for v in together}) == 1 and s.upstream == 2
        calls = [("alpha", 0), ("beta", 0), ("alpha", 1), ("beta", 1)]
        serials = [s.serial(await s.call(q, v)) for q, v in calls]
        assert len(set(serials)) == 5 - 1 and s.upstream == 2 + 3
        assert [s.serial(await s.call(q, v)) for q, v in calls] == serials
        assert s.upstream == 5

    async def test_namespaces_partition(self, make: Make, face: str) -> None:
        """The same call in two namespaces runs twice; invalidating one namespace leaves the other's entry."""
        s = make()
        with agentcache.namespace("tenant-1"):
            one = s.serial(await s.call("alpha"))
        with agentcache.namespace("tenant-2"):
            two = s.serial(await s.call("alpha"))
        assert one != two and s.upstream == 2
        with agentcache.namespace("tenant-1"):
            assert s.serial(await s.call("alpha")) == one
        with agentcache.namespace("tenant-2"):
            assert s.serial(await s.call("alpha")) == two
        assert s.upstream == 2
        if face == "sync":
            agentcache.invalidate(namespace="tenant-1")
        else:
            await agentcache.ainvalidate(namespace="tenant-1")
        with agentcache.namespace("tenant-2"):
            assert s.serial(await s.call("alpha")) == two
        with agentcache.namespace("tenant-1"):
            one = s.serial(await s.call("alpha"))
        assert one != two and s.upstream == 3
        with agentcache.namespace("tenant-2"):  # clear() inside a block: that namespace's entries only
            await s.clear(awaitable=face == "async")
            two = s.serial(await s.call("alpha"))
        with agentcache.namespace("tenant-1"):
            assert s.serial(await s.call("alpha")) == one
        assert s.upstream == 4

    async def test_ttl_zero_stores_nothing(self, make: Make) -> None:
        """ttl=0: every call reaches the upstream."""
        s = make(ttl=0)
        first = s.serial(await s.call("alpha"))
        assert s.serial(await s.call("alpha")) != first
        assert s.upstream == 2
        assert agentcache.stats().by_function[s.name].stores == 0


class TestInvalidation:
    async def test_invalidate_one_entry_both_forms(self, make: Make, face: str, backend_url: str) -> None:
        """The blocking and the awaitable form each delete exactly the named entry, on either face."""
        s = make()
        neighbour = _neighbour(face, backend_url)
        a, b, c = [s.serial(await s.call(q)) for q in ("alpha", "beta", "gamma")]
        kept = neighbour.serial(await neighbour.call("alpha"))
        natural = face == "async"
        assert await s.invalidate("alpha", awaitable=natural) is True
        assert await s.invalidate("alpha", awaitable=natural) is False
        assert await s.invalidate("beta", awaitable=not natural) is True
        assert await s.invalidate("beta", awaitable=not natural) is False
        assert s.serial(await s.call("alpha")) not in (a, b, c)
        assert s.serial(await s.call("beta")) not in (a, b, c)
        assert s.serial(await s.call("gamma")) == c
        assert s.upstream == 5
        assert neighbour.serial(await neighbour.call("alpha")) == kept

    async def test_clear_both_forms(self, make: Make, face: str, backend_url: str) -> None:
        """cache_clear / acache_clear (clear / aclear on the low-level API) drop every entry of this layer, in
        every namespace, and nothing of another layer."""
        s = make()
        neighbour = _neighbour(face, backend_url)
        kept = neighbour.serial(await neighbour.call("alpha"))

        async def both() -> None:
            await s.call("alpha")
            with agentcache.namespace("tenant-1"):
                await s.call("alpha")

        await both()
        await s.clear(awaitable=face == "async")
        await both()
        assert s.upstream == 4
        await s.clear(awaitable=face == "sync")
        await both()
        await both()
        assert s.upstream == 6
        assert neighbour.serial(await neighbour.call("alpha")) == kept

    @pytest.mark.parametrize("kind", [k for k in LAYERS if k != "wrap"])
    async def test_invalidate_by_tag(self, make: Make, face: str) -> None:
        """agentcache.invalidate(tags=...) / ainvalidate drop every entry with the tag and only those.

        (`wrap()` takes no `tags=`: its entries are reached by key, namespace or clear.)"""
        tagged = make(tags=[TAG])
        untagged = make(name="matrix.untagged")
        a = tagged.serial(await tagged.call("alpha"))
        b = tagged.serial(await tagged.call("beta"))
        kept = untagged.serial(await untagged.call("alpha"))
        if face == "sync":
            deleted = agentcache.invalidate(tags=[TAG])
        else:
            deleted = await agentcache.ainvalidate(tags=[TAG])
        assert deleted == 2 * tagged.records
        assert tagged.serial(await tagged.call("alpha")) not in (a, b)
        assert tagged.serial(await tagged.call("beta")) not in (a, b)
        assert tagged.upstream == 4
        assert untagged.serial(await untagged.call("alpha")) == kept and untagged.upstream == 1


class TestModesAndStats:
    async def test_per_call_modes(self, make: Make) -> None:
        """`agentcache.refresh()` calls again and replaces the entry; `mode("read")` serves entries and stores
        no miss; `mode("off")` calls the upstream without reading or writing, counted as a bypass; an entry older
        than `mode(max_age=...)` is a miss (computed and stored again)."""
        s = make()
        old = s.serial(await s.call("alpha"))
        with agentcache.refresh():
            new = s.serial(await s.call("alpha"))
        assert new != old and s.upstream == 2
        assert s.serial(await s.call("alpha")) == new and s.upstream == 2

        with agentcache.mode("read"):
            assert s.serial(await s.call("alpha")) == new
            first = s.serial(await s.call("beta"))
            assert s.serial(await s.call("beta")) != first
        assert s.upstream == 4
        fresh = s.serial(await s.call("beta"))
        assert s.serial(await s.call("beta")) == fresh and s.upstream == 5

        with agentcache.mode("off"):
            assert s.serial(await s.call("alpha")) not in (old, new)
        assert s.serial(await s.call("alpha")) == new and s.upstream == 6
        assert agentcache.stats().by_function[s.name].bypasses == 1

        with agentcache.mode(max_age=3600):
            assert s.serial(await s.call("alpha")) == new
        with agentcache.mode(max_age=0):  # every entry is older than 0 s: computed again, and stored
            latest = s.serial(await s.call("alpha"))
        assert s.serial(await s.call("alpha")) == latest
        assert (latest != new, s.upstream) == ((True, 7) if s.ages else (False, 6))

    async def test_an_error_is_never_stored_and_stats_rows(self, make: Make) -> None:
        """A failing upstream call propagates and stores nothing (the next call runs, and its answer is kept);
        misses, hits, the error, stores and a bypass land in the layer's row of `agentcache.stats()`."""
        s = make()
        await s.call("alpha")
        await s.call("alpha")
        s.fail_next()
        with pytest.raises(s.error):
            await s.call("beta")
        ok = s.serial(await s.call("beta"))
        assert s.serial(await s.call("beta")) == ok
        assert s.upstream == 3
        with agentcache.mode("off"):
            await s.call("alpha")
        report = agentcache.stats()
        row = report.by_function[s.name]
        assert (row.hits, row.misses, row.errors, row.stores, row.bypasses) == (2, 3, 1, 2, 1)
        info = s.info()
        assert (info.hits, info.misses, info.errors) == (2, 3, 1)
        assert report.by_layer[s.layer].hits == 2
        assert report.total.hits == 2


class TestSemantic:
    """What only the semantic layer does: paraphrases hit within a partition, never across."""

    async def test_paraphrase_hits(self, face: str, backend_url: str) -> None:
        """A reworded question is served the first answer; a question about something else is not."""
        s = Semantic(face, backend_url, "matrix.semantic")
        first = s.serial(await s.call("What is the capital of France?"))
        assert s.serial(await s.call("France: capital, please?")) == first
        hit = agentcache.last_semantic_hit()
        assert hit is not None and hit.similarity == pytest.approx(1.0)
        assert hit.cached_query == "What is the capital of France?"
        assert s.serial(await s.call("What is the capital of Spain?")) != first
        assert s.upstream == 2
        assert await s.invalidate("What is the capital of France?", awaitable=face == "async")
        assert s.serial(await s.call("France: capital, please?")) != first
        assert s.upstream == 3

    async def test_partitions_never_hit(self, face: str, backend_url: str) -> None:
        """With one vector for every text, only the partition (other arguments, namespace) keeps calls apart."""
        s = Semantic(face, backend_url, "matrix.same", embedder=SameVector())
        first = s.serial(await s.call("one question"))
        assert s.serial(await s.call("any other question")) == first  # the embedder confuses everything ...
        assert s.serial(await s.call("one question", 1)) != first  # ... but another argument is another partition
        with agentcache.namespace("tenant-1"):
            assert s.serial(await s.call("one question")) != first
        assert s.upstream == 3

    async def test_wrapped_client_paraphrase_hits(self, face: str, backend_url: str, server: Any) -> None:
        """`wrap(client, semantic=...)`: a reworded question reaches the server once; another namespace or
        another sampling parameter is another partition."""
        s = Wrapped(face, backend_url, server, semantic={"embedder": TopicVector(), "guards": (), "judge": False})
        try:
            first = s.serial(await s.call("What is the capital of France?"))
            assert s.serial(await s.call("France: capital, please?")) == first
            hit = agentcache.last_semantic_hit()
            assert hit is not None and hit.cached_query == "What is the capital of France?"
            assert s.upstream == 1
            with agentcache.namespace("tenant-1"):
                assert s.serial(await s.call("France: capital, please?")) != first
            assert s.serial(await s.call("France: capital, please?", 1)) != first
            assert s.serial(await s.call("What is the capital of Spain?")) != first
            assert s.upstream == 4
        finally:
            await s.close()
