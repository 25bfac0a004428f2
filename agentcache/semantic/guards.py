"""Guards against look-alike hits: two questions can be close in embedding space and still differ.

A guard is `(cached_query, new_query) -> reason | None`: it returns a short reason to reject the hit, or
`None` to let it through. The defaults are cheap lexical vetoes for a *changed* detail (see
`benchmarks/results/semantic_quality.md`): both texts name a number or a date and they differ (the same
value written another way, "3rd" / "3" / "third", "World War II" / "Second World War", "3 pm" / "15:00", is
the same), one is negated and the other not, opposite words, swapped roles ("100 dollars to euros" / "100
euros to dollars"), or each text names a proper noun the other lacks (an acronym matches the words it
abbreviates: "WWII", "US"). While the pair judge runs, a negation vetoes only a minimal pair (texts sharing
most of their words); inside a rewording the judge reads it in context. A detail present on one side only is
left to the pair judge (`agentcache.semantic.pairjudge`), which weighs it in context; a `Verifier` (e.g. an LLM
judge) can add a further check.

The deployment-wide threshold floor (`set_threshold_floor`, or `AGENTCACHE_SEMANTIC_FLOOR`) is a lower
bound no per-call `threshold=` can go below.
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from agentcache.errors import ConfigurationError

__all__ = [
    "DEFAULT_GUARDS",
    "DEFAULT_THRESHOLD",
    "GUARDS_WITHOUT_JUDGE",
    "NEGATION_OVERLAP",
    "Guard",
    "Verifier",
    "added_detail_guard",
    "antonym_guard",
    "check_guards",
    "date_guard",
    "effective_threshold",
    "entity_guard",
    "entity_swap_guard",
    "minimal_negation_guard",
    "negation_guard",
    "number_guard",
    "role_swap_guard",
    "set_threshold_floor",
    "threshold_floor",
]

#: The default cosine threshold for the local MiniLM embedder (chosen on the dev pairs).
DEFAULT_THRESHOLD = 0.80


class Guard(Protocol):
    """Decides whether a candidate hit may be served: returns a rejection reason, or `None` to accept."""

    def __call__(self, cached: str, query: str, /) -> str | None:
        """Compare the cached entry's query text with the new query text."""
        ...


#: An extra check after the guards, e.g. an LLM judge: `(cached, query, similarity) -> accept?`.
#: It may be async; it is only called for candidates that passed the threshold and the guards.
Verifier = Callable[[str, str, float], "bool | Awaitable[bool]"]

_TOKEN = re.compile(r"[A-Za-z0-9\u00C0-\u024F]+(?:[.,'][A-Za-z0-9]+)*")


def _words(text: str) -> list[str]:
    return text.split()


_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        _words(
            "zero _one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
            "sixteen seventeen eighteen nineteen twenty"
        ),
    )
}
del _NUMBER_WORDS["_one"]  # "one" is mostly a pronoun ("how does one prepare"); "1" is kept
_NUMBER_WORDS.update({"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70"})
_NUMBER_WORDS.update({"eighty": "80", "ninety": "90", "hundred": "100", "thousand": "1000"})
_NUMBER_WORDS.update({"million": "1e6", "billion": "1e9", "dozen": "12", "half": "0.5"})
_ORDINALS = {
    w: str(i) for i, w in enumerate(_words("zeroth first second third fourth fifth sixth seventh eighth ninth tenth"))
}
del _ORDINALS["first"]  # mostly not a count ("my first job", "the first symptoms"); "1st" is kept
_ROMAN = re.compile(r"^(?:II|III|IV|VI|VII|VIII|IX|XI|XII|XIII|XIV|XV|XX)$")

_MONTHS = frozenset(
    _words(
        "january february march april june july august september october november december "
        "jan feb mar apr jun jul aug sep sept oct nov dec"
    ),
)
_DAYS = frozenset(_words("monday tuesday wednesday thursday friday saturday sunday weekend weekday"))
# "today"/"now" are mostly filler ("how many users today?"); tomorrow/yesterday/tonight name a day.
_RELATIVE = frozenset(_words("tonight tomorrow yesterday"))
_PERIODS = frozenset(_words("day week month year quarter decade century morning evening night"))

_NEGATIONS = frozenset(_words("not no never cannot nobody nothing none neither nor nowhere without"))

_ANTONYMS: tuple[tuple[str, str], ...] = tuple(
    (left, right)
    for left, _, right in (
        pair.partition("/")
        for pair in _words(
            "begin/end start/end start/finish start/stop accept/decline accept/reject create/delete "
            "create/remove add/remove add/delete install/uninstall enable/disable increase/decrease buy/sell "
            "import/export upload/download encrypt/decrypt encode/decode push/pull boil/freeze hot/cold high/low "
            "max/min maximum/minimum best/worst before/after open/close win/lose gain/lose "
            "advantage/disadvantage pro/con love/hate rise/fall true/false positive/negative public/private "
            "public/anonymous input/output send/receive lend/borrow cheap/expensive fast/slow long/short "
            "early/late inside/outside above/below male/female man/woman men/women husband/wife boy/girl "
            "first/last more/less most/least legal/illegal happy/sad sync/async synchronous/asynchronous "
            "lock/unlock mount/unmount subscribe/unsubscribe follow/unfollow block/unblock ascending/descending "
            "asc/desc north/south east/west bigger/smaller larger/smaller higher/lower faster/slower "
            "on/off include/exclude inclusive/exclusive allow/forbid allow/prohibit show/hide connect/disconnect "
            "upgrade/downgrade mute/unmute pause/resume arrive/depart arrival/departure inbound/outbound "
            "maximize/minimize overweight/underweight upper/lower heat/cool warm/cool wet/dry light/dark "
            "up/down over/under keep/discard keep/delete safe/unsafe safe/dangerous safe/toxic allow/ban "
            "raise/lower increase/reduce increase/lower more/fewer"
        )
    )
)
# Irregular forms of the verbs above ("won" / "lost" contrast as "win" / "lose" do).
_IRREGULAR = {
    base: tuple(_words(forms))
    for base, forms in (
        ("win", "won"),
        ("lose", "lost"),
        ("buy", "bought"),
        ("sell", "sold"),
        ("send", "sent"),
        ("lend", "lent"),
        ("begin", "began begun"),
        ("rise", "rose risen"),
        ("fall", "fell fallen"),
        ("forbid", "forbade forbidden"),
        ("hide", "hid hidden"),
        ("show", "shown"),
        ("freeze", "froze frozen"),
        ("keep", "kept"),
        ("allow", "allowed"),
        ("ban", "banned banning"),
    )
}
# Prepositions after which a word names a role (target, source, opponent, agent); a word moving from one
# role to another between the two queries means the question was reversed.
_ROLE_PREPS = frozenset(_words("to into from against than by vs versus"))
_STOP = frozenset(_words("a an the my your our their his her its this that these those some any"))
_NOT_ENTITIES = frozenset(
    _words(
        "i i'm i've i'd i'll what how why when where which who whom whose is are am was were do does did "
        "can could should would will shall may might must have has had the a an if in on at for of and or "
        "but so to it its please hi hey ok okay mr mrs ms dr st jr sr rs vs"
    ),
)
_APOSTROPHE_S = ("'s", "\u2019s")


@dataclass(frozen=True)
class _Parsed:
    words: tuple[str, ...]  # lowercased tokens, in order
    original: tuple[str, ...]  # tokens as written
    starts: frozenset[int]  # indexes of tokens that begin a sentence


@lru_cache(maxsize=4096)
def _parse(text: str) -> _Parsed:
    original: list[str] = []
    starts: set[int] = set()
    boundary = True
    pos = 0
    for match in _TOKEN.finditer(text):
        between = text[pos : match.start()]
        if any(c in between for c in '.?!:;\n"(') and between.strip():
            boundary = True
        if boundary:
            starts.add(len(original))
            boundary = False
        written = match.group()
        if written.endswith(_APOSTROPHE_S):
            written = written[:-2]
        original.append(written)
        pos = match.end()
    return _Parsed(tuple(w.lower() for w in original), tuple(original), frozenset(starts))


def _normalize_number(written: str) -> str | None:
    lowered = written.lower()
    if lowered in _NUMBER_WORDS:
        return _NUMBER_WORDS[lowered]
    if lowered in _ORDINALS:
        return _ORDINALS[lowered]
    if _ROMAN.match(written):
        return str(_roman_value(written))
    digits = re.match(r"^(\d[\d,]*(?:\.\d+)*)(st|nd|rd|th|k|m|s|am|pm)?$", lowered)
    if digits is None:
        groups = re.findall(r"\d+(?:\.\d+)?", lowered)
        # A unit or label glued to the number ("2GB", "Q3", "2FA") does not change its value.
        return ".".join(groups) if groups else None
    value, suffix = digits.group(1), digits.group(2) or ""
    if "," in value and not re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", value) and value.count(",") == 1:
        value = value.replace(",", ".")  # a decimal comma ("38,5"); "1,000" groups thousands
    value = value.replace(",", "")
    if value.count(".") == 1:
        value = value.rstrip("0").rstrip(".") if "." in value else value
    if suffix in ("am", "pm"):
        return value + suffix
    # An ordinal, a Roman numeral and a cardinal name the same value ("March 3rd" / "March 3",
    # "World War II" / "the Second World War"): only a different value is a different question.
    return value + {"k": "000", "m": "000000"}.get(suffix, "")


def _roman_value(numeral: str) -> int:
    values = {"I": 1, "V": 5, "X": 10}
    total = 0
    for i, c in enumerate(numeral):
        v = values[c]
        total += -v if i + 1 < len(numeral) and values[numeral[i + 1]] > v else v
    return total


_TENS = frozenset(_words("twenty thirty forty fifty sixty seventy eighty ninety"))
_UNITS = {w: i for i, w in enumerate(_words("_ one two three four five six seven eight nine")) if i}
# A clock time: "7 am", "7am", "3 p.m.", "6:30 am", "15:00".
_CLOCK = re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s?([ap])\.?\s?m\b\.?|\b(\d{1,2}):(\d{2})\b", re.IGNORECASE)
_DAY_MINUTES = 24 * 60


@dataclass(frozen=True)
class _Value:
    """A number or a clock time as written, with every value it can be read as."""

    written: str
    readings: frozenset[str] = frozenset()  # a number: "401k" reads as 401000 and as 401 (the plan)
    minutes: frozenset[int] = frozenset()  # a clock time: minutes after midnight ("6:30" is 6:30 or 18:30)


def _clock(match: re.Match[str]) -> _Value:
    hour, minute, meridiem = match.group(1) or match.group(4), match.group(2) or match.group(5) or "0", match.group(3)
    h, m = int(hour), int(minute)
    if meridiem:
        h = h % 12 + (12 if meridiem.lower() == "p" else 0)
        return _Value(match.group(), minutes=frozenset({(h * 60 + m) % _DAY_MINUTES}))
    hours = {h % 12, h % 12 + 12} if h <= 12 else {h}  # no am/pm: either half of the day
    return _Value(match.group(), minutes=frozenset((x * 60 + m) % _DAY_MINUTES for x in hours))


def _same_value(x: _Value, y: _Value) -> bool:
    if x.minutes and y.minutes:
        return bool(x.minutes & y.minutes)
    if x.minutes or y.minutes:  # a time and a bare number: "at 7" / "at 7 am", "at 3" / "at 15:00"
        time, number = (x, y) if x.minutes else (y, x)
        hours = {int(r) for r in number.readings if r.isdigit() and int(r) <= 24}
        return bool(time.minutes & {(h % 12 + half) * 60 for h in hours for half in (0, 12)})
    return bool(x.readings & y.readings)


@lru_cache(maxsize=4096)
def _numbers(text: str) -> tuple[_Value, ...]:
    """The numbers and clock times of `text`: digits, number words ("thirty-five"), ordinals, numerals."""
    found = [_clock(m) for m in _CLOCK.finditer(text)]
    p = _parse(_CLOCK.sub(" ", text))
    i = 0
    while i < len(p.original):
        written = p.original[i]
        if p.words[i] in _TENS and i + 1 < len(p.words) and p.words[i + 1] in _UNITS:  # "twenty-one", "forty five"
            value = int(_NUMBER_WORDS[p.words[i]]) + _UNITS[p.words[i + 1]]
            found.append(_Value(f"{written}-{p.original[i + 1]}", frozenset({str(value)})))
            i += 2
            continue
        n = _normalize_number(written)
        if n is not None:
            readings = {n}
            if re.fullmatch(r"\d+k", written.lower()):
                readings.add(written[:-1])  # "401k" is also the 401(k) plan, not only 401,000
            found.append(_Value(written, frozenset(readings)))
        elif written == "I" and i not in p.starts and i - 1 not in p.starts and p.original[i - 1][:1].isupper():
            found.append(_Value(written, frozenset({"1"})))  # "World War I", not the pronoun
        i += 1
    return tuple(found)


def _unmatched_values(a: tuple[_Value, ...], b: tuple[_Value, ...]) -> list[str]:
    """The values of either side that no value of the other side can be read as."""
    return sorted(
        {x.written for x in a if not any(_same_value(x, y) for y in b)}
        | {y.written for y in b if not any(_same_value(y, x) for x in a)}
    )


def number_guard(cached: str, query: str, /) -> str | None:
    """Reject when both texts mention numbers and they differ (digits, number words, ordinals, numerals).

    The same value written another way is not a difference: "35" / "thirty-five", "3 pm" / "15:00",
    "7 am" / "at 7", "38,5" / "38.5", "401k" / "401(k)". A number on one side only is usually added context
    ("run it every night" / "at 2 am every night"); whether that detail changes the answer is the pair judge's
    call, not a veto.
    """
    a, b = _numbers(cached), _numbers(query)
    if a and b and (differ := _unmatched_values(a, b)):
        return f"numbers differ: {differ}"
    return None


_MONTH_NAMES = _words("january february march april may june july august september october november december")
# The same date written another way: "Dec" / "December", "this Saturday" / "Saturday", "tonight" / "this evening".
_DATE_ALIASES = {
    **{name[:3]: name for name in _MONTH_NAMES},
    "sept": "september",
    "previous": "last",
    "coming": "next",
    "this evening": "tonight",
    "this night": "tonight",
}


def _dates(p: _Parsed) -> frozenset[str]:
    found = set()
    for i, (word, written) in enumerate(zip(p.words, p.original, strict=True)):
        if word in _MONTHS or word in _DAYS or word in _RELATIVE or (written == "May" and i not in p.starts):
            found.add(_DATE_ALIASES.get(word, word).rstrip("s"))
        elif word in ("next", "last", "this", "previous", "coming") and i + 1 < len(p.words):
            following = p.words[i + 1].rstrip("s")
            if following in _PERIODS or following in _DAYS:
                phrase = f"{_DATE_ALIASES.get(word, word)} {following}"
                found.add(_DATE_ALIASES.get(phrase, phrase))
    # "this Saturday" is the coming Saturday, as "Saturday" alone is
    return frozenset(d.removeprefix("this ") if d.removeprefix("this ") in found else d for d in found)


def date_guard(cached: str, query: str, /) -> str | None:
    """Reject when both texts name dates or periods (months, weekdays, tomorrow, next week) and they differ.

    A date on one side only is left to the pair judge, as for `number_guard`.
    """
    a, b = _dates(_parse(cached)), _dates(_parse(query))
    if a and b and a != b:
        return f"dates differ: {sorted(a ^ b)}"
    return None


def _negated(p: _Parsed) -> bool:
    count = 0
    for i, w in enumerate(p.words):
        # "... or not?" / "why or why not" ask both ways: not a negated question.
        if (w in _NEGATIONS or w.endswith("n't")) and not (w == "not" and i and p.words[i - 1] in ("or", "why")):
            count += 1
    return count % 2 == 1


def negation_guard(cached: str, query: str, /) -> str | None:
    """Reject when exactly one of the texts is negated (an odd number of negations)."""
    if _negated(_parse(cached)) != _negated(_parse(query)):
        return "negation differs"
    return None


#: With the pair judge on, a negation difference vetoes only texts that share at least this much of their words
#: (weighted by rarity, `pairjudge.word_overlap`): a minimal pair such as "Which plans include phone support?" /
#: "Which plans don't include phone support?" (0.90). A question reworded around a negation ("without food" /
#: "on an empty stomach", 0.15) is left to the judge. Chosen by grouped cross-validation on the own pairs (0.3 and
#: 0.4 measured: 0.4 let 10.3% of the negation traps through, 0.3 8.3%).
NEGATION_OVERLAP = 0.3


def minimal_negation_guard(cached: str, query: str, /) -> str | None:
    """`negation_guard` for texts that otherwise share most of their words (`NEGATION_OVERLAP`); the judge
    weighs a negation that is part of a rewording."""
    if negation_guard(cached, query) is None:
        return None
    from agentcache.semantic.pairjudge import word_overlap

    return "negation differs" if word_overlap(cached, query) >= NEGATION_OVERLAP else None


@lru_cache(maxsize=1)
def _antonym_forms() -> dict[str, frozenset[str]]:
    """Map each inflected form to the opposite base words it contrasts with."""

    def forms(base: str) -> set[str]:
        out = {base, base + "s", base + "es", base + "ed", base + "d", base + "ing", base + "er"}
        out |= set(_IRREGULAR.get(base, ()))
        if base.endswith("e"):
            out |= {base[:-1] + "ing"}
        out |= {base + base[-1] + "ing", base + base[-1] + "ed"}
        return out

    table: dict[str, set[str]] = {}
    for left, right in _ANTONYMS:
        for form in forms(left):
            table.setdefault(form, set()).add(right)
        for form in forms(right):
            table.setdefault(form, set()).add(left)
    base_of = {form: base for left, right in _ANTONYMS for base in (left, right) for form in forms(base)}
    return {form: frozenset(opposites | {"=" + base_of[form]}) for form, opposites in table.items()}


def _bases(p: _Parsed) -> dict[str, frozenset[str]]:
    table = _antonym_forms()
    out: dict[str, frozenset[str]] = {}
    for word in p.words:
        entry = table.get(word)
        if entry is not None:
            base = next(e[1:] for e in entry if e.startswith("="))
            out[base] = frozenset(e for e in entry if not e.startswith("="))
    return out


def antonym_guard(cached: str, query: str, /) -> str | None:
    """Reject when one text uses a word and the other its opposite (begin/end, accept/decline, ...)."""
    a, b = _bases(_parse(cached)), _bases(_parse(query))
    for base, opposites in a.items():
        if base in b:
            continue
        for opposite in opposites:
            if opposite in b and opposite not in a:
                return f"opposite words: {base!r} / {opposite!r}"
    return None


_PHRASE_WORDS = 3  # words of the phrase after a role preposition that take its role ("from a Docker container")


def _roles(p: _Parsed) -> dict[str, str]:
    roles: dict[str, str] = {}
    for i, word in enumerate(p.words[:-1]):
        if word not in _ROLE_PREPS:
            continue
        j = i + 1
        while j < len(p.words) and p.words[j] in _STOP:
            j += 1
        for k in range(j, min(j + _PHRASE_WORDS, len(p.words))):
            if _function_word(p.words[k]) or (k > j and k in p.starts):
                break
            roles.setdefault(p.words[k], word)
    return roles


def _function_word(word: str) -> bool:
    return word in _ROLE_PREPS or word in _STOP or word in _NOT_ENTITIES


def role_swap_guard(cached: str, query: str, /) -> str | None:
    """Reject when words trade roles ("X to Y" / "Y to X", "A against B" / "B against A")."""
    pa, pb = _parse(cached), _parse(query)
    ra, rb = _roles(pa), _roles(pb)
    wa, wb = set(pa.words), set(pb.words)
    both = {w for w in wa & wb if not _function_word(w)}
    moved = {w for w in both if ra.get(w) != rb.get(w)}
    # One word changing its preposition is a paraphrase ("SSH into" / "connect to"); a reversal is a word
    # leaving a role that another word, also present in both texts, takes over.
    for left in sorted(moved):
        role = ra.get(left)
        if role is None:
            continue
        for right in sorted(moved - {left}):
            if rb.get(right) == role:
                return f"roles swapped: {left!r} / {right!r}"
    return None


def _entities(p: _Parsed) -> frozenset[str]:
    found = set()
    for i, written in enumerate(p.original):
        lowered = p.words[i]
        if i in p.starts or len(written) < 2 or lowered in _NOT_ENTITIES or lowered in _NUMBER_WORDS:
            continue
        if _ROMAN.match(written):
            continue  # a numeral ("World War II"), compared by `number_guard`
        if written[:1].isupper() or any(c.isupper() for c in written[1:]):
            found.add(lowered)
    return frozenset(found)


def _mentions(entity: str, words: Iterable[str]) -> bool:
    for word in words:
        if word == entity:
            return True
        short, long = (entity, word) if len(entity) <= len(word) else (word, entity)
        # Inflections and demonyms (America/Americans, US/USD) match; Java/JavaScript does not.
        if long.startswith(short) and (len(long) - len(short) <= (3 if len(short) >= 4 else 1)):
            return True
        # Shared stems (Olympians/Olympic) and one-letter typos (Hilary/Hillary); Austria/Australia differ.
        if len(short) >= 5 and _common_prefix(short, long) >= 0.8 * len(short):
            return True
        if len(short) >= 5 and len(long) - len(short) <= 1 and _one_edit(short, long):
            return True
    return False


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _one_edit(a: str, b: str) -> bool:
    """Whether `b` is `a` with one character inserted or substituted (len(b) - len(a) in {0, 1})."""
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) <= 1
    return any(b[:i] + b[i + 1 :] == a for i in range(len(b)))


def _acronym_words(acronym: str, words: Sequence[str]) -> set[int]:
    """Indexes of a run of `words` that `acronym` abbreviates: one initial per word, or a whole short word
    ("WWII" = World War II, "NYC" = New York City); empty when none does."""

    def cover(rest: str, j: int) -> list[int] | None:
        if not rest:
            return []
        if j >= len(words) or not words[j]:
            return None
        for used in {len(words[j]), 1} if len(words[j]) <= 3 else {1}:
            if rest[:used] == words[j][:used]:
                tail = cover(rest[used:], j + 1)
                if tail is not None:
                    return [j, *tail]
        return None

    for start, word in enumerate(words):
        if word[:1] == acronym[:1]:
            run = cover(acronym, start)
            if run is not None and len(run) >= 2:
                return set(run)
    return set()


def _acronyms(p: _Parsed) -> list[str]:
    return [w for w, written in zip(p.words, p.original, strict=True) if 2 <= len(written) <= 6 and written.isupper()]


def _unmatched(p: _Parsed, other: _Parsed) -> list[str]:
    spelled_out: set[str] = set()
    for acronym in _acronyms(other):
        spelled_out |= {p.words[i] for i in _acronym_words(acronym, p.words)}
    return sorted(
        e
        for e in _entities(p)
        if e not in spelled_out and not _mentions(e, other.words) and not _acronym_words(e, other.words)
    )


def entity_swap_guard(cached: str, query: str, /) -> str | None:
    """Reject when each text has a proper noun the other lacks ("capital of France" / "of Spain").

    A word only counts as a proper noun when it is capitalized *inside* a sentence ("Python code" at the
    start is not one); matching ignores case and inflection, so "paris" matches "Paris" and "Americans"
    matches "American". A name present on one side only ("Elvis Presley" / "Elvis") is not rejected:
    on the dev pairs that rule cost far more true hits than it saved (see the quality benchmark).
    """
    pa, pb = _parse(cached), _parse(query)
    only_a, only_b = _unmatched(pa, pb), _unmatched(pb, pa)
    if only_a and only_b:
        return f"entities differ: {only_a[0]!r} / {only_b[0]!r}"
    return None


def entity_guard(cached: str, query: str, /) -> str | None:
    """Stricter `entity_swap_guard`: also reject when a proper noun appears on one side only."""
    pa, pb = _parse(cached), _parse(query)
    only_a, only_b = _unmatched(pa, pb), _unmatched(pb, pa)
    if only_a or only_b:
        return f"entity on one side only: {(only_a or only_b)[0]!r}"
    return None


def added_detail_guard(cached: str, query: str, /) -> str | None:
    """Reject when a number or a date appears in one text only ("Book a table" / "Book a table for Friday").

    Used when no pair judge runs (`GUARDS_WITHOUT_JUDGE`): the judge weighs such a detail in context, and
    it is often harmless ("run it every night" / "at 2 am every night").
    """
    numbers_a, numbers_b = _numbers(cached), _numbers(query)
    if bool(numbers_a) != bool(numbers_b):
        return f"number on one side only: {sorted(v.written for v in numbers_a + numbers_b)}"
    dates_a, dates_b = _dates(_parse(cached)), _dates(_parse(query))
    if bool(dates_a) != bool(dates_b):
        return f"date on one side only: {sorted(dates_a ^ dates_b)}"
    return None


#: The guards `semantic_cached` applies unless told otherwise, before the pair judge: vetoes for a detail
#: that *changed* between the two texts.
DEFAULT_GUARDS: tuple[Guard, ...] = (
    number_guard,
    date_guard,
    minimal_negation_guard,
    antonym_guard,
    role_swap_guard,
    entity_swap_guard,
)
#: The default guards when no pair judge runs (`judge=False`, or `agentcache[semantic]` not installed): any
#: negation difference, and a number or date present on one side only, are vetoed too.
GUARDS_WITHOUT_JUDGE: tuple[Guard, ...] = (
    number_guard,
    date_guard,
    negation_guard,
    antonym_guard,
    role_swap_guard,
    entity_swap_guard,
    added_detail_guard,
)

#: Every guard defined here. With the pair judge on, a judge score of `budget.GUARD_OVERRIDE` outweighs their
#: objection (a rule on words misreads some rewordings: "US" / "American", "can't remember" / "forgot"); a guard
#: of your own always vetoes.
BUILT_IN_GUARDS: frozenset[Guard] = frozenset(
    {
        number_guard,
        date_guard,
        negation_guard,
        minimal_negation_guard,
        antonym_guard,
        role_swap_guard,
        entity_swap_guard,
        entity_guard,
        added_detail_guard,
    }
)


def check_guards(guards: Sequence[Guard], cached: str, query: str) -> str | None:
    """Run `guards` in order; return the first rejection reason, or `None` if every guard accepts."""
    for guard in guards:
        reason = guard(cached, query)
        if reason is not None:
            return reason
    return None


_floor: float | None = None


def set_threshold_floor(floor: float | None) -> None:
    """Set the deployment-wide lower bound on semantic thresholds (`None` removes it)."""
    global _floor
    if floor is not None and not 0.0 <= floor <= 1.0:
        raise ConfigurationError(f"threshold floor must be within [0, 1], got {floor}")
    _floor = floor


def threshold_floor() -> float:
    """The current floor: `set_threshold_floor`'s value, else `AGENTCACHE_SEMANTIC_FLOOR`, else 0."""
    if _floor is not None:
        return _floor
    raw = os.environ.get("AGENTCACHE_SEMANTIC_FLOOR")
    if not raw:
        return 0.0
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigurationError(f"AGENTCACHE_SEMANTIC_FLOOR must be a number, got {raw!r}") from exc


def effective_threshold(requested: float | None) -> float:
    """The threshold a lookup uses: `requested` (or `DEFAULT_THRESHOLD`), never below the floor."""
    value = DEFAULT_THRESHOLD if requested is None else requested
    if not 0.0 <= value <= 1.0:
        raise ConfigurationError(f"threshold must be within [0, 1], got {value}")
    return max(value, threshold_floor())
