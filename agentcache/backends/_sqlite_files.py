"""The SQLite store's files: recognising a damaged database, moving it aside, and bounding the write-ahead log.

A damaged file (`is_corrupt`) is renamed with its ``-wal`` and ``-shm`` to ``<name>.corrupt-<UTC time>-<pid>`` so
the store can start afresh and the bytes stay available for a post-mortem. Processes sharing the file coordinate
through `directory_lock`: a process opens a connection under the shared lock and moves files under the exclusive
one, so no process opens the file halfway through a move (a fresh database next to the old ``-wal`` would replay
the old log into it). The lock is an advisory `flock` on the directory itself (no lock file is left behind);
where `fcntl` does not exist (Windows) moves are not coordinated.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

TYPE_CHECKING = False

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["directory_lock", "identity", "is_corrupt", "move_aside", "parent_dir", "shown", "wal_pragmas"]

_CORRUPT_CODES = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB (primary result codes)
_CORRUPT_TEXT = ("file is not a database", "database disk image is malformed")
_SIDE_FILES = ("-wal", "-shm")

DEFAULT_WAL_BYTES = 4 << 20  # SQLite's own default checkpoint point: 1000 pages of 4 KiB
MIN_WAL_BYTES = 64 << 10


def is_corrupt(exc: BaseException | None) -> bool:
    """Whether a driver error says the file is not a database or is malformed (never a busy or I/O error)."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        return (code & 0xFF) in _CORRUPT_CODES
    text = str(exc).lower()
    return any(t in text for t in _CORRUPT_TEXT)


def parent_dir(path: str) -> str:
    """`str(Path(path).parent)` of a path already written as `shown` writes it (without importing pathlib)."""
    return os.path.dirname(path) or "."


def shown(path: str) -> str:
    """`str(Path(path))`: the path as pathlib writes it (repeated separators and ``.`` parts dropped), for reprs
    and messages; without importing pathlib (~6 ms) on POSIX."""
    if os.name != "posix":  # pragma: no cover - Windows spells paths otherwise
        from pathlib import Path

        return str(Path(path))
    root = "//" if path.startswith("//") and not path.startswith("///") else "/" if path.startswith("/") else ""
    return (root + "/".join(p for p in path.split("/") if p and p != ".")) or "."


def identity(path: str) -> tuple[int, int] | None:
    """``(device, inode)`` of the file now at `path`, or `None` when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


@contextmanager
def directory_lock(directory: str, *, exclusive: bool) -> Iterator[None]:
    """Hold an advisory lock on the database's `directory`: shared to open the database, exclusive to move it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no coordination
        yield
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # the directory cannot be opened: the open or move that follows reports the real problem
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        except OSError:  # a file system without flock: go on uncoordinated rather than fail
            pass
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def move_aside(path: Path) -> Path:
    """Rename the database at `path` and its ``-wal`` / ``-shm`` out of the way; return the database's new path.

    The log files go first: a process opening `path` meanwhile finds the old database without its log, fails
    and waits for the lock, rather than a new database next to the old log.

    Raises:
        OSError: the database file could not be renamed.
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.corrupt-{stamp}-{os.getpid()}")
    n = 1
    while aside.exists():  # never overwrite an earlier post-mortem copy (the caller holds the exclusive lock)
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{os.getpid()}-{n}")
        n += 1
    for suffix in _SIDE_FILES:
        try:
            os.replace(f"{path}{suffix}", f"{aside}{suffix}")
        except FileNotFoundError:
            pass
    os.replace(path, aside)
    return aside


def wal_pragmas(max_bytes: int | None) -> tuple[str, ...]:
    """Pragmas that keep the ``-wal`` file within half of `max_bytes` (at least 64 KiB, at most 4 MiB).

    SQLite checkpoints the log every `wal_autocheckpoint` pages; without that it grows to ~4 MiB whatever the
    store's limit. `journal_size_limit` (twice the checkpoint point) trims the file after an outsized
    transaction; at the checkpoint point itself it would truncate the file on every restart of the log (the
    frames overshoot it by their headers), which made the next checkpoint re-grow and sync it (#13: the
    checkpointing write and the one after it were the slowest 1% of writes at the eviction limit).
    """
    limit = DEFAULT_WAL_BYTES if max_bytes is None else min(DEFAULT_WAL_BYTES, max(max_bytes // 2, MIN_WAL_BYTES))
    pages = max(limit // 4096 - 1, 8)  # frames are a page plus a 24-byte header
    return (f"PRAGMA journal_size_limit = {2 * limit}", f"PRAGMA wal_autocheckpoint = {pages}")
