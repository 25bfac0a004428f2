"""Byte-store backends and `open_backend(url)`, which imports a backend's module only when its scheme is used.

| URL | backend |
| --- | --- |
| `memory://?max_entries=10000&max_bytes=...` | `MemoryBackend` |
| `sqlite:///abs.db`, `sqlite://rel.db`, `sqlite://~/x.db` (`?max_entries&max_bytes&timeout&write_timeout`) | SQLite |
| `redis://`, `rediss://`, `unix://`, `redis+cluster://` | `agentcache.backends.redis.open_redis` |

Everything after `sqlite://` up to `?` is the path, so `sqlite:///tmp/x.db` is the absolute `/tmp/x.db`.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

from agentcache.backends.base import EntryInfo, Item
from agentcache.errors import ConfigurationError, MissingDependencyError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from agentcache.backends.memory import MemoryBackend
    from agentcache.backends.protocols import AsyncBackend, Backend, SupportsLocking, SupportsScan, SyncBackend
    from agentcache.backends.resilient import ResilientBackend
    from agentcache.backends.sqlite import SQLiteBackend

    _Opener = Callable[[str, dict[str, Any]], Backend]
    _Check = tuple[Callable[[str], Any], str]  # converts a query value (raises ValueError), and says what it takes


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
    "check_url",
    "open_backend",
    "schemes",
]


_LAZY_CLASSES = {  # the protocols need `typing`, which a process's first hit never loads (#13)
    "AsyncBackend": "agentcache.backends.protocols",
    "Backend": "agentcache.backends.protocols",
    "SupportsLocking": "agentcache.backends.protocols",
    "SupportsScan": "agentcache.backends.protocols",
    "SyncBackend": "agentcache.backends.protocols",
    "MemoryBackend": "agentcache.backends.memory",
    "ResilientBackend": "agentcache.backends.resilient",
    "SQLiteBackend": "agentcache.backends.sqlite",
}


def __getattr__(name: str) -> Any:
    module = _LAZY_CLASSES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    __import__(module)
    return getattr(sys.modules[module], name)


def _split(url: str) -> tuple[str, dict[str, str]]:
    """Split `scheme://rest?query` into `rest` and the query parameters (later ones win)."""
    rest = url.split("://", 1)[1]
    rest, _, query = rest.partition("?")
    if not query:  # the common URL: no urllib.parse (~3 ms of imports at start-up)
        return rest, {}
    from urllib.parse import parse_qsl

    return rest, dict(parse_qsl(query, keep_blank_values=True, strict_parsing=False))


def _count(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError(raw)
    return value


def _seconds(raw: str) -> float:
    value = float(raw)
    if not 0 <= value < float("inf"):
        raise ValueError(raw)
    return value


_COUNT: _Check = (_count, "an integer >= 0 or none")
_SECONDS: _Check = (_seconds, "seconds >= 0")
_TEXT: _Check = (str, "text")
_MEMORY_OPTIONS: dict[str, _Check] = {"max_entries": _COUNT, "max_bytes": _COUNT}
_SQLITE_OPTIONS: dict[str, _Check] = {**_MEMORY_OPTIONS, "timeout": _SECONDS, "write_timeout": _SECONDS}
# agentcache's own Redis options (agentcache.backends.redis); any other query option goes to redis-py.
_REDIS_OPTIONS: dict[str, _Check] = {
    "prefix": _TEXT,
    "max_entries": (int, "an integer >= 1 or none"),
    "socket_timeout": _SECONDS,
    "socket_connect_timeout": _SECONDS,
    "connect_timeout": _SECONDS,
    "max_connections": (int, "an integer >= 1"),
    "retries": _COUNT,
    "l1": (int, "an integer >= 1"),
    "l1_ttl": _SECONDS,
}
_USAGE = {
    "memory": "memory://?max_entries=10000&max_bytes=...",
    "sqlite": "sqlite:///absolute/path.db or sqlite://relative.db, in an existing directory",
    "redis": "redis://[:password@]host:port/db (also rediss://, unix:///path.sock?db=0, redis+cluster://host:port)",
}


def _describe(options: dict[str, _Check]) -> str:
    return ", ".join(f"{name} ({what})" for name, (_, what) in options.items())


def _options(url: str, params: dict[str, str], options: dict[str, Any], types: dict[str, _Check]) -> dict[str, Any]:
    """Merge query parameters (converted by `types`, "none" meaning None) with keyword `options`."""
    family = _family(url)
    valid = f"{family}:// takes {_describe(types)}"
    unknown = (set(params) | set(options)) - set(types)
    if unknown:
        raise ConfigurationError(f"unknown option(s) {sorted(unknown)} in {url!r}; {valid}")
    merged: dict[str, Any] = {}
    for name, raw in params.items():
        convert, what = types[name]
        try:
            merged[name] = None if raw.lower() in ("", "none") else convert(raw)
        except ValueError:
            raise ConfigurationError(f"option {name}={raw!r} in {url!r} is not {what}; {valid}") from None
    merged.update(options)
    return merged


def _parse_memory(url: str, options: dict[str, Any]) -> dict[str, Any]:
    rest, params = _split(url)
    if rest:
        raise ConfigurationError(f"memory:// takes no path, got {url!r}; use {_USAGE['memory']}")
    return _options(url, params, options, _MEMORY_OPTIONS)


def _open_memory(url: str, options: dict[str, Any]) -> Backend:
    from agentcache.backends.memory import MemoryBackend

    return MemoryBackend(**_parse_memory(url, options))


def _parse_sqlite(url: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The database path and options of a SQLite URL; its directory must exist (it is never created here)."""
    rest, params = _split(url)
    if not rest:
        raise ConfigurationError(
            f"{url!r} has no path: use {_USAGE['sqlite']} (agentcache.configure() supplies the default path)",
        )
    merged = _options(url, params, options, _SQLITE_OPTIONS)
    for name in ("timeout", "write_timeout"):
        if name in merged and merged[name] is None:
            del merged[name]
    from agentcache.backends._sqlite_files import parent_dir, shown

    path = shown(os.path.expanduser(shown(rest)))  # `Path(rest).expanduser()`, without pathlib (a first hit needs it)
    parent = parent_dir(path)
    if not os.path.isdir(parent):
        raise ConfigurationError(
            f"{url!r}: directory {parent!r} does not exist; create it first or point the URL at an existing "
            "directory (only the default store's directory is created automatically)"
        )
    if os.path.isdir(path):
        raise ConfigurationError(f"{url!r}: {path!r} is a directory; the URL names the database file")
    return path, merged


def _open_sqlite(url: str, options: dict[str, Any]) -> Backend:
    from agentcache.backends.sqlite import SQLiteBackend

    path, merged = _parse_sqlite(url, options)
    return SQLiteBackend(path, **merged)


def _redis_module() -> Any:
    """`agentcache.backends.redis`, or `MissingDependencyError` when redis-py is not installed."""
    from importlib.util import find_spec

    if find_spec("redis") is None:
        raise MissingDependencyError("redis", "redis")
    import importlib

    return importlib.import_module("agentcache.backends.redis")


def _parse_redis(url: str, options: dict[str, Any]) -> None:
    """Check a Redis URL without connecting: agentcache's options, then redis-py's own URL parsing."""
    module = _redis_module()
    clean, ours, tier = module._split_options(url)
    names = {*module._OUR_OPTIONS, *module._TIERED_OPTIONS}
    order = [*_REDIS_OPTIONS, *sorted(names)]
    types = {name: _REDIS_OPTIONS.get(name, _TEXT) for name in dict.fromkeys(order) if name in names}
    merged = _options(url, {**ours, **tier}, options, types)
    try:
        module._coerce({**ours, **tier})
        from agentcache.backends._redis_plan import KeyLayout

        KeyLayout(merged.get("prefix") or "", merged.get("max_entries"))
    except ValueError as exc:  # ConfigurationError is a ValueError too
        raise ConfigurationError(f"{url!r}: {exc}; redis options: {_describe(types)}") from None
    for name in ("l1", "max_connections"):
        if merged.get(name) is not None and merged[name] < 1:
            raise ConfigurationError(f"option {name}={merged[name]!r} in {url!r} is not an integer >= 1")
    _check_redis_py(clean, types)


@functools.cache
def _redis_py_options() -> frozenset[str]:
    """Every keyword a redis-py client, pool or connection accepts (what its URL query may set)."""
    import inspect

    from redis import connection
    from redis.cluster import RedisCluster

    accepted = set(connection.URL_QUERY_ARGUMENT_PARSERS)
    for init in (
        connection.ConnectionPool.__init__,
        connection.AbstractConnection.__init__,
        connection.Connection.__init__,
        connection.SSLConnection.__init__,
        connection.UnixDomainSocketConnection.__init__,
        RedisCluster.__init__,
    ):
        accepted.update(inspect.signature(init).parameters)
    return frozenset(accepted)


def _check_redis_py(url: str, ours: dict[str, _Check]) -> None:
    """Parse the part of a Redis URL that redis-py reads, refusing options no redis-py client accepts."""
    from urllib.parse import parse_qsl, urlsplit

    from redis import connection

    scheme, _, rest = url.partition("://")
    parse: Callable[[str], Any] = connection.parse_url  # untyped in redis-py
    try:
        parse(f"{scheme.removesuffix('+cluster')}://{rest}")
    except ValueError as exc:
        raise ConfigurationError(f"{url!r}: {exc}") from None
    given = {name for name, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)}
    unknown = sorted(given - _redis_py_options())
    if unknown:
        raise ConfigurationError(
            f"unknown option(s) {unknown} in {url!r}; redis:// takes {_describe(ours)} "
            "and redis-py's connection options (db, username, password, client_name, ssl_cert_reqs, ...)"
        )


def _open_redis(url: str, options: dict[str, Any]) -> Backend:
    module = _redis_module()
    opener: Callable[..., Backend] = module.open_redis
    try:
        return opener(url, **options)
    except ModuleNotFoundError as exc:
        if exc.name == "redis" or (exc.name or "").startswith("redis."):
            raise MissingDependencyError("redis", "redis") from exc
        raise


def _family(url: str) -> str:
    scheme = url.partition("://")[0].lower()
    return "redis" if scheme in _REDIS_SCHEMES else scheme


_REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")
_OPENERS: dict[str, _Opener] = {"memory": _open_memory, "sqlite": _open_sqlite, "redis": _open_redis}
_PARSERS: dict[str, Callable[[str, dict[str, Any]], object]] = {
    "memory": _parse_memory,
    "sqlite": _parse_sqlite,
    "redis": _parse_redis,
}


def schemes() -> list[str]:
    """The URL schemes `open_backend` understands, sorted."""
    return sorted(["memory", "sqlite", *_REDIS_SCHEMES])


def _unknown_scheme(url: str) -> ConfigurationError:
    forms = "; ".join(f"{_USAGE[family]} with {_describe(types)}" for family, types in _KNOWN_OPTIONS.items())
    return ConfigurationError(
        f"unknown backend URL {url!r}; valid schemes: {', '.join(f'{s}://' for s in schemes())}. Forms: {forms}"
    )


_KNOWN_OPTIONS: dict[str, dict[str, _Check]] = {
    "memory": _MEMORY_OPTIONS,
    "sqlite": _SQLITE_OPTIONS,
    "redis": _REDIS_OPTIONS,
}


def _scheme_family(url: str) -> str:
    """ "memory", "sqlite" or "redis" for a URL of a known scheme; else the error listing the valid ones."""
    family = _family(url) if "://" in url else ""
    if family not in _OPENERS:
        raise _unknown_scheme(url)
    return family


def check_url(url: str) -> None:
    """Raise if `url` could not be opened, by parsing it: never connects, creates nothing.

    Checks the scheme, each query option's name and type, that a SQLite file's directory exists and that
    the Redis extra is installed (redis-py also parses its part of a Redis URL).

    Raises:
        ConfigurationError: the message says what is valid (schemes, and per scheme the options and their types).
        MissingDependencyError: the scheme needs an extra that is not installed.
    """
    family = _scheme_family(url)
    _PARSERS[family](url, {})
    try:  # the backend's own checks of its values: constructors neither connect nor touch the disk
        _OPENERS[family](url, {})
    except ConfigurationError:
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"{url!r}: {exc}") from None


def open_backend(url: str, **options: Any) -> Backend:
    """Open the backend a URL names; keyword `options` override the URL's query parameters.

    Only the chosen backend's module is imported. Nothing connects until first use; a SQLite file's directory
    must exist (it is not created).

    Raises:
        ConfigurationError: the scheme is unknown (the message lists the valid ones) or an option is invalid.
        MissingDependencyError: the scheme needs an extra that is not installed (e.g. `agentcache-py[redis]`).

    Example:
        >>> open_backend("memory://?max_entries=100")
        MemoryBackend(max_entries=100, max_bytes=None)
    """
    return _OPENERS[_scheme_family(url)](url, options)
