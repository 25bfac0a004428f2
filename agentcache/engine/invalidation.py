"""Invalidation: by key, by tag, by namespace, and by named events mapped to tags.

`invalidate(...)` reaches every store this process uses (the default one and every ``backend=`` store).
Event rules registered with `on()` are also written to each store when it opens, so
``agentcache invalidate --event NAME`` from the command line, or `emit()` in another process, applies them too.

Tenants: called inside a `agentcache.namespace()` block, tag, namespace and event invalidations reach only that
block's namespace (and the ones nested in it); ``namespace=agentcache.ALL`` reaches every namespace. Outside
any block they reach every namespace. Exact keys are deleted wherever they are.

An invalidation is never lost quietly. It goes to the store whatever the circuit breaker's state, with bounded
retries; if it still fails, `invalidate()`, `ainvalidate()`, `emit()`, `aemit()`, ``fn.cache_invalidate()`` and
``fn.cache_clear()`` raise `InvalidationError` (after trying every store and every part), and the failed parts
stay pending: retried in the background until they land, while this process neither serves nor stores the
entries they may cover.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentcache import _fork
from agentcache.codec.entries import decode_entry, encode_entry
from agentcache.engine.cache import default_cache, on_open, open_caches
from agentcache.errors import ConfigurationError, InvalidationError, SerializationError
from agentcache.keys.encoding import KEY_PREFIX, digest, validate_namespace
from agentcache.keys.namespaces import ALL, outside_blocks
from agentcache.keys.namespaces import namespace as _namespace_block

if TYPE_CHECKING:
    from agentcache.backends.base import Backend
    from agentcache.engine.cache import Cache
    from agentcache.keys.namespaces import NamespaceTarget

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
    """The stores an invalidation reaches: `cache`, or every store this process opened plus the default store
    (unless it is an embedded SQLite file that does not exist yet: it holds nothing to invalidate, and opening
    it would create it in a process that only uses ``backend=`` stores)."""
    if cache is not None:
        return [cache]
    caches = open_caches()
    default = default_cache()
    if default in caches or not default.is_missing_file():
        return caches if default in caches else [default, *caches]
    return caches


def invalidate(
    *,
    keys: Iterable[str] = (),
    tags: Collection[str] = (),
    namespace: NamespaceTarget = None,
    cache: Cache | None = None,
) -> int:
    """Delete cached entries, in every store this process uses (or only `cache`).

    Args:
        keys: exact keys (as returned by ``fn.cache_key(...)``), deleted whatever their namespace.
        tags: entries carrying any of these tags, within the scope below.
        namespace: the scope. `None` (default): inside a `namespace()` block, that block's namespace and the
            ones nested in it; outside any block, every namespace. A name: that namespace and the ones nested
            in it (inside a block, the name is nested in the block's namespace, so a tenant never reaches
            another); without tags the whole namespace is deleted. ``agentcache.ALL``: every namespace, even
            inside a block (with tags only: to empty a store use `Cache.clear`).
        cache: limit to one store.

    Returns the number of entries deleted. After it returns, no caller in this process gets an old value.

    Raises:
        InvalidationError: a store could not be reached; what failed stays pending (see the module docstring).

    Example::

        agentcache.invalidate(tags=["search"])              # outside a block: every namespace
        agentcache.invalidate(namespace="tenant-42")        # the tenant and tenant-42/...
        with agentcache.namespace("tenant-42"):
            agentcache.invalidate(tags=["search"])          # tenant-42 only
            agentcache.invalidate(tags=["search"], namespace=agentcache.ALL)  # every tenant, explicitly
    """
    if isinstance(tags, str):
        raise ConfigurationError("tags must be a list of strings, e.g. tags=['search']")
    keys = list(keys)
    total, errors = 0, []
    for c in _targets(cache):
        try:
            total += c.invalidate(keys=keys, tags=tags, namespace=namespace)
        except InvalidationError as exc:
            total += exc.deleted
            errors.append(exc)
    return _outcome(total, errors)


async def ainvalidate(
    *,
    keys: Iterable[str] = (),
    tags: Collection[str] = (),
    namespace: NamespaceTarget = None,
    cache: Cache | None = None,
) -> int:
    """Awaitable `invalidate` (same scoping; does not block the event loop on slow stores)."""
    if isinstance(tags, str):
        raise ConfigurationError("tags must be a list of strings, e.g. tags=['search']")
    keys = list(keys)
    total, errors = 0, []
    for c in _targets(cache):
        try:
            total += await c.ainvalidate(keys=keys, tags=tags, namespace=namespace)
        except InvalidationError as exc:
            total += exc.deleted
            errors.append(exc)
    return _outcome(total, errors)


def _outcome(total: int, errors: list[InvalidationError]) -> int:
    """`total`, or one `InvalidationError` for every part that failed (raised after all parts were tried)."""
    if not errors:
        return total
    if len(errors) == 1 and errors[0].deleted == total:
        raise errors[0]
    failure = InvalidationError(
        "; ".join(str(e) for e in errors),
        deleted=total,
        pending=tuple(p for e in errors for p in e.pending),
    )
    raise failure from errors[0]


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
    namespaces = [validate_namespace(ns) for ns in namespaces]
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
        if cache.opened is not None:  # already open: record the rule now, else when it opens
            _write_rule(cache.store, rule)
    return rule


def _rule_key(event: str) -> str:
    return f"{_EVENT_PREFIX}{digest(event.encode())}"


def _write_rule(store: Backend, rule: EventRule) -> None:
    from agentcache.backends.base import Item

    value = {"event": rule.event, "tags": list(rule.tags), "namespaces": list(rule.namespaces)}
    key = _rule_key(rule.event)
    store.set_many([Item(key, encode_entry(value, key=key))])


@on_open
def _publish_events(cache: Cache) -> None:
    with _lock:
        rules = list(_rules.values())
    for rule in rules:
        _write_rule(cache.store, rule)


def stored_rule(store: Backend, event: str) -> EventRule | None:
    """The rule for `event` as recorded in a store (by any process), or `None`."""
    key = _rule_key(event)
    raw = store.get(key)
    if raw is None:
        return None
    try:
        value = decode_entry(raw, key).value
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
    """Invalidate what `rule` names (its tags, then each namespace) in the current scope (see `emit`).

    Raises:
        InvalidationError: after every part was tried, when some did not land (they stay pending).
    """
    deleted, errors = 0, []
    parts: list[dict[str, Any]] = [{"tags": rule.tags}] if rule.tags else []
    parts += [{"namespace": ns} for ns in rule.namespaces]
    for part in parts:
        try:
            deleted += invalidate(cache=cache, **part)
        except InvalidationError as exc:
            deleted += exc.deleted
            errors.append(exc)
    return _outcome(deleted, errors)


@contextmanager
def _scope(namespace: NamespaceTarget) -> Iterator[None]:
    """Enter the scope an event applies in: the current block, a block nested in it, or none (`ALL`)."""
    if namespace is ALL:
        with outside_blocks():
            yield
    elif namespace is not None:
        with _namespace_block(namespace):
            yield
    else:
        yield


def emit(event: str, *, namespace: NamespaceTarget = None) -> int:
    """Apply the rule of `event` (registered here with `on`, or by another process); return entries deleted.

    Scoped like `invalidate`: inside a `namespace()` block the rule's tags reach only that block's namespace
    and its namespaces are nested in it; ``namespace="x"`` applies it inside ``x`` (nested in the block);
    ``namespace=agentcache.ALL`` applies it to every namespace; outside any block it reaches every namespace.
    An event nobody registered deletes nothing and returns 0.
    The event's handlers run even when an invalidation failed; the `InvalidationError` is raised after them.
    """
    rule = _rule_for(event)
    if rule is None:
        return 0
    try:
        with _scope(namespace):
            return apply_rule(rule)
    finally:
        for handler in rule.handlers:
            handler(event)


async def aemit(event: str, *, namespace: NamespaceTarget = None) -> int:
    """Awaitable `emit` (same scoping)."""
    rule = _rule_for(event)
    if rule is None:
        return 0
    deleted, errors = 0, []
    parts: list[dict[str, Any]] = [{"tags": rule.tags}] if rule.tags else []
    parts += [{"namespace": ns} for ns in rule.namespaces]
    try:
        with _scope(namespace):
            for part in parts:
                try:
                    deleted += await ainvalidate(**part)
                except InvalidationError as exc:
                    deleted += exc.deleted
                    errors.append(exc)
    finally:
        for handler in rule.handlers:
            handler(event)
    return _outcome(deleted, errors)


def reset_events() -> None:
    """Forget every event rule registered in this process."""
    with _lock:
        _rules.clear()


@_fork.at_fork
def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
