"""`CacheInfo`, what `fn.cache_info()` returns (its own module: a `NamedTuple` needs `typing`, which a process's
first hit never loads, #13)."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["CacheInfo"]


class CacheInfo(NamedTuple):
    """What `fn.cache_info()` returns (like `functools.lru_cache`, plus savings)."""

    hits: int
    misses: int
    errors: int
    backend_errors: int
    hit_rate: float
    time_saved: float
    tokens_saved: int
    usd_saved: float
