"""One BLAS thread for the brute-force search's matrix-vector product.

OpenBLAS splits a large `matrix @ vector` over all cores; on a machine whose other cores are busy its threads
wait for each other, so the tail of a search grows ~5x (measured: p90/p99 4.6/8.7 ms with 2 threads on 2
cores and one other busy process, 0.9/1.7 ms with one thread). `single_thread()` sets OpenBLAS to one thread
for the duration of a product and restores the count afterwards (the process's other numpy work keeps its
threads), through the library's own `openblas_set_num_threads` found with ctypes (threadpoolctl does the same);
without OpenBLAS (MKL, Accelerate, a build without it) it does nothing.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["single_thread"]

_Get = Callable[[], int]
_Set = Callable[[int], None]
_found: tuple[_Get, _Set] | bool | None = False  # False: not looked up yet
_lock = threading.Lock()
_inside = 0  # products running now: the first sets one thread, the last restores
_saved = 1


def _candidates() -> list[str]:
    """Paths of loaded (or numpy-bundled) OpenBLAS libraries."""
    paths: list[str] = []
    try:  # Linux: what is mapped into this process
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths.extend(line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line)
    except OSError:
        pass
    numpy_file = getattr(sys.modules.get("numpy"), "__file__", None)
    if numpy_file:
        root = Path(numpy_file).parent
        for folder in (root.parent / "numpy.libs", root / ".dylibs"):
            if folder.is_dir():
                paths.extend(str(p) for p in folder.iterdir() if "openblas" in p.name.lower())
    return list(dict.fromkeys(paths))


def _lookup() -> tuple[_Get, _Set] | None:
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    return _bind(get, put)
    return None


def _bind(get: ctypes._NamedFuncPointer, put: ctypes._NamedFuncPointer) -> tuple[_Get, _Set]:
    get.restype, get.argtypes = ctypes.c_int, []
    put.restype, put.argtypes = None, [ctypes.c_int]
    return (lambda: int(get()), lambda n: put(n))


def _functions() -> tuple[_Get, _Set] | None:
    global _found
    if _found is False:
        with _lock:
            if _found is False:
                _found = _lookup()
    return _found if isinstance(_found, tuple) else None


@contextmanager
def single_thread() -> Iterator[None]:
    """Run the block with OpenBLAS on one thread (nested and concurrent blocks share one setting)."""
    global _inside, _saved
    functions = _functions()
    if functions is None:
        yield
        return
    get, put = functions
    with _lock:
        if _inside == 0:
            _saved = get()
            if _saved > 1:
                put(1)
        _inside += 1
    try:
        yield
    finally:
        with _lock:
            _inside -= 1
            if _inside == 0 and _saved > 1:
                put(_saved)
