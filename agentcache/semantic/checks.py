"""The stages a semantic candidate passes after the vector search, and shadow verification of served hits.

Per candidate, in order (each one can only reject):

1. the cosine threshold (`threshold=`, default 0.65 with the judge, 0.80 without; never below the floor);
2. the guards (`guards=`): a changed number or date, negation, opposite words, swapped roles, proper nouns
   (without the judge, `GUARDS_WITHOUT_JUDGE`: also a number or date on one side only). With the judge on, a
   built-in guard's objection raises the judge score the pair needs to `GUARD_OVERRIDE` (0.98) instead of
   ending its chances: a rule on words misreads some rewordings ("US" / "American"); your own guards veto;
3. the pair judge (`judge=`, on by default): `agentcache.semantic.pairjudge` reads both queries together and
   its score must reach the operating point of the wrong-answer budget (`max_wrong=`, default 0.05,
   `agentcache.semantic.budget`), raised further for an entry that shadow checks caught serving a wrong
   answer. In a chat, the two queries' contexts are judged the same way (`agentcache.semantic.conversation`);
4. the user's `verify=` hook (sync or async), e.g. an LLM judge.

Shadow verification (`verify_sample=0.01`): for that share of semantic hits the real function runs too, its
answer is compared with the cached one (`compare=`: "normalized" by default, "exact", or a callable), and the
outcome is counted (`stats()`: shadow checks, wrong, and a 95% interval of the wrong rate). A partition whose
measured rate is significantly above its budget gets a stricter operating point, logged once.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import unicodedata
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from agentcache.errors import ConfigurationError, MissingDependencyError
from agentcache.semantic.budget import (
    DEFAULT_MAX_WRONG,
    GUARD_OVERRIDE,
    JUDGE_COSINE_FLOOR,
    Evidence,
    OperatingPoint,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from agentcache.semantic.guards import Guard
    from agentcache.semantic.pairjudge import PairJudge, Words

__all__ = [
    "NOTES_LAYER",
    "Comparator",
    "HitChecks",
    "answers_match",
    "normalize_answer",
    "notes_key",
]

#: How shadow verification compares a cached answer with the real one.
Comparator = Literal["exact", "normalized"] | Callable[[Any, Any], bool]

logger = logging.getLogger("agentcache")
NOTES_LAYER = "semjudge"  # the key layer of the judge's notes on a stored query (next to its vector record)
_SPACE = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]")


def notes_key(record_key: str) -> str:
    """The key of the judge's notes on the query of the vector record `record_key`."""
    from agentcache.semantic.partitions import VECTOR_LAYER

    return record_key.replace(f":{VECTOR_LAYER}:", f":{NOTES_LAYER}:", 1)


def normalize_answer(value: Any) -> Any:
    """Case, accents, punctuation and whitespace folded (strings, also inside lists/dicts); others unchanged."""
    if isinstance(value, str):
        text = unicodedata.normalize("NFKC", value).casefold()
        return _SPACE.sub(" ", _PUNCT.sub(" ", text)).strip()
    if isinstance(value, (list, tuple)):
        return [normalize_answer(v) for v in value]
    if isinstance(value, dict):
        return {k: normalize_answer(v) for k, v in value.items()}
    return value


def answers_match(cached: Any, fresh: Any, compare: Comparator) -> bool:
    """Whether a cached answer agrees with the real one under `compare`."""
    if callable(compare):
        return bool(compare(cached, fresh))
    if compare == "exact":
        return bool(cached == fresh)
    return bool(normalize_answer(cached) == normalize_answer(fresh))


Side = tuple[str, list[str]]  # a packed query text unpacked: (query, earlier turns)
_OUT_OF_REACH = 2.0  # a judge score no pair reaches


def _guard_need(guards: Sequence[Guard], cached: str, query: str) -> float:
    """The judge score a pair needs because of `guards`: 0 when none objects, `GUARD_OVERRIDE` when only
    built-in guards do, out of reach when one of the caller's own guards does."""
    from agentcache.semantic.guards import BUILT_IN_GUARDS

    need = 0.0
    for guard in guards:
        built_in = isinstance(guard, Hashable) and guard in BUILT_IN_GUARDS  # a user's guard may be unhashable
        if (need == 0.0 or not built_in) and guard(cached, query) is not None:
            if not built_in:
                return _OUT_OF_REACH
            need = GUARD_OVERRIDE
    return need


def _judged(
    judge: PairJudge,
    guards: Sequence[Guard],
    cached: Side,
    new: Side,
    need: float,
    notes: dict[str, Words] | None,
) -> float:
    """`HitChecks.decide` with the judge: the queries' score, then the turns paired by the guards and the judge."""
    from agentcache.semantic.conversation import contexts_agree, unpaired_turns

    scores = [judge.score(cached[0], new[0], notes=notes)]
    if scores[0] < need:
        return scores[0]
    unread = unpaired_turns(new[1], cached[1])
    if len(unread) > 1 and unpaired_turns(cached[1], new[1]):
        judge.words(unread)  # the pairing will read these new turns: one batched model run for all of them

    def same(a: str, b: str) -> bool:
        turn_need = max(need, _guard_need(guards, a, b))
        if turn_need > 1.0:
            return False
        # The judge is calibrated on pairs near enough to reach it: turns further apart score -1, simply different.
        _, score = judge.rate(a, b, notes=notes, floor=JUDGE_COSINE_FLOOR)
        if score >= turn_need:
            scores.append(score)
        return score >= turn_need

    return min(scores) if contexts_agree(cached, new, same) else -1.0


def _never(a: str, b: str) -> bool:
    return False


def _same_turns(cached: list[str], new: list[str]) -> bool:
    """Whether two contexts hold the same turns (ignoring case, punctuation and order): no judging needed."""
    from agentcache.semantic.conversation import unpaired_turns

    return len(cached) == len(new) and not unpaired_turns(cached, new)


@dataclass
class HitChecks:
    """The judge, budget, evidence and shadow sampling of one `semantic_cached` function."""

    name: str
    judge: PairJudge | bool | None = None  # None: on when the offline model is installed; False: off
    max_wrong: float = DEFAULT_MAX_WRONG
    verify_sample: float = 0.0
    compare: Comparator = "normalized"
    evidence: Evidence = field(default_factory=Evidence)
    _warned: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _random: random.Random = field(default_factory=random.Random)
    _points: dict[float, OperatingPoint] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 < self.max_wrong < 1.0:
            raise ConfigurationError(f"max_wrong must be within (0, 1), got {self.max_wrong}")
        if not 0.0 <= self.verify_sample <= 1.0:
            raise ConfigurationError(f"verify_sample must be within [0, 1], got {self.verify_sample}")
        if not (callable(self.compare) or self.compare in ("exact", "normalized")):
            raise ConfigurationError(f"compare must be 'exact', 'normalized' or a callable, not {self.compare!r}")

    @property
    def judging(self) -> bool:
        """Whether the pair judge stage is configured (it may still turn out to be unavailable)."""
        return self.judge is not False

    def default_threshold(self) -> float:
        """The cosine a candidate needs when `threshold=` is not given."""
        from agentcache.semantic.guards import DEFAULT_THRESHOLD

        return JUDGE_COSINE_FLOOR if self.judging else DEFAULT_THRESHOLD

    def _warn(self, what: str, message: str, *args: Any) -> None:
        with self._lock:
            if what in self._warned:
                return
            self._warned.add(what)
        logger.warning(message, *args)

    def _judge(self) -> PairJudge | None:
        if self.judge is False:
            return None
        if self.judge is None or self.judge is True:
            from agentcache.semantic.pairjudge import get_judge

            return get_judge()
        return self.judge

    def point(self, budget: float) -> OperatingPoint:
        """The operating point of `budget` on the calibration table of the judge in use."""
        found = self._points.get(budget)
        if found is None:
            from agentcache.semantic.budget import operating_point
            from agentcache.semantic.pairjudge import get_judge

            judge = self._judge() or get_judge()
            found = self._points[budget] = operating_point(budget, judge.model.calibration)
        return found

    def required(self, partition: str, entry: str) -> float:
        """The judge score a candidate of `partition` pointing at `entry` needs now."""
        budget = self.evidence.budget_of(partition, self.max_wrong)
        return max(self.point(budget).min_score, self.evidence.floor_of(entry))

    def notes(self, text: str, key: str) -> bytes | None:
        """The judge's notes on a query about to be stored (packed with its context), sealed under `key`.

        Best effort: `None` when the judge is off or unavailable (a lookup then runs the model instead).
        Blocking (may run the model): the async face calls it in a worker thread.
        """
        from agentcache.semantic.conversation import unpack
        from agentcache.semantic.pairjudge import encode_notes

        judge = self._judge()
        if judge is None:
            return None
        query, context = unpack(text)
        try:
            return encode_notes(key, judge.words([query, *context]))
        except Exception:  # notes only save time: never fail a store for them
            return None

    def read_notes(self, key: str, raw: bytes | None) -> dict[str, Words] | None:
        """The notes stored under `key` (`None` when absent or damaged: the judge then runs the model)."""
        if raw is None:
            return None
        from agentcache.errors import AgentCacheError
        from agentcache.semantic.pairjudge import decode_notes

        try:
            return decode_notes(key, raw)
        except AgentCacheError:
            return None

    def without_model(self, cached: str, query: str, notes: dict[str, Words] | None) -> bool:
        """Whether `accept` on this pair needs no model run: the judge is off, or every text it reads has its
        word states in `notes` (the cached side) or in the model's memory (the query, embedded just before).
        Then it is a fraction of a millisecond of CPU, and the async face runs it without a worker thread."""
        from agentcache.semantic._minilm import loaded_model
        from agentcache.semantic.conversation import unpack

        if self.judge is False:
            return True
        (cached_query, cached_turns), (new_query, new_turns) = unpack(cached), unpack(query)
        if not _same_turns(cached_turns, new_turns):
            return False  # the turns may need judging: the new chat's turns have not been read by the model
        model = loaded_model()
        if model is None:
            return False
        if cached_query == new_query:
            return True
        texts = [new_query] if cached_query in (notes or {}) else [cached_query, new_query]
        return model.has_states(texts)

    def accept(
        self,
        guards: Sequence[Guard],
        cached: str,
        query: str,
        partition: str,
        entry: str,
        *,
        notes: dict[str, Words] | None = None,
        guards_without_judge: Sequence[Guard] = (),
    ) -> tuple[bool, float]:
        """`(accepted, score)` of a candidate: `decide` at the score this partition and entry need now."""
        need = self.required(partition, entry) if self.judging else 0.0
        score = self.decide(guards, cached, query, need, notes=notes, guards_without_judge=guards_without_judge)
        return score >= need and score >= 0.0, score

    def decide(
        self,
        guards: Sequence[Guard],
        cached: str,
        query: str,
        need: float,
        *,
        notes: dict[str, Words] | None = None,
        guards_without_judge: Sequence[Guard] = (),
    ) -> float:
        """The judge score of `(cached, query)` (packed with their contexts), or -1 when refused outright.

        Refused: a guard objects to the queries (a built-in guard unless the judge scores them at least
        `GUARD_OVERRIDE`), or, in a chat, the earlier turns disagree
        (`agentcache.semantic.conversation.contexts_agree`, turns paired by the same guards and the judge at
        `need`). Without a judge (off or not installed) the score is 1 unless refused; `guards_without_judge`
        then stand in for it and turns pair only when identical. `notes`: the cached texts' word states stored
        with the entry (saves running the model on them). Blocking (may run the model): the async face calls it
        in a worker thread unless `without_model`.
        """
        from agentcache.semantic.conversation import contexts_agree, unpack
        from agentcache.semantic.guards import check_guards

        cached_side, new_side = unpack(cached), unpack(query)
        objection = _guard_need(guards, cached_side[0], new_side[0])
        if objection > 1.0:
            return -1.0
        judge = self._judge()
        if judge is not None:
            try:
                score = _judged(judge, guards, cached_side, new_side, max(need, objection), notes)
                return score if score >= objection else -1.0
            except MissingDependencyError as exc:
                if self.judge is not None:  # asked for explicitly: a missing model is a configuration error
                    raise
                self._warn(
                    "judge",
                    "agentcache: %s: the pair judge needs 'agentcache[semantic]' (%s); guards only",
                    self.name,
                    exc,
                )
        if objection > 0.0:
            return -1.0
        alone = [g for g in guards_without_judge if g not in guards]
        if check_guards(alone, cached_side[0], new_side[0]) is not None:
            return -1.0
        return 1.0 if contexts_agree(cached_side, new_side, _never) else -1.0

    def sample(self) -> bool:
        """Whether this semantic hit is shadow-verified."""
        return self.verify_sample > 0.0 and self._random.random() < self.verify_sample

    def record(self, partition: str, entry: str, score: float, cached: Any, fresh: Any) -> bool:
        """Compare a shadow-verified hit's answers and count the outcome; return whether they matched."""
        try:
            correct = answers_match(cached, fresh, self.compare)
        except Exception as exc:  # a failing comparator must not fail the call
            self._warn("compare", "agentcache: %s: compare= raised %r; shadow check skipped", self.name, exc)
            return True
        if self.evidence.record(partition, entry, score, correct, self.max_wrong):
            budget = self.evidence.budget_of(partition, self.max_wrong)
            self._warn(
                f"tight:{partition}",
                "agentcache: %s: shadow checks measured more wrong answers than max_wrong=%s in partition %s; "
                "its budget is now %s (judge score >= %.3f)",
                self.name,
                self.max_wrong,
                partition,
                budget,
                self.point(budget).min_score,
            )
        return correct
