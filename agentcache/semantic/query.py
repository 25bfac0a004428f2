"""Which part of a call is the *query* (embedded and compared) and which is the *partition* (hashed exactly).

A semantic hit may only come from an entry whose partition is byte-for-byte the same: the function, the
namespace, the model, the system prompt, the tools, the earlier turns and every other argument. Only the
query text is allowed to vary, and only by paraphrase.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentcache.errors import ConfigurationError

__all__ = ["QUERY_NAMES", "split_query"]

#: Parameter names taken as the query when `query=` is not given and there is no `messages` argument.
QUERY_NAMES = ("query", "question", "prompt", "text", "q", "input")


def _text_of(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": "..."}, ...]
        texts = [p.get("text") for p in content if isinstance(p, Mapping) and p.get("type") == "text"]
        strings = [t for t in texts if isinstance(t, str)]
        if strings and len(strings) == len(content):
            return "\n".join(strings)
    return None


def _split_messages(messages: list[Any]) -> tuple[str, list[Any]] | None:
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if isinstance(message, Mapping) and message.get("role") == "user":
            text = _text_of(message.get("content"))
            if text is None:
                return None
            # Everything after the query stays in the partition, and so does its position.
            rest = [*messages[:i], {"role": "user", "content": "$query"}, *messages[i + 1 :]]
            return text, rest
    return None


def split_query(fields: Mapping[str, Any], query: str | None = None) -> tuple[str, dict[str, Any]]:
    """Return `(query_text, partition_fields)` for one call's named arguments.

    `query` names the parameter holding the query; its value is a `str`, or a chat `messages` list whose last
    user message is the query. Without `query=`: a `messages` argument (last user message), else the first
    of `QUERY_NAMES` holding a `str`, else the only `str` argument. Raises `ConfigurationError` when the
    query cannot be found (pass `query=` to say which argument it is).
    """
    rest = dict(fields)
    if query is not None:
        if query not in rest:
            raise ConfigurationError(f"query={query!r} is not a parameter of the function")
        value = rest.pop(query)
        if isinstance(value, str):
            return value, rest
        if isinstance(value, list) and (found := _split_messages(value)) is not None:
            rest[query] = found[1]
            return found[0], rest
        raise ConfigurationError(f"the query argument {query!r} must be a str or a chat messages list")
    messages = rest.get("messages")
    if isinstance(messages, list) and (found := _split_messages(messages)) is not None:
        rest["messages"] = found[1]
        return found[0], rest
    for name in QUERY_NAMES:
        if isinstance(rest.get(name), str):
            return rest.pop(name), rest
    strings = [name for name, value in rest.items() if isinstance(value, str)]
    if len(strings) == 1:
        return rest.pop(strings[0]), rest
    raise ConfigurationError(
        "cannot tell which argument is the semantic query: pass query='<parameter name>' to semantic_cached",
    )
