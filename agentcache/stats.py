"""Hit/miss counters and what the cache saved, per cached function and per layer.

Every cached function owns one `Counters`; `agentcache.stats()` sums them into a `StatsReport`
(``report.total``, ``report.by_layer["tool"]``, ``report.by_function[name]``) that prints as a table.
Counters are updated under a per-function lock, so threads never lose an increment.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

from .usage import Usage

__all__ = ["CacheInfo", "Counters", "StatsReport", "format_table"]


class CacheInfo(NamedTuple):
    """What `fn.cache_info()` returns (like `functools.lru_cache`, plus savings)."""

    hits: int
    misses: int
    errors: int
    backend_errors: int
    hit_rate: float
    time_saved: float
    tokens_saved: int
    usd_saved: float


@dataclass
class Counters:
    """Mutable counters of one cached function (or a sum of several)."""

    hits: int = 0
    misses: int = 0
    errors: int = 0
    backend_errors: int = 0
    stores: int = 0
    not_stored: int = 0
    time_saved: float = 0.0
    tokens_saved: int = 0
    usd_saved: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def hit(self, duration: float, usage: Usage | None) -> None:
        """Count a hit that saved a call of `duration` seconds and `usage` tokens."""
        with self._lock:
            self.hits += 1
            self.time_saved += duration
            if usage is not None:
                self.tokens_saved += usage.total_tokens
                self.usd_saved += usage.cost()

    def add(self, name: str, amount: int = 1) -> None:
        """Increment the counter `name` ("misses", "errors", "backend_errors", "stores", "not_stored")."""
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    @property
    def hit_rate(self) -> float:
        """Hits over lookups (0.0 before the first lookup)."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def info(self) -> CacheInfo:
        """A consistent snapshot as `CacheInfo`."""
        with self._lock:
            return CacheInfo(
                self.hits,
                self.misses,
                self.errors,
                self.backend_errors,
                self.hit_rate,
                self.time_saved,
                self.tokens_saved,
                self.usd_saved,
            )

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            for f in fields(self):
                if not f.name.startswith("_"):
                    setattr(self, f.name, type(getattr(self, f.name))())

    def merge(self, other: Counters | Mapping[str, Any]) -> None:
        """Add another set of counters (or its `to_dict()`) into this one."""
        data = other.to_dict() if isinstance(other, Counters) else other
        with self._lock:
            for f in fields(self):
                if not f.name.startswith("_") and f.name in data:
                    value = data[f.name]
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        setattr(self, f.name, getattr(self, f.name) + type(getattr(self, f.name))(value))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the counters."""
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}


@dataclass
class StatsReport:
    """Totals, per layer and per function. `str(report)` is a readable table."""

    total: Counters
    by_layer: dict[str, Counters]
    by_function: dict[str, Counters]
    layers: dict[str, str] = field(default_factory=dict)  # function name -> layer

    @classmethod
    def build(cls, rows: Iterable[tuple[str, str, Counters | Mapping[str, Any]]]) -> StatsReport:
        """Sum `(function, layer, counters)` rows."""
        total = Counters()
        by_layer: dict[str, Counters] = {}
        by_function: dict[str, Counters] = {}
        layers: dict[str, str] = {}
        for name, layer, counters in rows:
            total.merge(counters)
            by_layer.setdefault(layer, Counters()).merge(counters)
            by_function.setdefault(name, Counters()).merge(counters)
            layers[name] = layer
        return cls(total, by_layer, by_function, layers)

    @property
    def hits(self) -> int:
        """Total hits."""
        return self.total.hits

    @property
    def misses(self) -> int:
        """Total misses."""
        return self.total.misses

    @property
    def hit_rate(self) -> float:
        """Total hit rate."""
        return self.total.hit_rate

    @property
    def time_saved(self) -> float:
        """Seconds of original calls not repeated."""
        return self.total.time_saved

    @property
    def tokens_saved(self) -> int:
        """Tokens not paid for again."""
        return self.total.tokens_saved

    @property
    def usd_saved(self) -> float:
        """Dollars not paid again, from the price table."""
        return self.total.usd_saved

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "total": self.total.to_dict(),
            "by_layer": {k: v.to_dict() for k, v in self.by_layer.items()},
            "by_function": {k: v.to_dict() for k, v in self.by_function.items()},
        }

    def __str__(self) -> str:
        rows = [
            _row(name, self.layers.get(name, ""), c)
            for name, c in sorted(self.by_function.items(), key=lambda kv: (self.layers.get(kv[0], ""), kv[0]))
        ]
        rows.append(_row("TOTAL", "", self.total))
        return format_table(
            ["function", "layer", "hits", "misses", "hit rate", "errors", "time saved", "tokens", "$ saved"],
            rows,
            align="llrrrrrrr",
        )


def _row(name: str, layer: str, c: Counters) -> list[str]:
    return [
        name,
        layer,
        str(c.hits),
        str(c.misses),
        f"{c.hit_rate:.0%}",
        str(c.errors + c.backend_errors),
        format_seconds(c.time_saved),
        f"{c.tokens_saved:,}",
        f"{c.usd_saved:.4f}",
    ]


def format_seconds(seconds: float) -> str:
    """`1.2 s`, `3.4 ms`, `2 min 5 s` ..."""
    if seconds >= 120:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def format_table(headers: list[str], rows: list[list[str]], *, align: str = "") -> str:
    """A plain box-drawn table; `align` has one `l` or `r` per column."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: list[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            right = i < len(align) and align[i] == "r"
            out.append(cell.rjust(widths[i]) if right else cell.ljust(widths[i]))
        return "│ " + " │ ".join(out) + " │"

    top = "┌─" + "─┬─".join("─" * w for w in widths) + "─┐"
    sep = "├─" + "─┼─".join("─" * w for w in widths) + "─┤"
    bottom = "└─" + "─┴─".join("─" * w for w in widths) + "─┘"
    return "\n".join([top, line(headers), sep, *(line(r) for r in rows), bottom])
