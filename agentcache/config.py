"""Settings: `agentcache.configure(...)`, then environment variables, then a `.env` file, then defaults.

| setting           | environment              | default                                              |
| ----------------- | ------------------------ | ---------------------------------------------------- |
| `url`             | `AGENTCACHE_URL`         | `sqlite://<dir>/cache.db`                            |
| `dir`             | `AGENTCACHE_DIR`         | the platform user cache dir (`~/.cache/agentcache`)  |
| `disabled`        | `AGENTCACHE_DISABLED=1`  | off: the kill switch makes every decorator a no-op   |
| `namespace`       | `AGENTCACHE_NAMESPACE`   | `default`                                            |
| `ttl`             | `AGENTCACHE_TTL`         | none (entries never expire unless a decorator says)  |
| `decoded_bytes`   | `AGENTCACHE_DECODED_BYTES` | 8 MiB of entries kept decoded for fast hits; 0: off |

Settings are resolved lazily, on the first cached call: importing agentcache or decorating a function reads no
file and opens no connection, so `configure()` in `main()` still applies to module-level decorators.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from . import _fork
from .durations import TTL, parse_ttl
from .errors import ConfigurationError
from .keys import validate_namespace

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["Settings", "configure", "get_settings"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True, slots=True)
class Settings:
    """The resolved configuration (immutable; `configure()` replaces it)."""

    url: str | None = None
    dir: Path | None = None
    disabled: bool = False
    namespace: str = "default"
    ttl: float | None = None
    retries: int = 2
    failure_threshold: int = 5
    cooldown: float = 5.0
    decoded_bytes: int = 8 << 20

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


def _from_environment() -> dict[str, Any]:
    env: dict[str, str] = {}
    try:
        from dotenv import dotenv_values, find_dotenv

        path = find_dotenv(usecwd=True)
        if path:
            env.update({k: v for k, v in dotenv_values(path).items() if v is not None})
    except ImportError:  # python-dotenv is a dependency; tolerate a broken install
        pass
    env.update(os.environ)
    out: dict[str, Any] = {}
    if env.get("AGENTCACHE_URL"):
        out["url"] = env["AGENTCACHE_URL"]
    if env.get("AGENTCACHE_DIR"):
        from pathlib import Path

        out["dir"] = Path(env["AGENTCACHE_DIR"]).expanduser()
    if "AGENTCACHE_DISABLED" in env:
        out["disabled"] = _flag("AGENTCACHE_DISABLED", env["AGENTCACHE_DISABLED"])
    if env.get("AGENTCACHE_NAMESPACE"):
        out["namespace"] = validate_namespace(env["AGENTCACHE_NAMESPACE"])
    if env.get("AGENTCACHE_TTL"):
        out["ttl"] = parse_ttl(env["AGENTCACHE_TTL"])
    if env.get("AGENTCACHE_DECODED_BYTES"):
        out["decoded_bytes"] = _byte_count("AGENTCACHE_DECODED_BYTES", env["AGENTCACHE_DECODED_BYTES"])
    return out


def _byte_count(name: str, value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigurationError(f"{name}={value!r}: expected a number of bytes >= 0 (0 turns it off)")
    return value


def get_settings() -> Settings:
    """The settings in force (resolved on first use, then cached)."""
    resolved = _resolved
    if resolved is not None:
        return resolved
    return _resolve()


def _resolve() -> Settings:
    global _resolved
    with _lock:
        if _resolved is None:
            _resolved = replace(Settings(), **{**_from_environment(), **_overrides})
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
        prices: model prices to add or override, as accepted by `agentcache.set_prices`.

    Returns the new settings. Open stores are closed so the next call uses the new configuration.
    """
    global _resolved
    from pathlib import Path

    given = {
        "url": url,
        "dir": None if dir is None or dir is _UNSET else Path(dir).expanduser(),
        "disabled": disabled,
        "namespace": namespace if namespace is _UNSET else validate_namespace(namespace),
        "ttl": ttl if ttl is _UNSET else parse_ttl(ttl),
        "retries": retries,
        "failure_threshold": failure_threshold,
        "cooldown": cooldown,
        "decoded_bytes": decoded_bytes if decoded_bytes is _UNSET else _byte_count("decoded_bytes", decoded_bytes),
    }
    if dir is _UNSET:
        given["dir"] = _UNSET
    with _lock:
        _overrides.update({k: v for k, v in given.items() if v is not _UNSET})
        _resolved = None
    if prices is not None:
        from .usage import set_prices

        set_prices(prices)
    from . import cache, serialization

    cache.close_all()
    serialization.forget_decoded()
    return get_settings()


def reset_settings() -> None:
    """Forget `configure()` overrides and re-read the environment on next use."""
    global _resolved
    with _lock:
        _overrides.clear()
        _resolved = None


@_fork.at_fork
def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
