"""Binding a call to named values: exactly what `inspect` binds, flattened, and never ambiguous."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import agentcache
from agentcache.keys.binding import Binder


def plain(a: Any, b: Any = 2, *, c: Any = 3) -> None: ...
def with_kwargs(a: Any, b: Any = 2, *, c: Any = 3, **kw: Any) -> None: ...
def everything(a: Any, /, b: Any, *args: Any, d: Any = 4, **kw: Any) -> None: ...
def only_args(*args: Any) -> None: ...
def only_kwargs(**kw: Any) -> None: ...
def positional_only(a: Any, b: Any = 1, /) -> None: ...


FUNCTIONS: list[Callable[..., Any]] = [plain, with_kwargs, everything, only_args, only_kwargs, positional_only]
NAMES = ["a", "b", "c", "d", "e", "kw", "args"]


def inspect_bind(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[Any, Any]:
    """The reference: `Signature.bind` + defaults, ``**kwargs`` flattened, entries that collide kept apart."""
    sig = inspect.signature(func)
    ba = sig.bind(*args, **kwargs)
    ba.apply_defaults()
    out: dict[Any, Any] = dict(ba.arguments)
    var_keyword = next((p.name for p in sig.parameters.values() if p.kind is p.VAR_KEYWORD), None)
    if var_keyword is not None:
        for k, v in out.pop(var_keyword).items():
            out[("**", k) if k in sig.parameters and k != var_keyword else k] = v
    return out


class TestAgainstInspect:
    @given(
        st.sampled_from(FUNCTIONS),
        st.integers(min_value=0, max_value=4),
        st.lists(st.sampled_from(NAMES), unique=True, max_size=4),
    )
    @settings(max_examples=600, deadline=None)
    def test_same_values_and_same_errors(self, func: Callable[..., Any], n: int, names: list[str]) -> None:
        """Every call shape binds to what `inspect` binds, or raises TypeError exactly when `inspect` does,
        the first time and from the remembered plan alike."""
        binder = Binder(func)
        args = tuple(f"p{i}" for i in range(n))
        kwargs = {k: f"k-{k}" for k in names}
        try:
            expected: dict[Any, Any] | None = inspect_bind(func, args, kwargs)
        except TypeError:
            expected = None
        for _ in range(2):
            if expected is None:
                with pytest.raises(TypeError):
                    binder.bind(args, dict(kwargs))
            else:
                assert binder.bind(args, dict(kwargs)) == expected


class TestFlattening:
    def test_kwargs_entries_join_the_named_values(self) -> None:
        """`def chat(messages, **params)` keys on the same names however the parameters are passed."""
        binder = Binder(with_kwargs)
        assert binder.bind((1,), {"temperature": 0}) == binder.bind((), {"a": 1, "temperature": 0})

    def test_an_entry_named_like_a_positional_only_parameter_never_collides(self) -> None:
        """`f(1, 2, a=7)` and `f(7, 2)` are different calls, and bind differently."""
        binder = Binder(everything)
        assert binder.bind((1, 2), {"a": 7}) != binder.bind((7, 2), {})
        assert binder.bind((1, 2), {"args": (3,)}) != binder.bind((1, 2, 3), {})

    def test_dropped_names_are_left_out_unless_kept(self) -> None:
        """`ignore=` names are not in the result; `keep_dropped` shows them (for explain_key)."""
        binder = Binder(with_kwargs, frozenset({"c", "timeout"}))
        assert binder.bind((1,), {"timeout": 5}) == {"a": 1, "b": 2}
        assert binder.bind((1,), {"timeout": 5}, keep_dropped=True) == {"a": 1, "b": 2, "c": 3, "timeout": 5}

    def test_keyword_arguments_are_never_mutated(self) -> None:
        """The caller's dict is returned as is when nothing changes, and copied otherwise."""
        kwargs = {"a": 1, "b": 2, "c": 3}
        assert Binder(plain).bind((), kwargs) is kwargs
        dropped = {"a": 1, "b": 2, "c": 3}
        assert Binder(plain, frozenset({"c"})).bind((), dropped) == {"a": 1, "b": 2}
        assert dropped == {"a": 1, "b": 2, "c": 3}


class TestThroughDecorators:
    def test_positional_and_keyword_forms_share_one_entry(self) -> None:
        """`search("q")`, `search(query="q")` and `search("q", 10)` are one call."""
        calls: list[str] = []

        @agentcache.tool_cached(backend="memory://")
        def search(query: str, limit: int = 10) -> str:
            calls.append(query)
            return query

        search("q")
        search(query="q")
        search("q", 10)
        search("q", limit=10)
        assert calls == ["q"]

    def test_a_bad_call_raises_the_functions_type_error_and_caches_nothing(self) -> None:
        """Missing or unexpected arguments raise TypeError before any lookup, every time."""

        @agentcache.tool_cached(backend="memory://")
        def search(query: str) -> str:
            return query

        for _ in range(2):
            with pytest.raises(TypeError):
                search()  # type: ignore[call-arg]
            with pytest.raises(TypeError):
                search("q", extra=1)  # type: ignore[call-arg]
        assert search.cache_info().misses == 0


async def coroutine(a: Any, b: Any = 1) -> None: ...
async def async_gen(a: Any) -> Any:
    yield a


def gen(a: Any, *, k: "str" = "x") -> Any:  # noqa: UP037 - a string annotation, kept as one
    yield a


@functools.wraps(plain)
def wrapper(*args: Any, **kwargs: Any) -> None: ...


READ = [*FUNCTIONS, coroutine, async_gen, gen, wrapper, functools.partial(plain, 1), lambda x, y=1, *z, **w: None]


@pytest.mark.parametrize("func", READ)
def test_parameters_and_kinds_are_what_inspect_reads(func: Callable[..., Any]) -> None:
    """`parameters` reads a plain function's code (no `inspect` import) and gives what `inspect.signature` gives;
    `code_flag` answers as `inspect.is*function`."""
    from agentcache.keys.signature import EMPTY, code_flag, parameters

    expected = tuple(
        (
            p.name,
            int(p.kind),
            EMPTY if p.default is p.empty else p.default,
            EMPTY if p.annotation is p.empty else p.annotation,
        )
        for p in inspect.signature(func).parameters.values()
    )
    assert parameters(func) == expected
    for name in ("generator", "asyncgen", "coroutine"):
        assert code_flag(func, name) == getattr(inspect, f"is{name}function")(func)
