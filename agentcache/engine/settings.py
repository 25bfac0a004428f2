"""Settings: `agentcache.configure(...)`, then environment variables, then a `.env` file, then defaults.

| setting           | environment              | default                                              |
| ----------------- | ------------------------ | ---------------------------------------------------- |
| `url`             | `AGENTCACHE_URL`         | `sqlite://<dir>/cache.db`                            |
| `dir`             | `AGENTCACHE_DIR`         | the platform user cache dir (`~/.cache/agentcache`)  |
| `disabled`        | `AGENTCACHE_DISABLED=1`  | off: the kill switch makes every decorator a no-op   |
| `namespace`       | `AGENTCACHE_NAMESPACE`   | `default`                                            |
| `ttl`             | `AGENTCACHE_TTL`         | none (entries never expire unless a decorator says)  |
| `decoded_bytes`   | `AGENTCACHE_DECODED_BYTES` | 8 MiB of entries kept decoded for fast hits; 0: off |
| `project`         | `AGENTCACHE_PROJECT`     | each function's project root directory (docs/tool_cached.md) |

Settings are resolved lazily, on the first cached call: importing agentcache or decorating a function reads no
file and opens no connection, so `configure()` in `main()` still applies to module-level decorators.

`configure()` raises `ConfigurationError` at once for an invalid argument. An invalid environment (or `.env`)
value is logged once as a warning on the `agentcache` logger, naming the variable, its value and what is valid,
and ignored: the default is used and cached functions keep running.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection

from agentcache import _fork
from agentcache._record import Frozen, field_names, replace
from agentcache.durations import TTL, parse_ttl
from agentcache.errors import ConfigurationError, MissingDependencyError
from agentcache.keys.encoding import validate_namespace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

__all__ = ["Settings", "configure", "get_settings"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class Settings(Frozen):
    """The resolved configuration (immutable; `configure()` replaces it)."""

    __match_args__ = (
        "url",
        "dir",
        "disabled",
        "namespace",
        "ttl",
        "retries",
        "failure_threshold",
        "cooldown",
        "decoded_bytes",
        "project",
    )
    __slots__ = __match_args__
    url: str | None
    dir: Path | None
    disabled: bool
    namespace: str
    ttl: float | None
    retries: int
    failure_threshold: int
    cooldown: float
    decoded_bytes: int
    project: str | None

    def __init__(
        self,
        url: str | None = None,
        dir: Path | None = None,
        disabled: bool = False,
        namespace: str = "default",
        ttl: float | None = None,
        retries: int = 2,
        failure_threshold: int = 5,
        cooldown: float = 5.0,
        decoded_bytes: int = 8 << 20,
        project: str | None = None,
    ) -> None:
        self._fill(url, dir, disabled, namespace, ttl, retries, failure_threshold, cooldown, decoded_bytes, project)

    @property
    def cache_dir(self) -> Path:
        """Where the embedded SQLite store lives."""
        if self.dir is not None:
            return self.dir
        from pathlib import Path

        from platformdirs import user_cache_dir

        return Path(user_cache_dir("agentcache", appauthor=False))

    @property
    def backend_url(self) -> str:
        """The URL of the default store."""
        return self.url or f"sqlite://{self.cache_dir / 'cache.db'}"


_lock = threading.Lock()
_overrides: dict[str, Any] = {}
_resolved: Settings | None = None


def _flag(name: str, value: str) -> bool:
    low = value.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ConfigurationError(f"{name}={value!r}: expected 1/0, true/false, yes/no or on/off")


def _url(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"url={value!r}: expected a backend URL string such as 'sqlite:///path.db'")
    if value.rstrip("/") not in ("sqlite:", "sqlite:/"):  # the default file: always valid
        from agentcache.backends import check_url

        check_url(value)
    return value


def _dir(value: Any) -> Path | None:
    if value is None:
        return None
    from pathlib import Path

    if not isinstance(value, (str, os.PathLike)):
        raise ConfigurationError(f"dir={value!r}: expected a directory path (str or os.PathLike)")
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigurationError(f"dir={str(path)!r} is not a directory: name a directory (created if missing)")
    return path


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"disabled={value!r}: expected True or False")
    return value


def _namespace(value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"namespace={value!r}: expected a string such as 'tenant-42'")
    return validate_namespace(value)


def _int_at_least(name: str, low: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigurationError(f"{name}={value!r}: expected an integer >= {low}")
        return value

    return check


def _cooldown(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise ConfigurationError(f"cooldown={value!r}: expected seconds >= 0")
    return float(value)


def _byte_count(name: str, value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigurationError(f"{name}={value!r}: expected a number of bytes >= 0 (0 turns it off)")
    return value


def _project_name(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"project={value!r}: expected a non-empty name (or None for the project root path)")
    return value.strip()


# configure() keyword -> its check (each returns the normalized value or raises ConfigurationError).
_CHECKS: dict[str, Callable[[Any], Any]] = {
    "url": _url,
    "dir": _dir,
    "disabled": _bool,
    "namespace": _namespace,
    "ttl": parse_ttl,
    "retries": _int_at_least("retries", 0),
    "failure_threshold": _int_at_least("failure_threshold", 1),
    "cooldown": _cooldown,
    "decoded_bytes": lambda value: _byte_count("decoded_bytes", value),
    "project": _project_name,
}
# environment variable -> (setting, parse of its text)
_ENVIRONMENT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "AGENTCACHE_URL": ("url", _url),
    "AGENTCACHE_DIR": ("dir", _dir),
    "AGENTCACHE_DISABLED": ("disabled", lambda text: _flag("AGENTCACHE_DISABLED", text)),
    "AGENTCACHE_NAMESPACE": ("namespace", _namespace),
    "AGENTCACHE_TTL": ("ttl", parse_ttl),
    "AGENTCACHE_DECODED_BYTES": ("decoded_bytes", lambda text: _byte_count("AGENTCACHE_DECODED_BYTES", text)),
    "AGENTCACHE_PROJECT": ("project", _project_name),
}
_reported: set[tuple[str, str]] = set()  # bad environment values already logged


def _find_dotenv() -> str | None:
    """The nearest `.env` file in the working directory or one of its parents (what python-dotenv's
    `find_dotenv(usecwd=True)` finds), by one `stat` per directory."""
    here = os.getcwd()
    while True:
        candidate = os.path.join(here, ".env")
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def _from_environment(skip: Collection[str] = ()) -> dict[str, Any]:
    """Settings from the environment and `.env`; a bad value is logged once and ignored (never raised), so a
    typo in a deployment's variables cannot make cached calls fail."""
    env: dict[str, str] = {}
    try:
        path = _find_dotenv()
        if path is not None:  # python-dotenv (~15 ms to import) only when there is a file for it to read
            from dotenv import dotenv_values

            env.update({k: v for k, v in dotenv_values(path).items() if v is not None})
    except (ImportError, OSError):  # python-dotenv is a dependency (tolerate a broken install); cwd may be gone
        pass
    env.update(os.environ)
    out: dict[str, Any] = {}
    for variable, (setting, parse) in _ENVIRONMENT.items():
        text = env.get(variable)
        if text is None or setting in skip or (not text and setting != "disabled"):
            continue
        try:
            out[setting] = parse(text)
        except (ConfigurationError, MissingDependencyError) as exc:
            if (variable, text) not in _reported:
                _reported.add((variable, text))
                import logging

                logging.getLogger("agentcache").warning(
                    "agentcache: ignoring %s=%r (%s); the default is used", variable, text, exc
                )
    return out


def get_settings() -> Settings:
    """The settings in force (resolved on first use, then cached)."""
    resolved = _resolved
    if resolved is not None:
        return resolved
    return _resolve()


_last_resolved: Settings | None = None


def _resolve() -> Settings:
    global _resolved, _last_resolved
    with _lock:
        if _resolved is None:
            resolved = replace(Settings(), **{**_from_environment(skip=_overrides), **_overrides})
            from agentcache.codec.entries import set_memo_budget

            set_memo_budget(resolved.decoded_bytes)
            _resolved = _last_resolved = resolved
        return _resolved


_UNSET: Any = object()


def configure(
    *,
    url: str | None = _UNSET,
    dir: str | os.PathLike[str] | None = _UNSET,
    disabled: bool = _UNSET,
    namespace: str = _UNSET,
    ttl: TTL = _UNSET,
    retries: int = _UNSET,
    failure_threshold: int = _UNSET,
    cooldown: float = _UNSET,
    decoded_bytes: int = _UNSET,
    project: str | None = _UNSET,
    prices: Any = None,
) -> Settings:
    """Set process-wide options; anything not passed keeps its environment or default value.

    Args:
        url: backend URL of the default store (``memory://``, ``sqlite:///path.db``, ``redis://host``).
        dir: directory of the embedded SQLite store (used when `url` is not set).
        disabled: the kill switch: every cached function calls straight through.
        namespace: the namespace used outside any `agentcache.namespace()` block.
        ttl: default expiry of entries whose decorator sets none (seconds, timedelta or ``"1h"``).
        retries, failure_threshold, cooldown: resilience of backend calls (bounded retries, circuit breaker).
        decoded_bytes: how many bytes of entries each process keeps decoded, so that a hit on an unchanged
            entry copies it instead of parsing it (0 turns this off).
        project: the project name in every decorated function's keys, instead of the path of its project
            root; deployments of one project at different paths set the same name to share a store.
        prices: model prices to add or override, as accepted by `agentcache.set_prices`.

    Returns the new settings. Only the stores a change affects are closed (they reopen with the new settings on
    next use): `url`/`dir` close the default store, `retries`/`failure_threshold`/`cooldown` every store; the
    other settings close nothing.

    Raises:
        ConfigurationError: any invalid argument (all of them are reported, each with what is valid); a backend
            URL is checked by parsing it (scheme, options and their types, a SQLite file's directory), without
            connecting. Nothing is applied then.
        MissingDependencyError: `url` needs an extra that is not installed (e.g. ``agentcache[redis]``).
    """
    global _resolved
    given = {
        "url": url,
        "dir": dir,
        "disabled": disabled,
        "namespace": namespace,
        "ttl": ttl,
        "retries": retries,
        "failure_threshold": failure_threshold,
        "cooldown": cooldown,
        "decoded_bytes": decoded_bytes,
        "project": project,
    }
    checked: dict[str, Any] = {}
    problems: list[Exception] = []
    for name, value in given.items():
        if value is _UNSET:
            continue
        try:
            checked[name] = _CHECKS[name](value)
        except (ConfigurationError, MissingDependencyError) as exc:
            problems.append(exc)
    if len(problems) == 1:  # nothing is applied: the settings in force stay as they were
        raise problems[0]
    if problems:
        raise ConfigurationError(f"{len(problems)} invalid configure() arguments: " + "; ".join(map(str, problems)))
    if prices is not None:
        from agentcache.usage import set_prices

        set_prices(prices)
    before = _resolved or _last_resolved  # what open stores were opened with (resolving now would read env vars)
    with _lock:
        _overrides.update(checked)
        _resolved = None
    after = get_settings()
    changed = frozenset(
        name for name in field_names(Settings) if before is None or getattr(before, name) != getattr(after, name)
    )
    if changed:
        for listener in list(_listeners):
            listener(changed)
    return after


_listeners: list[Callable[[frozenset[str]], None]] = []


def on_change(listener: Callable[[frozenset[str]], None]) -> Callable[[frozenset[str]], None]:
    """Call `listener` with the names of the settings a `configure()` changed (the stores close what it affects)."""
    _listeners.append(listener)
    return listener


def reset_settings() -> None:
    """Forget `configure()` overrides and re-read (and re-report) the environment on next use."""
    global _resolved, _last_resolved
    with _lock:
        _overrides.clear()
        _resolved = _last_resolved = None
        _reported.clear()


@_fork.at_fork
def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
