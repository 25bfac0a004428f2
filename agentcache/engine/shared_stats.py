"""Stats snapshots kept in the store, so `agentcache stats` in another process can show them.

Each process writes its own counters under ``ac:v1:_stats:process:{host}.{pid}:{start}`` (at most every
`FLUSH_INTERVAL` seconds while it has misses, and at exit); the CLI sums the snapshots it finds. Snapshots expire
after 30 days. Periodic snapshots are written by a background thread, never on a caller's thread (an event
loop's included): a call only notes that one is due.
"""

from __future__ import annotations

import atexit
import os
import threading
import time

from agentcache import _fork
from agentcache.codec.entries import decode_entry, encode_entry
from agentcache.engine.cache import on_open
from agentcache.errors import SerializationError
from agentcache.keys.encoding import KEY_PREFIX
from agentcache.stats.counters import StatsReport

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from agentcache.backends.base import Backend
    from agentcache.engine.cache import Cache

__all__ = ["flush_stats", "load_stats", "maybe_flush"]

FLUSH_INTERVAL = 10.0
SNAPSHOT_TTL = 30 * 86400.0
PREFIX = f"{KEY_PREFIX}_stats:process:"
_started = int(time.time() * 1000)
_last = 0.0
_lock = threading.Lock()
_hooked = False


def _key() -> str:
    uname = getattr(os, "uname", None)  # the host name without loading `socket` at exit (POSIX)
    if uname is not None:
        hostname = uname().nodename
    else:
        import socket

        hostname = socket.gethostname()
    host = "".join(c if c.isalnum() or c in "-_." else "_" for c in hostname) or "host"
    return f"{PREFIX}{host}.{os.getpid()}:{_started}"


def flush_stats() -> None:
    """Write this process's counters into every open store (one snapshot per store)."""
    from agentcache.backends.base import Item
    from agentcache.engine.cache import open_caches
    from agentcache.engine.registry import every_layer

    global _last
    _last = time.monotonic()
    by_cache: dict[int, tuple[Cache, list[list[Any]]]] = {}
    for layer in every_layer():
        cache = layer.opened_cache
        if cache is None or cache.opened is None:
            continue
        info = layer.counters.to_dict()
        if not (info["hits"] or info["misses"] or info["errors"]):
            continue
        by_cache.setdefault(id(cache), (cache, []))[1].append([layer.name, layer.layer, info])
    for cache in open_caches():
        if cache.opened is not None and cache.counters.backend_errors:
            entry = by_cache.setdefault(id(cache), (cache, []))
            entry[1].append([f"<store {cache.url}>", "backend", cache.counters.to_dict()])
    from agentcache.engine import cache as _cache

    with _cache.background_use:  # no store is closed under this write (`Cache.close` waits for it)
        for cache, rows in by_cache.values():
            store = cache.opened
            # a store whose breaker is not closed is down or being probed: a snapshot would wait for a timeout
            # (at exit, too) to fail anyway
            if store is not None and getattr(store, "state", "closed") == "closed":
                key = _key()
                store.set_many([Item(key, encode_entry({"rows": rows}, key=key), SNAPSHOT_TTL)])


@on_open
def _on_store_open(cache: Cache) -> None:
    ensure_exit_flush()  # a process that only ever hits still leaves its stats for `agentcache stats`


def ensure_exit_flush() -> None:
    """Write a last snapshot when the process exits (registered when the first store opens)."""
    global _hooked
    if not _hooked:
        with _lock:
            if not _hooked:
                atexit.register(_flush_quietly)
                _hooked = True


def maybe_flush() -> None:
    """Have the flusher thread write a snapshot if the last is older than `FLUSH_INTERVAL` (cheap to call on every
    miss: it never touches a store itself)."""
    global _last
    if time.monotonic() - _last >= FLUSH_INTERVAL:
        _last = time.monotonic()  # one wake-up per interval, however many misses see it due
        _wake()


_due = threading.Event()
_flusher: threading.Thread | None = None


def _wake() -> None:
    global _flusher
    if _flusher is None or not _flusher.is_alive():
        with _lock:
            if _flusher is None or not _flusher.is_alive():
                _flusher = threading.Thread(target=_flush_when_due, name="agentcache-stats", daemon=True)
                _flusher.start()
    _due.set()


def _flush_when_due() -> None:
    while True:
        _due.wait()
        _due.clear()
        _flush_quietly()


def _flush_quietly() -> None:
    try:
        flush_stats()
    except Exception:  # noqa: S110 - stats must never break the app (stores already fail open)
        pass


def load_stats(store: Backend) -> StatsReport:
    """Sum every process snapshot found in `store` (needs a backend that supports `scan`)."""
    from agentcache.backends.base import SupportsScan

    inner = getattr(store, "inner", store)
    rows: list[tuple[str, str, Any]] = []
    if isinstance(inner, SupportsScan):
        keys = [info.key for info in inner.scan(PREFIX)]
        for key, raw in zip(keys, store.get_many(keys) if keys else [], strict=True):
            if raw is None:
                continue
            try:
                value = decode_entry(raw, key).value
                for name, layer, counters in value["rows"]:
                    rows.append((str(name), str(layer), dict(counters)))
            except (SerializationError, KeyError, TypeError, ValueError):
                continue
    return StatsReport.build(rows)


@_fork.at_fork
def _after_fork_in_child() -> None:
    global _lock, _flusher, _due
    _lock = threading.Lock()
    _flusher = None  # the parent's thread does not exist here: the next due snapshot starts one
    _due = threading.Event()
