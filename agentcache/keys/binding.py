"""From a call's arguments to the named values that identify it: the first step of every cache lookup.

`Binder.bind` returns ``{parameter name: value}`` with defaults applied and ``**kwargs`` contents flattened in,
minus the names the decorator drops (``ignore=``, a layer's transport fields). It raises `TypeError` exactly when
calling the function would. Binding as `inspect.Signature.bind` does costs microseconds, so the binder does it once
per call *shape* (number of positional arguments and the keyword names, in order) and keeps a plan that rebuilds
the result from then on with a few dict operations. The parameters of a plain function are read from its code and
bound here, by `inspect`'s rules (`_bind`; Python 3.13+ binds with `inspect`), so a process serving a few hits never
imports `inspect` (~6 ms); the `TypeError` of a call that does not fit is `inspect`'s own.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from .signature import (
    EMPTY,
    KEYWORD_ONLY,
    POSITIONAL_ONLY,
    POSITIONAL_OR_KEYWORD,
    VAR_KEYWORD,
    VAR_POSITIONAL,
    parameters,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .signature import Parameter

__all__ = ["Binder"]

_OWN_BIND = sys.version_info < (3, 13)  # `_bind` follows `inspect` up to 3.12 (3.13 binds differently)
_MAX_SHAPES = 256  # distinct call shapes remembered per function (a real program has a handful)


class _Plan:
    """How to bind every call of one shape (a plain class: a dataclass costs import time)."""

    __slots__ = ("as_is", "defaults", "drop", "names", "nested", "var_positional")

    def __init__(
        self,
        names: tuple[str, ...],
        var_positional: str | None,
        defaults: dict[str, Any],
        nested: tuple[str, ...],
        drop: tuple[str, ...],
        *,
        as_is: bool,
    ) -> None:
        self.names = names  # the parameters that the positional arguments fill, in order
        self.var_positional = var_positional  # the ``*args`` parameter: it gets the arguments past `names`
        self.defaults = defaults  # parameters this shape leaves out, with their defaults
        self.nested = nested  # ``**kwargs`` keys named like a parameter: kept apart (see `Binder.NESTED`)
        self.drop = drop  # dropped names present in this shape's result
        self.as_is = as_is  # no positional arguments, nothing to add or drop: the keyword arguments are the result


class Binder:
    """Binds calls of one function (see the module docstring)."""

    NESTED = "**"
    """``**kwargs`` entries named like a parameter they cannot fill (a positional-only one, or ``*args``: ``def
    f(a, /, **kw)`` called as ``f(1, a=2)``) go under the key ``("**", name)``, which no keyword argument can
    spell, so the two values never mix."""

    def __init__(self, func: Callable[..., Any], drop: frozenset[str] = frozenset()) -> None:
        from .injected import injected_parameters

        self.func = func
        self._params = params = parameters(func)
        # framework context arguments (MCP Context, ToolRuntime, RunContext, ...): found by annotation here and
        # by value in `_plan`; never part of a key (see `agentcache.keys.injected`)
        self.injected = set(injected_parameters(func, params))
        self.drop = drop | self.injected
        self._names = frozenset(p[0] for p in params)
        self._positional = [p[0] for p in params if p[1] in (POSITIONAL_ONLY, POSITIONAL_OR_KEYWORD)]
        self._var_positional = next((p[0] for p in params if p[1] == VAR_POSITIONAL), None)
        self._var_keyword = next((p[0] for p in params if p[1] == VAR_KEYWORD), None)
        self._shapes: dict[Any, _Plan] = {}

    @property
    def sig(self) -> Any:
        """`inspect.signature` of the function (imports `inspect`)."""
        import inspect

        return inspect.signature(self.func)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any], *, keep_dropped: bool = False) -> dict[str, Any]:
        """The named values of a call, without the dropped names unless `keep_dropped`.

        The result may be `kwargs` itself (the cache faces pass their own fresh dict): callers never mutate it.

        Raises:
            TypeError: the arguments do not fit the signature (the same error the call itself would raise).
        """
        if args:
            shape: Any = (len(args), *kwargs) if kwargs else len(args)
        else:
            shape = tuple(kwargs)
        plan = self._shapes.get(shape)
        if plan is None:
            plan = self._plan(shape, args, kwargs)
        if plan.as_is:
            return kwargs
        bound = self._apply(plan, args, kwargs)
        if plan.drop and not keep_dropped:
            for name in plan.drop:
                del bound[name]
        return bound

    def _apply(self, plan: _Plan, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if plan.nested:
            kwargs = dict(kwargs)
            for name in plan.nested:
                kwargs[(self.NESTED, name)] = kwargs.pop(name)  # type: ignore[index]
        bound = {**plan.defaults, **kwargs}
        if args:
            names = plan.names
            for i, name in enumerate(names):
                bound[name] = args[i]
            if plan.var_positional is not None:
                bound[plan.var_positional] = args[len(names) :]
        return bound

    def _plan(self, shape: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Plan:
        """Bind one call as `inspect` does (raising its `TypeError`) and remember how calls of its shape bind."""
        given = _bind(self._params, args, kwargs) if _OWN_BIND else None
        if given is None:  # the call does not fit: `inspect` says why, in its own words
            import inspect

            given = dict(inspect.signature(self.func).bind(*args, **kwargs).arguments)
        n = len(args)
        names = tuple(self._positional[:n])
        to_var_keyword = given.get(self._var_keyword, {}) if self._var_keyword is not None else {}
        nested = tuple(k for k in to_var_keyword if k in self._names and k != self._var_keyword)
        defaults: dict[str, Any] = {}
        for name, kind, default, _ in self._params:
            if name in given or kind == VAR_KEYWORD:
                continue
            if kind == VAR_POSITIONAL:
                defaults[name] = ()
            elif default is not EMPTY:
                defaults[name] = default
        var_positional = self._var_positional if n > len(names) else None
        plan = _Plan(names, var_positional, defaults, nested, (), as_is=False)
        present = self._apply(plan, args, kwargs)
        from .injected import is_injected_context

        found = {k for k, v in present.items() if k not in self.drop and type(k) is str and is_injected_context(v)}
        if found:
            self.injected |= found
            self.drop = self.drop | found
            self._shapes.clear()  # plans made before keep the name: make them again
        drop = tuple(k for k in present if k in self.drop)
        plan = _Plan(
            names,
            var_positional,
            defaults,
            nested,
            drop,
            as_is=n == 0 and not defaults and not nested and not drop,
        )
        if len(self._shapes) >= _MAX_SHAPES:
            self._shapes.clear()
        self._shapes[shape] = plan
        return plan


def _bind(params: tuple[Parameter, ...], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """``inspect.Signature.bind(*args, **kwargs).arguments`` for these parameters, by its rules (Python 3.10-3.12),
    or `None` where it raises `TypeError`."""
    arguments: dict[str, Any] = {}
    kwargs = dict(kwargs)
    rest = iter(params)
    i, n = 0, len(args)
    first: list[Parameter] = []  # the parameter the positional pass stopped at, still to fill by keyword
    while True:
        param = next(rest, None)
        if i >= n:  # no positional argument left
            if param is None or param[1] == VAR_POSITIONAL:
                break
            name, kind, default, _ = param
            if name in kwargs:
                if kind == POSITIONAL_ONLY:
                    return None
                first.append(param)
                break
            if kind == VAR_KEYWORD or default is not EMPTY:
                first.append(param)
                break
            return None  # a required argument is missing
        if param is None or param[1] in (VAR_KEYWORD, KEYWORD_ONLY):
            return None  # too many positional arguments
        name, kind = param[0], param[1]
        if kind == VAR_POSITIONAL:
            arguments[name] = args[i:]
            break
        if name in kwargs and kind != POSITIONAL_ONLY:
            return None  # multiple values for the argument
        arguments[name] = args[i]
        i += 1
    var_keyword = None
    for name, kind, default, _ in (*first, *rest):
        if kind == VAR_KEYWORD:
            var_keyword = name
        elif kind != VAR_POSITIONAL:
            if name in kwargs:
                if kind == POSITIONAL_ONLY:
                    return None
                arguments[name] = kwargs.pop(name)
            elif default is EMPTY:
                return None  # a required argument is missing
    if kwargs:
        if var_keyword is None:
            return None  # an unexpected keyword argument
        arguments[var_keyword] = kwargs
    return arguments
