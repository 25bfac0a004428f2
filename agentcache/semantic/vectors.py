"""Vector helpers shared by the indexes: float32 rows of unit norm (cosine similarity is then a dot product)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentcache.errors import ConfigurationError, MissingDependencyError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["normalize_in_place", "normalize_rows", "require_numpy"]


def require_numpy() -> object:
    """numpy, or a `MissingDependencyError` naming the extra that installs it."""
    try:
        import numpy
    except ImportError as exc:
        raise MissingDependencyError("numpy", "semantic") from exc
    return numpy


def normalize_rows(vectors: npt.ArrayLike, dim: int) -> npt.NDArray[np.float32]:
    """Return `vectors` as a C-contiguous float32 `(n, dim)` array with unit-norm rows."""
    require_numpy()
    import numpy as np

    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ConfigurationError(f"expected vectors of dimension {dim}, got shape {arr.shape}")
    # einsum: no (n, dim) temporary of squares, which `linalg.norm` makes (a third of a 100k x 384 cold start)
    norms = np.sqrt(np.einsum("ij,ij->i", arr, arr))
    np.clip(norms, 1e-12, None, out=norms)
    out: npt.NDArray[np.float32] = np.ascontiguousarray(arr / norms[:, None], dtype=np.float32)
    return out


def normalize_in_place(rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """`rows` (a writable float32 `(n, dim)` array) with unit-norm rows, divided in place, and only when some row
    is not unit-norm already (stored vectors are: no 153 MB temporary at a 100k x 384 cold start)."""
    import numpy as np

    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows))
    if len(norms) and float(np.max(np.abs(norms - 1.0))) > 1e-6:
        np.clip(norms, 1e-12, None, out=norms)
        rows /= norms[:, None]
    return rows
