"""The pair judge: reads a cached question and a new one *together* and estimates whether one answer fits both.

Cosine similarity of two sentence vectors cannot tell "How do I delete my account?" from "How do I deactivate
my account?": the vectors are close because most words are shared. The judge is a minimal-pair detector run
on the embedding model itself (the offline MiniLM, no other model):

1. Both texts are read by MiniLM once (the lookup's own run of the query and the store-time run of the cached
   text are reused when still in memory), giving a contextual vector per token, pooled per word.
2. The words are aligned (longest matching blocks); the words left over on each side are the *differing
   spans*. Words of closed grammatical classes (articles, auxiliaries, pronouns, prepositions) do not count;
   negations, quantifiers, question words and numbers do.
3. Each differing word is judged in context: how well does the other text's best-aligned word stand in for
   it (contextual cosine)? A reworded question has many differing words that all find a counterpart; a
   one-word trap shares almost everything and has one differing word with no counterpart. The same greedy
   matching over all words gives a BERTScore-style F1 (content words only, and all words).
4. These measurements go into a logistic model whose weights ship in `data/pair_judge.json`.
   It was fitted on the project's own hand-written pairs (`benchmarks/data/semantic_pairs.jsonl`), never on
   evaluation data; `benchmarks/fit_pair_judge.py` refits it.
5. One rule sits on top: when the texts differ by exactly one content word swapped for another (not another
   form of the same word: "created"/"creator"), the swap must keep the sentence vectors at cosine >=
   `substitution_cosine` (0.85 in the shipped model). A synonym
   barely moves the sentence ("remove"/"delete": 0.92); a different action or object moves it far
   ("deactivate"/"delete": 0.82), however close the two words sit in context.

The model needs the cached text's word states. Running MiniLM again on it would double a lookup's cost, so
`semantic_cached` stores them next to the entry when it stores the answer (`encode_notes`, int8 rows,
~0.4 kB per word) and the judge reads them back (`decode_notes`) instead of running the model.

The output is a probability-like score in [0, 1]; `agentcache.semantic.budget` turns a wrong-answer budget
into the score a hit needs.
"""

from __future__ import annotations

import difflib
import json
import re
import struct
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    "content_words",
    "decode_notes",
    "encode_notes",
    "features",
    "features_of",
    "get_judge",
    "load_model",
    "read_words",
]

MODEL_PATH = Path(__file__).parent / "data" / "pair_judge.json"

FEATURES = (
    "cosine",
    "shared_content",
    "min_counterpart",
    "mean_counterpart",
    "differing_words",
    "one_sided",
    "no_difference",
    "small_edit",
    "small_edit_unmatched",
    "one_or_two_changes",
    "small_insertion",
    "negation",
    "bertscore_content",
    "bertscore_all",
    "word_swap",
)

# Closed-class words whose change rarely changes the question. Not here on purpose: negations, quantifiers
# (all, some, only, each, ...), question words (when/where/why/who/which), deictic time words (this, next,
# last), comparatives: each of those changes what is asked.


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_FUNCTION = _set(
    """a an the my your our their his her its me you we us they them he she it i this's that's
    is are am was were be been being do does did done have has had having can could should would will shall may
    might must to of in on at for from by with about into as and or but if so than then there here please
    tell show give let get got me kindly just really actually"""
)
_NEGATIONS = _set("not no never none nobody nothing neither nor without cannot")
_WORD = re.compile(r"[A-Za-z0-9\u00C0-\u024F]+(?:['\u2019.][A-Za-z0-9]+)*")
SMALL_EDIT = 0.5  # share of content words in common above which a pair counts as a minimal pair
#: The frame of the judge notes stored next to a semantic entry (`encode_notes`).
NOTES_MAGIC = b"ac3j"


def _normal(word: str) -> str:
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


def content_words(text: str) -> list[str]:
    """The normalized words of `text` that are not closed-class function words, in order."""
    return [w for w in (_normal(m) for m in _WORD.findall(text)) if w not in _FUNCTION]


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
        norm.append(_normal(match.group()))
    matrix = np.array(rows, dtype=np.float32) if rows else np.zeros((0, states.tokens.shape[1]), dtype=np.float32)
    return Words(text, np.asarray(states.sentence, dtype=np.float32), tuple(norm), matrix)


def features(cached: str, query: str, a: TokenStates, b: TokenStates) -> list[float]:
    """The judge's measurements of one pair, in `FEATURES` order."""
    return features_of(read_words(cached, a), read_words(query, b))


def features_of(wa: Words, wb: Words) -> list[float]:
    """`features` from the two texts' `Words`."""
    set_a, set_b = set(wa.norm), set(wb.norm)
    matcher = difflib.SequenceMatcher(a=wa.norm, b=wb.norm, autojunk=False)
    only_a: list[int] = []
    only_b: list[int] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op != "equal":
            only_a += [i for i in range(i1, i2) if wa.norm[i] not in set_b]  # a moved word is not a difference
            only_b += [j for j in range(j1, j2) if wb.norm[j] not in set_a]
    diff_a = [i for i in only_a if wa.norm[i] not in _FUNCTION]
    diff_b = [j for j in only_b if wb.norm[j] not in _FUNCTION]
    content_a = {w for w in wa.norm if w not in _FUNCTION}
    content_b = {w for w in wb.norm if w not in _FUNCTION}
    shared = len(content_a & content_b) / max(1, len(content_a | content_b))
    counterparts: list[float] = []
    if len(wa.norm) and len(wb.norm):
        sim = wa.vectors @ wb.vectors.T
        counterparts = [float(sim[i].max()) for i in diff_a] + [float(sim[:, j].max()) for j in diff_b]
    differing = len(diff_a) + len(diff_b)
    keep_a = [i for i, w in enumerate(wa.norm) if w not in _FUNCTION]
    keep_b = [j for j, w in enumerate(wb.norm) if w not in _FUNCTION]
    small_edit = float(shared >= SMALL_EDIT and differing > 0)
    negated = any(wa.norm[i] in _NEGATIONS for i in only_a) or any(wb.norm[j] in _NEGATIONS for j in only_b)
    return [
        float(wa.sentence @ wb.sentence),
        shared,
        min(counterparts, default=1.0),
        sum(counterparts) / len(counterparts) if counterparts else 1.0,
        float(differing),
        float(bool(diff_a) != bool(diff_b)),
        float(differing == 0),
        small_edit,
        small_edit * (1.0 - min(counterparts, default=1.0)),
        small_edit * float(differing <= 2),
        small_edit * float(bool(diff_a) != bool(diff_b)),
        float(negated),
        _bertscore(wa.vectors[keep_a], wb.vectors[keep_b]),
        _bertscore(wa.vectors, wb.vectors),
        float(len(diff_a) == 1 and len(diff_b) == 1 and _stem(wa.norm[diff_a[0]]) != _stem(wb.norm[diff_b[0]])),
    ]


# Endings of word forms: "created"/"creator"/"create" and "erupt"/"eruption" are one word for the swap rule.
_SUFFIXES = ("ations", "ation", "ments", "ment", "ions", "ion", "ings", "ing", "ers", "er", "ors", "or", "ed", "e")


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def _bertscore(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    """F1 of greedy matching: each word's best contextual cosine on the other side, averaged both ways."""
    if not len(a) or not len(b):
        return 1.0
    sim = a @ b.T
    recall, precision = float(sim.max(axis=1).mean()), float(sim.max(axis=0).mean())
    return 2 * recall * precision / max(recall + precision, 1e-9)


@dataclass(frozen=True)
class JudgeModel:
    """A fitted logistic model over `FEATURES` (standardized), plus the calibration scores it shipped with."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    calibration: tuple[tuple[float, float, bool, str], ...]  # (CV score, cosine, same answer?, category)
    source: str
    substitution_cosine: float = 0.0  # a one-word swap that leaves the sentences below this cosine scores 0

    def score(self, row: Sequence[float]) -> float:
        """The model's probability that one answer fits both texts."""
        import math

        if row[FEATURES.index("word_swap")] and row[0] < self.substitution_cosine:
            return 0.0
        z = self.bias + sum(
            w * (x - m) / s for w, x, m, s in zip(self.weights, row, self.mean, self.scale, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def to_json(self) -> dict[str, Any]:
        """The JSON form written to `data/pair_judge.json`."""
        return {
            "features": list(FEATURES),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "weights": list(self.weights),
            "bias": self.bias,
            "substitution_cosine": self.substitution_cosine,
            "calibration": [list(c) for c in self.calibration],
            "source": self.source,
        }


def load_model(path: Path = MODEL_PATH) -> JudgeModel:
    """Read a `JudgeModel` from JSON (the shipped one by default)."""
    from agentcache.errors import ConfigurationError

    data = json.loads(path.read_text())
    if tuple(data["features"]) != FEATURES:
        raise ConfigurationError(f"{path} was fitted for other features: refit with benchmarks/fit_pair_judge.py")
    return JudgeModel(
        mean=tuple(map(float, data["mean"])),
        scale=tuple(map(float, data["scale"])),
        weights=tuple(map(float, data["weights"])),
        bias=float(data["bias"]),
        calibration=tuple((float(s), float(c), bool(y), str(k)) for s, c, y, k in data["calibration"]),
        source=str(data.get("source", "")),
        substitution_cosine=float(data.get("substitution_cosine", 0.0)),
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
    """Scores `(cached, query)` pairs with the offline MiniLM and the shipped logistic model."""

    def __init__(self, model: JudgeModel | None = None, *, threads: int = 1) -> None:
        self._model = model
        self._threads = threads

    @property
    def model(self) -> JudgeModel:
        """The logistic model (the shipped one unless another was given)."""
        if self._model is None:
            self._model = _shipped()
        return self._model

    def words(self, texts: Sequence[str]) -> list[Words]:
        """The `Words` of each text (runs MiniLM on whichever text it has not read recently)."""
        from agentcache.semantic._minilm import get_model

        states = get_model(self._threads).token_states(list(texts))
        return [read_words(t, s) for t, s in zip(texts, states, strict=True)]

    def measure(self, cached: str, query: str, *, notes: dict[str, Words] | None = None) -> list[float]:
        """The pair's `features`; the cached text's `Words` come from `notes` when they hold it."""
        known = (notes or {}).get(cached)
        if known is not None:
            (wb,) = self.words([query])
            return features_of(known, wb)
        wa, wb = self.words([cached, query])
        return features_of(wa, wb)

    def score(self, cached: str, query: str, *, notes: dict[str, Words] | None = None) -> float:
        """Probability-like score in [0, 1] that the cached answer also answers `query`."""
        if cached == query:
            return 1.0
        return self.model.score(self.measure(cached, query, notes=notes))


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
