"""The brute-force vector search runs its matrix-vector product on one OpenBLAS thread, and restores the count."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

np = pytest.importorskip("numpy")

from agentcache.semantic import _blas  # noqa: E402
from agentcache.semantic.index import NumpyIndex  # noqa: E402


@pytest.fixture
def openblas() -> Iterator[tuple[_blas._Get, _blas._Set]]:
    functions = _blas._functions()
    if functions is None:
        pytest.skip("numpy is not built on OpenBLAS here")
    get, put = functions
    before = get()
    put(2)  # at least two threads, so that pinning is visible (even on a one-core machine)
    yield functions
    put(before)


def test_single_thread_pins_and_restores(openblas: tuple[_blas._Get, _blas._Set]) -> None:
    """Inside the block OpenBLAS uses one thread; nested and concurrent blocks keep it at one until the last
    ends; afterwards the count is what it was."""
    get, _ = openblas
    seen: list[int] = []
    inside = threading.Barrier(2)

    def search() -> None:
        with _blas.single_thread():
            inside.wait()
            seen.append(get())
            inside.wait()
            seen.append(get())

    other = threading.Thread(target=search)
    other.start()
    with _blas.single_thread():
        inside.wait()
        with _blas.single_thread():
            seen.append(get())
        inside.wait()
    other.join()
    assert seen == [1, 1, 1]
    assert get() == 2


def test_exact_search_runs_on_one_blas_thread(openblas: tuple[_blas._Get, _blas._Set]) -> None:
    """`NumpyIndex.search` multiplies on one OpenBLAS thread (observed from inside the product) and gives the
    same answer; the process's count is unchanged afterwards. (Before: it used every thread.)"""
    get, _ = openblas
    seen: list[int] = []

    class Spy(np.ndarray):  # type: ignore[misc]
        def __matmul__(self, other: object) -> object:
            seen.append(get())
            return np.asarray(self) @ other

    index = NumpyIndex(8)
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((50, 8)).astype(np.float32)
    index.add([f"v{i}" for i in range(50)], vectors)
    index._mat = index._mat.view(Spy)
    assert index.search(vectors[7])[0][0] == "v7"
    assert seen == [1]
    assert get() == 2
