"""The judge's interaction model: the two texts' words read against each other, then one score.

The pair judge's hand-made measurements (`pairjudge.FEATURES`) summarise a pair in 23 numbers. This model
also reads the words themselves (decomposable attention, Parikh et al. 2016, over frozen MiniLM states):

1. Each word of one text attends over the other text's words (a softmax of their cosines), giving the part
   of the other text it corresponds to; both are projected to a small space.
2. A word and its counterpart are compared (both, their difference and product, the word's rarity and its
   best cosine) by one learned layer, so the model learns *which* differences change an answer ("delete" vs
   "deactivate") and which do not ("remove" vs "delete"), from the project's hand-written pairs.
3. Each text's comparisons are pooled (a learned weighted mean and a max), the two sides combined
   symmetrically (their sum and absolute difference), so the score does not depend on which text was cached,
   and read with the standardized measurements by one logistic output.

It runs on the word vectors the judge already has (the lookup's MiniLM run and the entry's stored notes):
no second model; the whole judge takes 0.35 ms of CPU per candidate at the median. The weights (~38k float32) ship in
`data/pair_judge_head.npz`, read without pickle; `benchmarks/fit_pair_judge.py` fits them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import numpy.typing as npt

    Array = npt.NDArray[np.float32]

__all__ = ["HEAD_PATH", "PARAMETERS", "InteractionHead", "load_head", "save_head"]

HEAD_PATH = Path(__file__).parent / "data" / "pair_judge_head.npz"
#: The arrays of a fitted head, by name (the fitting script writes the same names).
PARAMETERS = (
    "proj_w",  # (dim, p): word vectors into the comparison space
    "proj_b",  # (p,)
    "cmp_w",  # (4p + 2, h): a word against its counterpart
    "cmp_b",  # (h,)
    "gate_w",  # (4p + 2,): how much each word's comparison counts in the weighted mean
    "gate_b",  # ()
    "tau",  # (): the sharpness of the attention over the other text's words
    "out_w",  # (4h + features,): the logistic output over both sides and the measurements
    "out_b",  # ()
)


@dataclass(frozen=True)
class InteractionHead:
    """A fitted interaction model (numpy arrays named as in `PARAMETERS`)."""

    proj_w: Array
    proj_b: Array
    cmp_w: Array
    cmp_b: Array
    gate_w: Array
    gate_b: float
    tau: float
    out_w: Array
    out_b: float

    def score(self, a: Array, weight_a: Array, b: Array, weight_b: Array, measured: Sequence[float]) -> float:
        """The probability that one answer fits both texts, from their unit word vectors (rows of `a`, `b`), the
        words' rarity weights and the pair's standardized measurements."""
        import numpy as np

        if not len(a) or not len(b):
            return 0.0
        sim = a @ b.T
        va = self._side(a, weight_a, b, sim)
        vb = self._side(b, weight_b, a, sim.T)
        z = np.concatenate([va + vb, np.abs(va - vb), np.asarray(measured, dtype=np.float32)])
        logit = float(z @ self.out_w) + self.out_b
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, logit))))

    def _side(self, a: Array, weight: Array, b: Array, sim: Array) -> Array:
        import numpy as np

        scaled = sim * self.tau
        att = np.exp(scaled - scaled.max(axis=1, keepdims=True))
        att /= att.sum(axis=1, keepdims=True)
        beta = (att @ b) @ self.proj_w + self.proj_b
        own = a @ self.proj_w + self.proj_b
        x = np.concatenate([own, beta, own - beta, own * beta, weight[:, None], sim.max(axis=1)[:, None]], axis=1)
        v = np.maximum(x @ self.cmp_w + self.cmp_b, 0.0)
        gate = x @ self.gate_w + self.gate_b
        gate = np.exp(gate - gate.max())
        gate /= gate.sum()
        pooled: Array = np.concatenate([gate @ v, v.max(axis=0)]).astype(np.float32)
        return pooled


def load_head(path: Path = HEAD_PATH) -> InteractionHead:
    """Read an `InteractionHead` from an `.npz` of float32 arrays (no pickle)."""
    import numpy as np

    from agentcache.errors import ConfigurationError

    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: np.asarray(data[name], dtype=np.float32) for name in PARAMETERS}
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the judge's interaction model {path}: {exc}") from exc
    return InteractionHead(
        proj_w=arrays["proj_w"],
        proj_b=arrays["proj_b"],
        cmp_w=arrays["cmp_w"],
        cmp_b=arrays["cmp_b"],
        gate_w=arrays["gate_w"],
        gate_b=float(arrays["gate_b"]),
        tau=float(arrays["tau"]),
        out_w=arrays["out_w"],
        out_b=float(arrays["out_b"]),
    )


def save_head(head: InteractionHead, path: Path = HEAD_PATH) -> None:
    """Write `head` as the `.npz` that `load_head` reads."""
    import numpy as np

    np.savez(path, **{name: np.asarray(getattr(head, name), dtype=np.float32) for name in PARAMETERS})
