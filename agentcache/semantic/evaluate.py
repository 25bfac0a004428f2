"""Score a semantic-cache configuration on your own labelled pairs (`agentcache eval`).

Input: JSON Lines, one pair per line::

    {"cached": "How do I delete my account?", "query": "How can I remove my account?", "same_answer": true}

`should_hit` is read as a synonym of `same_answer`. A chat pair gives `cached_messages` / `query_messages`
(chat message lists) instead of, or as well as, `cached` / `query`; they are read exactly as
`semantic_cached` reads a `messages` argument (last user turn plus the earlier turns it depends on). An
optional `category` (or `source`) groups the figures.

Each pair is decided exactly as a lookup decides a candidate that the vector search returned: cosine with the
configured embedder >= threshold, the guards, the pair judge at the budget's operating point, the contexts.
"Served" is the share of `same_answer` pairs that would hit; "wrong" the share of the other pairs that would
be given the cached answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentcache.errors import ConfigurationError

if TYPE_CHECKING:
    from agentcache.semantic.embedders import Embedder
    from agentcache.semantic.guards import Guard

__all__ = ["EvalReport", "Pair", "evaluate", "load_pairs"]


@dataclass(frozen=True)
class Pair:
    """One labelled pair: the stored query text and the new one (packed with their chat contexts)."""

    cached: str
    query: str
    same_answer: bool
    category: str = ""


@dataclass
class Rates:
    """Served and wrong counts of one group of pairs."""

    should_hit: int = 0
    served: int = 0
    look_alikes: int = 0
    wrong: int = 0

    @property
    def served_rate(self) -> float:
        """Share of should-hit pairs served."""
        return self.served / self.should_hit if self.should_hit else float("nan")

    @property
    def wrong_rate(self) -> float:
        """Share of look-alike pairs given the cached answer."""
        return self.wrong / self.look_alikes if self.look_alikes else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "should_hit": self.should_hit,
            "served": self.served,
            "served_rate": _finite(self.served_rate),
            "look_alikes": self.look_alikes,
            "wrong": self.wrong,
            "wrong_rate": _finite(self.wrong_rate),
        }


def _finite(x: float) -> float | None:
    return None if x != x else round(x, 4)


@dataclass
class EvalReport:
    """What `evaluate` found: the configured operating point, per category, and the best point for a budget."""

    pairs: int
    threshold: float
    max_wrong: float
    min_score: float  # the judge score the configured budget requires (0 without the judge)
    total: Rates
    by_category: dict[str, Rates] = field(default_factory=dict)
    best: dict[str, Any] = field(default_factory=dict)  # the lowest judge score meeting the budget on these pairs

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready report."""
        return {
            "pairs": self.pairs,
            "threshold": self.threshold,
            "max_wrong": self.max_wrong,
            "min_score": round(self.min_score, 4),
            "total": self.total.to_dict(),
            "by_category": {k: v.to_dict() for k, v in sorted(self.by_category.items())},
            "best": self.best,
        }

    def __str__(self) -> str:
        from agentcache.stats.counters import format_table

        rows = [
            [name, str(r.should_hit), _pct(r.served_rate), str(r.look_alikes), _pct(r.wrong_rate)]
            for name, r in [*sorted(self.by_category.items()), ("TOTAL", self.total)]
        ]
        table = format_table(["category", "should hit", "served", "look-alikes", "wrong"], rows, align="lrrrr")
        head = (
            f"{self.pairs} pairs; cosine >= {self.threshold:.2f}, wrong-answer budget {self.max_wrong:g} "
            f"(judge score >= {self.min_score:.3f})"
        )
        best = self.best
        tail = (
            f"best judge score for wrong <= {self.max_wrong:g} on these pairs: {best['min_score']:.3f} "
            f"(served {_pct(best['served_rate'])}, wrong {_pct(best['wrong_rate'])})"
            if best
            else f"no judge score keeps wrong <= {self.max_wrong:g} on these pairs"
        )
        return f"{head}\n{table}\n{tail}"


def _pct(x: float | None) -> str:
    return "-" if x is None or x != x else f"{x:.1%}"


def _pair(row: Mapping[str, Any], line: int) -> Pair:
    from agentcache.semantic.conversation import pack, split_messages

    label = row.get("same_answer", row.get("should_hit"))
    if not isinstance(label, bool):
        raise ConfigurationError(f"line {line}: needs a boolean 'same_answer' (or 'should_hit')")
    texts: list[str] = []
    for side in ("cached", "query"):
        messages = row.get(f"{side}_messages")
        if isinstance(messages, list):
            found = split_messages(messages)
            if found is None:
                raise ConfigurationError(f"line {line}: {side}_messages has no plain-text user message")
            texts.append(pack(found[0], found[1]))
        elif isinstance(row.get(side), str):
            texts.append(str(row[side]))
        else:
            raise ConfigurationError(f"line {line}: needs '{side}' (a string) or '{side}_messages' (a chat)")
    category = row.get("category", row.get("source", ""))
    return Pair(texts[0], texts[1], label, str(category or ""))


def load_pairs(path: str | Path) -> list[Pair]:
    """Read labelled pairs from a JSON Lines file (see the module docstring)."""
    pairs: list[Pair] = []
    for n, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ConfigurationError(f"{path}, line {n}: not JSON: {exc}") from exc
        if not isinstance(row, dict):
            raise ConfigurationError(f"{path}, line {n}: expected a JSON object")
        pairs.append(_pair(row, n))
    return pairs


def _count(rates: Rates, pair: Pair, served: bool) -> None:
    if pair.same_answer:
        rates.should_hit += 1
        rates.served += served
    else:
        rates.look_alikes += 1
        rates.wrong += served


def evaluate(
    pairs: Iterable[Pair],
    *,
    max_wrong: float | None = None,
    threshold: float | None = None,
    judge: bool = True,
    guards: Sequence[Guard] | None = None,
    embedder: Embedder | None = None,
) -> EvalReport:
    """Decide every pair as a lookup would, and find the best judge score for the budget on these pairs."""
    from agentcache.semantic.budget import DEFAULT_MAX_WRONG
    from agentcache.semantic.checks import HitChecks
    from agentcache.semantic.conversation import search_text, search_texts
    from agentcache.semantic.guards import DEFAULT_GUARDS, GUARDS_WITHOUT_JUDGE, effective_threshold

    items = list(pairs)
    if not items:
        raise ConfigurationError("no pairs to evaluate")
    budget = DEFAULT_MAX_WRONG if max_wrong is None else max_wrong
    checks = HitChecks("eval", judge=None if judge else False, max_wrong=budget)
    cut = effective_threshold(threshold if threshold is not None else checks.default_threshold())
    chosen = (DEFAULT_GUARDS if judge else GUARDS_WITHOUT_JUDGE) if guards is None else tuple(guards)
    if embedder is None:
        from agentcache.semantic.embedders import LocalEmbedder

        embedder = LocalEmbedder()
    import numpy as np

    def unit(texts: list[str]) -> Any:
        rows = np.asarray(embedder.embed(texts), dtype=np.float32)
        return rows / np.clip(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12, None)

    # A lookup searches with every reading of the query (`search_texts`): the best one counts.
    a = unit([search_text(p.cached) for p in items])
    readings = [search_texts(p.query) for p in items]
    b = unit([t for texts in readings for t in texts])
    owner = np.repeat(np.arange(len(items)), [len(texts) for texts in readings])
    cosines = np.full(len(items), -1.0)
    np.maximum.at(cosines, owner, (a[owner] * b).sum(axis=1))
    min_score = checks.required("", "") if judge else 0.0
    total = Rates()
    by_category: dict[str, Rates] = {}
    scored: list[tuple[float, bool]] = []  # (judge score or -1 when cosine/guards/context already refuse, label)
    for pair, cosine in zip(items, cosines.tolist(), strict=True):
        score = checks.decide(chosen, pair.cached, pair.query, min_score) if cosine >= cut else -1.0
        served = score >= min_score and score >= 0.0
        scored.append((score, pair.same_answer))
        _count(total, pair, served)
        if pair.category:
            _count(by_category.setdefault(pair.category, Rates()), pair, served)
    return EvalReport(len(items), cut, budget, min_score, total, by_category, _best(scored, budget))


def _best(scored: list[tuple[float, bool]], budget: float) -> dict[str, Any]:
    """The lowest judge score whose wrong rate on these pairs stays within `budget`."""
    negatives = sorted((s for s, y in scored if not y and s >= 0.0), reverse=True)
    n_neg = sum(1 for _, y in scored if not y)
    positives = [s for s, y in scored if y]
    if not positives:
        return {}
    allowed = int(budget * n_neg) if n_neg else len(negatives)
    cut = 0.0 if allowed >= len(negatives) else negatives[allowed] + 1e-9
    if cut > 1.0:
        return {}
    served = sum(1 for s in positives if s >= cut and s >= 0.0) / len(positives)
    wrong = sum(1 for s in negatives if s >= cut) / n_neg if n_neg else 0.0
    return {"min_score": round(cut, 4), "served_rate": round(served, 4), "wrong_rate": round(wrong, 4)}
