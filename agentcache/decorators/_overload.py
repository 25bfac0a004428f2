"""`typing.overload` for the decorators' signatures, without importing `typing` at run time (#13).

Import it as ``if not TYPE_CHECKING: from agentcache.decorators._overload import overload`` with
``else: from typing import overload``: type checkers see typing's; at run time the overloads are plain
functions that the implementation, defined last, replaces (as with typing's, apart from
``typing.get_overloads``, which lists none).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["overload"]


def overload(func: Callable[..., object]) -> Callable[..., object]:
    """Return `func` unchanged."""
    return func
