"""The namespace scope: `with agentcache.namespace("tenant-42"): ...` isolates every cache inside it.

Scopes nest (``tenant-42/search``) and follow `contextvars`, so each asyncio task and thread sees its own.

Invalidation follows the same scope. Inside a block, `invalidate(tags=...)`, ``fn.cache_clear()``,
`invalidate_similar(...)` and `emit(...)` reach only the block's namespace and the namespaces nested in it, and
an explicit ``namespace="x"`` means ``x`` *inside* the block. Reaching every tenant from inside a block takes the
explicit ``namespace=agentcache.ALL``. Outside any block they reach every namespace, as before.
"""

from __future__ import annotations

import contextvars
import enum
from collections.abc import Iterator
from contextlib import contextmanager

from agentcache.keys.encoding import validate_namespace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final, Literal, TypeAlias


__all__ = ["ALL", "AllNamespaces", "NamespaceTarget", "current_namespace", "invalidation_scope", "namespace"]

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("agentcache_namespace", default=None)


class AllNamespaces(enum.Enum):
    """The type of `ALL`."""

    ALL = "ALL"

    def __repr__(self) -> str:
        return "agentcache.ALL"


ALL: Final = AllNamespaces.ALL
"""``namespace=agentcache.ALL``: an invalidation that reaches every namespace, even inside a `namespace()` block."""

if TYPE_CHECKING:
    NamespaceTarget: TypeAlias = str | Literal[AllNamespaces.ALL] | None
    """What an invalidation's ``namespace=`` accepts: a namespace (nested in the current block), `ALL`, or `None`."""


@contextmanager
def namespace(name: str) -> Iterator[str]:
    """Run the block inside namespace `name` (nested inside the enclosing one, if any).

    Every cached call made inside reads and writes only that namespace's entries, so two tenants never see
    each other's results, and invalidations made inside reach only this namespace (see the module docstring).
    Yields the full namespace path. Raises `ConfigurationError` for an invalid name.
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


def invalidation_scope(target: NamespaceTarget) -> str | None:
    """The full namespace an invalidation with ``namespace=target`` covers (with the namespaces nested under
    it), or `None` for every namespace.

    `None` means the current block's namespace (every namespace outside a block); a string is nested inside the
    current block; `ALL` is every namespace.
    """
    if target is ALL:
        return None
    scoped = _current.get()
    if target is None:
        return scoped
    target = validate_namespace(target)
    return f"{scoped}/{target}" if scoped else target


@contextmanager
def outside_blocks() -> Iterator[None]:
    """Run the block as if outside every `namespace()` block (for `namespace=ALL`)."""
    token = _current.set(None)
    try:
        yield
    finally:
        _current.reset(token)


def __getattr__(name: str) -> object:
    # `NamespaceTarget` is defined for type checkers above; a module importing it at run time gets it built here,
    # with `typing` (which a process's first hit never loads, #13).
    if name != "NamespaceTarget":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from typing import Literal

    target: object = str | Literal[AllNamespaces.ALL] | None
    return target
