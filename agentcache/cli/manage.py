"""The `agentcache` commands that change a store or describe it: `clear`, `invalidate` and `info`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agentcache.cli.render import Progress, human_bytes
from agentcache.cli.store import (
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Session,
    echo,
    echo_json,
    parts,
    resolve_key,
)
from agentcache.errors import AgentCacheError
from agentcache.keys.encoding import KEY_PREFIX, namespace_prefixes, validate_namespace
from agentcache.stats.counters import format_seconds

__all__ = ["cmd_clear", "cmd_info", "cmd_invalidate"]


# -- clear ------------------------------------------------------------------------------------------------------


def _confirm(question: str) -> bool:
    """Ask `question` on the terminal; refuse to go on when there is no terminal to ask on."""
    if not sys.stdin.isatty():
        raise CliError("refusing to delete without confirmation: pass --yes (stdin is not a terminal)")
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def cmd_clear(s: Session, args: argparse.Namespace) -> int:
    """`agentcache clear`: delete one namespace (with nested ones) or everything agentcache stored."""
    ns = args.namespace
    prefixes = namespace_prefixes(ns) if ns else (KEY_PREFIX,)
    where = f"namespace {ns!r} and the namespaces nested under it" if ns else s.url
    if not args.yes:
        namespaces: dict[str, int] = {}
        for prefix in prefixes:
            for info in s.scan(prefix, label="counting"):
                name = parts(info.key).namespace
                namespaces[name] = namespaces.get(name, 0) + 1
        total = sum(namespaces.values())
        if ns:
            question = f"Delete {total:,} entries of namespace {ns!r} (and {ns}/...) in {s.url}?"
        else:
            question = f"Delete all {total:,} agentcache entries ({len(namespaces)} namespaces) in {s.url}?"
        if not _confirm(question):
            echo("Nothing deleted.")
            return EXIT_OK
    deleted = 0
    if not s.absent():
        # One range delete per prefix: per-namespace deletes would cost a statement each (slow with many tenants).
        progress = Progress("clearing")
        progress.show(f"clearing {where}…")
        try:
            deleted = s.cache.invalidate(namespace=ns) if ns else s.cache.clear()
        finally:
            progress.close()
    if args.as_json:
        echo_json({"deleted": deleted})
    else:
        echo(f"Deleted {deleted:,} {'entry' if deleted == 1 else 'entries'} ({where}).")
    return EXIT_OK


# -- invalidate -------------------------------------------------------------------------------------------------


def cmd_invalidate(s: Session, args: argparse.Namespace) -> int:
    """`agentcache invalidate`: delete by tags (optionally within a namespace), by a stored event rule, or a key."""
    if args.namespace and not args.tag:
        raise CliError(
            f"--namespace needs --tag here; to drop a whole namespace: agentcache clear --namespace {args.namespace}"
        )
    if args.namespace:
        validate_namespace(args.namespace)
    detail: dict[str, Any]
    if args.event:
        from agentcache.engine.invalidation import apply_rule, stored_rule

        rule = None if s.absent() else stored_rule(s.store, args.event)
        if rule is None:
            raise CliError(
                f"no process ever registered the event {args.event!r} in {s.url}: the application must call "
                f"agentcache.on({args.event!r}, tags=[...]) (the rule is recorded when its store opens)",
                EXIT_NOT_FOUND,
            )
        deleted = apply_rule(rule, s.cache)
        detail = {"event": args.event, "tags": list(rule.tags), "namespaces": list(rule.namespaces)}
        tags_text = ", ".join(rule.tags) or "-"
        what = f"event {args.event!r} (tags: {tags_text}; namespaces: {', '.join(rule.namespaces) or '-'})"
    elif args.key:
        key = resolve_key(s, args.key)
        deleted = 0 if s.absent() else s.cache.invalidate(keys=[key])
        if not deleted:
            raise CliError(f"no entry {key} in {s.url}", EXIT_NOT_FOUND)
        detail = {"key": key}
        what = key
    else:
        tags: list[str] = args.tag
        deleted = 0 if s.absent() else s.cache.invalidate(tags=tags, namespace=args.namespace)
        detail = {"tags": tags, "namespace": args.namespace}
        what = f"tags {', '.join(tags)}" + (f" in namespace {args.namespace!r}" if args.namespace else "")
    if args.as_json:
        echo_json({"deleted": deleted, **detail})
    else:
        echo(f"Invalidated {what}: deleted {deleted:,} {'entry' if deleted == 1 else 'entries'}.")
    return EXIT_OK


# -- info -------------------------------------------------------------------------------------------------------


def cmd_info(s: Session, args: argparse.Namespace) -> int:
    """`agentcache info`: the resolved settings and the backend they open."""
    from agentcache import __version__
    from agentcache.engine.settings import get_settings

    settings = get_settings()
    if args.url:
        source = "--url"
    elif settings.url:
        source = "AGENTCACHE_URL (environment or .env)"
    else:
        source = "default: SQLite under dir"
    info: dict[str, Any] = {
        "version": __version__,
        "url": s.url,
        "url_source": source,
        "dir": str(settings.cache_dir),
        "namespace": settings.namespace,
        "disabled": settings.disabled,
        "ttl": settings.ttl,
    }
    code = EXIT_OK
    try:
        store = s.store
        info["backend"] = type(store).__name__
        info["backend_repr"] = repr(store)
        from agentcache.backends.base import SupportsScan

        info["can_list"] = isinstance(store, SupportsScan)
        path = getattr(store, "path", None)
        if isinstance(path, Path):
            info["file"] = str(path)
            info["file_bytes"] = path.stat().st_size if path.exists() else None
    except AgentCacheError as exc:
        info["backend"] = None
        info["error"] = str(exc)
        code = EXIT_USAGE
    if args.as_json:
        echo_json(info)
        return code
    rows = [
        ("agentcache", info["version"]),
        ("url", f"{s.url}  ({source})"),
        ("dir", info["dir"]),
        ("namespace", settings.namespace),
        (
            "disabled",
            "yes (AGENTCACHE_DISABLED: every decorator calls straight through)" if settings.disabled else "no",
        ),
        ("ttl", "none" if settings.ttl is None else format_seconds(settings.ttl)),
    ]
    if info.get("backend"):
        rows.append(("backend", info["backend_repr"]))
        rows.append(("can list", "yes" if info["can_list"] else "no (ls, stats and show need a scannable store)"))
    if "file" in info:
        size = info.get("file_bytes")
        rows.append(("file", info["file"] + ("  (not created yet)" if size is None else f"  ({human_bytes(size)})")))
    if "error" in info:
        rows.append(("backend", f"cannot open: {info['error']}"))
    width = max(len(k) for k, _ in rows)
    for name, value in rows:
        echo(f"{name.ljust(width)}  {value}")
    return code
