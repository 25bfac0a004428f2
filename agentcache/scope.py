"""The namespace scope: `with agentcache.namespace("tenant-42"): ...` isolates every cache inside it.

Scopes nest (``tenant-42/search``) and follow `contextvars`, so each asyncio task and thread sees its own.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

from .keys import validate_namespace

__all__ = ["current_namespace", "namespace"]

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("agentcache_namespace", default=None)


@contextmanager
def namespace(name: str) -> Iterator[str]:
    """Run the block inside namespace `name` (nested inside the enclosing one, if any).

    Every cached call made inside reads and writes only that namespace's entries, so two tenants never see
    each other's results. Yields the full namespace path. Raises `ConfigurationError` for an invalid name.
    """
    name = validate_namespace(name)
    outer = _current.get()
    full = f"{outer}/{name}" if outer else name
    token = _current.set(full)
    try:
        yield full
    finally:
        _current.reset(token)


def current_namespace() -> str | None:
    """The namespace set by the innermost `namespace()` block, or `None` outside any."""
    return _current.get()
