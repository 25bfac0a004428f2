"""Invalidation: by key, by tag, by namespace, and by named events mapped to tags.

`invalidate(...)` reaches every store this process uses (the default one and every ``backend=`` store).
Event rules registered with `on()` are also written to each store when it opens, so
``agentcache invalidate --event NAME`` from the command line, or `emit()` in another process, applies them too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import _fork
from .cache import default_cache, open_caches
from .errors import ConfigurationError, SerializationError
from .keys import KEY_PREFIX, digest
from .serialization import decode_entry, encode_entry

if TYPE_CHECKING:
    from .backends.base import Backend
    from .cache import Cache

__all__ = ["EventRule", "ainvalidate", "aemit", "emit", "invalidate", "on"]

_EVENT_PREFIX = f"{KEY_PREFIX}_events:event:"


@dataclass(frozen=True)
class EventRule:
    """What an event invalidates: entries carrying any of `tags`, and whole `namespaces`."""

    event: str
    tags: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    handlers: tuple[Callable[[str], Any], ...] = field(default=(), compare=False)


_lock = threading.Lock()
_rules: dict[str, EventRule] = {}


def _targets(cache: Cache | None) -> list[Cache]:
    if cache is not None:
        return [cache]
    caches = open_caches()
    default = default_cache()
    return caches if default in caches else [default, *caches]


def invalidate(
    *,
    keys: Iterable[str] = (),
    tags: Collection[str] = (),
    namespace: str | None = None,
    cache: Cache | None = None,
) -> int:
    """Delete cached entries, in every store this process uses (or only `cache`).

    Args:
        keys: exact keys (as returned by ``fn.cache_key(...)``).
        tags: entries carrying any of these tags (only inside `namespace` when it is given).
        namespace: without tags, the whole namespace and every namespace nested under it.
        cache: limit to one store.

    Returns the number of entries deleted. After it returns, no caller in this process gets an old value.

    Example::

        agentcache.invalidate(tags=["search"])
        agentcache.invalidate(namespace="tenant-42")
    """
    if isinstance(tags, str):
        raise ConfigurationError("tags must be a list of strings, e.g. tags=['search']")
    keys = list(keys)
    return sum(c.invalidate(keys=keys, tags=tags, namespace=namespace) for c in _targets(cache))


async def ainvalidate(
    *,
    keys: Iterable[str] = (),
    tags: Collection[str] = (),
    namespace: str | None = None,
    cache: Cache | None = None,
) -> int:
    """Awaitable `invalidate` (does not block the event loop on slow stores)."""
    if isinstance(tags, str):
        raise ConfigurationError("tags must be a list of strings, e.g. tags=['search']")
    keys = list(keys)
    total = 0
    for c in _targets(cache):
        total += await c.ainvalidate(keys=keys, tags=tags, namespace=namespace)
    return total


def on(
    event: str,
    *,
    tags: Collection[str] = (),
    namespaces: Collection[str] = (),
    handler: Callable[[str], Any] | None = None,
) -> EventRule:
    """Map the named `event` to what it invalidates; `emit(event)` then applies it.

    Calling `on` again for the same event adds to its rule. Nothing is written at call time; the rule is
    recorded in each store when it opens, so other processes and the CLI can emit it too.

    Example::

        agentcache.on("docs.reindexed", tags=["search", "rag"])
        agentcache.emit("docs.reindexed")
    """
    if not event or not isinstance(event, str):
        raise ConfigurationError("event names are non-empty strings")
    if isinstance(tags, str) or isinstance(namespaces, str):
        raise ConfigurationError("tags and namespaces must be lists of strings")
    with _lock:
        old = _rules.get(event, EventRule(event))
        rule = EventRule(
            event,
            tuple(dict.fromkeys((*old.tags, *tags))),
            tuple(dict.fromkeys((*old.namespaces, *namespaces))),
            old.handlers + ((handler,) if handler is not None else ()),
        )
        _rules[event] = rule
    for cache in open_caches():
        if cache._store is not None:  # already open: record the rule now, else when it opens
            _write_rule(cache.store, rule)
    return rule


def _rule_key(event: str) -> str:
    return f"{_EVENT_PREFIX}{digest(event.encode())}"


def _write_rule(store: Backend, rule: EventRule) -> None:
    from .backends.base import Item

    value = {"event": rule.event, "tags": list(rule.tags), "namespaces": list(rule.namespaces)}
    store.set_many([Item(_rule_key(rule.event), encode_entry(value))])


def _publish_events(cache: Cache) -> None:
    with _lock:
        rules = list(_rules.values())
    for rule in rules:
        _write_rule(cache.store, rule)


def stored_rule(store: Backend, event: str) -> EventRule | None:
    """The rule for `event` as recorded in a store (by any process), or `None`."""
    raw = store.get(_rule_key(event))
    if raw is None:
        return None
    try:
        value = decode_entry(raw).value
        return EventRule(event, tuple(value.get("tags", ())), tuple(value.get("namespaces", ())))
    except (SerializationError, AttributeError, TypeError):
        return None


def _rule_for(event: str) -> EventRule | None:
    with _lock:
        rule = _rules.get(event)
    if rule is not None:
        return rule
    return stored_rule(default_cache().store, event)


def apply_rule(rule: EventRule, cache: Cache | None = None) -> int:
    """Invalidate what `rule` names (its tags, then each namespace); return entries deleted."""
    deleted = invalidate(tags=rule.tags, cache=cache) if rule.tags else 0
    for ns in rule.namespaces:
        deleted += invalidate(namespace=ns, cache=cache)
    return deleted


def emit(event: str) -> int:
    """Apply the rule of `event` (registered here with `on`, or by another process); return entries deleted.

    An event nobody registered deletes nothing and returns 0.
    """
    rule = _rule_for(event)
    if rule is None:
        return 0
    deleted = apply_rule(rule)
    for handler in rule.handlers:
        handler(event)
    return deleted


async def aemit(event: str) -> int:
    """Awaitable `emit`."""
    rule = _rule_for(event)
    if rule is None:
        return 0
    deleted = 0
    if rule.tags:
        deleted += await ainvalidate(tags=rule.tags)
    for ns in rule.namespaces:
        deleted += await ainvalidate(namespace=ns)
    for handler in rule.handlers:
        handler(event)
    return deleted


def reset_events() -> None:
    """Forget every event rule registered in this process."""
    with _lock:
        _rules.clear()


@_fork.at_fork
def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
