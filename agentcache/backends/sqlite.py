"""The embedded default store: one SQLite file, safe for many threads and many processes at once.

Layout of the file (schema version 1):

* `entries(key UNIQUE, size, created, expires, accessed, value)`: times are Unix seconds; `value` sits last
  so reading the other columns never walks a large blob's overflow pages.
* `tags(tag, key)`: primary key `(tag, key)` plus an index on `key`, so both directions are index seeks.
* `stats(count, size)`: one row kept exact by triggers on `entries`, so culling never runs `COUNT(*)`.
  A delete trigger also drops the entry's tags, so tags stay consistent on every delete path.
* `settings(name, value)`: holds the `schema_version` row.
* `generations(scope, value)`: invalidation counters, bumped in the transaction of every delete and checked
  in the transaction of a fenced write (see `agentcache.backends.generations`); added to older files on open.

Concurrency: WAL journal with `synchronous=NORMAL` (a commit is durable against a process crash, not against
power loss, which is right for a cache), a busy timeout, one connection per thread (closed before a fork, once
no other thread is inside SQLite, and re-opened on the thread's next call in parent and child; see `_ForkGate`),
and every write in a `BEGIN IMMEDIATE` transaction so writers queue on the busy timeout instead of failing
with a deadlock on lock upgrade. Reads never wait for writers (WAL). Storing a result waits at most
`write_timeout` for another writer's lock (then `BackendBusy`: the result is returned unstored); deletes and
clears, which carry invalidations, wait up to `timeout`.

A damaged file ("file is not a database", "database disk image is malformed", at open or on any operation) is
moved aside with its ``-wal``/``-shm`` (`agentcache.backends._sqlite_files`) and the store starts afresh in a new
file, with one warning; the operation is then retried once on it. Processes sharing the file do not fight: one
moves it, the others find a different file at the path and reopen; every process also re-checks once a second
that the path still names the file it has open. At most one move per store object every `REBUILD_INTERVAL`.
"""

from __future__ import annotations

import functools
import math
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Collection, Coroutine, Iterator, Sequence
from contextlib import contextmanager, nullcontext

from agentcache import _fork
from agentcache.backends import _sqlite_files as files
from agentcache.backends.base import EntryInfo, Item
from agentcache.backends.generations import ScopeFence, clear_scopes, key_scopes, scope_names, tag_scopes
from agentcache.errors import BackendBusy, BackendError, BackendUnavailable, ConfigurationError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    from pathlib import Path
    from typing import Any, Concatenate, ParamSpec, TypeVar

    _T = TypeVar("_T")
    _P = ParamSpec("_P")

__all__ = ["SQLiteBackend"]


def _to_thread(func: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Coroutine[Any, Any, _T]:
    """`asyncio.to_thread`, with asyncio imported on first use: a process that never awaits does not load it
    (~27 ms of a process's first hit on SQLite, #13)."""
    import asyncio

    return asyncio.to_thread(func, *args, **kwargs)


SCHEMA_VERSION = 1
_FLUSH_INTERVAL = 1.0  # seconds between background flushes of buffered access times
_FLUSH_ENTRIES = 512  # ... or as soon as this many keys are buffered
_FLUSH_KEEP = 64 * 512  # buffered keys kept while the write lock cannot be had (beyond: dropped)
_FLUSHER_IDLE = 10.0  # seconds with nothing to flush after which the flusher thread ends (a read starts another)
_EVICT_SLACK = 32  # eviction goes below a limit by 1/32 of it or `_EVICT_BATCH` rows, whichever is less, so the
_EVICT_BATCH = 16  # next writes evict nothing. 16 rows: ~0.25 ms; 32 rows (~0.45 ms) on 1 in 32 writes set the p99
_PURGE_BATCH = 100  # expired rows removed by each write transaction
_CHUNK = 500  # bound parameters per statement (older SQLite builds allow 999)
_SCAN_PAGE = 256
REBUILD_INTERVAL = 600.0  # seconds: a store moves a damaged file aside at most this often (no rebuild loops)
_RECHECK_INTERVAL = 1.0  # seconds between checks that the path still names the file this process has open


def _logger() -> logging.Logger:
    """The "agentcache" logger; `logging` is imported on first use (~3 ms of a process's first hit, #13)."""
    import logging

    return logging.getLogger("agentcache")


# SQL text is built only from constants and `?` placeholders (values are always bound): hence `noqa: S608`.

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS entries (
    rowid INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    created REAL NOT NULL,
    expires REAL,
    accessed REAL NOT NULL,
    value BLOB NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS entries_expires ON entries(expires) WHERE expires IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS entries_accessed ON entries(accessed)",
    "CREATE TABLE IF NOT EXISTS tags (tag TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (tag, key)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS tags_key ON tags(key)",
    """CREATE TABLE IF NOT EXISTS stats (
    id INTEGER PRIMARY KEY CHECK (id = 0), count INTEGER NOT NULL, size INTEGER NOT NULL
)""",
    "INSERT OR IGNORE INTO stats VALUES (0, 0, 0)",
    "CREATE TABLE IF NOT EXISTS generations (scope TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    """CREATE TRIGGER IF NOT EXISTS entries_insert AFTER INSERT ON entries BEGIN
    UPDATE stats SET count = count + 1, size = size + NEW.size WHERE id = 0;
END""",
    """CREATE TRIGGER IF NOT EXISTS entries_delete AFTER DELETE ON entries BEGIN
    UPDATE stats SET count = count - 1, size = size - OLD.size WHERE id = 0;
    DELETE FROM tags WHERE key = OLD.key;
END""",
    """CREATE TRIGGER IF NOT EXISTS entries_resize AFTER UPDATE OF size ON entries BEGIN
    UPDATE stats SET size = size + NEW.size - OLD.size WHERE id = 0;
END""",
)

_GET = "SELECT value, expires FROM entries WHERE key = ?"
_UPSERT = (
    "INSERT INTO entries (key, size, created, expires, accessed, value) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(key) DO UPDATE SET size = excluded.size, created = excluded.created, "
    "expires = excluded.expires, accessed = excluded.accessed, value = excluded.value"
)
_LIVE = "(expires IS NULL OR expires > ?)"
_BUMP = "INSERT INTO generations VALUES (?, 1) ON CONFLICT(scope) DO UPDATE SET value = value + 1"

# The pid this process has, refreshed in a forked child, so the per-call fork check costs no syscall.
_process = [os.getpid()]
# Connections inherited through fork: closing them in the child could disturb the parent's locks, so
# they are kept referenced (never closed, never finalized) for the life of the child.
_inherited: list[sqlite3.Connection] = []


class _ForkGate:
    """Makes `os.fork()` wait until no other thread of this process is inside SQLite, then close every
    connection of this process, so none is open across the fork.

    SQLite guards shared state with its own mutexes (per open file, per VFS); one held by another thread at
    the moment of a fork stays held forever in the child, whose first SQLite call then deadlocks. Every call
    into SQLite holds its thread's own re-entrant lock (uncontended: ~0.1 µs); a fork first takes every other
    live thread's lock (waiting, bounded, for the calls in flight), so it happens between SQLite calls.

    An open connection is unsafe across a fork even when idle: SQLite keeps one record per open file per
    process (which locks this process holds, its ``-shm`` mapping), and a child inherits the parent's. A new
    connection in the child then counts on locks the parent's record says are held, which POSIX locks
    (owned per process) are not, so the child takes no lock of its own on the file: other processes may
    checkpoint and delete the WAL under it, and its writers can wait on a lock nobody holds. So the fork
    closes every connection it can (each thread reopens its own on its next call); only a connection whose
    thread is still inside SQLite when the wait ends stays open, and the child then keeps it unclosed.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self._locks: dict[int, threading.RLock] = {}
        self._held: list[threading.RLock] = []
        self._registry = threading.RLock()
        self.closing = threading.RLock()  # held around closing a connection outside a call (`_Handle.__del__`)

    def __call__(self) -> threading.RLock:
        """This thread's lock (hold it around SQLite calls)."""
        try:
            lock: threading.RLock = self._local.lock
        except AttributeError:
            lock = self._local.lock = threading.RLock()
            with self._registry:
                self._locks[threading.get_ident()] = lock
        return lock

    def before_fork(self) -> None:
        deadline = time.monotonic() + _FORK_WAIT
        me = threading.get_ident()
        # The registry stays locked until the fork is done: a thread making its first SQLite call meanwhile waits
        # to register its lock, so it cannot be inside SQLite at the fork (a stale lock left by an ended thread
        # of the same id, taken below, no longer stands for it).
        self._registry.acquire()
        self._held.append(self._registry)
        alive = {t.ident for t in threading.enumerate()}
        for ident in [i for i in self._locks if i not in alive]:
            del self._locks[ident]  # threads that ended
        locks = [(ident, lock) for ident, lock in self._locks.items() if ident != me]
        idle = {me}  # threads known to be outside SQLite until the fork is done
        for ident, lock in locks:
            if lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                self._held.append(lock)
                idle.add(ident)
        if self.closing.acquire(timeout=max(0.0, deadline - time.monotonic())):
            self._held.append(self.closing)
            pid = os.getpid()
            for handle in list(_handles):
                if handle.pid == pid and handle.owner in idle:
                    handle.pid = _CLOSED
                    handle.conn.close()

    def after_fork_in_parent(self) -> None:
        held, self._held = self._held, []
        for lock in reversed(held):
            lock.release()

    def after_fork_in_child(self) -> None:
        self.__init__()  # type: ignore[misc]  # the parent's other threads (and their calls) do not exist here


_FORK_WAIT = 5.0  # seconds a fork waits for calls in flight (a call stuck longer is most likely hung)
_gate = _ForkGate()


def _after_fork_in_child() -> None:
    _process[0] = os.getpid()
    _gate.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_gate.before_fork,
        after_in_parent=_gate.after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )


class _Handle:
    """One thread's connection, tagged with the process and generation that opened it, and its thread."""

    __slots__ = ("__weakref__", "conn", "generation", "owner", "pid")

    def __init__(self, conn: sqlite3.Connection, pid: int, generation: int) -> None:
        self.conn = conn
        self.pid = pid
        self.generation = generation
        self.owner = threading.get_ident()
        _handles.add(self)

    def __del__(self) -> None:
        # os.getpid(), not `_process`: right after a fork, threading's own hook frees the other threads'
        # handles before ours refreshes `_process`, and closing one a parent thread was using deadlocks.
        if self.pid == _CLOSED:
            return
        if self.pid != os.getpid():
            _inherited.append(self.conn)
        else:  # the owning thread ended: close now (not across a fork) rather than leave it to the collector
            with _gate.closing:
                self.conn.close()


_CLOSED = 0  # `_Handle.pid` of a connection the fork gate closed: the next call of its thread opens another
_handles: weakref.WeakSet[_Handle] = weakref.WeakSet()  # every connection of this process (and inherited ones)


def _successor(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix` (None: no upper bound)."""
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if code == 0xD800:  # surrogates cannot be stored as UTF-8
            code = 0xE000
        if code <= 0x10FFFF:
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None


def _map_error(exc: BaseException, what: str) -> BackendError:
    """Turn a driver/OS error into our tree: a lock held too long is `BackendBusy`, open and I/O problems are
    `BackendUnavailable` (the breaker opens at once), anything else (full, read-only, corrupt) `BackendError`."""
    message = f"sqlite {what} failed: {exc}"
    if isinstance(exc, OSError):
        return BackendUnavailable(message)
    text = str(exc).lower()
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return BackendBusy(message)  # another writer held the lock for the whole busy timeout
    if isinstance(exc, sqlite3.OperationalError) and any(word in text for word in ("unable to open", "disk i/o")):
        return BackendUnavailable(message)
    return BackendError(message)


def _seconds(name: str, value: object) -> float:
    """A positive, finite number of seconds, or a `ConfigurationError` that says so."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"SQLite {name}={value!r}: expected a positive number of seconds, e.g. 0.5")
    return float(value)


def _chunks(seq: Sequence[_T], size: int = _CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _recovering(
    method: Callable[Concatenate[SQLiteBackend, _P], _T],
) -> Callable[Concatenate[SQLiteBackend, _P], _T]:
    """Run `method` again, once, after `SQLiteBackend._recover` dealt with a damaged or replaced file."""

    def run(self: SQLiteBackend, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        generation = self._generation
        try:
            return method(self, *args, **kwargs)
        except BackendError as exc:
            if not self._recover(exc, generation):
                raise
        return method(self, *args, **kwargs)

    functools.update_wrapper(run, method)
    return run


def _flush_loop(ref: weakref.ref[SQLiteBackend], wake: threading.Event) -> None:
    """The flusher thread: writes a backend's buffered access times every `_FLUSH_INTERVAL` (or when woken
    because `_FLUSH_ENTRIES` keys are buffered), so a read never writes; it ends after `_FLUSHER_IDLE` seconds
    with nothing to write, when the backend is closed or collected, or in a forked child."""
    pid = _process[0]
    idle = 0.0
    while True:
        wake.wait(_FLUSH_INTERVAL)
        wake.clear()
        backend = ref()
        if backend is None or backend._wake is not wake or _process[0] != pid:
            return
        if backend._touched:
            with backend._flush_guard():  # `close()` waits for this flush before it closes the connection
                if backend._wake is not wake:
                    return
                backend._flush_best_effort()
            idle = 0.0
        else:
            idle += _FLUSH_INTERVAL
            if idle >= _FLUSHER_IDLE and backend._retire_flusher(wake):
                return
        del backend  # hold no reference while waiting, so an unused backend can be collected


class SQLiteBackend:
    """A byte store in one SQLite file, implementing `Backend`, `SupportsScan` and `SupportsGenerations`.

    Args:
        path: the database file; its directory must exist (constructing the backend
            never touches the disk).
        max_entries: evict when more entries are stored (`None`: unbounded).
        max_bytes: evict when `sum(len(key) + len(value))` exceeds this (`None`: unbounded). An item larger
            than this on its own is not stored. The ``-wal`` file is kept within half of it (at least
            64 KiB, at most SQLite's default 4 MiB) by checkpoints: measured over 1,500 writes of 2 KB values,
            the log peaked at 82 KB for `max_bytes=100_000` and 564 KB for `1_000_000` (without the bound:
            ~4.1 MB for both), the database file at 147 KB and 1.09 MB (page and index overhead).
        timeout: seconds a delete or clear (an invalidation) waits for another writer's lock before failing
            with `BackendBusy` (default 10).
        write_timeout: seconds storing a result (or reading, which in WAL mode does not wait for writers) may
            wait for another writer's lock before failing with `BackendBusy` (default 0.5); the fail-open
            wrapper then returns the result unstored.

    Expired rows read as missing and are purged in batches by later writes. A write that takes the store over
    a limit evicts in one batch down to 1/32 below it or 16 (average) rows below it, whichever is less, expired
    rows first, then the least recently accessed ones, so the next writes evict nothing. The LRU
    order is *approximate*: a hit never writes; access times are buffered in memory and written by a
    background thread (one per store and process, started by the first hit, ended after 10 s without hits)
    at most every ~1 s (or every 512 keys), and also by an evicting write before it picks victims and on
    `close()`. Other processes see them after that write.

    Async face: reads run inline on the event loop thread, because a WAL reader never waits for a writer
    and an inline `aget` hit costs ~6 µs, while a hop through `asyncio.to_thread` costs ~70-170 µs
    (measured). Writes, which may wait up to `timeout` for another writer's lock, run in
    `asyncio.to_thread`. The first call of a process (which creates the schema) also runs in a thread.

    Driver errors are raised as `BackendError` / `BackendUnavailable` (`from` the sqlite3 error). A damaged or
    non-SQLite file is moved aside to ``<name>.corrupt-<UTC time>-<pid>`` and the store starts afresh (see the
    module docstring); only if that fails, or the file is damaged again within `REBUILD_INTERVAL`, do calls
    raise `BackendError`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_entries: int | None = None,
        max_bytes: int | None = None,
        timeout: float = 10.0,
        write_timeout: float = 0.5,
    ) -> None:
        self._file = files.shown(os.fspath(path))  # `str(Path(path))`: no pathlib on the way to a first hit (~6 ms)
        self._dir = files.parent_dir(self._file)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.timeout = _seconds("timeout", timeout)
        self.write_timeout = _seconds("write_timeout", write_timeout)
        self._local = threading.local()
        self._handles: weakref.WeakSet[_Handle] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._touch_lock = threading.Lock()
        self._generation = 0
        self._ready: tuple[int, int] | None = None  # (pid, generation) whose schema check passed
        self._touched: dict[str, float] = {}
        self._flusher_pid = -1  # the process whose flusher thread runs (-1: none)
        self._wake: threading.Event | None = None  # wakes the running flusher; replaced to retire it
        self._flush_lock = (_process[0], threading.Lock())  # held by a flush; per process (see `_flush_guard`)
        self._opened: tuple[int, tuple[int, int] | None] = (-1, None)  # generation, file identity it opened
        self._recheck_at = 0.0
        self._rebuild_lock = threading.Lock()
        self._rebuilt_at: float | None = None
        _fork.track(self)

    def _after_fork_in_child(self) -> None:
        """New locks; connections are re-opened per process already (see `_Handle`). The parent checked the
        schema already: the child does not take the write lock again just to check it."""
        _fork.renew(self, "_lock", "_touch_lock")
        if self._ready is not None and self._ready[1] == self._generation:
            self._ready = (os.getpid(), self._generation)

    @property
    def path(self) -> Path:
        """The database file."""
        from pathlib import Path

        return Path(self._file)

    def __repr__(self) -> str:
        limits = f"max_entries={self.max_entries!r}, max_bytes={self.max_bytes!r}"
        return f"SQLiteBackend({self._file!r}, {limits})"

    # -- connections -----------------------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        handle: _Handle | None = getattr(self._local, "handle", None)
        if (
            handle is not None
            and handle.pid == _process[0]
            and handle.generation == self._generation
            and (time.monotonic() < self._recheck_at or not self._replaced())
        ):
            return handle.conn
        return self._open()

    def _open(self) -> sqlite3.Connection:
        with self._lock:
            generation = self._generation
            pid = _process[0]
            if not os.path.isdir(self._dir):  # never created here: a typo must not make directories anywhere
                raise BackendUnavailable(f"cannot open {str(self.path)!r}: its directory does not exist")
            with files.directory_lock(self._dir, exclusive=False):  # never halfway through another's move
                conn = self._connect(generation, pid)
            handle = _Handle(conn, pid, generation)
            self._handles.add(handle)
            self._local.handle = handle
            return conn

    def _connect(self, generation: int, pid: int) -> sqlite3.Connection:
        """A new connection, configured, with the schema checked once per generation."""
        try:
            conn = sqlite3.connect(
                self._file, timeout=self.write_timeout, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise _map_error(exc, f"opening {str(self.path)!r}") from exc
        if self._opened[0] != generation:  # the file this generation works on (see `_replaced`, `_recover`)
            self._opened = (generation, files.identity(self._file))
            self._recheck_at = time.monotonic() + _RECHECK_INTERVAL
        try:
            self._enter_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            for pragma in files.wal_pragmas(self.max_bytes):
                conn.execute(pragma).fetchone()
            if self._ready != (pid, generation):
                self._create_schema(conn)
                self._ready = (pid, generation)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise _map_error(exc, f"opening {str(self.path)!r}") from exc
            raise
        return conn

    # -- a damaged or replaced file --------------------------------------------------------------------------

    def _replaced(self) -> bool:
        """Whether the path names another file than the one this generation opened (moved aside by another
        process, or deleted); if so, the next call opens the file now there. Checked once a second."""
        self._recheck_at = time.monotonic() + _RECHECK_INTERVAL
        generation, opened = self._opened
        if generation != self._generation or files.identity(self._file) == opened:
            return False
        self._reopen(generation)
        return True

    def _reopen(self, generation: int) -> None:
        """Make every thread open a new connection (unless another thread already did since `generation`)."""
        with self._lock:
            if self._generation == generation:
                self._generation += 1

    def _recover(self, exc: BaseException, generation: int) -> bool:
        """After an operation of `generation` failed with `exc`: whether to retry it on a new connection.

        Yes when the path names another file (another process moved the damaged one aside), or the file is
        damaged and another thread already reopened. Otherwise a damaged file is moved aside here (one process
        does it: the move happens under the directory lock and only if the path still names the file that
        failed) and a fresh store starts, with one warning; at most once per `REBUILD_INTERVAL`. Any other
        error (busy, I/O) on an unchanged file is not retried.
        """
        corrupt = files.is_corrupt(exc.__cause__ if isinstance(exc, BackendError) else exc)
        if generation != self._generation:
            return corrupt
        opened_in, opened = self._opened
        if opened_in != generation:  # failed before a connection of this generation existed
            return False
        if files.identity(self._file) != opened:
            self._reopen(generation)
            return True
        if not corrupt:
            return False
        with self._rebuild_lock:
            if generation != self._generation:
                return True
            now = time.monotonic()
            if self._rebuilt_at is not None and now - self._rebuilt_at < REBUILD_INTERVAL:
                return False
            self._rebuilt_at = now
            aside = None
            try:
                with files.directory_lock(self._dir, exclusive=True):
                    if files.identity(self._file) == opened:  # not yet moved by another process
                        aside = files.move_aside(self.path)
            except OSError as move_error:
                _logger().warning(
                    "agentcache: %s is damaged (%s) and cannot be moved aside: %s", self.path, exc, move_error
                )
                return False
            self._reopen(generation)
        if aside is not None:
            _logger().warning(
                "agentcache: %s is damaged (%s); moved it to %s and started an empty store there",
                self.path,
                exc.__cause__ or exc,
                aside.name,
            )
        return True

    def _enter_wal(self, conn: sqlite3.Connection) -> None:
        """Switch to WAL. While another process creates the same file (e.g. both found it damaged and one moved
        it aside), SQLite may answer "locked" at once, without its busy handler: try again until `write_timeout`."""
        deadline = time.monotonic() + self.write_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL").fetchone()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        try:  # the usual case, a file already set up, needs no write lock (another writer may hold it long)
            row = conn.execute("SELECT value FROM settings WHERE name = 'schema_version'").fetchone()
        except sqlite3.OperationalError:
            row = None
        if row is not None and row[0] == SCHEMA_VERSION:
            return
        with self._patience(conn):
            self._create_schema_locked(conn)

    @staticmethod
    def _create_schema_locked(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute("INSERT OR IGNORE INTO settings VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
            row = conn.execute("SELECT value FROM settings WHERE name = 'schema_version'").fetchone()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        if row is None or row[0] != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"unsupported agentcache schema version {row and row[0]!r}")

    def _warm(self) -> None:
        """Open this thread's connection (and check the schema) inside the fork gate."""
        with _gate():
            self._conn()

    def _inline_ready(self) -> bool:
        """Whether this thread already has a usable connection (so a read cannot wait on schema setup)."""
        handle: _Handle | None = getattr(self._local, "handle", None)
        return handle is not None and handle.pid == _process[0] and handle.generation == self._generation

    @contextmanager
    def _patience(self, conn: sqlite3.Connection) -> Iterator[None]:
        """Wait up to `timeout` (not `write_timeout`) for the write lock inside this block."""
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        try:
            yield
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(self.write_timeout * 1000)}")

    @contextmanager
    def _write(self, what: str, *, patient: bool = False) -> Iterator[sqlite3.Connection]:
        """A `BEGIN IMMEDIATE` transaction; errors are mapped.

        It waits `write_timeout` for another writer's lock, or `timeout` when `patient` (invalidations).
        """
        try:
            with _gate():
                conn = self._conn()
                with self._patience(conn) if patient else nullcontext():
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        yield conn
                    except BaseException:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        raise
                    conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise _map_error(exc, what) from exc

    # -- access-time buffer ----------------------------------------------------------------------------------

    def _touch(self, key: str, now: float) -> None:
        with self._touch_lock:
            self._touched[key] = now
            buffered = len(self._touched)
        if self._flusher_pid != _process[0]:
            self._start_flusher()
        elif buffered >= _FLUSH_ENTRIES and self._wake is not None and not self._wake.is_set():
            self._wake.set()

    def _start_flusher(self) -> None:
        """Start this process's flusher thread (see `_flush_loop`) unless one runs."""
        with self._lock:
            if self._flusher_pid == _process[0]:
                return
            self._flusher_pid = _process[0]
            self._wake = wake = threading.Event()
            thread = threading.Thread(
                target=_flush_loop, args=(weakref.ref(self), wake), name="agentcache-sqlite-flush", daemon=True
            )
            thread.start()

    def _flush_guard(self) -> threading.Lock:
        """The lock a flush holds, new in a forked child (the parent's flusher may have held it at the fork)."""
        pid, lock = self._flush_lock
        if pid != _process[0]:
            lock = threading.Lock()
            self._flush_lock = (_process[0], lock)
        return lock

    def _retire_flusher(self, wake: threading.Event | None) -> bool:
        """Mark the flusher woken by `wake` as ended, if it is still current and nothing waits to be flushed
        (if `wake` is None: whatever is buffered); the next read starts a new one."""
        with self._lock, self._touch_lock:
            if self._wake is not wake and wake is not None:
                return True  # already replaced: that thread is not current any more
            if wake is not None and self._touched:
                return False
            current, self._wake, self._flusher_pid = self._wake, None, -1
        if current is not None:
            current.set()  # wake it so that it sees it was retired and ends
        return True

    def _take_touched(self) -> list[tuple[float, str]]:
        with self._touch_lock:
            touched, self._touched = self._touched, {}
        return [(t, k) for k, t in touched.items()]

    def _flush_into(self, conn: sqlite3.Connection) -> None:
        if self._touched:
            conn.executemany("UPDATE entries SET accessed = max(accessed, ?) WHERE key = ?", self._take_touched())

    def _flush_best_effort(self) -> None:
        """Write buffered access times in one transaction (waiting up to `write_timeout` for the lock). Runs on
        the flusher thread and in `close()`, never on a read.

        The buffer is taken only once the write lock is held, so an evicting writer that holds it meanwhile
        writes the buffer itself before it picks victims: no read is left out of the LRU order. If the lock
        cannot be had, the buffer stays for the next attempt (dropped beyond `_FLUSH_KEEP` keys).
        """
        if not self._touched:
            return
        try:
            with _gate():
                conn = self._conn()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    self._flush_into(conn)
                    conn.execute("COMMIT")
                finally:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
        except (sqlite3.Error, BackendError):
            if len(self._touched) > _FLUSH_KEEP:  # access times only order eviction: LRU gets a little less exact
                self._take_touched()

    # -- sync face -------------------------------------------------------------------------------------------

    def _read_one(self, key: str) -> bytes | None:
        try:
            with _gate():
                row = self._conn().execute(_GET, (key,)).fetchone()
        except sqlite3.Error as exc:
            raise _map_error(exc, "get") from exc
        if row is None:
            return None
        now = time.time()
        expires = row[1]
        if expires is not None and expires <= now:
            return None
        self._touch(key, now)
        value: bytes = row[0]
        return value

    def _read_many(self, keys: Sequence[str]) -> list[bytes | None]:
        found: dict[str, tuple[bytes, float | None]] = {}
        try:
            with _gate():
                conn = self._conn()
                for chunk in _chunks(list(dict.fromkeys(keys))):
                    sql = f"SELECT key, value, expires FROM entries WHERE key IN ({_marks(len(chunk))})"  # noqa: S608
                    found.update((k, (v, e)) for k, v, e in conn.execute(sql, chunk))
        except sqlite3.Error as exc:
            raise _map_error(exc, "get_many") from exc
        now = time.time()
        out: list[bytes | None] = []
        for key in keys:
            hit = found.get(key)
            if hit is None or (hit[1] is not None and hit[1] <= now):
                out.append(None)
            else:
                self._touch(key, now)
                out.append(hit[0])
        return out

    def get(self, key: str, /) -> bytes | None:
        """Return the value stored under `key`, or `None` when it is missing or expired."""
        generation = self._generation
        try:
            value = self._read_one(key)
        except BackendError as exc:  # `_recovering`, inlined on the hit path
            if not self._recover(exc, generation):
                raise
            value = self._read_one(key)
        return value

    @_recovering
    def get_many(self, keys: Sequence[str], /) -> list[bytes | None]:
        """Return the values of `keys`, in order, with `None` for each missing or expired one."""
        return self._read_many(keys)

    @_recovering
    def set_many(self, items: Sequence[Item], /) -> None:
        """Store every item in one transaction, replacing values, TTLs and tags; `ttl <= 0` drops the key."""
        self._store(items, None)

    @_recovering
    def set_many_fenced(self, items: Sequence[Item], fence: object, /) -> bool:
        """`set_many` unless an invalidation moved `fence`, checked in the transaction that writes."""
        if not isinstance(fence, ScopeFence):
            return False
        return self._store(items, fence)

    @_recovering
    def read_fence(self, keys: Sequence[str], tags: Collection[str], /) -> object:
        """The generations a write of `keys` tagged `tags` depends on (see `SupportsGenerations`)."""
        names = scope_names(keys, tags)
        try:
            with _gate():
                return ScopeFence(names, self._generations(self._conn(), names))
        except sqlite3.Error as exc:
            raise _map_error(exc, "read_fence") from exc

    @staticmethod
    def _generations(conn: sqlite3.Connection, names: Sequence[str]) -> tuple[int, ...]:
        found: dict[str, int] = {}
        for chunk in _chunks(names):
            sql = f"SELECT scope, value FROM generations WHERE scope IN ({_marks(len(chunk))})"  # noqa: S608
            found.update(conn.execute(sql, chunk).fetchall())
        return tuple(found.get(n, 0) for n in names)

    def _store(self, items: Sequence[Item], fence: ScopeFence | None) -> bool:
        latest = {item.key: item for item in items}  # the last item of a key wins, as sequential sets would
        now = time.time()
        rows: list[tuple[str, int, float, float | None, float, bytes]] = []
        tags: list[tuple[str, str]] = []
        drop: list[str] = []
        for key, item in latest.items():
            size = len(key) + len(item.value)
            if (item.ttl is not None and item.ttl <= 0) or (self.max_bytes is not None and size > self.max_bytes):
                drop.append(key)
                continue
            expires = None if item.ttl is None else now + item.ttl
            rows.append((key, size, now, expires, now, item.value))
            tags.extend((tag, key) for tag in dict.fromkeys(item.tags))
        with self._write("set_many") as conn:
            if fence is not None and self._generations(conn, fence.names) != fence.values:
                return False
            for chunk in _chunks(drop):
                conn.execute(f"DELETE FROM entries WHERE key IN ({_marks(len(chunk))})", chunk)  # noqa: S608
            conn.executemany(_UPSERT, rows)
            conn.executemany("DELETE FROM tags WHERE key = ?", [(row[0],) for row in rows])
            conn.executemany("INSERT OR IGNORE INTO tags (tag, key) VALUES (?, ?)", tags)
            self._cull(conn, now)
        return True

    @_recovering
    def delete_many(self, keys: Sequence[str], /) -> int:
        """Delete `keys`; return how many existed (expired entries do not count)."""
        count = 0
        unique = list(dict.fromkeys(keys))
        with self._write("delete_many", patient=True) as conn:
            conn.executemany(_BUMP, [(n,) for n in key_scopes(unique)])
            now = time.time()
            for chunk in _chunks(unique):
                count += self._delete(conn, f"key IN ({_marks(len(chunk))})", [*chunk], now)
        return count

    @_recovering
    def delete_tags(self, tags: Collection[str], /, prefix: str = "") -> int:
        """Delete every entry tagged with any of `tags` whose key starts with `prefix`; return the count."""
        count = 0
        range_sql, range_args = self._range("key", prefix)
        with self._write("delete_tags", patient=True) as conn:
            conn.executemany(_BUMP, [(n,) for n in tag_scopes(tags, prefix)])
            now = time.time()
            for chunk in _chunks(list(dict.fromkeys(tags))):
                where = f"key IN (SELECT key FROM tags WHERE tag IN ({_marks(len(chunk))}){range_sql})"  # noqa: S608
                count += self._delete(conn, where, [*chunk, *range_args], now)
        return count

    @_recovering
    def clear(self, prefix: str = "", /) -> int:
        """Delete every entry whose key starts with `prefix` (a key range, not LIKE); return the count."""
        range_sql, range_args = self._range("key", prefix)
        with self._write("clear", patient=True) as conn:
            conn.executemany(_BUMP, [(n,) for n in clear_scopes(prefix)])
            return self._delete(conn, "1" + range_sql, range_args, time.time())

    def close(self) -> None:
        """Flush buffered access times and close every connection of this process; later calls reopen."""
        with self._flush_guard():  # never close the flusher thread's connection in the middle of its flush
            try:
                self._retire_flusher(None)
                self._flush_best_effort()
            finally:
                with self._lock:
                    self._generation += 1
                    handles = list(self._handles)
                with _gate():
                    for handle in handles:
                        if handle.pid == _process[0]:
                            handle.conn.close()

    def scan(self, prefix: str = "", /, *, tag: str | None = None) -> Iterator[EntryInfo]:
        """Yield every live entry whose key starts with `prefix` (and carries `tag`), in key order.

        Rows are read in pages, so no read transaction stays open between yields.
        """
        upper = _successor(prefix)
        after = prefix
        inclusive = True
        while True:
            generation = self._generation
            try:
                page = self._scan_page(after, inclusive, upper, tag)
            except BackendError as exc:
                if self._recover(exc, generation):
                    return  # the store started afresh: nothing more to list
                raise
            with self._touch_lock:
                touched = dict(self._touched)
            yield from (
                EntryInfo(
                    key=key,
                    size=size,
                    created_at=created,
                    expires_at=expires,
                    accessed_at=max(accessed, touched.get(key, accessed)),
                    tags=tags,
                )
                for key, size, created, expires, accessed, tags in page
            )
            if len(page) < _SCAN_PAGE:
                return
            after, inclusive = page[-1][0], False

    # -- async face ------------------------------------------------------------------------------------------

    async def _aread(self, read: Callable[[], _T]) -> _T:
        generation = self._generation
        try:
            result = await self._aread_once(read)
        except BackendError as exc:
            if not await _to_thread(self._recover, exc, generation):  # may move files: not on the loop
                raise
            result = await self._aread_once(read)
        return result

    async def _aread_once(self, read: Callable[[], _T]) -> _T:
        if not self._inline_ready() and self._ready != (_process[0], self._generation):
            await _to_thread(self._warm)  # the schema check takes the write lock: not on the loop
        return read()

    async def aget(self, key: str, /) -> bytes | None:
        """Awaitable `get`: runs inline (a WAL read never waits for writers)."""
        return await self._aread(lambda: self._read_one(key))

    async def aget_many(self, keys: Sequence[str], /) -> list[bytes | None]:
        """Awaitable `get_many`: runs inline (a WAL read never waits for writers)."""
        return await self._aread(lambda: self._read_many(keys))

    async def aset_many(self, items: Sequence[Item], /) -> None:
        """Awaitable `set_many`, run in a worker thread."""
        await _to_thread(self.set_many, items)

    async def aread_fence(self, keys: Sequence[str], tags: Collection[str], /) -> object:
        """Awaitable `read_fence`: runs inline like a read (a WAL read never waits for writers)."""
        return await self._aread(lambda: self.read_fence(keys, tags))

    async def aset_many_fenced(self, items: Sequence[Item], fence: object, /) -> bool:
        """Awaitable `set_many_fenced`, run in a worker thread."""
        return await _to_thread(self.set_many_fenced, items, fence)

    async def adelete_many(self, keys: Sequence[str], /) -> int:
        """Awaitable `delete_many`, run in a worker thread."""
        return await _to_thread(self.delete_many, keys)

    async def adelete_tags(self, tags: Collection[str], /, prefix: str = "") -> int:
        """Awaitable `delete_tags`, run in a worker thread."""
        return await _to_thread(self.delete_tags, tags, prefix)

    async def aclear(self, prefix: str = "", /) -> int:
        """Awaitable `clear`, run in a worker thread."""
        return await _to_thread(self.clear, prefix)

    async def aclose(self) -> None:
        """Awaitable `close`, run in a worker thread."""
        await _to_thread(self.close)

    # -- internals -------------------------------------------------------------------------------------------

    @staticmethod
    def _range(column: str, prefix: str) -> tuple[str, list[str]]:
        """SQL (starting with ' AND') bounding `column` to keys starting with `prefix`, and its args."""
        if not prefix:
            return "", []
        upper = _successor(prefix)
        if upper is None:
            return f" AND {column} >= ?", [prefix]
        return f" AND {column} >= ? AND {column} < ?", [prefix, upper]

    @staticmethod
    def _delete(conn: sqlite3.Connection, where: str, args: Sequence[object], now: float) -> int:
        """Delete rows matching `where`; return how many of them were live (expired ones go uncounted)."""
        live = conn.execute(f"DELETE FROM entries WHERE ({where}) AND {_LIVE}", [*args, now]).rowcount  # noqa: S608
        conn.execute(f"DELETE FROM entries WHERE ({where}) AND expires <= ?", [*args, now])  # noqa: S608
        return live

    def _cull(self, conn: sqlite3.Connection, now: float) -> None:
        """Purge a batch of expired rows, then, over a limit, evict (expired first, then LRU) in one batch."""
        conn.execute(
            "DELETE FROM entries WHERE rowid IN "  # noqa: S608
            f"(SELECT rowid FROM entries WHERE expires <= ? LIMIT {_PURGE_BATCH})",
            (now,),
        )
        if self.max_entries is None and self.max_bytes is None:
            return
        count, size = conn.execute("SELECT count, size FROM stats WHERE id = 0").fetchone()
        if not self._exceeds(count, size):
            return
        self._evict(conn, now)

    def _evict(self, conn: sqlite3.Connection, now: float) -> None:
        """Evict down to the low-water marks (see `_EVICT_SLACK`): expired rows first, then the
        least recently accessed, after recording this process's buffered access times so they count."""
        self._flush_into(conn)
        conn.execute("DELETE FROM entries WHERE expires <= ?", (now,))
        count, size = conn.execute("SELECT count, size FROM stats WHERE id = 0").fetchone()
        if self.max_entries is not None and count > self.max_entries:
            low = self.max_entries - min(self.max_entries // _EVICT_SLACK, _EVICT_BATCH)
            conn.execute(
                "DELETE FROM entries WHERE rowid IN (SELECT rowid FROM entries ORDER BY accessed, rowid LIMIT ?)",
                (count - low,),
            )
            count, size = conn.execute("SELECT count, size FROM stats WHERE id = 0").fetchone()
        if self.max_bytes is not None and size > self.max_bytes:
            low_bytes = self.max_bytes - min(self.max_bytes // _EVICT_SLACK, _EVICT_BATCH * size // max(count, 1))
            victims: list[int] = []
            for rowid, row_size in conn.execute("SELECT rowid, size FROM entries ORDER BY accessed, rowid"):
                if size <= low_bytes:
                    break
                victims.append(rowid)
                size -= row_size
            for chunk in _chunks(victims):
                conn.execute(f"DELETE FROM entries WHERE rowid IN ({_marks(len(chunk))})", chunk)  # noqa: S608

    def _exceeds(self, count: int, size: int) -> bool:
        return (self.max_entries is not None and count > self.max_entries) or (
            self.max_bytes is not None and size > self.max_bytes
        )

    def _scan_page(
        self, after: str, inclusive: bool, upper: str | None, tag: str | None
    ) -> list[tuple[str, int, float, float | None, float, tuple[str, ...]]]:
        lower = ">=" if inclusive else ">"
        column = "e.key" if tag is None else "t.key"  # range and order on the index being walked
        args: list[object] = [after]
        where = f"{column} {lower} ?"
        if upper is not None:
            where += f" AND {column} < ?"
            args.append(upper)
        where += " AND (e.expires IS NULL OR e.expires > ?)"
        args.append(time.time())
        if tag is None:
            sql = f"SELECT e.key, e.size, e.created, e.expires, e.accessed FROM entries e WHERE {where}"  # noqa: S608
        else:
            sql = (
                "SELECT e.key, e.size, e.created, e.expires, e.accessed FROM tags t "  # noqa: S608
                f"JOIN entries e ON e.key = t.key WHERE t.tag = ? AND {where}"
            )
            args.insert(0, tag)
        try:
            with _gate():
                conn = self._conn()
                rows = conn.execute(f"{sql} ORDER BY {column} LIMIT {_SCAN_PAGE}", args).fetchall()
                tags: dict[str, list[str]] = {}
                if rows:
                    keys = [row[0] for row in rows]
                    tag_sql = f"SELECT key, tag FROM tags WHERE key IN ({_marks(len(keys))}) ORDER BY key, tag"  # noqa: S608
                    for key, name in conn.execute(tag_sql, keys):
                        tags.setdefault(key, []).append(name)
        except sqlite3.Error as exc:
            raise _map_error(exc, "scan") from exc
        return [(k, size, c, e, a, tuple(tags.get(k, ()))) for k, size, c, e, a in rows]
