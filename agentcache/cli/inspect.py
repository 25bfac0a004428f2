"""The read-only `agentcache` commands: `stats`, `ls` and `show`."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from agentcache.cli.render import human_bytes, human_duration, render_json, timestamp, truncate
from agentcache.cli.store import (
    EXIT_NOT_FOUND,
    EXIT_OK,
    CliError,
    Parts,
    Session,
    Shown,
    decode,
    echo,
    echo_json,
    entry_info,
    parts,
    resolve_key,
    user_tags,
)
from agentcache.errors import MissingDependencyError
from agentcache.keys.encoding import KEY_PREFIX, namespace_prefixes
from agentcache.stats.counters import format_seconds, format_table

if TYPE_CHECKING:
    from collections.abc import Callable

    from agentcache.backends.base import EntryInfo
    from agentcache.stats.counters import StatsReport
    from agentcache.stats.metrics import MetricFamily
    from agentcache.usage import Usage

__all__ = ["cmd_ls", "cmd_show", "cmd_stats"]


# -- stats ------------------------------------------------------------------------------------------------------


def cmd_stats(s: Session, args: argparse.Namespace) -> int:
    """`agentcache stats`: the per-process snapshots summed, and entries/bytes per namespace and layer."""
    from agentcache.engine.shared_stats import load_stats
    from agentcache.stats.counters import StatsReport

    render = _prometheus(args.as_json) if args.prometheus else None  # before scanning: a missing extra fails fast
    report = StatsReport.build([]) if s.absent() else load_stats(s.store)
    groups: dict[tuple[str, str], list[int]] = {}
    internal: dict[str, int] = {}
    for info in s.scan(KEY_PREFIX, label="scanning store"):
        p = parts(info.key)
        if p.internal:
            internal[p.namespace] = internal.get(p.namespace, 0) + 1
            continue
        group = groups.setdefault((p.namespace, p.layer), [0, 0])
        group[0] += 1
        group[1] += info.size
    snapshots = internal.get("_stats", 0)
    entries = sum(g[0] for g in groups.values())
    size = sum(g[1] for g in groups.values())
    if render is not None:
        echo(render(report, _store_families(snapshots, groups)).rstrip("\n"))
        return EXIT_OK
    if args.as_json:
        echo_json(
            {
                "url": s.url,
                "snapshots": snapshots,
                "stats": report.to_dict(),
                "store": {
                    "entries": entries,
                    "bytes": size,
                    "internal_entries": sum(internal.values()),
                    "groups": [
                        {"namespace": ns, "layer": layer, "entries": g[0], "bytes": g[1]}
                        for (ns, layer), g in sorted(groups.items())
                    ],
                },
            }
        )
        return EXIT_OK
    if report.by_function:
        plural = "" if snapshots == 1 else "s"
        echo(f"Cache statistics: summed over {snapshots} process snapshot{plural} in {s.url}")
        echo(str(report))
    else:
        echo(f"No statistics recorded in {s.url} yet.")
        echo("Each process writes its counters every 10 s while it caches and at exit (agentcache.flush_stats()).")
    echo()
    if not groups:
        echo("Store contents: no entries.")
        return EXIT_OK
    rows = [[ns, layer, f"{g[0]:,}", human_bytes(g[1])] for (ns, layer), g in sorted(groups.items())]
    rows.append(["TOTAL", "", f"{entries:,}", human_bytes(size)])
    echo(f"Store contents ({s.url})")
    echo(format_table(["namespace", "layer", "entries", "size"], rows, align="llrr"))
    if internal:
        echo(
            f"plus {snapshots} stats snapshot(s) and {internal.get('_events', 0)} event rule(s) "
            "(`agentcache ls --all` lists them)"
        )
    return EXIT_OK


def _prometheus(as_json: bool) -> Callable[[StatsReport, list[MetricFamily]], str]:
    """`agentcache.integrations.prometheus.exposition`, or a usage error (with --json, or without the extra)."""
    if as_json:
        raise CliError("--prometheus and --json print different formats: choose one")
    try:
        from agentcache.integrations.prometheus import exposition
    except MissingDependencyError as exc:
        raise CliError(str(exc)) from None
    return exposition


def _store_families(snapshots: int, groups: dict[tuple[str, str], list[int]]) -> list[MetricFamily]:
    """What `agentcache stats` shows besides the counters: the snapshots summed and the store's contents."""
    from agentcache.stats.metrics import PREFIX, MetricFamily

    labelled = [({"namespace": ns, "layer": layer}, g) for (ns, layer), g in sorted(groups.items())]
    entries = [(labels, float(g[0])) for labels, g in labelled]
    size = [(labels, float(g[1])) for labels, g in labelled]
    return [
        MetricFamily(
            PREFIX + "stats_snapshots",
            "gauge",
            "Process snapshots `agentcache stats` summed.",
            "",
            [({}, float(snapshots))],
        ),
        MetricFamily(PREFIX + "store_entries", "gauge", "Entries in the store, per namespace and layer.", "", entries),
        MetricFamily(PREFIX + "store_bytes", "gauge", "Size of those entries, per namespace and layer.", "bytes", size),
    ]


# -- ls ---------------------------------------------------------------------------------------------------------


def cmd_ls(s: Session, args: argparse.Namespace) -> int:
    """`agentcache ls`: a table of entries, filtered by namespace (with nested ones), tag, layer, function."""
    if args.limit < 0:
        raise CliError("--limit must be 0 (no limit) or more")
    prefixes = namespace_prefixes(args.namespace) if args.namespace else (KEY_PREFIX,)
    needle = args.function.lower() if args.function else None
    shown: list[tuple[Parts, EntryInfo]] = []
    matched = 0
    for prefix in prefixes:
        for info in s.scan(prefix, tag=args.tag, label="listing entries"):
            p = parts(info.key)
            if (p.internal and not args.all) or (args.layer and p.layer != args.layer):
                continue
            if needle is not None and needle not in p.function.lower():
                continue
            matched += 1
            if not args.limit or len(shown) < args.limit:
                shown.append((p, info))
    # Key order puts "tenant-4/x" and "tenant-42" before "tenant-4:"; people read namespace by namespace.
    shown.sort(key=lambda row: (row[0].namespace, row[0].layer, row[0].function, row[1].created_at or 0.0))
    now = time.time()
    if args.as_json:
        echo_json(
            {
                "matched": matched,
                "shown": len(shown),
                "entries": [
                    {
                        "key": info.key,
                        "namespace": p.namespace,
                        "layer": p.layer,
                        "function": p.function,
                        "digest": p.digest,
                        "size": info.size,
                        "created_at": info.created_at,
                        "expires_at": info.expires_at,
                        "accessed_at": info.accessed_at,
                        "tags": user_tags(info.tags),
                    }
                    for p, info in shown
                ],
            }
        )
        return EXIT_OK
    if not shown:
        echo("No entries" + (" match these filters." if _filtered(args) else f" in {s.url}."))
        return EXIT_OK
    rows = [
        [
            p.namespace,
            p.layer,
            _short(p.function, 60),
            p.digest[:12],
            human_bytes(info.size),
            "?" if info.created_at is None else human_duration(now - info.created_at),
            "never" if info.expires_at is None else human_duration(info.expires_at - now),
            ", ".join(user_tags(info.tags)),
        ]
        for p, info in shown
    ]
    headers = ["namespace", "layer", "function", "digest", "size", "age", "expires in", "tags"]
    echo(format_table(headers, rows, align="llllrrrl"))
    if matched > len(shown):
        echo(f"showing {len(shown):,} of {matched:,} entries (--limit 0 shows all)")
    else:
        echo(f"{matched:,} {'entry' if matched == 1 else 'entries'}")
    return EXIT_OK


def _filtered(args: argparse.Namespace) -> bool:
    return bool(args.namespace or args.tag or args.layer or args.function)


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1) :]


# -- show -------------------------------------------------------------------------------------------------------


def cmd_show(s: Session, args: argparse.Namespace) -> int:
    """`agentcache show KEY`: one entry's metadata and its value as JSON."""
    key = resolve_key(s, args.key)
    raw = s.get(key)
    if raw is None:
        raise CliError(f"no entry {key} in {s.url} (it may have expired)", EXIT_NOT_FOUND)
    p = parts(key)
    info = entry_info(s, key)
    shown = decode(raw, key, p.layer)
    created = shown.created_at or (info.created_at if info else None)
    expires = info.expires_at if info else None
    tags = user_tags(info.tags) if info else []
    usage = shown.usage
    if args.as_json:
        usage_json = None if usage is None else {**usage.to_dict(), "total_tokens": usage.total_tokens}
        if usage_json is not None:
            usage_json["usd"] = usage.cost() if usage is not None else 0.0
        echo_json(
            {
                "key": key,
                "namespace": p.namespace,
                "layer": p.layer,
                "function": p.function,
                "digest": p.digest,
                "kind": shown.kind,
                "size": info.size if info else len(raw),
                "created_at": created,
                "duration": shown.duration,
                "expires_at": expires,
                "tags": tags,
                "usage": usage_json,
                "value": shown.value,
                "note": shown.note or None,
            }
        )
        return EXIT_OK
    now = time.time()
    lines = [
        ("key", key),
        ("namespace", p.namespace),
        ("layer", p.layer),
        ("function", p.function or "-"),
        ("kind", _kind_text(shown)),
        ("size", human_bytes(info.size if info else len(raw))),
        ("created", "?" if not created else f"{timestamp(created)} ({human_duration(now - created)} ago)"),
    ]
    if shown.duration is not None:
        lines.append(("call took", f"{format_seconds(shown.duration)} (what each hit saves)"))
    expiry = "never" if expires is None else f"in {human_duration(expires - now)} ({timestamp(expires)})"
    lines += [("expires", expiry), ("tags", ", ".join(tags) or "-")]
    if usage is not None:
        lines.append(("usage", _usage_text(usage)))
    if shown.note:
        lines.append(("note", shown.note))
    width = max(len(name) for name, _ in lines)
    for name, value in lines:
        echo(f"{name.ljust(width)}  {value}")
    echo("value:")
    text = render_json(shown.value)
    if not args.full:
        text, cut = truncate(text)
        if cut:
            text += f"\n… {cut:,} more characters (--full shows everything)"
    echo(text)
    return EXIT_OK


def _kind_text(shown: Shown) -> str:
    if shown.kind == "stream" and isinstance(shown.value, list):
        return f"stream ({len(shown.value)} chunks, replayed in order)"
    return shown.kind


def _usage_text(usage: Usage) -> str:
    parts = [f"{usage.input_tokens:,} input", f"{usage.output_tokens:,} output"]
    if usage.cache_read_tokens:
        parts.append(f"{usage.cache_read_tokens:,} cache read")
    if usage.cache_write_tokens:
        parts.append(f"{usage.cache_write_tokens:,} cache write")
    model = f" ({usage.model})" if usage.model else ""
    return f"{' + '.join(parts)} = {usage.total_tokens:,} tokens{model}, ${usage.cost():.6f}"
