"""Who a cached function is: the module name it would have if imported, its project, and a digest of its code.

These go into every key of a decorated function (see "What goes into a key" in docs/tool_cached.md):

* `module_name` resolves ``__main__`` (and ``__mp_main__``, the name multiprocessing's spawn workers run the main
  file under) to the name the file has when imported, so ``python bot.py``, ``import bot`` and spawned workers
  agree on ``bot.ask``;
* `project_of` names the project the function's file belongs to: the nearest directory above it holding
  ``pyproject.toml``, ``setup.py``, ``setup.cfg`` or ``.git`` (else the file's own directory), by a digest of its
  absolute path; two checkouts of unrelated projects never share entries through the per-user default store;
* `code_digest` hashes what the function runs: its code object (bytecode, constants, names, recursively over
  nested functions, lambdas and comprehensions), the values of the module-level constants it reads by name and of
  the closure variables it captures, when those are immutable simple values (str, bytes, numbers, bool, None,
  tuples of them). Comments, formatting, decorator options and line numbers do not count.

Nothing here runs at import or decoration time except the module name of ``__main__`` functions: the project
and code digests are computed on a function's first call and kept.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from types import CodeType

from agentcache.keys.encoding import digest, safe_segment

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["code_digest", "function_name", "is_internal", "module_name", "project_of"]

_MAIN_NAMES = ("__main__", "__mp_main__")
_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", ".git")
_SIMPLE = (str, bytes, int, float, bool, complex, type(None))


def module_name(func: Callable[..., Any]) -> str:
    """``func.__module__``, with ``__main__`` / ``__mp_main__`` replaced by the module's importable name (kept as
    ``__main__`` when the main module has no file: the REPL, ``python -c``, a notebook)."""
    module = getattr(func, "__module__", None) or "?"
    if module not in _MAIN_NAMES:
        return module
    main = sys.modules.get(module)
    spec_name = getattr(getattr(main, "__spec__", None), "name", None)
    if spec_name and spec_name not in _MAIN_NAMES:  # `python -m pkg.bot`, and its spawned workers
        return str(spec_name)
    file = getattr(main, "__file__", None)
    return _importable_name(os.path.abspath(file)) if isinstance(file, str) and file else "__main__"


@functools.lru_cache(maxsize=64)
def _importable_name(path: str) -> str:
    """``pkg.sub.mod`` for ``.../pkg/sub/mod.py`` when ``pkg`` and ``sub`` are packages (hold ``__init__.py``)."""
    directory, filename = os.path.split(path)
    stem = os.path.splitext(filename)[0]
    parts = [] if stem == "__init__" else [stem]
    if stem == "__init__":
        parts.append(os.path.basename(directory))
        directory = os.path.dirname(directory)
    while os.path.isfile(os.path.join(directory, "__init__.py")):
        parts.insert(0, os.path.basename(directory))
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    return ".".join(parts)


def is_internal(func: Callable[..., Any]) -> bool:
    """Whether `func` is agentcache's own stand-in (the SDK wrapper's request functions): it is keyed by its name
    only, so `wrap()` entries stay the same across projects and agentcache versions."""
    module = getattr(_target(func), "__module__", None) or ""
    return module == "agentcache" or module.startswith("agentcache.")


def project_of(func: Callable[..., Any]) -> str:
    """The project `func` belongs to: ``path:<absolute path of its root>`` (see the module docstring); the current
    directory when the function has no file (REPL, notebook, `exec`)."""
    return "path:" + _project_root(_defining_dir(func))


def _defining_dir(func: Callable[..., Any]) -> str:
    target = _target(func)
    module = sys.modules.get(getattr(target, "__module__", None) or "")
    if module is not None:  # a module without a file (the REPL, a notebook, whose cells get a new temporary
        file = getattr(module, "__file__", None)  # file name per kernel) belongs to the current directory
    else:  # code run by exec() under a made-up module name: where the code says it comes from
        file = getattr(getattr(target, "__code__", None), "co_filename", None)
    if isinstance(file, str) and os.path.isabs(file) and os.path.exists(file):
        return os.path.dirname(os.path.realpath(file))
    return os.path.realpath(os.getcwd())


@functools.lru_cache(maxsize=256)
def _project_root(directory: str) -> str:
    """The nearest directory at or above `directory` holding a project marker, else `directory` itself."""
    current = directory
    while True:
        if any(os.path.exists(os.path.join(current, marker)) for marker in _MARKERS):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return directory
        current = parent


def _target(func: Any) -> Any:
    """The function under ``functools.wraps`` layers and `functools.partial` objects."""
    seen = 0
    while seen < 100:
        seen += 1
        if isinstance(func, functools.partial):
            func = func.func
        elif hasattr(func, "__wrapped__"):
            func = func.__wrapped__
        else:
            break
    return func


def code_digest(func: Callable[..., Any]) -> str:
    """A digest of the code `func` runs and the simple constant values it reads, as they are now (see the module
    docstring); for a callable object, its class' ``__call__`` (not the object's state); ``""`` for a callable
    without Python code (a builtin, a C extension)."""
    target = _target(func)
    code = getattr(target, "__code__", None)
    if code is None and not isinstance(target, type):  # a callable object: the code of its class' __call__
        target = getattr(type(target), "__call__", None)  # noqa: B004 - the method itself
        code = getattr(target, "__code__", None)
    if not isinstance(code, CodeType):
        return ""
    out: list[bytes] = []
    names: set[str] = set()
    _feed_code(code, out, names)
    namespace = getattr(target, "__globals__", None) or {}
    for name in sorted(names):
        value = namespace.get(name, _ABSENT)
        if value is not _ABSENT and _is_simple(value):
            out.append(b"G" + name.encode() + b"=" + _const_bytes(value))
    for name, cell in zip(code.co_freevars, getattr(target, "__closure__", None) or (), strict=False):
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell (the variable is not assigned yet)
            continue
        if _is_simple(value):
            out.append(b"F" + name.encode() + b"=" + _const_bytes(value))
    return digest(b"\x00".join(out))


_ABSENT: Any = object()


def _is_simple(value: Any, depth: int = 0) -> bool:
    t = type(value)
    if t in _SIMPLE:
        return True
    if t is tuple and depth < 8:
        return all(_is_simple(v, depth + 1) for v in value)
    return False


def _feed_code(code: CodeType, out: list[bytes], names: set[str]) -> None:
    """Append the parts of `code` that decide what it does (not its file, name or line numbers)."""
    names.update(code.co_names)
    out.append(
        repr(
            (
                code.co_argcount,
                code.co_posonlyargcount,
                code.co_kwonlyargcount,
                code.co_flags,
                code.co_names,
                code.co_varnames,
                code.co_freevars,
                code.co_cellvars,
            )
        ).encode()
    )
    out.append(code.co_code)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            out.append(b"C")
            _feed_code(const, out, names)
        else:
            out.append(b"K" + _const_bytes(const))


def _const_bytes(value: Any) -> bytes:
    """A deterministic rendering of a code constant: frozensets sorted (their iteration order depends on the
    process' hash seed), everything else by type and repr."""
    if isinstance(value, frozenset):
        return b"frozenset{" + b",".join(sorted(_const_bytes(v) for v in value)) + b"}"
    if type(value) is tuple:
        return b"(" + b",".join(_const_bytes(v) for v in value) + b")"
    return type(value).__name__.encode() + b":" + repr(value).encode("utf-8", "surrogatepass")


def function_name(func: Callable[..., Any]) -> str:
    """The readable, stable identity of a function: ``module.qualname`` with ``<locals>`` folded, where the module
    of a script is the name it would have if imported (``bot.ask``, never ``__main__.ask``)."""
    target = func.func if isinstance(func, functools.partial) else func
    module = module_name(target)
    func = target
    qual = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or type(func).__name__
    return safe_segment(f"{module}.{qual}".replace(".<locals>", ""))
