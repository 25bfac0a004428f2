"""Parse TTLs: seconds, `timedelta`, or strings like ``"30s"``, ``"5m"``, ``"1h30m"``, ``"2d"``."""

from __future__ import annotations

import math
import re
import sys

from agentcache.errors import ConfigurationError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import datetime as _dt
    from typing import Any, TypeAlias

__all__ = ["TTL", "parse_ttl"]

TTL: TypeAlias = "float | int | _dt.timedelta | str | None"
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_ttl(ttl: TTL) -> float | None:
    """Seconds as a float, or `None` for "never expires".

    ``0`` is valid and means "do not store". Raises `ConfigurationError` for a negative or non-finite TTL and
    for anything else, saying which forms are accepted.
    """
    if ttl is None:
        return None
    if isinstance(ttl, bool):
        raise ConfigurationError(f"ttl={ttl!r}: expected seconds, a timedelta, or a string like '5m'")
    if isinstance(ttl, (int, float)):
        return _checked(ttl, float(ttl))
    dt: Any = sys.modules.get("datetime")
    if dt is not None and isinstance(ttl, dt.timedelta):
        return _checked(ttl, ttl.total_seconds())
    if isinstance(ttl, str):
        text = ttl.strip().lower().replace(" ", "")
        if text in ("", "none", "forever", "never"):
            return None
        try:
            seconds = float(text)
        except ValueError:
            pass
        else:
            return _checked(ttl, seconds)
        pos, total = 0, 0.0
        for match in _PART.finditer(text):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos == len(text) and pos > 0:
            return total
        if text.startswith("-"):
            _checked(ttl, -1.0)
    raise ConfigurationError(f"ttl={ttl!r}: expected seconds, a timedelta, or a string like '30s', '5m', '1h30m', '2d'")


def _checked(given: object, seconds: float) -> float:
    if seconds < 0 or not math.isfinite(seconds):
        raise ConfigurationError(
            f"ttl={given!r}: a TTL must be a finite number of seconds >= 0 (0: do not store; None: never expires)"
        )
    return seconds
