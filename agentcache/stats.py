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
    _usd_base: float = field(default=0.0, repr=False)
    # Tokens saved per model (in `_USAGE_FIELDS` order): priced only when read, so a hit does no price lookup.
    _saved_usage: dict[str | None, list[int]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def hit(self, duration: float, usage: Mapping[str, Any] | Usage | None) -> None:
        """Count a hit that saved a call of `duration` seconds and `usage` tokens (a `Usage` or its dict)."""
        with self._lock:
            self.hits += 1
            self.time_saved += duration
            if usage:
                get = (usage.to_dict() if isinstance(usage, Usage) else usage).get
                i, o, r, w, w1 = (
                    get("input_tokens", 0),
                    get("output_tokens", 0),
                    get("cache_read_tokens", 0),
                    get("cache_write_tokens", 0),
                    get("cache_write_1h_tokens", 0),
                )
                if type(i) is int and type(o) is int and type(r) is int and type(w) is int and type(w1) is int:
                    model = get("model")
                    acc = self._saved_usage.get(model)
                    if acc is None:
                        acc = self._saved_usage[model] = [0, 0, 0, 0, 0]
                    acc[0] += i
                    acc[1] += o
                    acc[2] += r
                    acc[3] += w
                    acc[4] += w1
                    self.tokens_saved += i + o + r + w  # the 1 h writes are a part of cache_write_tokens

    @property
    def usd_saved(self) -> float:
        """Dollars not paid again, at the prices in force now (`agentcache.set_prices`)."""
        with self._lock:
            saved = [Usage(a[0], a[1], a[2], a[3], a[4], model) for model, a in self._saved_usage.items()]
        return self._usd_base + sum(u.cost() for u in saved)

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
        usd = self.usd_saved
        with self._lock:
            return CacheInfo(
                self.hits,
                self.misses,
                self.errors,
                self.backend_errors,
                self.hit_rate,
                self.time_saved,
                self.tokens_saved,
                usd,
            )

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            for f in fields(self):
                if not f.name.startswith("_"):
                    setattr(self, f.name, type(getattr(self, f.name))())
            self._usd_base = 0.0
            self._saved_usage = {}

    def merge(self, other: Counters | Mapping[str, Any]) -> None:
        """Add another set of counters (or its `to_dict()`) into this one."""
        if isinstance(other, Counters):
            with other._lock:
                saved = {m: list(c) for m, c in other._saved_usage.items()}
                base = other._usd_base
            data: Mapping[str, Any] = {f.name: getattr(other, f.name) for f in fields(other) if f.name[0] != "_"}
        else:
            saved, data = {}, other
            usd = data.get("usd_saved")
            base = float(usd) if isinstance(usd, (int, float)) and not isinstance(usd, bool) else 0.0
        with self._lock:
            for f in fields(self):
                if not f.name.startswith("_") and f.name in data:
                    value = data[f.name]
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        setattr(self, f.name, getattr(self, f.name) + type(getattr(self, f.name))(value))
            self._usd_base += base
            for model, counts in saved.items():
                acc = self._saved_usage.setdefault(model, [0, 0, 0, 0, 0])
                for i, n in enumerate(counts):
                    acc[i] += n

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the counters (``usd_saved`` at the prices in force now)."""
        usd = self.usd_saved
        with self._lock:
            out = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        out["usd_saved"] = usd
        return out


@dataclass
class StatsReport:
    """Totals, per layer and per function. `str(report)` is a readable table."""

    total: Counters
    by_layer: dict[str, Counters]
    by_function: dict[str, Counters]
    layers: dict[str, str] = field(default_factory=dict)  # function name -> layer
    prompt_cache: Any = None
    """Provider prompt-cache accounting (`agentcache.prompt_cache.PromptCacheStats`) once it is in use."""

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
