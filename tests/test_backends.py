"""One behaviour suite for every backend kind x both faces, then SQLite- and registry-specific behaviour."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Collection, Sequence
from pathlib import Path
from typing import Any

import pytest
from support.backends import BOUNDED_KINDS, with_query

from agentcache.backends import Item, SupportsScan, open_backend
from agentcache.backends.sqlite import SQLiteBackend
from agentcache.errors import BackendError, ConfigurationError

TTL = 0.25  # long enough to read back even after a cold first write to a new file, short enough to wait out
PAST_TTL = 0.4


class Face:
    """Drives one face (sync or async) of a backend through one awaitable API, so each test is written once."""

    def __init__(self, backend: Any, face: str) -> None:
        self.backend = backend
        self.is_async = face == "async"

    async def _call(self, name: str, *args: Any) -> Any:
        if self.is_async:
            return await getattr(self.backend, f"a{name}")(*args)
        return getattr(self.backend, name)(*args)

    async def get(self, key: str) -> bytes | None:
        return await self._call("get", key)  # type: ignore[no-any-return]

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return await self._call("get_many", keys)  # type: ignore[no-any-return]

    async def set(self, key: str, value: bytes, ttl: float | None = None, tags: Sequence[str] = ()) -> None:
        await self._call("set_many", [Item(key, value, ttl, tuple(tags))])

    async def set_many(self, items: Sequence[Item]) -> None:
        await self._call("set_many", items)

    async def delete_many(self, keys: Sequence[str]) -> int:
        return await self._call("delete_many", keys)  # type: ignore[no-any-return]

    async def delete_tags(self, tags: Collection[str], prefix: str = "") -> int:
        return await self._call("delete_tags", tags, prefix)  # type: ignore[no-any-return]

    async def clear(self, prefix: str = "") -> int:
        return await self._call("clear", prefix)  # type: ignore[no-any-return]


@pytest.fixture(params=["sync", "async"])
def face(request: pytest.FixtureRequest) -> str:
    """Each face of the backend protocol in turn."""
    return str(request.param)


@pytest.fixture
async def store(backend: Any, face: str) -> AsyncIterator[Face]:
    """The current backend kind, driven through the current face (closed by that face, on the test's loop)."""
    yield Face(backend, face)
    if face == "async":
        await backend.aclose()


@pytest.fixture
async def bounded(backend_kind: str, backend_url: str, face: str) -> AsyncIterator[Any]:
    """A factory of backends of the current kind opened with limits (skips kinds that do not enforce any)."""
    if backend_kind not in BOUNDED_KINDS:
        pytest.skip(f"{backend_kind} leaves eviction to the server")
    opened: list[Any] = []

    def make(**limits: int) -> Face:
        b = open_backend(with_query(backend_url, **limits))
        opened.append(b)
        return Face(b, face)

    yield make
    for b in opened:
        if face == "async":
            await b.aclose()
        b.close()


# -- the behaviour suite -------------------------------------------------------------------------------------


async def test_missing_key_reads_none(store: Face) -> None:
    """A key never written reads as None, alone and in get_many."""
    assert await store.get("ac:v1:nope") is None
    assert await store.get_many(["ac:v1:nope", "ac:v1:nope2"]) == [None, None]


async def test_get_many_keeps_order_with_gaps(store: Face) -> None:
    """get_many returns values in the order asked, with None where a key is missing."""
    await store.set_many([Item("k1", b"one"), Item("k2", b"two"), Item("k3", b"three")])
    assert await store.get("k2") == b"two"
    assert await store.get_many(["k3", "missing", "k1", "k2"]) == [b"three", None, b"one", b"two"]
    assert await store.get_many([]) == []


async def test_overwrite_replaces_value_ttl_and_tags(store: Face) -> None:
    """Writing a key again replaces its value, its TTL and its tags."""
    await store.set("k", b"old", ttl=TTL, tags=["old-tag"])
    await store.set("k", b"new", ttl=None, tags=["new-tag"])
    await asyncio.sleep(PAST_TTL)
    assert await store.get("k") == b"new"
    assert await store.delete_tags(["old-tag"]) == 0
    assert await store.get("k") == b"new"
    assert await store.delete_tags(["new-tag"]) == 1
    assert await store.get("k") is None


async def test_ttl_expiry(store: Face) -> None:
    """An entry is readable before its TTL and missing after it; entries without TTL stay."""
    await store.set_many([Item("short", b"s", ttl=TTL), Item("forever", b"f")])
    assert await store.get("short") == b"s"
    await asyncio.sleep(PAST_TTL)
    assert await store.get("short") is None
    assert await store.get_many(["short", "forever"]) == [None, b"f"]


async def test_non_positive_ttl_is_not_stored(store: Face) -> None:
    """ttl <= 0 stores nothing, and writing it over an existing key leaves the key missing."""
    await store.set_many([Item("zero", b"z", ttl=0), Item("neg", b"n", ttl=-1.0)])
    assert await store.get_many(["zero", "neg"]) == [None, None]
    await store.set("k", b"v")
    await store.set("k", b"v2", ttl=0)
    assert await store.get("k") is None


async def test_delete_many_counts_existing_keys(store: Face) -> None:
    """delete_many deletes the keys and counts only those that existed and were live."""
    await store.set_many([Item("a", b"1"), Item("b", b"2"), Item("c", b"3"), Item("gone", b"x", ttl=TTL)])
    await asyncio.sleep(PAST_TTL)
    assert await store.delete_many(["a", "c", "missing", "gone"]) == 2
    assert await store.get_many(["a", "b", "c"]) == [None, b"2", None]
    assert await store.delete_many([]) == 0


async def test_delete_tags_any_tag(store: Face) -> None:
    """delete_tags removes every entry carrying any of the tags, and only those."""
    await store.set_many(
        [
            Item("p:1", b"1", tags=("red",)),
            Item("p:2", b"2", tags=("blue", "green")),
            Item("p:3", b"3", tags=("green",)),
            Item("p:4", b"4"),
        ]
    )
    assert await store.delete_tags(["red", "blue"]) == 2
    assert await store.get_many(["p:1", "p:2", "p:3", "p:4"]) == [None, None, b"3", b"4"]
    assert await store.delete_tags(["nobody"]) == 0


async def test_delete_tags_within_prefix(store: Face) -> None:
    """delete_tags with a prefix leaves tagged entries outside the prefix alone."""
    await store.set_many(
        [
            Item("ac:v1:tenant-4:a", b"1", tags=("t",)),
            Item("ac:v1:tenant-42:a", b"2", tags=("t",)),
            Item("ac:v1:tenant-5:a", b"3", tags=("t",)),
        ]
    )
    assert await store.delete_tags(["t"], "ac:v1:tenant-4:") == 1
    assert await store.get_many(["ac:v1:tenant-4:a", "ac:v1:tenant-42:a", "ac:v1:tenant-5:a"]) == [
        None,
        b"2",
        b"3",
    ]


async def test_clear_prefix_spares_sibling_prefix(store: Face) -> None:
    """clear('ac:v1:tenant-4:') deletes that scope only, not 'ac:v1:tenant-42:' nor other tenants."""
    keys = ["ac:v1:tenant-4:x", "ac:v1:tenant-4:y", "ac:v1:tenant-42:x", "ac:v1:tenant-3:x", "ac:v1:tenant-4"]
    await store.set_many([Item(k, k.encode()) for k in keys])
    assert await store.clear("ac:v1:tenant-4:") == 2
    assert await store.get_many(keys) == [None, None, b"ac:v1:tenant-42:x", b"ac:v1:tenant-3:x", b"ac:v1:tenant-4"]


async def test_clear_everything(store: Face) -> None:
    """clear('') deletes every entry and returns how many were live."""
    await store.set_many([Item("a", b"1"), Item("b", b"2", tags=("t",))])
    assert await store.clear() == 2
    assert await store.get_many(["a", "b"]) == [None, None]
    assert await store.delete_tags(["t"]) == 0


async def test_clear_prefix_ending_in_max_code_point(store: Face) -> None:
    """A prefix ending in U+10FFFF (no successor character) still bounds the deleted range."""
    top = "\U0010ffff"
    await store.set_many([Item(f"a{top}", b"1"), Item(f"a{top}x", b"2"), Item("b", b"3"), Item("a", b"4")])
    assert await store.clear(f"a{top}") == 2
    assert await store.get_many(["b", "a"]) == [b"3", b"4"]


async def test_binary_values_round_trip(store: Face) -> None:
    """Values with NUL and high bytes come back byte for byte; an empty value is not a miss."""
    blob = bytes(range(256)) * 3 + b"\x00\x00end\x00"
    await store.set_many([Item("bin", blob), Item("empty", b"")])
    assert await store.get("bin") == blob
    assert await store.get("empty") == b""


async def test_one_megabyte_value(store: Face) -> None:
    """A 1 MB value round-trips."""
    big = bytes(range(256)) * 4096
    await store.set("big", big)
    assert await store.get("big") == big


async def test_unicode_keys(store: Face) -> None:
    """Non-ASCII keys are distinct, readable and clearable by a non-ASCII prefix."""
    await store.set_many([Item("ac:café:1", b"1"), Item("ac:cafe:1", b"2"), Item("ac:日本:1", b"3")])
    assert await store.get_many(["ac:café:1", "ac:cafe:1", "ac:日本:1"]) == [b"1", b"2", b"3"]
    assert await store.clear("ac:日本") == 1
    assert await store.get("ac:日本:1") is None


async def test_lru_eviction_by_entries(bounded: Any) -> None:
    """Past max_entries the least recently used entry goes first: a recently read key survives."""
    store = bounded(max_entries=3)
    for key in ("a", "b", "c"):
        await store.set(key, b"v")
        await asyncio.sleep(0.002)  # distinct access times
    assert await store.get("a") == b"v"
    await asyncio.sleep(0.002)
    await store.set("d", b"v")
    assert await store.get_many(["a", "b", "c", "d"]) == [b"v", None, b"v", b"v"]


async def test_eviction_prefers_expired_entries(bounded: Any) -> None:
    """An expired entry is evicted before any live one."""
    store = bounded(max_entries=2)
    await store.set("live", b"v")
    await asyncio.sleep(0.002)
    await store.set("dying", b"v", ttl=TTL)
    await asyncio.sleep(PAST_TTL)
    await store.set("new", b"v")
    assert await store.get_many(["live", "new"]) == [b"v", b"v"]


async def test_lru_eviction_by_bytes(bounded: Any) -> None:
    """Past max_bytes (key + value sizes) LRU entries are evicted; an item bigger than the limit is not kept."""
    store = bounded(max_bytes=35)  # three entries of 1 + 10 bytes fit
    for key in ("a", "b", "c"):
        await store.set(key, b"0123456789")
        await asyncio.sleep(0.002)
    assert await store.get("a") == b"0123456789"
    await asyncio.sleep(0.002)
    await store.set("d", b"0123456789")
    assert await store.get_many(["a", "b", "c", "d"]) == [b"0123456789", None, b"0123456789", b"0123456789"]
    await store.set("huge", b"x" * 100)
    assert await store.get("huge") is None
    assert await store.get("d") == b"0123456789"


def test_scan_lists_live_entries_with_tag_filter(backend: Any) -> None:
    """scan yields live entries under a prefix in key order with size, TTL and tags; tag= filters."""
    assert isinstance(backend, SupportsScan)
    before = time.time()
    backend.set_many(
        [
            Item("ac:1", b"xx", ttl=60, tags=("t", "u")),
            Item("ac:2", b"yyy"),
            Item("ac:3", b"z", ttl=TTL, tags=("t",)),
            Item("other:1", b"w", tags=("t",)),
        ]
    )
    time.sleep(PAST_TTL)
    entries = list(backend.scan("ac:"))
    assert [e.key for e in entries] == ["ac:1", "ac:2"]
    first = entries[0]
    assert first.size == len("ac:1") + 2
    assert sorted(first.tags) == ["t", "u"]
    assert first.expires_at is not None and before + 59 < first.expires_at < time.time() + 61
    assert entries[1].expires_at is None
    assert [e.key for e in backend.scan("", tag="t")] == ["ac:1", "other:1"]
    assert [e.key for e in backend.scan("ac:", tag="u")] == ["ac:1"]


# -- SQLite only ---------------------------------------------------------------------------------------------


def test_sqlite_persists_across_reopen(tmp_path: Path) -> None:
    """Entries, TTLs and tags survive closing and reopening the file."""
    url = f"sqlite://{tmp_path / 'c.db'}"
    first = open_backend(url)
    first.set_many([Item("k", b"v", ttl=60, tags=("t",)), Item("short", b"s", ttl=TTL)])
    first.close()
    time.sleep(PAST_TTL)
    second = open_backend(url)
    try:
        assert second.get_many(["k", "short"]) == [b"v", None]
        assert second.delete_tags(["t"]) == 1
    finally:
        second.close()


def test_sqlite_never_creates_a_missing_directory(tmp_path: Path) -> None:
    """An explicit path in a missing directory is refused, and nothing is created (it used to mkdir -p it)."""
    missing = tmp_path / "nonexistent" / "dir"
    with pytest.raises(ConfigurationError, match="does not exist"):
        open_backend(f"sqlite://{missing}/c.db")
    b = SQLiteBackend(missing / "c.db")
    with pytest.raises(BackendError, match="directory does not exist"):
        b.get("k")
    b.close()
    assert not (tmp_path / "nonexistent").exists()


def test_sqlite_reopens_after_close(tmp_path: Path) -> None:
    """A call after close() reopens the file lazily."""
    b = SQLiteBackend(tmp_path / "c.db")
    b.set_many([Item("k", b"v")])
    b.close()
    assert b.get("k") == b"v"
    b.close()


def test_sqlite_constructor_does_not_touch_disk(tmp_path: Path) -> None:
    """Constructing creates nothing; the first call creates the file (its directory must exist)."""
    path = tmp_path / "c.db"
    b = SQLiteBackend(path)
    assert not path.exists()
    assert b.get("k") is None
    assert path.exists()
    b.close()


def test_sqlite_non_database_file_is_moved_aside(tmp_path: Path) -> None:
    """A file that is not SQLite is moved aside (kept, renamed) and the store starts afresh in its place
    (`tests/test_sqlite_corruption.py` covers damaged cache files, processes and warnings)."""
    path = tmp_path / "c.db"
    path.write_bytes(b"this is not a database" * 100)
    b = SQLiteBackend(path)
    assert b.get("k") is None
    b.set_many([Item("k", b"v")])
    assert b.get("k") == b"v"
    b.close()
    (aside,) = tmp_path.glob("c.db.corrupt-*")
    assert aside.read_bytes() == b"this is not a database" * 100


def test_sqlite_unopenable_path_raises_backend_error(tmp_path: Path) -> None:
    """A path whose parent is a regular file cannot be opened: BackendError."""
    (tmp_path / "file").write_text("x")
    b = SQLiteBackend(tmp_path / "file" / "c.db")
    with pytest.raises(BackendError):
        b.get("k")
    b.close()


def test_sqlite_rejects_unknown_schema_version(tmp_path: Path) -> None:
    """A file written by another schema version is refused with BackendError."""
    path = tmp_path / "c.db"
    SQLiteBackend(path).close()
    b = SQLiteBackend(path)
    b.get("k")
    b.close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE settings SET value = 99 WHERE name = 'schema_version'")
    raw.close()
    with pytest.raises(BackendError, match="schema version"):
        SQLiteBackend(path).get("k")


def test_sqlite_stats_row_stays_exact(tmp_path: Path) -> None:
    """The trigger-maintained count and size match the table after writes, overwrites and deletes."""
    path = tmp_path / "c.db"
    b = SQLiteBackend(path, max_entries=50)
    b.set_many([Item(f"k{i}", b"x" * i, tags=("t",)) for i in range(80)])
    b.set_many([Item(f"k{i}", b"y" * (2 * i)) for i in range(60, 80)])
    b.delete_many(["k70", "k71"])
    b.delete_tags(["t"])
    b.close()
    with sqlite3.connect(path) as raw:
        stats = raw.execute("SELECT count, size FROM stats").fetchone()
        actual = raw.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM entries").fetchone()
        orphans = raw.execute("SELECT COUNT(*) FROM tags WHERE key NOT IN (SELECT key FROM entries)").fetchone()
    raw.close()
    assert stats == actual
    assert actual[0] == 18
    assert orphans == (0,)


def test_sqlite_access_times_flushed_on_close(tmp_path: Path) -> None:
    """Reads buffered in memory reach the file on close, so the LRU order survives a reopen."""
    path = tmp_path / "c.db"
    b = SQLiteBackend(path)
    for key in ("a", "b", "c"):
        b.set_many([Item(key, b"v")])
        time.sleep(0.002)
    time.sleep(0.002)
    assert b.get("a") == b"v"
    b.close()
    bounded = SQLiteBackend(path, max_entries=3)
    bounded.set_many([Item("d", b"v")])
    assert bounded.get_many(["a", "b", "c", "d"]) == [b"v", None, b"v", b"v"]
    bounded.close()


def test_sqlite_many_threads(tmp_path: Path) -> None:
    """Eight threads writing and reading one backend at once see no error and no torn value."""
    import threading

    # The default write_timeout (0.5 s) is a latency budget; on a loaded 2-core machine eight writers can queue
    # longer than that for the lock. This test is about torn values, so writers may wait as long as they need.
    b = SQLiteBackend(tmp_path / "c.db", max_entries=40, write_timeout=60)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(150):
                key = f"k{i % 25}"
                b.set_many([Item(key, f"{n}:{i}:".encode() * 50, tags=(f"w{n}",))])
                value = b.get(key)
                if value is not None:
                    head = value[: value.index(b":", value.index(b":") + 1) + 1]
                    assert value == head * 50
                if i % 50 == 0:
                    b.delete_tags([f"w{(n + 1) % 8}"])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    b.close()
    assert errors == []


def test_memory_lock_free_reads_during_writes_evictions_and_clears() -> None:
    """Readers take no lock: with writers, tag deletes, clears and LRU evictions running at once, every read
    returns a whole value or None, nothing raises, and the limits and byte count hold afterwards."""
    import threading

    from agentcache.backends.memory import MemoryBackend

    b = MemoryBackend(max_entries=30, max_bytes=30 * 1200)
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                for i in range(40):
                    value = b.get(f"k{i}")
                    assert value is None or value == value[:12] * (len(value) // 12)
        except BaseException as exc:
            errors.append(exc)

    def write(n: int) -> None:
        try:
            for i in range(400):
                b.set_many([Item(f"k{(i * 7 + n) % 40}", f"{n:02}:{i:08}|".encode() * 80, 60, (f"t{i % 3}",))])
                if i % 50 == 0:
                    b.delete_tags([f"t{n % 3}"])
                if i % 170 == 0:
                    b.clear("k1")
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(3)]
    writers = [threading.Thread(target=write, args=(n,)) for n in range(3)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    assert errors == []
    live = list(b.scan())
    assert len(live) <= 30
    assert sum(info.size for info in live) <= 30 * 1200
    assert all(b.get(info.key) is not None for info in live)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_sqlite_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    """A child forked after the parent used the backend reads and writes through a fresh connection."""
    import warnings

    b = SQLiteBackend(tmp_path / "c.db")
    b.set_many([Item("parent", b"p")])
    assert b.get("parent") == b"p"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+ warns when forking with threads
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            if b.get("parent") == b"p":
                b.set_many([Item("child", b"c")])
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert b.get("child") == b"c"
    b.close()


async def test_sqlite_async_reads_run_on_the_loop_thread(tmp_path: Path) -> None:
    """After the first call, aget runs inline (no worker thread) while writes use a worker thread."""
    from concurrent.futures import ThreadPoolExecutor

    class CountingExecutor(ThreadPoolExecutor):
        submitted = 0

        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            CountingExecutor.submitted += 1
            return super().submit(fn, *args, **kwargs)

    executor = CountingExecutor(max_workers=2)
    asyncio.get_running_loop().set_default_executor(executor)
    b = SQLiteBackend(tmp_path / "c.db")
    await b.aset_many([Item("k", b"v")])
    assert await b.aget("k") == b"v"  # opens the loop thread's connection
    writes = CountingExecutor.submitted
    assert writes >= 1
    assert await b.aget("k") == b"v"
    assert await b.aget_many(["k", "x"]) == [b"v", None]
    assert CountingExecutor.submitted == writes
    await b.adelete_many(["k"])
    assert CountingExecutor.submitted == writes + 1
    await b.aclose()


# -- the URL registry ----------------------------------------------------------------------------------------


def test_unknown_scheme_lists_valid_ones() -> None:
    """An unknown scheme raises ConfigurationError naming the valid schemes."""
    with pytest.raises(ConfigurationError, match=r"memory://.*sqlite://"):
        open_backend("ftp://x")
    with pytest.raises(ConfigurationError):
        open_backend("no-scheme-here")


def test_sqlite_url_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sqlite:///abs is absolute, sqlite://rel is relative, ~ is expanded, and query options apply."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    absolute = open_backend(f"sqlite://{tmp_path}/abs.db?max_entries=5&max_bytes=100&timeout=2.5")
    relative = open_backend("sqlite://rel.db")
    home = open_backend("sqlite://~/h.db", max_entries=7)
    assert isinstance(absolute, SQLiteBackend)
    assert isinstance(relative, SQLiteBackend)
    assert isinstance(home, SQLiteBackend)
    assert absolute.path == tmp_path / "abs.db"
    assert (absolute.max_entries, absolute.max_bytes, absolute.timeout) == (5, 100, 2.5)
    assert relative.path == Path("rel.db")
    assert home.path == tmp_path / "home" / "h.db"
    assert home.max_entries == 7


def test_bad_options_are_configuration_errors() -> None:
    """An empty sqlite path, an unknown option or a non-numeric limit raises ConfigurationError."""
    with pytest.raises(ConfigurationError, match="no path"):
        open_backend("sqlite://")
    with pytest.raises(ConfigurationError, match="unknown option"):
        open_backend("memory://?colour=red")
    with pytest.raises(ConfigurationError, match="max_entries"):
        open_backend("memory://?max_entries=lots")


def test_memory_url_options() -> None:
    """memory:// query parameters set the limits ('none' lifts one)."""
    b = open_backend("memory://?max_entries=none&max_bytes=1000")
    assert (b.max_entries, b.max_bytes) == (None, 1000)  # type: ignore[attr-defined]


def test_opening_memory_imports_no_other_backend() -> None:
    """Importing the package and opening memory:// loads neither the SQLite nor the Redis module."""
    code = (
        "import sys, agentcache.backends as b; b.open_backend('memory://');"
        "print(sorted(m for m in sys.modules if m.startswith(('agentcache.backends.', 'sqlite3', 'redis'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = "['agentcache.backends.base', 'agentcache.backends.generations', 'agentcache.backends.memory']"
    assert out.strip() == loaded
