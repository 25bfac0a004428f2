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

Three such models, fitted alike from different random seeds, are averaged (`HeadEnsemble`): a single fit is
unsteady on individual pairs (a refit on nearly the same pairs moved "What is the capital of France?" / "What's
the capital city of France?" from 0.77 to 0.46), and the mean of several fits is not.

It runs on the word vectors the judge already has (the lookup's MiniLM run and the entry's stored notes):
no second model; each member takes about 0.15 ms of CPU per candidate. The weights (~38k float32 per member)
ship in `data/pair_judge_head.npz`, read without pickle; `benchmarks/fit_pair_judge.py` fits them.
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

__all__ = ["HEAD_PATH", "PARAMETERS", "HeadEnsemble", "InteractionHead", "load_head", "save_head"]

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


@dataclass(frozen=True)
class HeadEnsemble:
    """Interaction models fitted alike from different seeds; the score is their mean probability."""

    members: tuple[InteractionHead, ...]

    def score(self, a: Array, weight_a: Array, b: Array, weight_b: Array, measured: Sequence[float]) -> float:
        """The members' mean `InteractionHead.score` (a loop: batched einsum products measured several times
        slower at these sizes)."""
        return sum(m.score(a, weight_a, b, weight_b, measured) for m in self.members) / len(self.members)


def load_head(path: Path = HEAD_PATH) -> HeadEnsemble:
    """Read a `HeadEnsemble` from an `.npz` of float32 arrays, one leading row per member (no pickle)."""
    import numpy as np

    from agentcache.errors import ConfigurationError

    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: np.asarray(data[name], dtype=np.float32) for name in PARAMETERS}
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the judge's interaction model {path}: {exc}") from exc
    count = len(arrays["tau"]) if arrays["tau"].ndim == 1 else 0
    if not count or any(len(arrays[name]) != count for name in PARAMETERS):
        raise ConfigurationError(f"cannot read the judge's interaction model {path}: one row per member expected")
    return HeadEnsemble(
        tuple(
            InteractionHead(
                proj_w=arrays["proj_w"][i],
                proj_b=arrays["proj_b"][i],
                cmp_w=arrays["cmp_w"][i],
                cmp_b=arrays["cmp_b"][i],
                gate_w=arrays["gate_w"][i],
                gate_b=float(arrays["gate_b"][i]),
                tau=float(arrays["tau"][i]),
                out_w=arrays["out_w"][i],
                out_b=float(arrays["out_b"][i]),
            )
            for i in range(count)
        )
    )


def save_head(head: HeadEnsemble, path: Path = HEAD_PATH) -> None:
    """Write `head` as the `.npz` that `load_head` reads."""
    import numpy as np

    np.savez(
        path,
        **{
            name: np.stack([np.asarray(getattr(m, name), dtype=np.float32) for m in head.members])
            for name in PARAMETERS
        },
    )
