"""Fork safety: what belongs to one process is made again in a forked child (gunicorn-style pre-fork workers).

`os.fork()` copies memory but only the calling thread. A lock another thread held at that moment stays held
forever in the child, a computation another thread was running never finishes there, and a socket is shared
with the parent. So every module or object holding such state registers a reset here, run by one
`os.register_at_fork(after_in_child=...)` hook before the child does anything else:

* locks are replaced by new ones (`renew`), never released or reused;
* in-flight bookkeeping (single-flight flights) is dropped: its leaders live in the parent;
* connections are abandoned, not closed: closing could shut down the parent's stream or take a lock of
  the client library; they are kept referenced (`keep`) so no finalizer runs them in the child, and the
  next use opens fresh ones (SQLite and Redis re-open lazily);
* identities that must differ per process are made again.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["at_fork", "keep", "renew", "track"]

_callbacks: list[Callable[[], None]] = []
_objects: weakref.WeakSet[Any] = weakref.WeakSet()
_kept: list[Any] = []  # objects inherited from the parent that must never be finalized in the child


def at_fork(callback: Callable[[], None]) -> Callable[[], None]:
    """Run `callback` in every forked child (module-level state); returns it, so it works as a decorator."""
    _callbacks.append(callback)
    return callback


def track(obj: Any) -> None:
    """Call `obj._after_fork_in_child()` in every forked child while `obj` is alive."""
    _objects.add(obj)


def renew(obj: Any, *names: str) -> None:
    """Replace the locks `obj.<name>` by new ones of the same kind."""
    for name in names:
        old = getattr(obj, name)
        setattr(obj, name, threading.RLock() if "RLock" in type(old).__name__ else threading.Lock())


def keep(obj: Any) -> None:
    """Keep an inherited object referenced for the child's life (its finalizer would act on the parent's state)."""
    if obj is not None:
        _kept.append(obj)


def _after_in_child() -> None:
    for callback in _callbacks:
        callback()
    for obj in list(_objects):
        obj._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_in_child)
