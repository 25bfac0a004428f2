"""`agentcache.stats()`: the counters of every layer in this process, the stores' errors, the prompt-cache ledger."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentcache.engine.cache import open_caches
from agentcache.engine.registry import every_layer
from agentcache.stats.counters import Counters, StatsReport
from agentcache.stats.prompt_ledger import ledger

__all__ = ["reset_stats", "stats_report"]


def stats_report() -> StatsReport:
    """Sum the counters of every cache layer in this process, plus backend errors of every store."""
    rows: list[tuple[str, str, Counters | Mapping[str, Any]]] = [
        (layer.name, layer.layer, layer.counters) for layer in every_layer()
    ]
    for cache in open_caches():
        if cache.counters.backend_errors:
            rows.append((f"<store {cache.url}>", "backend", cache.counters))
    report = StatsReport.build(rows)
    snapshot = ledger.snapshot()
    if snapshot.calls:
        report.prompt_cache = snapshot
    return report


def reset_stats() -> None:
    """Zero every counter in this process."""
    for layer in every_layer():
        layer.counters.reset()
    for cache in open_caches():
        cache.counters.reset()
    ledger.reset()
