"""Byte-store backends and `open_backend(url)`, which imports a backend's module only when its scheme is used.

| URL | backend |
| --- | --- |
| `memory://?max_entries=10000&max_bytes=...` | `MemoryBackend` |
| `sqlite:///abs.db`, `sqlite://rel.db`, `sqlite://~/x.db` (`?max_entries&max_bytes&timeout&write_timeout`) | SQLite |
| `redis://`, `rediss://`, `unix://`, `redis+cluster://` | `agentcache.backends.redis.open_redis` |

Everything after `sqlite://` up to `?` is the path, so `sqlite:///tmp/x.db` is the absolute `/tmp/x.db`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from agentcache.backends.base import (
    AsyncBackend,
    Backend,
    EntryInfo,
    Item,
    SupportsLocking,
    SupportsScan,
    SyncBackend,
)
from agentcache.errors import ConfigurationError, MissingDependencyError

if TYPE_CHECKING:
    from agentcache.backends.memory import MemoryBackend
    from agentcache.backends.resilient import ResilientBackend
    from agentcache.backends.sqlite import SQLiteBackend

__all__ = [
    "AsyncBackend",
    "Backend",
    "EntryInfo",
    "Item",
    "MemoryBackend",
    "ResilientBackend",
    "SQLiteBackend",
    "SupportsLocking",
    "SupportsScan",
    "SyncBackend",
    "open_backend",
    "schemes",
]

_Opener = Callable[[str, dict[str, Any]], Backend]

_LAZY_CLASSES = {
    "MemoryBackend": "agentcache.backends.memory",
    "ResilientBackend": "agentcache.backends.resilient",
    "SQLiteBackend": "agentcache.backends.sqlite",
}


def __getattr__(name: str) -> Any:
    module = _LAZY_CLASSES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def _split(url: str) -> tuple[str, dict[str, str]]:
    """Split `scheme://rest?query` into `rest` and the query parameters (later ones win)."""
    rest = url.split("://", 1)[1]
    rest, _, query = rest.partition("?")
    return rest, dict(parse_qsl(query, keep_blank_values=True, strict_parsing=False))


def _options(url: str, params: dict[str, str], options: dict[str, Any], types: dict[str, type]) -> dict[str, Any]:
    """Merge query parameters (converted to `types`, "none" meaning None) with keyword `options`."""
    unknown = (set(params) | set(options)) - set(types)
    if unknown:
        raise ConfigurationError(
            f"unknown option(s) {sorted(unknown)} in {url!r}; valid: {sorted(types)}",
        )
    merged: dict[str, Any] = {}
    for name, raw in params.items():
        try:
            merged[name] = None if raw.lower() in ("", "none") else types[name](raw)
        except ValueError as exc:
            raise ConfigurationError(f"option {name}={raw!r} in {url!r} is not a valid {types[name].__name__}") from exc
    merged.update(options)
    return merged


def _open_memory(url: str, options: dict[str, Any]) -> Backend:
    from agentcache.backends.memory import MemoryBackend

    rest, params = _split(url)
    if rest:
        raise ConfigurationError(f"memory:// takes no path, got {url!r}")
    return MemoryBackend(**_options(url, params, options, {"max_entries": int, "max_bytes": int}))


def _open_sqlite(url: str, options: dict[str, Any]) -> Backend:
    from agentcache.backends.sqlite import SQLiteBackend

    rest, params = _split(url)
    if not rest:
        raise ConfigurationError(
            f"{url!r} has no path: use sqlite:///absolute/path.db or sqlite://relative.db "
            "(agentcache.configure() supplies the default path)",
        )
    types = {"max_entries": int, "max_bytes": int, "timeout": float, "write_timeout": float}
    merged = _options(url, params, options, types)
    for name in ("timeout", "write_timeout"):
        if name in merged and merged[name] is None:
            del merged[name]
    return SQLiteBackend(Path(rest).expanduser(), **merged)


def _open_redis(url: str, options: dict[str, Any]) -> Backend:
    try:
        module = importlib.import_module("agentcache.backends.redis")
    except ModuleNotFoundError as exc:
        if exc.name == "redis" or (exc.name or "").startswith("redis."):
            raise MissingDependencyError("redis", "redis") from exc
        if exc.name == "agentcache.backends.redis":
            raise ConfigurationError(
                f"{url.split(':', 1)[0]}:// needs agentcache.backends.redis, which is missing"
            ) from exc
        raise
    opener: Callable[..., Backend] = module.open_redis
    try:
        return opener(url, **options)
    except ModuleNotFoundError as exc:
        if exc.name == "redis" or (exc.name or "").startswith("redis."):
            raise MissingDependencyError("redis", "redis") from exc
        raise


_REGISTRY: dict[str, _Opener] = {
    "memory": _open_memory,
    "sqlite": _open_sqlite,
    "redis": _open_redis,
    "rediss": _open_redis,
    "unix": _open_redis,
    "redis+cluster": _open_redis,
    "rediss+cluster": _open_redis,
}


def schemes() -> list[str]:
    """The URL schemes `open_backend` understands, sorted."""
    return sorted(_REGISTRY)


def open_backend(url: str, **options: Any) -> Backend:
    """Open the backend a URL names; keyword `options` override the URL's query parameters.

    Only the chosen backend's module is imported. Nothing connects or touches the disk until first use.

    Raises:
        ConfigurationError: the scheme is unknown (the message lists the valid ones) or an option is invalid.
        MissingDependencyError: the scheme needs an extra that is not installed (e.g. `agentcache[redis]`).

    Example:
        >>> open_backend("memory://?max_entries=100")
        MemoryBackend(max_entries=100, max_bytes=None)
    """
    scheme, sep, _ = url.partition("://")
    opener = _REGISTRY.get(scheme.lower()) if sep else None
    if opener is None:
        valid = ", ".join(f"{name}://" for name in schemes())
        raise ConfigurationError(f"unknown backend URL {url!r}; valid schemes: {valid}")
    return opener(url, options)
