"""The fail-open wrapper: failures become misses, the breaker opens, half-opens and recovers, logs once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Sequence
from pathlib import Path

import pytest

from agentcache.backends import (
    Item,
    MemoryBackend,
    ResilientBackend,
    SQLiteBackend,
    SupportsLocking,
    SupportsScan,
    resilient,
)
from agentcache.backends.base import LOCKING_METHODS, SCAN_METHODS, InlineAsyncFace, supports
from agentcache.backends.resilient import FAIL_OPEN_TOKEN
from agentcache.errors import BackendBusy, BackendError, BackendUnavailable


class FlakyStore(InlineAsyncFace):
    """A store reached over a 'network' that can go down: the edge we simulate; the data lives in MemoryBackend."""

    def __init__(self, error: Exception | None = None) -> None:
        self.data = MemoryBackend()
        self.down = False
        self.fail_next = 0
        self.writes_fail = False  # used by subclasses whose writes fail while reads work
        self.calls = 0
        self.error = error or BackendError("flaky: an error reply")

    def _edge(self) -> None:
        self.calls += 1
        if self.fail_next:
            self.fail_next -= 1
            raise self.error
        if self.down:
            raise self.error

    def get(self, key: str, /) -> bytes | None:
        self._edge()
        return self.data.get(key)

    def get_many(self, keys: Sequence[str], /) -> list[bytes | None]:
        self._edge()
        return self.data.get_many(keys)

    def set_many(self, items: Sequence[Item], /) -> None:
        self._edge()
        self.data.set_many(items)

    def delete_many(self, keys: Sequence[str], /) -> int:
        self._edge()
        return self.data.delete_many(keys)

    def delete_tags(self, tags: Collection[str], /, prefix: str = "") -> int:
        self._edge()
        return self.data.delete_tags(tags, prefix)

    def clear(self, prefix: str = "", /) -> int:
        self._edge()
        return self.data.clear(prefix)

    def close(self) -> None:
        self._edge()


class FlakyLockingStore(FlakyStore):
    """A FlakyStore that also offers cross-process locks."""

    def acquire_lock(self, name: str, ttl: float, /) -> str | None:
        self._edge()
        return "owner-token"

    def release_lock(self, name: str, token: str, /) -> bool:
        self._edge()
        return token == "owner-token"

    async def aacquire_lock(self, name: str, ttl: float, /) -> str | None:
        return self.acquire_lock(name, ttl)

    async def arelease_lock(self, name: str, token: str, /) -> bool:
        return self.release_lock(name, token)


def warnings_and_infos(caplog: pytest.LogCaptureFixture) -> tuple[int, int]:
    records = [r for r in caplog.records if r.name == "agentcache"]
    return (
        sum(r.levelno == logging.WARNING for r in records),
        sum(r.levelno == logging.INFO for r in records),
    )


def test_corrupt_sqlite_file_is_rebuilt_not_an_outage(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Over a file that is not SQLite, the store moves it aside and starts afresh (#14.7): no call fails, no
    outage is reported, one warning (the move's)."""
    path = tmp_path / "c.db"
    path.write_bytes(b"garbage, not sqlite " * 200)
    errors: list[BaseException] = []
    cache = ResilientBackend(SQLiteBackend(path), retries=1, failure_threshold=100, on_error=errors.append)
    with caplog.at_level(logging.INFO, logger="agentcache"):
        assert cache.get("k") is None
        assert cache.get_many(["a", "b"]) == [None, None]
        cache.set_many([Item("k", b"v")])
        assert cache.get("k") == b"v"
        assert cache.delete_many(["k"]) == 1
        assert cache.delete_tags(["t"]) == 0
        assert cache.clear("p") == 0
        cache.close()
    assert errors == []
    assert warnings_and_infos(caplog) == (1, 0)
    assert "moved it to" in caplog.text


async def test_unopenable_path_degrades_to_misses_async(tmp_path: Path) -> None:
    """Over a path that cannot be opened the async face misses too, without raising."""
    (tmp_path / "file").write_text("x")
    errors: list[BaseException] = []
    cache = ResilientBackend(SQLiteBackend(tmp_path / "file" / "c.db"), on_error=errors.append)
    assert await cache.aget("k") is None
    assert await cache.aget_many(["k"]) == [None]
    await cache.aset_many([Item("k", b"v")])
    assert await cache.aclear() == 0
    await cache.aclose()
    assert len(errors) == 1  # an unopenable file is unavailable: the breaker opened on the first failure


def test_breaker_opens_stops_calling_half_opens_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    """After N failed calls the inner store is not called; after cooldown one probe closes the circuit."""
    store = FlakyStore()
    errors: list[BaseException] = []
    cache = ResilientBackend(store, retries=0, failure_threshold=3, cooldown=0.1, on_error=errors.append)
    cache.set_many([Item("k", b"v")])
    store.down = True
    with caplog.at_level(logging.INFO, logger="agentcache"):
        for _ in range(3):
            assert cache.get("k") is None
        assert cache.state == "open"
        calls = store.calls
        for _ in range(20):
            assert cache.get("k") is None
        assert store.calls == calls  # open: the dead store is not called
        assert len(errors) == 3
        time.sleep(0.12)
        assert cache.state == "half-open"
        assert cache.get("k") is None  # the probe fails: open again for another cooldown
        assert store.calls == calls + 1
        assert cache.state == "open"
        store.down = False
        assert cache.get("k") is None  # still cooling down
        time.sleep(0.12)
        assert cache.get("k") == b"v"  # the probe succeeds
        assert cache.state == "closed"
        assert cache.get("k") == b"v"
    assert warnings_and_infos(caplog) == (1, 1)


def test_one_warning_per_outage(caplog: pytest.LogCaptureFixture) -> None:
    """Each outage logs one warning when it starts and one info line when it ends."""
    store = FlakyStore()
    cache = ResilientBackend(store, retries=0, failure_threshold=1000)
    with caplog.at_level(logging.INFO, logger="agentcache"):
        for _ in range(2):
            store.down = True
            for _ in range(10):
                cache.get("k")
            store.down = False
            cache.get("k")
    assert warnings_and_infos(caplog) == (2, 2)


def test_retry_hides_a_transient_failure(caplog: pytest.LogCaptureFixture) -> None:
    """One failed attempt is retried: the call succeeds, nothing is reported or logged."""
    store = FlakyStore()
    errors: list[BaseException] = []
    cache = ResilientBackend(store, retries=2, on_error=errors.append)
    cache.set_many([Item("k", b"v")])
    store.fail_next = 1
    with caplog.at_level(logging.INFO, logger="agentcache"):
        assert cache.get("k") == b"v"
    assert store.calls == 3  # set, failed get, retried get
    assert errors == []
    assert warnings_and_infos(caplog) == (0, 0)


def test_retries_are_bounded() -> None:
    """An error reply costs 1 + retries attempts per call."""
    store = FlakyStore()
    store.down = True
    cache = ResilientBackend(store, retries=2, failure_threshold=100)
    assert cache.get("k") is None
    assert store.calls == 3


class SlowFailingStore(FlakyStore):
    """Each failing attempt takes longer than the whole retry budget (a slow error reply)."""

    def _edge(self) -> None:
        if self.down:
            time.sleep(resilient.RETRY_BUDGET + 0.05)
        super()._edge()


def test_first_attempt_counts_against_the_retry_budget() -> None:
    """An attempt that already used the retry budget is not retried (before: 3 attempts, each as slow)."""
    store = SlowFailingStore()
    store.down = True
    cache = ResilientBackend(store, retries=2, failure_threshold=100)
    assert cache.get("k") is None
    assert store.calls == 1


UNREACHABLE = [BackendUnavailable("timed out"), TimeoutError("timed out"), ConnectionError("reset")]


@pytest.mark.parametrize("error", UNREACHABLE)
def test_an_unreachable_store_costs_one_attempt_per_call_then_none(error: Exception) -> None:
    """A timeout or connection failure is not retried and opens the breaker at once: the rest of a miss
    (recheck, lock, store, unlock) and the calls after it do not touch the store (before: 3 attempts per
    operation and 5 failed operations until the breaker opened)."""
    store = FlakyLockingStore(error=error)
    store.down = True
    errors: list[BaseException] = []
    cache = ResilientBackend(store, retries=2, failure_threshold=5, cooldown=60, on_error=errors.append)
    assert isinstance(cache, SupportsLocking)
    assert cache.get("k") is None
    assert store.calls == 1
    assert cache.state == "open"
    assert cache.get("k") is None
    assert cache.acquire_lock("k:lock", 60) == FAIL_OPEN_TOKEN
    cache.set_many([Item("k", b"v")])
    assert cache.release_lock("k:lock", FAIL_OPEN_TOKEN) is False
    assert store.calls == 1
    assert len(errors) == 1


def test_a_busy_store_skips_writes_for_the_cooldown_and_keeps_reading(caplog: pytest.LogCaptureFixture) -> None:
    """Another writer holding the lock (BackendBusy) skips that write and the next ones for `cooldown`
    seconds; reads go on, the breaker stays closed, one warning is logged."""

    class BusyWrites(FlakyStore):
        def set_many(self, items: Sequence[Item], /) -> None:
            self.calls += 1
            if self.writes_fail:
                raise BackendBusy("database is locked")
            self.data.set_many(items)

    store = BusyWrites()
    store.data.set_many([Item("old", b"v")])
    store.writes_fail = True
    cache = ResilientBackend(store, retries=2, cooldown=60)
    with caplog.at_level(logging.INFO, logger="agentcache"):
        cache.set_many([Item("k", b"v")])
        assert store.calls == 1  # not retried: the store already waited its lock timeout
        for i in range(10):
            cache.set_many([Item(f"k{i}", b"v")])
            assert cache.get("old") == b"v"
    assert store.calls == 11  # the 10 reads only
    assert cache.state == "closed"
    assert warnings_and_infos(caplog) == (1, 0)


def test_one_warning_while_reads_work_and_writes_fail(caplog: pytest.LogCaptureFixture) -> None:
    """A store that serves reads but refuses writes (disk full) is one outage: one warning, however many
    reads succeed in between (before: a warning per failed write, an info line per read), and one info line
    when writes work again."""

    class FullDisk(FlakyStore):
        def set_many(self, items: Sequence[Item], /) -> None:
            self.calls += 1
            if self.writes_fail:
                raise BackendError("database or disk is full")
            self.data.set_many(items)

    store = FullDisk()
    store.writes_fail = True
    cache = ResilientBackend(store, retries=0, failure_threshold=5)
    with caplog.at_level(logging.INFO, logger="agentcache"):
        for i in range(50):
            assert cache.get(f"k{i}") is None
            cache.set_many([Item(f"k{i}", b"v")])
        store.writes_fail = False
        cache.set_many([Item("k", b"v")])
        assert cache.get("k") == b"v"
    assert warnings_and_infos(caplog) == (1, 1)


def test_any_exception_is_a_miss() -> None:
    """Errors that are not BackendError (a bug in a third-party store) are misses too."""
    store = FlakyStore(error=RuntimeError("boom"))
    store.down = True
    errors: list[BaseException] = []
    cache = ResilientBackend(store, retries=0, on_error=errors.append)
    assert cache.get("k") is None
    assert cache.delete_tags(["t"], "p") == 0
    assert [type(e) for e in errors] == [RuntimeError, RuntimeError]


def test_raising_on_error_callback_is_contained() -> None:
    """An on_error callback that raises does not turn the miss into an exception."""
    store = FlakyStore()
    store.down = True

    def bad_callback(exc: BaseException) -> None:
        raise ValueError("callback bug")

    cache = ResilientBackend(store, retries=0, on_error=bad_callback)
    assert cache.get("k") is None


async def test_async_breaker_and_retry_waits_do_not_block_the_loop() -> None:
    """The async face shares the breaker, and its retry waits let other tasks run."""
    store = FlakyStore()
    store.down = True
    cache = ResilientBackend(store, retries=3, failure_threshold=2, cooldown=0.05)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        assert await cache.aget("k") is None
        assert ticks > 1
        assert await cache.aget_many(["k", "j"]) == [None, None]
    finally:
        task.cancel()
    assert cache.state == "open"
    calls = store.calls
    assert await cache.adelete_many(["k"]) == 0
    assert store.calls == calls
    store.down = False
    await asyncio.sleep(0.06)
    assert await cache.aget("k") is None
    assert cache.state == "closed"


async def test_cancelled_probe_allows_a_new_probe() -> None:
    """A probe cancelled mid-call does not leave the breaker stuck half-open."""

    class SlowStore(FlakyStore):
        async def aget(self, key: str, /) -> bytes | None:
            self._edge()
            await asyncio.sleep(10)
            return None

    store = SlowStore()
    store.down = True
    cache = ResilientBackend(store, retries=0, failure_threshold=1, cooldown=0.0)
    assert cache.get("k") is None
    assert cache.state == "half-open"
    store.down = False
    probe = asyncio.create_task(cache.aget("k"))
    await asyncio.sleep(0.01)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert cache.get("k") is None
    assert cache.state == "closed"


def test_optional_powers_follow_the_inner_store() -> None:
    """The wrapper offers scan and locking exactly when its inner store does."""
    over_memory = ResilientBackend(MemoryBackend())
    over_flaky = ResilientBackend(FlakyStore())
    over_locking = ResilientBackend(FlakyLockingStore())
    assert isinstance(over_memory, SupportsScan) and not isinstance(over_memory, SupportsLocking)
    assert not isinstance(over_flaky, SupportsScan) and not isinstance(over_flaky, SupportsLocking)
    assert isinstance(over_locking, SupportsLocking)
    over_memory.set_many([Item("a:1", b"v", tags=("t",))])
    assert [e.key for e in over_memory.scan("a:", tag="t")] == ["a:1"]  # type: ignore[attr-defined]
    assert over_memory.inner.get("a:1") == b"v"


class _HalfLocking(FlakyStore):
    """Has `acquire_lock` but not the rest of `SupportsLocking`, and a `scan` attribute that is `None`."""

    scan = None

    def acquire_lock(self, name: str, ttl: float, /) -> str | None:
        return None


def test_the_capability_check_answers_as_the_protocols(tmp_path: Path) -> None:
    """`supports(store, SCAN_METHODS)` / `LOCKING_METHODS` (what picks the wrapper's variant without `typing`)
    answer as ``isinstance`` against `SupportsScan` / `SupportsLocking`, whose methods the tuples list."""
    for protocol, methods in ((SupportsScan, SCAN_METHODS), (SupportsLocking, LOCKING_METHODS)):
        assert set(methods) == {n for n in vars(protocol) if not n.startswith("_")}
    sqlite = SQLiteBackend(tmp_path / "c.db")
    stores: list[object] = [MemoryBackend(), sqlite, FlakyStore(), FlakyLockingStore(), _HalfLocking(), object()]
    stores += [ResilientBackend(s) for s in stores[:5]]  # type: ignore[arg-type]
    answers = []
    for store in stores:
        for protocol, methods in ((SupportsScan, SCAN_METHODS), (SupportsLocking, LOCKING_METHODS)):
            assert supports(store, methods) is isinstance(store, protocol), (store, protocol)
            answers.append(supports(store, methods))
    assert True in answers and False in answers
    sqlite.close()


async def test_locks_fail_open() -> None:
    """A failing store hands out FAIL_OPEN_TOKEN (proceed uncoordinated), whose release touches nothing."""
    store = FlakyLockingStore()
    cache = ResilientBackend(store, retries=0)
    assert isinstance(cache, SupportsLocking)
    assert cache.acquire_lock("job", 5.0) == "owner-token"
    assert await cache.arelease_lock("job", "owner-token") is True
    store.down = True
    assert cache.acquire_lock("job", 5.0) == FAIL_OPEN_TOKEN
    assert await cache.aacquire_lock("job", 5.0) == FAIL_OPEN_TOKEN
    calls = store.calls
    assert cache.release_lock("job", FAIL_OPEN_TOKEN) is False
    assert store.calls == calls


def test_a_probe_that_finds_the_store_busy_closes_the_breaker() -> None:
    """The half-open probe meets a held lock (BackendBusy): the store is reachable, so the breaker closes
    instead of staying half-open (no probe could ever run again)."""

    class Store(FlakyStore):
        def set_many(self, items: Sequence[Item], /) -> None:
            self._edge()
            if self.writes_fail:
                raise BackendBusy("database is locked")

    store = Store(error=BackendUnavailable("unable to open"))
    cache = ResilientBackend(store, cooldown=0.0)
    store.down = True
    assert cache.get("k") is None
    assert cache.state == "half-open"  # opened, cooldown 0: the next call probes
    store.down, store.writes_fail = False, True
    cache.set_many([Item("k", b"v")])
    assert cache.state == "closed"
    assert cache.get("k") is None and store.calls == 3
