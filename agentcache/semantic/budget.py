"""Wrong-answer budgets: the judge score a semantic hit needs, chosen from calibration data and evidence.

`semantic_cached(max_wrong=0.05)` does not take a similarity threshold on faith. The pair judge's shipped
calibration table (`data/pair_judge.json`: cross-validated scores of the project's own hand-written
paraphrases and one-word traps) says, for each candidate score threshold, which share of *look-alike*
questions (traps that reach the judge) would be served the wrong answer. `operating_point` picks the lowest
threshold whose estimated wrong rate, counted conservatively as ``(wrong + 1) / (traps + 1)``, stays within
the budget: the most hits the budget allows. Rows of the `RELATED` category (another question on the same topic,
which the judge is fitted on so that it refuses a merely nearby question) are held to the same budget *separately*
from the traps one detail away: the threshold is the stricter of the two, so neither kind dilutes the other.

Evidence then adjusts it per partition and per entry (the idea of per-entry thresholds from the vCache paper;
none of its code): shadow checks (`verify_sample=`) that find a served hit wrong raise the required score of
the entry that gave it, and a partition whose measured wrong rate is significantly above the budget moves to
the operating point of half its current budget (logged once).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from agentcache.errors import ConfigurationError
from agentcache.stats.counters import wilson

__all__ = [
    "DEFAULT_MAX_WRONG",
    "GUARD_OVERRIDE",
    "Evidence",
    "RELATED",
    "OperatingPoint",
    "operating_point",
]

#: The wrong-answer budget of `semantic_cached` when `max_wrong=` is not given.
DEFAULT_MAX_WRONG = 0.05
#: The cosine similarity a candidate needs before the judge reads it (the judge's calibration uses the same).
JUDGE_COSINE_FLOOR = 0.65
#: The judge score that outweighs a built-in guard's objection (`agentcache.semantic.guards`): a pair a guard
#: objects to is served only when the judge is this sure. Chosen on the cross-validated scores of the project's
#: pairs (`benchmarks/fit_pair_judge.py` prints how many vetoed traps and paraphrases reach each level).
GUARD_OVERRIDE = 0.98
# A shadow-checked hit found wrong raises its entry's required score this far above the score it was served at.
ENTRY_MARGIN = 0.05
#: The calibration category of a different question on the same topic (budgeted apart from one-detail traps).
RELATED = "related"
MIN_CHECKS = 20  # shadow checks in a partition before its measured rate can tighten its operating point

logger = logging.getLogger("agentcache")

Calibration = Sequence[tuple[float, float, bool, str]]  # (judge score, cosine, same answer?, category)


@dataclass(frozen=True)
class OperatingPoint:
    """A judge threshold and what the calibration data says it costs and gives."""

    max_wrong: float  # the budget it was chosen for
    min_score: float  # a hit needs a judge score at least this
    cosine_floor: float  # ... and a cosine at least this
    wrong_rate: float  # estimated share of look-alikes served (conservative: (wrong + 1) / (traps + 1))
    served_rate: float  # share of should-hit paraphrases served on the calibration pairs


def operating_point(
    max_wrong: float, calibration: Calibration, *, cosine_floor: float = JUDGE_COSINE_FLOOR
) -> OperatingPoint:
    """The lowest judge threshold whose estimated look-alike wrong rate is within `max_wrong`."""
    if not 0.0 < max_wrong < 1.0:
        raise ConfigurationError(f"max_wrong must be within (0, 1), got {max_wrong}")
    scored = [(s if c >= cosine_floor else -1.0, y, k == RELATED) for s, c, y, k in calibration]
    traps = sorted((s for s, y, related in scored if not y and not related), reverse=True)
    related = sorted((s for s, y, is_related in scored if not y and is_related), reverse=True)
    hits = [s for s, y, _ in scored if y]
    if not traps or not hits:
        raise ConfigurationError("the calibration data needs both should-hit pairs and traps")
    # Each kind of wrong answer is held to the budget on its own, so many easy rows of one kind cannot
    # dilute the rate of the other.
    best = max(_lowest_threshold(traps, max_wrong), _lowest_threshold(related, max_wrong) if related else 0.0)
    wrong = max(_estimate(traps, best), _estimate(related, best) if related else 0.0)
    served = sum(1 for s in hits if s >= best) / len(hits)
    return OperatingPoint(max_wrong, min(best, 1.0), cosine_floor, wrong, served)


def _lowest_threshold(negatives: list[float], max_wrong: float) -> float:
    """The lowest score threshold serving at most `max_wrong` of `negatives` (sorted high to low), counted
    conservatively as ``(served + 1) / (negatives + 1)``."""
    best = 1.0 + 1e-9
    for allowed in range(len(negatives) + 1):
        if (allowed + 1) / (len(negatives) + 1) > max_wrong:
            break
        # Serving `allowed` of them: the threshold sits just above the (allowed+1)-th highest score.
        best = negatives[allowed] + 1e-9 if allowed < len(negatives) else 0.0
    return max(best, 0.0)


def _estimate(negatives: list[float], threshold: float) -> float:
    return (sum(1 for s in negatives if s >= threshold) + 1) / (len(negatives) + 1)


@dataclass
class _PartitionEvidence:
    checks: int = 0
    wrong: int = 0
    budget: float | None = None  # the tightened budget, once the measured rate exceeded the configured one


@dataclass
class Evidence:
    """Shadow-check outcomes of one cached function: per partition, per entry, and in total."""

    checks: int = 0
    wrong: int = 0
    partitions: dict[str, _PartitionEvidence] = field(default_factory=dict)
    entry_floor: dict[str, float] = field(default_factory=dict)  # entry key -> score it now needs
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, partition: str, entry: str, score: float, correct: bool, max_wrong: float) -> bool:
        """Count one shadow check; return `True` when this check tightened the partition's budget."""
        with self.lock:
            self.checks += 1
            part = self.partitions.setdefault(partition, _PartitionEvidence())
            part.checks += 1
            if correct:
                return False
            self.wrong += 1
            part.wrong += 1
            self.entry_floor[entry] = max(self.entry_floor.get(entry, 0.0), min(1.0, score + ENTRY_MARGIN))
            budget = part.budget if part.budget is not None else max_wrong
            low, _ = wilson(part.wrong, part.checks)
            if part.checks >= MIN_CHECKS and low > budget:
                part.budget = budget / 2
                return True
            return False

    def budget_of(self, partition: str, max_wrong: float) -> float:
        """The budget in force for `partition` (the configured one unless evidence tightened it)."""
        part = self.partitions.get(partition)
        return max_wrong if part is None or part.budget is None else part.budget

    def floor_of(self, entry: str) -> float:
        """The judge score an entry needs because of its own record (0 when none)."""
        return self.entry_floor.get(entry, 0.0)

    def summary(self) -> dict[str, float | int]:
        """Measured wrong-answer rate of shadow-checked hits, with its 95% Wilson interval."""
        with self.lock:
            low, high = wilson(self.wrong, self.checks)
            rate = self.wrong / self.checks if self.checks else 0.0
            tightened = sum(1 for p in self.partitions.values() if p.budget is not None)
            return {
                "checks": self.checks,
                "wrong": self.wrong,
                "wrong_rate": rate,
                "ci_low": low,
                "ci_high": high,
                "tightened_partitions": tightened,
            }
