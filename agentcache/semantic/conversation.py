"""Conversation-aware semantic keys: the last user turn, read in the context of the turns it depends on.

For a chat `messages` list the *query* is the last user message. What else is compared:

* **Hard partition (hashed exactly):** the system/developer messages, every message after the query (tool
  results, assistant prefill), the model, tools and every other argument, the namespace (tenant) and the
  embedding model. A hit never crosses them.
* **Context (compared by meaning, not hashed):** the earlier *user* turns, at most `WINDOW` of them, without
  small talk (a turn with no content word: "hi", "thanks!", "ok great"). Which turns these are does not depend
  on how the query is worded, so a reworded follow-up in the same conversation carries the very same context.
* A hit needs the queries to match (embedding search, guards, pair judge) **and** the contexts to agree
  (`contexts_agree`): the two chats' turns are paired up, identical ones first, then those the guards and the
  pair judge take for the same question. A turn left over on *both* sides means the chats differ where it
  counts (another subject, detail or intent: "I'm on the Pro plan." against "I'm on the Free plan."), so no
  hit. A turn left over on *one* side only (chatter the other chat lacks) is tolerated when it does not bear
  on that side's query (`relevant_context`): it shares no content word with it, it is not a first-person
  statement of facts ("I'm on the Pro plan.", "I use a Mac."), and it is not the turn right before a query
  that leans on earlier turns (a pronoun such as "it"/"that"/"they", "what about ...", or fewer than two
  content words). So the same question after unrelated turns hits, and "How do I upgrade my plan?" after "I'm
  on the Pro plan." never gets the answer given with no plan named.
* The vector search embeds the query read with the turn right before it when the query leans on it
  (`search_text`, the vector stored); a lookup with earlier turns searches with both readings, alone and with
  that turn (`search_texts`: a second embedding). The guards and the judge read the queries themselves.
* Earlier assistant turns are not compared (they are the answers to the earlier user turns). A history that
  holds anything but plain-text user/assistant turns (tool calls, tool results, images) is not read for
  meaning: it stays in the exact partition, as before.

The cached context travels with the vector record's query text (`pack` / `unpack`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "SEP",
    "WINDOW",
    "context_turns",
    "contexts_agree",
    "depends_on_context",
    "pack",
    "relevant_context",
    "search_text",
    "search_texts",
    "split_messages",
    "states_facts",
    "unpack",
    "unpaired_turns",
]

WINDOW = 4  # earlier user turns read as possible context
SEP = "\x1e"  # marks a stored query text that carries its context (a JSON list after it)


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_WORD = re.compile(r"[A-Za-z0-9\u00C0-\u024F]+(?:['\u2019][A-Za-z]+)?")
_TURN_WORD = re.compile(r"[A-Za-z0-9\u00C0-\u024F]+(?:['\u2019.][A-Za-z0-9]+)*")
_ANAPHORA = _set(
    "it its it's that those these this they them their there he him his she her one ones same such former latter"
)
_FIRST_PERSON = _set("i i'm i've i'd i'll im my we we're we've our us me")
_LEAD_INS = (("what", "about"), ("how", "about"), ("and",), ("also",), ("what", "if"))


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, Mapping) and p.get("type") in ("text", "input_text")]
        strings = [t for t in parts if isinstance(t, str)]
        if strings and len(strings) == len(content):
            return "\n".join(strings)
    return None


# Words that carry no subject: question words and small talk. A turn sharing only these with the query is
# not its context.
_NO_SUBJECT = _set(
    "what how why when where which who whom whose hi hello hey thanks thank ok okay yes yeah sure great good "
    "cool nice please sorry know need want like think"
)


# Closed-class words (articles, auxiliaries, pronouns, prepositions): sharing one does not make a turn context.
_FUNCTION = _set(
    """a an the my your our their his her its me you we us they them he she it i this's that's
    is are am was were be been being do does did done have has had having can could should would will shall may
    might must to of in on at for from by with about into as and or but if so than then there here please
    tell show give let get got me kindly just really actually"""
)


def _content_words(text: str) -> list[str]:
    from agentcache.semantic.pairjudge import normal_word

    words = (normal_word(w) for w in _TURN_WORD.findall(text))
    return [w for w in words if w not in _FUNCTION and w not in _NO_SUBJECT]


def depends_on_context(query: str) -> bool:
    """Whether `query` leans on earlier turns: a pronoun, a lead-in like "what about", or < 2 content words."""
    words = [w.lower() for w in _WORD.findall(query)]
    if any(w in _ANAPHORA for w in words):
        return True
    if any(tuple(words[: len(lead)]) == lead for lead in _LEAD_INS):
        return True
    return len(_content_words(query)) < 2


def states_facts(turn: str) -> bool:
    """Whether a turn tells something about the user ("I'm on the Pro plan.", "My order is 4411."): a first-
    person statement, not a question. What it says may decide the answer to a later "my ..." question."""
    words = [w.lower() for w in _WORD.findall(turn)]
    return bool(words) and words[0] in _FIRST_PERSON and not turn.rstrip().endswith("?")


def relevant_context(query: str, earlier: list[str]) -> list[str]:
    """The earlier user turns (oldest first) that bear on `query` (see the module docstring)."""
    window = earlier[-WINDOW:]
    if not window:
        return []
    mine = set(_content_words(query))
    keep = [i for i, turn in enumerate(window) if mine & set(_content_words(turn)) or states_facts(turn)]
    if depends_on_context(query) and len(window) - 1 not in keep:
        keep.append(len(window) - 1)
        # A follow-up to a follow-up: reach back to the turn that introduced the subject.
        if depends_on_context(window[-1]) and len(window) >= 2:
            keep.append(len(window) - 2)
    return [window[i] for i in sorted(set(keep))]


def context_turns(earlier: list[str]) -> list[str]:
    """The earlier user turns (oldest first) a query is read with: the last `WINDOW`, small talk left out."""
    return [turn for turn in earlier[-WINDOW:] if _content_words(turn)]


def _normal(text: str) -> str:
    return " ".join(w.lower() for w in _TURN_WORD.findall(text))


def unpaired_turns(turns: list[str], others: list[str]) -> list[str]:
    """The `turns` left once each is paired with an identical one of `others` (ignoring case and punctuation)."""
    free = [_normal(t) for t in others]
    left = []
    for turn in turns:
        key = _normal(turn)
        if key in free:
            free.remove(key)
        else:
            left.append(turn)
    return left


def contexts_agree(cached: tuple[str, list[str]], new: tuple[str, list[str]], same: Callable[[str, str], bool]) -> bool:
    """Whether two chats' earlier turns let one answer serve both: `(query, context turns)` of each.

    Turns are paired up, identical ones (ignoring case and punctuation) first, then by `same` (the guards and
    the pair judge). A turn left over on both sides: the chats differ, no. Left over on one side only: yes
    when none of them bears on that side's query (`relevant_context`).
    """
    left, right = unpaired_turns(cached[1], new[1]), unpaired_turns(new[1], cached[1])
    unpaired: list[str] = []
    for n, turn in enumerate(left):
        twin = next((u for u in right if same(turn, u)), None)
        if twin is not None:
            right.remove(twin)
            continue
        unpaired.append(turn)
        if len(right) > len(left) - n - 1:  # the turns still to pair cannot take every right turn: both keep one
            return False
    left = unpaired
    if left and right:
        return False
    for (query, turns), extra in ((cached, left), (new, right)):
        if extra and set(extra) & set(relevant_context(query, turns)):
            return False
    return True


def split_messages(messages: list[Any]) -> tuple[str, list[str], list[Any]] | None:
    """`(query, context turns, partition messages)` of a chat, or `None` when it has no plain user query.

    The partition keeps the system/developer messages, a placeholder where the query was, and everything
    after it. When the history before the query holds anything but plain-text user/assistant turns, the
    whole history stays in the partition (exact, as without conversation awareness) and the context is empty.
    """
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if isinstance(message, Mapping) and message.get("role") == "user":
            query = _text(message.get("content"))
            if query is None:
                return None
            placeholder = {"role": "user", "content": "$query"}
            history = messages[:i]
            fixed = [m for m in history if isinstance(m, Mapping) and m.get("role") in ("system", "developer")]
            turns = [m for m in history if not (isinstance(m, Mapping) and m.get("role") in ("system", "developer"))]
            plain = all(
                isinstance(m, Mapping)
                and m.get("role") in ("user", "assistant")
                and set(m) <= {"role", "content", "name", "type"}
                and m.get("type", "message") == "message"
                and _text(m.get("content")) is not None
                for m in turns
            )
            if not plain:
                return query, [], [*history, placeholder, *messages[i + 1 :]]
            earlier = [t for m in turns if m.get("role") == "user" and (t := _text(m.get("content"))) is not None]
            return query, context_turns(earlier), [*fixed, placeholder, *messages[i + 1 :]]
    return None


def pack(query: str, context: list[str]) -> str:
    """The text stored in the vector record: the query itself, or (with context) `SEP` + a JSON list."""
    if not context and not query.startswith(SEP):
        return query
    return SEP + json.dumps([query, *context])


def search_text(stored: str) -> str:
    """The text embedded for the vector search of a packed query: the query, read with the turn right before it
    when it leans on it ("Tell me about the Eiffel Tower. How tall is it?"): a bare follow-up says too little
    for its vector to find the same follow-up reworded."""
    return search_texts(stored)[0]


def search_texts(stored: str) -> list[str]:
    """The texts a lookup embeds: `search_text` (the vector stored on a miss) and, in a chat with earlier turns,
    the other reading of the query (alone, or with the turn before it), so that a follow-up finds its rewording
    whether or not either of them leans on the earlier turn in so many words."""
    query, context = unpack(stored)
    if not context:
        return [query]
    read_with = f"{context[-1]} {query}"
    return [read_with, query] if depends_on_context(query) else [query, read_with]


def unpack(stored: str) -> tuple[str, list[str]]:
    """`(query, context turns)` of a stored query text."""
    if not stored.startswith(SEP):
        return stored, []
    try:
        query, *context = json.loads(stored[len(SEP) :])
    except ValueError:
        return stored, []
    return str(query), [str(c) for c in context]
