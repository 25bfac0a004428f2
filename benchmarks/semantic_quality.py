"""Semantic-cache quality: what is served and what is served wrongly, per category, before and with the judge.

Usage: `python benchmarks/semantic_quality.py [--pairs PATH] [--own PATH ...]`. Three data sets:

1. `semantic_dev/pairs.jsonl` (the team's development pairs: QQP, GPTCache paraphrases, agent look-alikes;
   evaluation only, never shipped or fitted on), decided exactly as a lookup decides a candidate;
2. the project's own single-question pairs (`benchmarks/data/semantic_pairs*.jsonl`, `fit_pair_judge.PAIR_FILES`:
   paraphrases, one-detail traps in five categories, and other questions on the same topic), scored with the
   *cross-validated* judge scores of the shipped calibration table (a pair is never scored by a model fitted on
   its own base question);
3. the project's own held-out pairs (`benchmarks/data/semantic_holdout.jsonl`: written apart from the training
   pairs, without looking at them, and never used to fit or choose anything), decided exactly as a lookup
   decides a candidate with the shipped judge;
4. the project's own conversation pairs (`benchmarks/data/conversation_pairs.jsonl`: short scripted chats;
   `conversation_dev.jsonl`: realistic multi-turn chats the conversation keys were developed on), and a held-out
   set (`benchmarks/data/conversation_holdout.jsonl`: realistic multi-turn chats written apart, never tuned on).

"Before" is the previous default: cosine >= 0.80 and the default guards, with every earlier chat turn hashed
into the partition. "Judge" is today's default: the judge's cosine floor, the guards and the pair judge at the
budget's operating point (default `max_wrong=0.05`), and reads chats with `agentcache.semantic.conversation`.
Writes `benchmarks/results/semantic_quality.md`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from fit_pair_judge import PAIR_FILES

from agentcache.semantic.budget import DEFAULT_MAX_WRONG, JUDGE_COSINE_FLOOR, RELATED, operating_point
from agentcache.semantic.checks import HitChecks
from agentcache.semantic.embedders import LocalEmbedder
from agentcache.semantic.evaluate import evaluate, load_pairs
from agentcache.semantic.guards import DEFAULT_GUARDS, DEFAULT_THRESHOLD, GUARDS_WITHOUT_JUDGE, check_guards
from agentcache.semantic.pairjudge import get_judge

DEV = Path("/work/shared/data/semantic_dev/pairs.jsonl")
OWN = PAIR_FILES
HOLDOUT = Path(__file__).parent / "data" / "semantic_holdout.jsonl"
TRAPS = ["negation", "scope", "entity", "number", "date"]
CHATS = Path(__file__).parent / "data" / "conversation_pairs.jsonl"
CHATS_DEV = Path(__file__).parent / "data" / "conversation_dev.jsonl"
CHATS_HOLDOUT = Path(__file__).parent / "data" / "conversation_holdout.jsonl"
RESULTS = Path(__file__).parent / "results"
BUDGETS = (0.10, 0.05, 0.02)


def pct(n: int, d: int) -> str:
    return "-" if not d else f"{n / d:.1%} ({n}/{d})"


def decide_as_lookups(cached: list[str], queries: list[str]) -> tuple[dict[str, list[bool]], list[str]]:
    """Per setting (`judge=False`, then the judge at each budget), whether each single-question pair is served;
    and per pair what refused it at the default budget ("cosine", "guard", "judge") or "served"."""
    embedder = LocalEmbedder(threads=2)
    cosines = (embedder.embed_array(cached) * embedder.embed_array(queries)).sum(axis=1).tolist()
    pairs = list(zip(cached, queries, strict=True))
    judge = get_judge()
    # The lookup's own decision (guards, and the judge score, which may outweigh a built-in guard): -1 if refused.
    checks = HitChecks("quality", judge=judge)
    scores = [
        checks.decide(DEFAULT_GUARDS, a, b, 0.0) if c >= JUDGE_COSINE_FLOOR else -1.0
        for c, (a, b) in zip(cosines, pairs, strict=True)
    ]
    decided = {
        "judge=False (cosine 0.80, guards)": [
            c >= DEFAULT_THRESHOLD and check_guards(GUARDS_WITHOUT_JUDGE, a, b) is None
            for c, (a, b) in zip(cosines, pairs, strict=True)
        ]
    }
    for m in BUDGETS:
        cut = operating_point(m, judge.model.calibration).min_score
        decided[f"judge, max_wrong={m:g}"] = [s >= cut for s in scores]
    cut = operating_point(DEFAULT_MAX_WRONG, judge.model.calibration).min_score
    why = [
        "cosine" if c < JUDGE_COSINE_FLOOR else "guard" if s < 0 else "judge" if s < cut else "served"
        for c, s in zip(cosines, scores, strict=True)
    ]
    return decided, why


def category_cells(hits: list[bool], rows: list[dict[str, Any]], kinds: list[str]) -> list[str]:
    """Paraphrases served, all one-detail traps wrong, then each of `kinds` wrong, for one setting's decisions."""
    by: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for hit, r in zip(hits, rows, strict=True):
        by[r["category"]][0] += hit
        by[r["category"]][1] += 1
    wrong = [sum(by[c][i] for c in TRAPS) for i in (0, 1)]
    return [pct(*by["paraphrase"]), pct(*wrong), *(pct(*by[c]) for c in kinds)]


def dev_section(path: Path) -> list[str]:
    import numpy as np

    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    pairs = load_pairs(path)
    decided, _ = decide_as_lookups([p.cached for p in pairs], [p.query for p in pairs])
    src = np.array([r["source"] for r in rows])
    y = np.array([bool(r["should_hit"]) for r in rows])
    out = [
        f"## 1. Development pairs (`semantic_dev`, {len(rows)} pairs; evaluation only)",
        "",
        "| setting | QQP dup vs non-dup: P / R | QQP dup vs hard look-alikes: P / R "
        "| GPTCache paraphrases served | agent pairs: look-alikes served / paraphrases served |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, hit_list in decided.items():
        hit = np.array(hit_list)
        cells = []
        for neg in ("qqp-nondup", "qqp-nondup-hard"):
            tp = int((hit & (src == "qqp-duplicate")).sum())
            fp = int((hit & (src == neg)).sum())
            cells.append(f"{tp / max(1, tp + fp):.3f} / {tp / int((src == 'qqp-duplicate').sum()):.3f}")
        gpt = src == "gptcache-mock-paraphrase"
        agent = src == "handwritten-agent-contrast"
        cells.append(pct(int((hit & gpt).sum()), int(gpt.sum())))
        cells.append(
            f"{int((hit & agent & ~y).sum())} of {int((agent & ~y).sum())} / "
            f"{int((hit & agent & y).sum())} of {int((agent & y).sum())}"
        )
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return out


def own_section(paths: list[Path]) -> list[str]:
    """Section 2 over the own pair files the judge was fitted on (the order given to fit_pair_judge.py)."""
    rows = []
    for path in paths:
        rows += [json.loads(line) | {"file": path.name} for line in path.read_text().splitlines() if line.strip()]
    calibration = get_judge().model.calibration
    if len(calibration) != len(rows):
        raise SystemExit(f"the own pairs are {len(rows)} but the shipped calibration {len(calibration)}: refit")
    traps = TRAPS
    settings: dict[str, list[bool]] = {
        "judge=False (cosine 0.80, guards)": [
            c >= DEFAULT_THRESHOLD and check_guards(GUARDS_WITHOUT_JUDGE, r["cached"], r["query"]) is None
            for (_, c, _, _), r in zip(calibration, rows, strict=True)
        ]
    }
    for m in BUDGETS:
        cut = operating_point(m, calibration).min_score
        settings[f"judge, max_wrong={m:g}"] = [s >= cut and c >= JUDGE_COSINE_FLOOR for s, c, _, _ in calibration]
    out = [
        f"## 2. Own single-question pairs ({', '.join(f'`{p.name}`' for p in paths)}, {len(rows)} pairs, "
        "cross-validated judge scores)",
        "",
        "Served share of should-hit paraphrases, the share of each one-detail trap category given the cached",
        f"answer (the budget counts these), and the share of `{RELATED}` questions (another question on the same",
        "topic: held to the budget apart from the traps) given the cached answer.",
        "",
        "| setting | paraphrases served | all traps wrong | "
        + " | ".join(f"{c} wrong" for c in traps)
        + f" | {RELATED} wrong |",
        "| --- | --- | --- | " + " | ".join("---" for _ in traps) + " | --- |",
    ]
    first = paths[0].name
    subsets = {
        "first set (groups 0-109: reworded paraphrases, one-word traps)": lambda r: (
            r["file"] == first and int(r["group"]) < 200
        ),
        "minimal-edit set (groups 200-299: paraphrases that change a word or two)": lambda r: (
            r["file"] == first and 200 <= int(r["group"]) < 300
        ),
        "long-form set (groups 300-368: reworded at length, noisy spellings; traps on another aspect)": lambda r: (
            r["file"] == first and int(r["group"]) >= 300
        ),
        "forum set (groups 400-499: everyday questions as people post them)": lambda r: (
            r["file"] == "semantic_pairs_forum.jsonl"
        ),
        "agent set (groups 500-599: developer, support and agent requests)": lambda r: (
            r["file"] == "semantic_pairs_agent.jsonl"
        ),
        "related set (groups 600-699: heavy rewordings, and other questions on the same topic)": lambda r: (
            r["file"] == "semantic_pairs_related.jsonl"
        ),
        "scope set (groups 700-799: scope traps next to paraphrases that add words which change nothing)": lambda r: (
            r["file"] == "semantic_pairs_scope.jsonl"
        ),
        "negation / number / date set (groups 800-899: those traps next to look-alike paraphrases)": lambda r: (
            r["file"] == "semantic_pairs_negnum.jsonl"
        ),
        "consumer set (groups 1000-1099: everyday and support questions)": lambda r: (
            r["file"] == "semantic_pairs_consumer.jsonl"
        ),
        "developer set (groups 1100-1199: software, devops and agent requests)": lambda r: (
            r["file"] == "semantic_pairs_developer.jsonl"
        ),
        "knowledge set (groups 1200-1299: general knowledge and advice)": lambda r: (
            r["file"] == "semantic_pairs_knowledge.jsonl"
        ),
        "second related set (groups 1300-1399: rewordings, and other questions on the same topic)": lambda r: (
            r["file"] == "semantic_pairs_related2.jsonl"
        ),
        **{
            description: (lambda name: lambda r: r["file"] == name)(f"semantic_pairs_{short}.jsonl")
            for short, description in (
                ("life", "life set (groups 1400-1499: health, cooking, travel, money, phones, home, pets)"),
                ("tech", "tech set (groups 1500-1599: software, data and agent requests)"),
                ("facts", "facts set (groups 1600-1699: general knowledge and homework)"),
                ("forms", "forms set (groups 1700-1799: values and aliases written differently; one-detail traps)"),
                ("reword", "reword set (groups 1800-1899: rewordings sharing few words; related questions)"),
                ("work", "work set (groups 2000-2099: workplace, shopping, billing, legal, renting)"),
            )
        },
    }
    split: list[str] = []
    for name, hits in settings.items():
        out.append(f"| {name} | " + " | ".join(category_cells(hits, rows, [*traps, RELATED])) + " |")
        for subset, member in subsets.items():
            count = {"para": [0, 0], "trap": [0, 0], "related": [0, 0]}
            for hit, r in zip(hits, rows, strict=True):
                if member(r):
                    kind = "para" if r["same_answer"] else "related" if r["category"] == RELATED else "trap"
                    count[kind][0] += hit
                    count[kind][1] += 1
            if count["para"][1]:
                split.append(
                    f"| {name} | {subset} | {pct(*count['para'])} | {pct(*count['trap'])} | {pct(*count['related'])} |"
                )
    return [
        *out,
        "",
        "The same, per subset (the minimal-edit set was added so that the judge cannot learn that a small edit",
        "means a different question; the long-form, forum and agent sets so that it sees how people really reword;",
        "the related set so that a nearby but different question below the old 0.80 cosine floor is refused):",
        "",
        "| setting | subset | paraphrases served | traps wrong | related wrong |",
        "| --- | --- | --- | --- | --- |",
        *split,
    ]


def holdout_section(path: Path) -> list[str]:
    """Section 3: the held-out own pairs, decided as a lookup decides (cosine, guards, shipped judge)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    settings, why = decide_as_lookups([r["cached"] for r in rows], [r["query"] for r in rows])
    kinds = [c for c in [*TRAPS, RELATED] if any(r["category"] == c for r in rows)]
    out = [
        f"## 3. Own held-out pairs (`{path.name}`, {len(rows)} pairs; never fitted on, never used to choose anything)",
        "",
        "Written for this project apart from the training pairs (by someone who did not read them), scored with",
        "the shipped judge, as a lookup decides: the rates to expect on questions the judge has not seen.",
        "",
        "| setting | paraphrases served | all traps wrong | " + " | ".join(f"{c} wrong" for c in kinds) + " |",
        "| --- | --- | --- | " + " | ".join("---" for _ in kinds) + " |",
    ]
    for name, hits in settings.items():
        out.append(f"| {name} | " + " | ".join(category_cells(hits, rows, kinds)) + " |")
    missed = [w for w, r in zip(why, rows, strict=True) if r["same_answer"]]
    n = len(missed)
    out += [
        "",
        f"Where the {n} paraphrases went at the default budget: below the cosine floor "
        f"{pct(missed.count('cosine'), n)}, vetoed by a guard {pct(missed.count('guard'), n)}, refused by the judge "
        f"{pct(missed.count('judge'), n)}, served {pct(missed.count('served'), n)}.",
    ]
    return out


def chat_section(path: Path, heading: str) -> list[str]:
    raw = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    pairs = load_pairs(path)
    embedder = LocalEmbedder(threads=2)
    # Before: every earlier turn hashed exactly, so only identical histories can hit.
    before: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in raw:
        c, q = r["cached_messages"], r["query_messages"]
        hit = False
        if c[:-1] == q[:-1]:
            ca, qa = c[-1]["content"], q[-1]["content"]
            va, vb = embedder.embed([ca, qa])
            cosine = sum(x * y for x, y in zip(va, vb, strict=True))
            hit = cosine >= DEFAULT_THRESHOLD and check_guards(GUARDS_WITHOUT_JUDGE, ca, qa) is None
        before[r["category"]][0] += hit
        before[r["category"]][1] += 1
    report = evaluate(pairs)
    out = [
        f"## {heading} (`benchmarks/data/{path.name}`, {len(raw)} pairs)",
        "",
        "| category | should hit? | before: served | judge + conversation keys: served |",
        "| --- | --- | --- | --- |",
    ]
    for cat, rates in sorted(report.by_category.items()):
        should = rates.should_hit > 0
        now = rates.served if should else rates.wrong
        total = rates.should_hit if should else rates.look_alikes
        out.append(f"| {cat} | {'yes' if should else 'no'} | {pct(*before[cat])} | {pct(now, total)} |")
    t = report.total
    out.append(
        f"| all | | | served {pct(t.served, t.should_hit)}, wrong {pct(t.wrong, t.look_alikes)} |",
    )
    return out


def cost_section(path: Path) -> list[str]:
    """CPU time the judge adds per candidate once the query is embedded: read the entry's notes, measure, score."""
    import statistics

    from agentcache.semantic.interaction import HEAD_PATH
    from agentcache.semantic.pairjudge import MODEL_PATH, decode_notes, encode_notes

    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()][:400]
    judge = get_judge()
    texts = list(dict.fromkeys(t for r in rows for t in (r["cached"], r["query"])))
    words = dict(zip(texts, judge.words(texts), strict=True))
    notes = {t: encode_notes("k", [words[t]]) for t in {r["cached"] for r in rows}}
    spent: list[float] = []
    for r in rows * 3:
        t0 = time.thread_time()
        cached = decode_notes("k", notes[r["cached"]])[r["cached"]]
        judge.model.score(cached, words[r["query"]])
        spent.append((time.thread_time() - t0) * 1000)
    spent.sort()
    files = MODEL_PATH.stat().st_size + HEAD_PATH.stat().st_size
    return [
        "## 6. Judge cost per candidate",
        "",
        f"CPU time on one thread to decode a candidate's stored notes, measure the pair and score it ({len(spent)} "
        "candidates from the own pairs; the query's own MiniLM run is the lookup's embedding, not counted here):",
        "",
        "| median | p90 | p99 | model files | notes per entry (median) |",
        "| --- | --- | --- | --- | --- |",
        f"| {statistics.median(spent):.2f} ms | {spent[int(0.9 * len(spent))]:.2f} ms "
        f"| {spent[int(0.99 * len(spent))]:.2f} ms | {files / 1024:.0f} KB "
        f"| {statistics.median(len(b) for b in notes.values()) / 1024:.1f} KB |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=Path, default=DEV)
    parser.add_argument("--own", type=Path, nargs="+", default=OWN, help="the pair files the judge was fitted on")
    parser.add_argument("--holdout", type=Path, default=HOLDOUT, help="own pairs never fitted on (section 4)")
    args = parser.parse_args()
    t0 = time.perf_counter()
    judge = get_judge()
    points = [operating_point(m, judge.model.calibration) for m in BUDGETS]
    out: list[str] = [
        "# Semantic cache quality",
        "",
        f"Local MiniLM int8 embedder; defaults: cosine >= {JUDGE_COSINE_FLOOR:.2f}, default guards, pair judge at "
        "`max_wrong=0.05`. "
        "Regenerate with `python benchmarks/semantic_quality.py`.",
        "",
        "Operating points chosen from the shipped calibration table (" + judge.model.source + "):",
        "",
        "| max_wrong | judge score needed | look-alikes served (conservative estimate) | paraphrases served |",
        "| --- | --- | --- | --- |",
        *(f"| {p.max_wrong:g} | {p.min_score:.3f} | {p.wrong_rate:.1%} | {p.served_rate:.1%} |" for p in points),
        "",
    ]
    sections: list[Any] = []
    if args.pairs.exists():
        sections.append(dev_section(args.pairs))
    sections.append(own_section(args.own))
    if args.holdout.exists():
        sections.append(holdout_section(args.holdout))
    sections.append(chat_section(CHATS, "4. Own conversation pairs"))
    if CHATS_DEV.exists():
        heading = "4b. Own realistic conversation pairs (the set conversation keys were developed on)"
        sections.append(chat_section(CHATS_DEV, heading))
    if CHATS_HOLDOUT.exists():
        heading = "5. Own held-out conversation pairs (written apart from the others; never used to choose anything)"
        sections.append(chat_section(CHATS_HOLDOUT, heading))
    sections.append(cost_section(args.own[0]))
    for section in sections:
        out += [*section, ""]
    out.append(f"Took {time.perf_counter() - t0:.0f} s.")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "semantic_quality.md").write_text("\n".join(out) + "\n")
    print("\n".join(out))


if __name__ == "__main__":
    main()
