"""Which part of a call is the *query* (embedded and compared) and which is the *partition* (hashed exactly).

A semantic hit may only come from an entry whose partition is byte-for-byte the same: the function, the
namespace, the model, the system prompt, the tools and every other argument. The query text may vary by
paraphrase; in a chat, the earlier plain-text turns are compared by meaning as the query's context
(`agentcache.semantic.conversation`), not hashed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentcache.errors import ConfigurationError

__all__ = ["QUERY_NAMES", "split_query", "split_query_context"]

#: Parameter names taken as the query when `query=` is not given and there is no `messages` argument.
QUERY_NAMES = ("query", "question", "prompt", "text", "q", "input")


def _split_messages(messages: list[Any]) -> tuple[str, list[str], list[Any]] | None:
    from agentcache.semantic.conversation import split_messages

    return split_messages(messages)


def split_query(fields: Mapping[str, Any], query: str | None = None) -> tuple[str, dict[str, Any]]:
    """Return `(query_text, partition_fields)` for one call's named arguments (see `split_query_context`)."""
    text, _, rest = split_query_context(fields, query)
    return text, rest


def split_query_context(fields: Mapping[str, Any], query: str | None = None) -> tuple[str, list[str], dict[str, Any]]:
    """Return `(query_text, context_turns, partition_fields)` for one call's named arguments.

    `query` names the parameter holding the query; its value is a `str`, or a chat `messages` list whose last
    user message is the query (read with the earlier user turns it depends on: `agentcache.semantic.
    conversation`). Without `query=`: a `messages` argument (last user message), else the first of
    `QUERY_NAMES` holding a `str`, else the only `str` argument. Raises `ConfigurationError` when the query
    cannot be found (pass `query=` to say which argument it is).
    """
    rest = dict(fields)
    if query is not None:
        if query not in rest:
            raise ConfigurationError(f"query={query!r} is not a parameter of the function")
        value = rest.pop(query)
        if isinstance(value, str):
            return value, [], rest
        if isinstance(value, list) and (found := _split_messages(value)) is not None:
            rest[query] = found[2]
            return found[0], found[1], rest
        raise ConfigurationError(f"the query argument {query!r} must be a str or a chat messages list")
    messages = rest.get("messages")
    if isinstance(messages, list) and (found := _split_messages(messages)) is not None:
        rest["messages"] = found[2]
        return found[0], found[1], rest
    for name in QUERY_NAMES:
        if isinstance(rest.get(name), str):
            return rest.pop(name), [], rest
    strings = [name for name, value in rest.items() if isinstance(value, str)]
    if len(strings) == 1:
        return rest.pop(strings[0]), [], rest
    raise ConfigurationError(
        "cannot tell which argument is the semantic query: pass query='<parameter name>' to semantic_cached",
    )
