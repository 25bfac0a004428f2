"""Which objects a wrapped client served from the cache (`agentcache.is_cache_hit`)."""

from __future__ import annotations

import weakref
from typing import Any

__all__ = ["is_cache_hit", "mark_hit"]

_hits: dict[int, weakref.ref[Any]] = {}


def mark_hit(obj: Any) -> Any:
    """Remember that `obj` was served from the cache; returns it."""
    ident = id(obj)

    def forget(_ref: weakref.ref[Any]) -> None:
        _hits.pop(ident, None)

    _hits[ident] = weakref.ref(obj, forget)
    return obj


def is_cache_hit(obj: object) -> bool:
    """Whether `obj` (a response or stream returned by a wrapped client) was served from the cache."""
    ref = _hits.get(id(obj))
    return ref is not None and ref() is obj
