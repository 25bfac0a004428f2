"""Semantic-cache quality on the development pairs: precision, recall and false hits per source.

Usage: `python benchmarks/semantic_quality.py [--pairs PATH]`. Embeds every pair with the local MiniLM
embedder, then scores cosine alone and cosine + guards over thresholds. Writes
`benchmarks/results/semantic_quality.md` and `semantic_quality_pr.png` (needs matplotlib).

"Hit" means the cache would serve the cached answer: cosine >= threshold and every guard accepts.
The pairs are evaluation data only (see their README); nothing here ships in the package.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agentcache.semantic.embedders import LocalEmbedder
from agentcache.semantic.guards import (
    DEFAULT_GUARDS,
    DEFAULT_THRESHOLD,
    Guard,
    check_guards,
    entity_guard,
)

PAIRS = Path("/work/shared/data/semantic_dev/pairs.jsonl")
RESULTS = Path(__file__).parent / "results"
THRESHOLDS = np.round(np.arange(0.70, 0.991, 0.01), 2)
SOURCES = [
    "qqp-duplicate",
    "gptcache-mock-paraphrase",
    "qqp-nondup",
    "qqp-nondup-hard",
    "handwritten-agent-contrast",
]


def load(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def prf(hit: np.ndarray, y: np.ndarray) -> tuple[float, float, int, int]:
    """Precision, recall, false hits, true hits."""
    tp = int((hit & y).sum())
    fp = int((hit & ~y).sum())
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / int(y.sum()) if y.sum() else float("nan")
    return precision, recall, fp, tp


def guard_mask(rows: Sequence[dict[str, object]], guards: Sequence[Guard]) -> np.ndarray:
    return np.array([check_guards(guards, str(r["cached"]), str(r["query"])) is None for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=Path, default=PAIRS)
    args = parser.parse_args()
    rows = load(args.pairs)
    src = np.array([r["source"] for r in rows])
    y = np.array([bool(r["should_hit"]) for r in rows])

    embedder = LocalEmbedder(threads=2)
    t0 = time.perf_counter()
    a = embedder.embed_array([str(r["cached"]) for r in rows])
    b = embedder.embed_array([str(r["query"]) for r in rows])
    embed_s = time.perf_counter() - t0
    sims = (a * b).sum(axis=1)
    passed = guard_mask(rows, DEFAULT_GUARDS)
    t = DEFAULT_THRESHOLD
    out: list[str] = ["# Semantic cache quality (dev pairs, local MiniLM int8)", ""]
    out.append(
        f"{len(rows)} pairs from `semantic_dev/pairs.jsonl`; embedding took {embed_s:.1f} s "
        f"({2 * len(rows) / embed_s:.0f} sentences/s, 2 threads). Default threshold **{t}**, default guards: "
        + ", ".join(f"`{g.__name__}`" for g in DEFAULT_GUARDS)  # type: ignore[attr-defined]
        + ". Regenerate with `python benchmarks/semantic_quality.py`.",
    )
    out += ["", "## Per source at the default settings", ""]
    out.append(
        "| source | pairs | should hit | cosine-only hits | cosine+guards hits "
        "| false hits (cos / cos+guards) | false-hit rate (cos+guards) |"
    )
    out.append("| --- | --- | --- | --- | --- | --- | --- |")
    for s in SOURCES:
        m = src == s
        cos_hit = sims[m] >= t
        full_hit = cos_hit & passed[m]
        neg = ~y[m]
        fr = (full_hit & neg).sum() / neg.sum() if neg.sum() else float("nan")
        out.append(
            f"| {s} | {m.sum()} | {y[m].sum()} | {cos_hit.sum()} | {full_hit.sum()} | "
            f"{(cos_hit & neg).sum()} / {(full_hit & neg).sum()} | {fr:.3f} |",
        )

    def scenario(name: str, pos: str, neg: str) -> tuple[str, np.ndarray]:
        return name, (src == pos) | (src == neg)

    scenarios = [
        scenario("QQP duplicates vs ordinary non-duplicates", "qqp-duplicate", "qqp-nondup"),
        scenario("QQP duplicates vs hard look-alike non-duplicates", "qqp-duplicate", "qqp-nondup-hard"),
        ("handwritten agent pairs", src == "handwritten-agent-contrast"),
        ("all pairs", np.ones_like(y)),
    ]
    out += ["", "## Precision / recall at the default settings", ""]
    out.append("| scenario | cosine only: P / R | cosine + guards: P / R | false hits (cos+guards) |")
    out.append("| --- | --- | --- | --- |")
    for name, m in scenarios:
        pc, rc, _, _ = prf(sims[m] >= t, y[m])
        pg, rg, fpg, _ = prf((sims[m] >= t) & passed[m], y[m])
        out.append(f"| {name} | {pc:.3f} / {rc:.3f} | {pg:.3f} / {rg:.3f} | {fpg} |")

    # Same-recall comparison: the guards must beat simply raising the threshold.
    name, m = scenarios[1]
    pg, rg, _, _ = prf((sims[m] >= t) & passed[m], y[m])
    best = None
    for tc in np.arange(0.70, 0.999, 0.001):
        pc, rc, _, _ = prf(sims[m] >= tc, y[m])
        if rc >= rg:
            best = (tc, pc, rc)
    assert best is not None
    tc, pc, rc = best
    out += [
        "",
        "## Guards vs a higher threshold, at the same recall (QQP duplicates vs hard non-duplicates)",
        "",
        f"cosine + guards at {t}: precision **{pg:.3f}** at recall {rg:.3f}; cosine alone at the threshold "
        f"giving the same recall ({tc:.3f}): precision **{pc:.3f}** at recall {rc:.3f} -> "
        f"**{100 * (pg - pc):+.1f} points**.",
    ]

    out += ["", "## Guard ablation at the default threshold", ""]
    out.append(
        "| guards | QQP dup vs nondup P / R | dup vs hard P / R "
        "| handwritten false hits / true hits | all pairs P / R |"
    )
    out.append("| --- | --- | --- | --- | --- |")
    variants: list[tuple[str, Sequence[Guard]]] = [
        ("none (cosine only)", ()),
        ("all (default)", DEFAULT_GUARDS),
    ]
    variants.append(("default, but strict entity_guard", [*DEFAULT_GUARDS[:-1], entity_guard]))
    for g in DEFAULT_GUARDS:
        variants.append((f"all but {g.__name__}", [x for x in DEFAULT_GUARDS if x is not g]))  # type: ignore[attr-defined]
    for label, guards in variants:
        ok = guard_mask(rows, guards)
        cells = []
        for _, m in scenarios:
            p, r, fp, tp = prf((sims[m] >= t) & ok[m], y[m])
            cells.append((p, r, fp, tp))
        out.append(
            f"| {label} | {cells[0][0]:.3f} / {cells[0][1]:.3f} | {cells[1][0]:.3f} / {cells[1][1]:.3f} | "
            f"{cells[2][2]} / {cells[2][3]} | {cells[3][0]:.3f} / {cells[3][1]:.3f} |",
        )

    out += ["", "## Threshold sweep (cosine + default guards)", ""]
    out.append("| threshold | dup vs nondup P / R | dup vs hard P / R | handwritten false hits | all P / R |")
    out.append("| --- | --- | --- | --- | --- |")
    curves: dict[str, list[tuple[float, float, float]]] = {}
    for th in THRESHOLDS:
        cells = []
        for name, m in scenarios:
            for kind, hit in (("cos", sims[m] >= th), ("guards", (sims[m] >= th) & passed[m])):
                p, r, fp, _ = prf(hit, y[m])
                curves.setdefault(f"{name} / {kind}", []).append((float(th), p, r))
                if kind == "guards":
                    cells.append((p, r, fp))
        if round(float(th) * 100) % 2 == 0:
            out.append(
                f"| {th:.2f} | {cells[0][0]:.3f} / {cells[0][1]:.3f} | {cells[1][0]:.3f} / {cells[1][1]:.3f} | "
                f"{cells[2][2]} | {cells[3][0]:.3f} / {cells[3][1]:.3f} |",
            )

    RESULTS.mkdir(exist_ok=True)
    png = RESULTS / "semantic_quality_pr.png"
    if plot(curves, png, t):
        out += ["", f"![precision/recall over thresholds]({png.name})"]
    (RESULTS / "semantic_quality.md").write_text("\n".join(out) + "\n")
    print("\n".join(out))


def plot(curves: dict[str, list[tuple[float, float, float]]], png: Path, default: float) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no PNG written")
        return False
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    for name, points in curves.items():
        if name.startswith("handwritten"):
            continue
        th, p, r = zip(*points, strict=True)
        style = "-" if name.endswith("guards") else "--"
        axes[0].plot(r, p, style, label=name)
        axes[1].plot(th, p, style, label=f"P: {name}")
    axes[0].set_xlabel("recall")
    axes[0].set_ylabel("precision")
    axes[0].set_title("precision / recall over thresholds 0.70-0.99")
    axes[0].grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    axes[1].axvline(default, color="grey", linestyle=":")
    axes[1].set_xlabel("cosine threshold")
    axes[1].set_ylabel("precision")
    axes[1].set_title(f"precision vs threshold (default {default})")
    axes[1].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    return True


if __name__ == "__main__":
    main()
