"""Fit the pair judge's logistic model on the project's own hand-written pairs and write the shipped JSON.

Usage: `python benchmarks/fit_pair_judge.py [--pairs A.jsonl [B.jsonl ...]]` (default: `PAIR_FILES`; several
files are concatenated in the order given; their group ids must be disjoint, which is checked).

The pairs (`cached`, `query`, `same_answer`, `category`, `group`) were written for this project: should-hit
paraphrases and one-word traps (negation, scope, entity, number, date) around 110 base questions (groups
0-109), minimal-edit pairs around 40 more (groups 200-299: paraphrases that change only a word or two, so
the judge cannot learn "a small edit means a different question"), and a long-form set around 69 more
(groups 300+: everyday questions reworded at length, reordered, with politeness or filler words, lower
case, missing punctuation and misspellings, next to traps that ask another aspect of the same topic) in
`semantic_pairs.jsonl`; forum-style questions (`semantic_pairs_forum.jsonl`, groups 400-499), developer, support
and agent requests (`semantic_pairs_agent.jsonl`, 500-599), and heavy rewordings next to other questions on
the same topic (`semantic_pairs_related.jsonl`, 600-699, category `related`), scope traps next to paraphrases
that add words which change nothing (`semantic_pairs_scope.jsonl`, 700-799), and negation, number and date traps
next to paraphrases that look like them (`semantic_pairs_negnum.jsonl`, 800-899), then four more sets of single
questions with one-detail traps and paraphrases: consumer and support (`semantic_pairs_consumer.jsonl`, 1000-1099),
developer and agent requests (`semantic_pairs_developer.jsonl`, 1100-1199), general knowledge
(`semantic_pairs_knowledge.jsonl`, 1200-1299), and rewordings next to other questions on the same topic
(`semantic_pairs_related2.jsonl`, 1300-1399). The held-out pairs (`semantic_holdout.jsonl`, 900-999) are never
read here. No evaluation set
(semantic_dev, QQP) is read here. Scores for the error budget's calibration table are cross-validated
by base question (5 folds), so a pair is never scored by a model that saw its group.
Writes `agentcache/semantic/data/pair_judge.json`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from agentcache.semantic.budget import JUDGE_COSINE_FLOOR, operating_point
from agentcache.semantic.guards import DEFAULT_GUARDS, check_guards
from agentcache.semantic.pairjudge import FEATURES, MODEL_PATH, JudgeModel, PairJudge

DATA = Path(__file__).parent / "data"
#: The own pair files, in the order the shipped calibration table lists their rows.
PAIR_FILES = [
    DATA / name
    for name in (
        "semantic_pairs.jsonl",
        "semantic_pairs_forum.jsonl",
        "semantic_pairs_agent.jsonl",
        "semantic_pairs_related.jsonl",
        "semantic_pairs_scope.jsonl",
        "semantic_pairs_negnum.jsonl",
        "semantic_pairs_consumer.jsonl",
        "semantic_pairs_developer.jsonl",
        "semantic_pairs_knowledge.jsonl",
        "semantic_pairs_related2.jsonl",
    )
]
L2 = 3.0  # chosen by cross-validation on the pairs above (1, 3, 10, 30)
FOLDS = 5
# Fit on the pairs a lookup would hand the judge: those near or above the cosine floor.
FIT_COSINE = JUDGE_COSINE_FLOOR - 0.05


def fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """L2-regularized logistic regression by Newton steps on standardized features."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-6
    z = np.c_[(x - mean) / scale, np.ones(len(x))]
    w = np.zeros(z.shape[1])
    reg = L2 * np.r_[np.ones(z.shape[1] - 1), 0.0]
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-z @ w))
        grad = z.T @ (p - y) + reg * w
        hess = (z.T * (p * (1 - p))) @ z + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return mean, scale, w[:-1], float(w[-1])


def model_of(
    params: tuple[np.ndarray, np.ndarray, np.ndarray, float], calibration: tuple = (), source: str = ""
) -> JudgeModel:
    mean, scale, w, b = params
    return JudgeModel(
        tuple(map(float, mean)),
        tuple(map(float, scale)),
        tuple(map(float, w)),
        b,
        calibration,
        source,
    )


def compact_json(data: dict[str, object]) -> str:
    """The model's JSON with one calibration row per line (readable diffs, a third of the indented size)."""
    head = {k: v for k, v in data.items() if k != "calibration"}
    calibration = data["calibration"]
    assert isinstance(calibration, list)
    rows = ",\n".join("  " + json.dumps(row, separators=(",", ":")) for row in calibration)
    return json.dumps(head, indent=1)[:-2] + ',\n "calibration": [\n' + rows + "\n ]\n}\n"


def measure(rows: list[dict[str, object]]) -> np.ndarray:
    judge = PairJudge(threads=2)
    return np.array([judge.measure(str(r["cached"]), str(r["query"])) for r in rows])


def read_pairs(paths: list[Path]) -> list[dict[str, object]]:
    """The pairs of every file, in order; a base question (group id) may not appear in two files."""
    rows: list[dict[str, object]] = []
    owner: dict[int, Path] = {}
    for path in paths:
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            group = int(row["group"])
            if owner.setdefault(group, path) != path:
                raise SystemExit(f"group {group} is in both {owner[group]} and {path}: group ids must be disjoint")
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=Path, nargs="+", default=PAIR_FILES)
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    args = parser.parse_args()
    rows = read_pairs(args.pairs)
    x = measure(rows)
    cosines = x[:, 0]
    y = np.array([bool(r["same_answer"]) for r in rows], dtype=float)
    groups = np.array([int(r["group"]) for r in rows])
    # The default guards veto first (a pair they reject never reaches the judge): fit on what they let through.
    passed = np.array([check_guards(DEFAULT_GUARDS, str(r["cached"]), str(r["query"])) is None for r in rows])
    near = passed & (cosines >= FIT_COSINE)
    cv = np.zeros(len(rows))
    for k in range(FOLDS):
        test = groups % FOLDS == k
        train = ~test & near
        held = model_of(fit(x[train], y[train]))
        cv[test] = [held.score(row) for row in x[test]]
    cv[~passed] = 0.0
    x, y_fit = x[near], y[near]
    calibration = tuple(
        (round(float(s), 4), round(float(c), 4), bool(r["same_answer"]), str(r["category"]))
        for s, c, r in zip(cv, cosines, rows, strict=True)
    )
    model = model_of(
        fit(x, y_fit),
        calibration,
        source=f"{' + '.join(p.name for p in args.pairs)}: {len(rows)} pairs, {FOLDS}-fold CV scores",
    )
    args.out.write_text(compact_json(model.to_json()))
    print("weights:", {f: round(w, 2) for f, w in zip(FEATURES, model.weights, strict=True)})
    pos = y == 1
    for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        s = cv >= t
        cats = {
            c: s[np.array([r["category"] == c for r in rows])].mean()
            for c in ("negation", "scope", "entity", "number", "date")
        }
        if t == 0.7 and __import__("os").environ.get("SHOW"):
            for i, r in enumerate(rows):
                if s[i] != bool(r["same_answer"]):
                    print(f"  {r['category']:10s} {cv[i]:.2f}  | {r['cached']} | {r['query']}")
        print(
            f"t={t}: served {s[pos].mean():.3f} traps wrong {s[~pos].mean():.3f} "
            + " ".join(f"{c}:{v:.2f}" for c, v in cats.items())
        )

    for budget in (0.05, 0.02):
        point = operating_point(budget, calibration)
        print(f"max_wrong={budget}: threshold {point.min_score:.3f}, paraphrases served {point.served_rate:.3f}")


if __name__ == "__main__":
    main()
