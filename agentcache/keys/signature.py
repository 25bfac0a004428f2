"""A function's parameters as `inspect.signature` lists them, read from its code when it is a plain function.

`inspect` (with `ast`, `dis` and `tokenize`) costs ~6 ms to import: a process that decorates plain functions and
serves a few hits never imports it. Anything else (a `functools.partial`, a method, a callable object, a wrapper
with ``__wrapped__`` or ``__signature__``) is read by `inspect` itself.
"""

from __future__ import annotations

import types
from collections.abc import Callable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Parameter = tuple[str, int, Any, Any]
    """``(name, kind, default, annotation)``, `EMPTY` for none."""


__all__ = [
    "EMPTY",
    "KEYWORD_ONLY",
    "POSITIONAL_ONLY",
    "POSITIONAL_OR_KEYWORD",
    "VAR_KEYWORD",
    "VAR_POSITIONAL",
    "Parameter",
    "code_flag",
    "parameters",
]

# The kinds, numbered as `inspect.Parameter.kind` numbers them.
POSITIONAL_ONLY, POSITIONAL_OR_KEYWORD, VAR_POSITIONAL, KEYWORD_ONLY, VAR_KEYWORD = range(5)
_CO_VARARGS, _CO_VARKEYWORDS = 0x04, 0x08

EMPTY: Any = object()
"""No default, or no annotation (`inspect.Parameter.empty`)."""


def _plain(func: Any) -> bool:
    """Whether `inspect.signature(func)` would read `func`'s own code (and `inspect.isfunction` is true)."""
    return (
        type(func) is types.FunctionType
        and not hasattr(func, "__wrapped__")
        and not hasattr(func, "__signature__")
        and not hasattr(func, "_partialmethod")
    )


def parameters(func: Callable[..., Any]) -> tuple[Parameter, ...]:
    """`func`'s parameters in signature order, as `inspect.signature(func)` gives them (string annotations are
    left as strings).

    Raises:
        TypeError, ValueError: as `inspect.signature`, for a callable it cannot read.
    """
    if not _plain(func):
        import inspect

        return tuple(
            (
                p.name,
                int(p.kind),
                EMPTY if p.default is p.empty else p.default,
                EMPTY if p.annotation is p.empty else p.annotation,
            )
            for p in inspect.signature(func).parameters.values()
        )
    code: Any = func.__code__
    names = code.co_varnames
    n_pos, n_posonly, n_kwonly = code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount
    defaults = getattr(func, "__defaults__", None) or ()
    kwdefaults = getattr(func, "__kwdefaults__", None) or {}
    notes = getattr(func, "__annotations__", None) or {}
    first_default = n_pos - len(defaults)
    out: list[Parameter] = [
        (
            name,
            POSITIONAL_ONLY if i < n_posonly else POSITIONAL_OR_KEYWORD,
            defaults[i - first_default] if i >= first_default else EMPTY,
            notes.get(name, EMPTY),
        )
        for i, name in enumerate(names[:n_pos])
    ]
    index = n_pos + n_kwonly
    if code.co_flags & _CO_VARARGS:
        out.append((names[index], VAR_POSITIONAL, EMPTY, notes.get(names[index], EMPTY)))
        index += 1
    out += [
        (name, KEYWORD_ONLY, kwdefaults.get(name, EMPTY), notes.get(name, EMPTY))
        for name in names[n_pos : n_pos + n_kwonly]
    ]
    if code.co_flags & _CO_VARKEYWORDS:
        out.append((names[index], VAR_KEYWORD, EMPTY, notes.get(names[index], EMPTY)))
    return tuple(out)


def code_flag(func: Callable[..., Any], name: str) -> bool:
    """``inspect.is<name>function(func)`` (``"generator"``, ``"asyncgen"``, ``"coroutine"``): read from the code
    flags of a plain function, by `inspect` for anything else."""
    if _plain(func) and not hasattr(func, "_is_coroutine_marker"):  # 3.12+: `inspect.markcoroutinefunction`
        return bool(func.__code__.co_flags & _FLAGS[name])
    import inspect

    test: Callable[[Any], bool] = getattr(inspect, f"is{name}function")
    return test(func)


_FLAGS = {"coroutine": 0x80, "generator": 0x20, "asyncgen": 0x200}  # CO_COROUTINE, CO_GENERATOR, CO_ASYNC_GENERATOR
