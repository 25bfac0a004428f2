"""The pair judge: reads a cached question and a new one *together* and estimates whether one answer fits both.

Cosine similarity of two sentence vectors cannot tell "How do I delete my account?" from "How do I deactivate
my account?": the vectors are close because most words are shared. The judge is a minimal-pair detector run
on the embedding model itself (the offline MiniLM, no other model, no word lists):

1. Both texts are read by MiniLM once (the lookup's own run of the query and the store-time run of the cached
   text are reused when still in memory), giving a contextual vector per token, pooled per word.
2. Each word gets a weight from how rare it is: its rank in the tokenizer's vocabulary, which lists whole
   words roughly by frequency ("the" first; a word split into pieces counts as rare). Frequent words
   weigh little, so no list of "function words" is needed.
3. The words are aligned both ways by greedy best match of their contextual vectors (BERTScore-style, plain
   and weighted). What is left unaligned, how rare it is, how far its best counterpart is, how the
   unmatched span on one side compares with the other side's, whether numbers differ, and how much the
   words both texts share *shift in context* (a one-word trap changes how the shared words read), and
   whether the words one text lacks matter (how much the sentence vectors converge without them; whether
   they lean toward the other text's sentence vector, i.e. its context implies them) are the measurements
   (`FEATURES`).
4. These go into two models fitted on the project's own hand-written pairs (`benchmarks/data/semantic_pairs*.jsonl`,
   never evaluation data) by `benchmarks/fit_pair_judge.py`: a logistic model (weights, standardization and
   calibration table in `data/pair_judge.json`) and the interaction model (`agentcache.semantic.interaction`),
   which also reads both texts' word vectors. The score is the mean of their probabilities.

The judge needs the cached text's word states. Running MiniLM again on it would double a lookup's cost, so
`semantic_cached` stores them next to the entry when it stores the answer (`encode_notes`, int8 rows,
~0.4 kB per word) and the judge reads them back (`decode_notes`) instead of running the model.

The output is a probability-like score in [0, 1]; `agentcache.semantic.budget` turns a wrong-answer budget
into the score a hit needs.
"""

from __future__ import annotations

import json
import math
import re
import struct
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentcache.semantic.interaction import HEAD_PATH, HeadEnsemble, load_head

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import numpy.typing as npt

    from agentcache.semantic._minilm import TokenStates

__all__ = [
    "FEATURES",
    "MODEL_PATH",
    "NOTES_MAGIC",
    "JudgeModel",
    "PairJudge",
    "Words",
    "decode_notes",
    "encode_notes",
    "features",
    "features_of",
    "get_judge",
    "load_model",
    "normal_word",
    "plain_text",
    "read_words",
    "word_overlap",
    "word_weight",
]

MODEL_PATH = Path(__file__).parent / "data" / "pair_judge.json"

FEATURES = (
    "cosine",  # the two sentence vectors
    "bertscore",  # greedy alignment F1 of the words' contextual vectors
    "bertscore_weighted",  # the same with rarity weights
    "worst_gap",  # the largest weight x (1 - best match) of one word, either side
    "second_gap",  # the second largest
    "unaligned_share",  # weighted mass of (1 - best match) over both texts
    "shared_words",  # weighted overlap of the (normalized) word sets
    "minimal_pair",  # shared_words x worst_gap: much in common and one word without a counterpart
    "length_ratio",  # words of the shorter text / words of the longer one
    "numbers_differ",  # the sets of words holding digits differ
    "span_cosine",  # the unmatched words of one side vs the other's (weighted mean vectors)
    "one_sided",  # only one text has words the other lacks
    "unmatched_weight",  # summed weight of the words the other text lacks
    "bertscore_weighted_min",  # the weaker direction of the weighted alignment
    "shared_shift",  # mean contextual shift (1 - cosine) of the words both texts use
    "shared_shift_max",  # the largest such shift
    "shared_shift_weighted",  # the weighted mean shift
    "unmatched_best",  # the lowest best-match cosine of a word the other text lacks
    "unmatched_rarest",  # the largest weight of such a word
    "drop_gain",  # how much closer the sentence vectors get with the words the other text lacks taken out
    "core_cosine",  # the summed vectors of the words both texts use, one side against the other
    "unmatched_context",  # the lowest (cosine to the other sentence - to its own) of a word the other lacks
    "unmatched_central",  # the highest cosine of such a word to its own sentence (what the sentence is about)
)

_DIGIT = re.compile(r"\d")
_WORD = re.compile(r"[A-Za-z0-9\u00C0-\u024F]+(?:['\u2019.][A-Za-z0-9]+)*")
#: The frame of the judge notes stored next to a semantic entry (`encode_notes`).
NOTES_MAGIC = b"ac3j"
# Whole words start at this id in the MiniLM (BERT uncased) vocabulary, most frequent first.
_FIRST_WORD_ID = 1996


def normal_word(word: str) -> str:
    """A crude lemma: lowercase, n't -> not, plural/possessive s dropped (inflection is not a difference)."""
    w = word.lower().replace("\u2019", "'")
    if w.endswith("n't"):
        return "not"
    if w.endswith("'s"):
        w = w[:-2]
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        return w[:-1]
    return w


@lru_cache(maxsize=1)
def _vocabulary() -> dict[str, int]:
    from agentcache.semantic._minilm import TOKENIZER_PATH

    vocab: dict[str, int] = json.loads(TOKENIZER_PATH.read_text())["model"]["vocab"]
    return vocab


@lru_cache(maxsize=1 << 16)
def word_weight(word: str) -> float:
    """How rare a normalized word is, in (0, 1]: log of its vocabulary rank (Zipf), 1 for a split word."""
    vocab = _vocabulary()
    rank = vocab.get(word, len(vocab))
    return math.log(1 + max(rank - _FIRST_WORD_ID, 1)) / math.log(1 + len(vocab) - _FIRST_WORD_ID)


@dataclass(frozen=True)
class Words:
    """One text as the judge reads it: its sentence vector and one contextual unit vector per word."""

    text: str
    sentence: npt.NDArray[np.float32]
    norm: tuple[str, ...]  # the normalized words, in order
    vectors: npt.NDArray[np.float32]  # one unit vector per word (mean of its tokens' states)


def read_words(text: str, states: TokenStates) -> Words:
    """The `Words` of `text` from the model's `TokenStates` of it."""
    import numpy as np

    norm: list[str] = []
    rows: list[npt.NDArray[np.float32]] = []
    offsets = states.offsets
    for match in _WORD.finditer(text):
        start, end = match.span()
        idx = [k for k, (a, b) in enumerate(offsets) if b > a and a >= start and b <= end]
        if not idx:
            continue
        vector = states.tokens[idx].mean(axis=0)
        rows.append(vector / max(float(np.linalg.norm(vector)), 1e-12))
        norm.append(normal_word(match.group()))
    matrix = np.array(rows, dtype=np.float32) if rows else np.zeros((0, states.tokens.shape[1]), dtype=np.float32)
    return Words(text, np.asarray(states.sentence, dtype=np.float32), tuple(norm), matrix)


def features(cached: str, query: str, a: TokenStates, b: TokenStates) -> list[float]:
    """The judge's measurements of one pair, in `FEATURES` order."""
    return features_of(read_words(cached, a), read_words(query, b))


def features_of(wa: Words, wb: Words) -> list[float]:
    """`features` from the two texts' `Words`."""
    import numpy as np

    weight_a = np.array([word_weight(w) for w in wa.norm], dtype=np.float64)
    weight_b = np.array([word_weight(w) for w in wb.norm], dtype=np.float64)
    if len(wa.norm) and len(wb.norm):
        sim = (wa.vectors @ wb.vectors.T).astype(np.float64)
        best_a, best_b = sim.max(axis=1), sim.max(axis=0)
    else:
        sim, best_a, best_b = np.zeros((len(wa.norm), len(wb.norm))), np.zeros(len(wa.norm)), np.zeros(len(wb.norm))
    plain, _ = _alignment(best_a, best_b, np.ones(len(best_a)), np.ones(len(best_b)))
    weighted, weighted_min = _alignment(best_a, best_b, weight_a, weight_b)
    gaps = np.concatenate([weight_a * (1 - best_a), weight_b * (1 - best_b)])
    top = np.sort(gaps)[::-1]
    worst, second = (float(top[0]) if len(top) else 0.0), (float(top[1]) if len(top) > 1 else 0.0)
    unaligned = float(gaps.sum() / max(weight_a.sum() + weight_b.sum(), 1e-9))
    set_a, set_b = set(wa.norm), set(wb.norm)
    shared = _shared(set_a, set_b)
    only_a = [i for i, w in enumerate(wa.norm) if w not in set_b]
    only_b = [j for j, w in enumerate(wb.norm) if w not in set_a]
    if only_a and only_b:
        va = (wa.vectors[only_a] * weight_a[only_a, None]).sum(axis=0)
        vb = (wb.vectors[only_b] * weight_b[only_b, None]).sum(axis=0)
        span = float(va @ vb / max(float(np.linalg.norm(va) * np.linalg.norm(vb)), 1e-9))
    else:
        span = 1.0 if not only_a and not only_b else 0.0
    digits_a = {w for w in wa.norm if _DIGIT.search(w)}
    digits_b = {w for w in wb.norm if _DIGIT.search(w)}
    first_b: dict[str, int] = {}
    for j, w in enumerate(wb.norm):
        first_b.setdefault(w, j)
    pairs: dict[str, tuple[int, int]] = {}
    for i, w in enumerate(wa.norm):
        if w in first_b and w not in pairs:
            pairs[w] = (i, first_b[w])
    if pairs:
        shift = np.array([1.0 - float(sim[i, j]) for i, j in pairs.values()])
        shift_w = np.array([weight_a[i] for i, _ in pairs.values()])
        shifts = (float(shift.mean()), float(shift.max()), float((shift * shift_w).sum() / max(shift_w.sum(), 1e-9)))
    else:
        shifts = (0.5, 0.5, 0.5)
    unmatched_best = [float(best_a[i]) for i in only_a] + [float(best_b[j]) for j in only_b]
    unmatched_rare = [float(weight_a[i]) for i in only_a] + [float(weight_b[j]) for j in only_b]
    return [
        float(wa.sentence @ wb.sentence),
        plain,
        weighted,
        worst,
        second,
        unaligned,
        shared,
        shared * worst,
        min(len(wa.norm), len(wb.norm)) / max(len(wa.norm), len(wb.norm), 1),
        float(digits_a != digits_b),
        span,
        float(bool(only_a) != bool(only_b)),
        float(weight_a[only_a].sum() + weight_b[only_b].sum()),
        weighted_min,
        *shifts,
        min(unmatched_best, default=1.0),
        max(unmatched_rare, default=0.0),
        *_redundancy(wa, wb, only_a, only_b),
    ]


def plain_text(text: str) -> str:
    """`text` casefolded, its spacing collapsed and its closing "?", "." or "!" dropped."""
    return " ".join(text.casefold().split()).rstrip("?.! ")


def _shared(set_a: set[str], set_b: set[str]) -> float:
    """The weighted overlap of two sets of normalized words: rare words count most, "the" barely."""
    union = sum(word_weight(w) for w in set_a | set_b)
    return sum(word_weight(w) for w in set_a & set_b) / max(union, 1e-9)


def word_overlap(a: str, b: str) -> float:
    """`_shared` of two texts' normalized words (the judge's `shared_words` measurement, without the model)."""
    return _shared(
        {normal_word(m.group()) for m in _WORD.finditer(a)}, {normal_word(m.group()) for m in _WORD.finditer(b)}
    )


def _redundancy(wa: Words, wb: Words, only_a: list[int], only_b: list[int]) -> tuple[float, float, float, float]:
    """How much the words one text lacks matter to the other: are they implied by its context, or central?

    The drop test takes each unmatched word's share (1/n of the mean) out of its sentence vector and measures
    how much the two sentences converge; a word the other sentence's context already implies leans toward
    that sentence rather than its own.
    """
    import numpy as np

    if not len(wa.norm) or not len(wb.norm):
        return 0.0, 0.0, 0.0, 0.0
    sentences = np.stack([wa.sentence, wb.sentence])
    total_a, total_b = wa.vectors.sum(axis=0), wb.vectors.sum(axis=0)
    ua, ub = wa.vectors[only_a], wb.vectors[only_b]
    drop_a, drop_b = ua.sum(axis=0), ub.sum(axis=0)
    da = _unit(wa.sentence - drop_a / len(wa.norm))
    db = _unit(wb.sentence - drop_b / len(wb.norm))
    core_a = _unit(total_a - drop_a if len(only_a) < len(wa.norm) else total_a)
    core_b = _unit(total_b - drop_b if len(only_b) < len(wb.norm) else total_b)
    # cosines of each unmatched word to (its own sentence, the other sentence)
    to_a, to_b = (ua @ sentences.T).tolist(), (ub @ sentences.T).tolist()
    own = [a for a, _ in to_a] + [b for _, b in to_b]
    lean = [b - a for a, b in to_a] + [a - b for a, b in to_b]
    return (
        float(da @ db) - float(sentences[0] @ sentences[1]),
        float(core_a @ core_b),
        min(lean, default=0.0),
        max(own, default=0.0),
    )


def _unit(v: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return v / max(math.sqrt(float(v @ v)), 1e-9)


def _alignment(
    best_a: npt.NDArray[np.float64],
    best_b: npt.NDArray[np.float64],
    weight_a: npt.NDArray[np.float64],
    weight_b: npt.NDArray[np.float64],
) -> tuple[float, float]:
    """(F1, min(recall, precision)) of greedy matching: each word's best cosine on the other side, weighted."""
    if not len(best_a) or not len(best_b):
        return 1.0, 1.0
    recall = float((weight_a * best_a).sum() / max(float(weight_a.sum()), 1e-9))
    precision = float((weight_b * best_b).sum() / max(float(weight_b.sum()), 1e-9))
    return 2 * recall * precision / max(recall + precision, 1e-9), min(recall, precision)


@dataclass(frozen=True)
class JudgeModel:
    """The judge's fitted models and the calibration scores they shipped with.

    Two models read the standardized `FEATURES`: a logistic model (the measurements alone) and the interaction
    model (`agentcache.semantic.interaction`, which also reads both texts' words). The score is the mean of
    their probabilities: in grouped cross-validation on the project's pairs the mean served more paraphrases
    at the same wrong-answer rate than either alone.
    """

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]  # the logistic model's, one per feature
    bias: float
    head: HeadEnsemble
    calibration: tuple[tuple[float, float, bool, str], ...]  # (CV score, cosine, same answer?, category)
    source: str

    def score(self, wa: Words, wb: Words) -> float:
        """The models' mean probability that one answer fits both texts."""
        import numpy as np

        if plain_text(wa.text) == plain_text(wb.text):
            return 1.0  # one text but for case, spacing or the closing mark: no pair the models learned from
        row = [(x - m) / s for x, m, s in zip(features_of(wa, wb), self.mean, self.scale, strict=True)]
        z = self.bias + sum(w * x for w, x in zip(self.weights, row, strict=True))
        linear = 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))
        interaction = self.head.score(
            wa.vectors,
            np.array([word_weight(w) for w in wa.norm], dtype=np.float32),
            wb.vectors,
            np.array([word_weight(w) for w in wb.norm], dtype=np.float32),
            row,
        )
        return (linear + interaction) / 2

    def to_json(self) -> dict[str, Any]:
        """The JSON form written to `data/pair_judge.json` (the interaction model's arrays go beside it)."""
        return {
            "features": list(FEATURES),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "weights": list(self.weights),
            "bias": self.bias,
            "calibration": [list(c) for c in self.calibration],
            "source": self.source,
        }


def load_model(path: Path = MODEL_PATH, head_path: Path = HEAD_PATH) -> JudgeModel:
    """Read a `JudgeModel` from its JSON and its interaction model's arrays (the shipped ones by default)."""
    from agentcache.errors import ConfigurationError

    data = json.loads(path.read_text())
    if tuple(data["features"]) != FEATURES:
        raise ConfigurationError(f"{path} was fitted for other features: refit with benchmarks/fit_pair_judge.py")
    return JudgeModel(
        mean=tuple(map(float, data["mean"])),
        scale=tuple(map(float, data["scale"])),
        weights=tuple(map(float, data["weights"])),
        bias=float(data["bias"]),
        head=load_head(head_path),
        calibration=tuple((float(s), float(c), bool(y), str(k)) for s, c, y, k in data["calibration"]),
        source=str(data.get("source", "")),
    )


def _quantize(rows: npt.NDArray[np.float32]) -> tuple[bytes, bytes]:
    import numpy as np

    scale = np.abs(rows).max(axis=1) / 127.0 if len(rows) else np.zeros(0, dtype=np.float32)
    scale = np.where(scale > 0, scale, 1.0).astype("<f4")
    return scale.tobytes(), np.round(rows / scale[:, None]).astype(np.int8).tobytes()


def encode_notes(key: str, texts: Sequence[Words]) -> bytes:
    """The judge notes of a stored entry: each text's `Words` as int8 rows, sealed under `key`.

    Layout: u32 length of a JSON header (texts, their normalized words, the vector dimension), then per
    text one float32 scale per row and the int8 rows (the sentence vector first, then one row per word).
    """
    import numpy as np

    from agentcache.codec.entries import seal

    dim = int(texts[0].sentence.shape[0]) if texts else 0
    header = json.dumps({"t": [w.text for w in texts], "w": [list(w.norm) for w in texts], "d": dim}).encode()
    parts = [struct.pack("<I", len(header)), header]
    for words in texts:
        rows = np.vstack([words.sentence[None, :], words.vectors]).astype(np.float32)
        scale, data = _quantize(rows)
        parts += [scale, data]
    return seal(NOTES_MAGIC, key, b"".join(parts))


def decode_notes(key: str, raw: bytes) -> dict[str, Words]:
    """The `Words` stored by `encode_notes`, by text; raises `SerializationError` when damaged or another key's."""
    import numpy as np

    from agentcache.codec.entries import unseal
    from agentcache.errors import SerializationError

    body = unseal(NOTES_MAGIC, raw, key)
    try:
        (size,) = struct.unpack_from("<I", body)
        header = json.loads(body[4 : 4 + size])
        dim, pos, out = int(header["d"]), 4 + size, {}
        for text, norm in zip(header["t"], header["w"], strict=True):
            n = len(norm) + 1
            scale = np.frombuffer(body, dtype="<f4", count=n, offset=pos)
            pos += 4 * n
            data = np.frombuffer(body, dtype=np.int8, count=n * dim, offset=pos).reshape(n, dim)
            pos += n * dim
            rows = (data.astype(np.float32) * scale[:, None]).astype(np.float32)
            out[str(text)] = Words(str(text), rows[0], tuple(map(str, norm)), rows[1:])
        if pos != len(body):
            raise ValueError("trailing bytes")
        return out
    except (struct.error, ValueError, KeyError, TypeError) as exc:
        raise SerializationError(f"corrupt judge notes: {exc}") from exc


class PairJudge:
    """Scores `(cached, query)` pairs with the offline MiniLM and the shipped models (`JudgeModel`)."""

    def __init__(self, model: JudgeModel | None = None, *, threads: int = 1) -> None:
        self._model = model
        self._threads = threads

    @property
    def model(self) -> JudgeModel:
        """The fitted models (the shipped ones unless others were given)."""
        if self._model is None:
            self._model = _shipped()
        return self._model

    def words(self, texts: Sequence[str]) -> list[Words]:
        """The `Words` of each text (runs MiniLM on whichever text it has not read recently)."""
        from agentcache.semantic._minilm import get_model

        states = get_model(self._threads).token_states(list(texts))
        return [read_words(t, s) for t, s in zip(texts, states, strict=True)]

    def read(self, cached: str, query: str, *, notes: dict[str, Words] | None = None) -> tuple[Words, Words]:
        """Both texts' `Words`; the cached text's come from `notes` when they hold it."""
        known = (notes or {}).get(cached)
        if known is not None:
            (wb,) = self.words([query])
            return known, wb
        wa, wb = self.words([cached, query])
        return wa, wb

    def measure(self, cached: str, query: str, *, notes: dict[str, Words] | None = None) -> list[float]:
        """The pair's `features`."""
        return features_of(*self.read(cached, query, notes=notes))

    def rate(
        self, cached: str, query: str, *, notes: dict[str, Words] | None = None, floor: float = -1.0
    ) -> tuple[float, float]:
        """(cosine of the two sentence vectors, score) from one reading; the score is -1 without running the
        models when the cosine is below `floor` (a pair too far apart to be judged)."""
        wa, wb = self.read(cached, query, notes=notes)
        cosine = float(wa.sentence @ wb.sentence)
        return cosine, self.model.score(wa, wb) if cosine >= floor else -1.0

    def score(self, cached: str, query: str, *, notes: dict[str, Words] | None = None) -> float:
        """Probability-like score in [0, 1] that the cached answer also answers `query`."""
        if cached == query:
            return 1.0
        return self.model.score(*self.read(cached, query, notes=notes))


@lru_cache(maxsize=1)
def _shipped() -> JudgeModel:
    return load_model()


_lock = threading.Lock()
_judge: PairJudge | None = None


def get_judge() -> PairJudge:
    """The process-wide judge with the shipped model (created on first use)."""
    global _judge
    with _lock:
        if _judge is None:
            _judge = PairJudge()
        return _judge
