"""Hit/miss counters and what the cache saved, per cached function and per layer.

Every cached function owns one `Counters`; `agentcache.stats()` sums them into a `StatsReport`
(``report.total``, ``report.by_layer["tool"]``, ``report.by_function[name]``) that prints as a table.
Counters are updated under a per-function lock, so threads never lose an increment.
"""

from __future__ import annotations

import math
import threading
from collections import Counter as _Tally
from collections.abc import Iterable, Mapping
from operator import itemgetter

from agentcache._record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from agentcache.stats.info import CacheInfo
    from agentcache.usage import Usage

__all__ = ["CacheInfo", "Counters", "StatsReport", "format_table"]


def __getattr__(name: str) -> object:
    # `CacheInfo` lives in `agentcache.stats.info` (it needs `typing`); still importable from here.
    if name != "CacheInfo":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from agentcache.stats.info import CacheInfo

    return CacheInfo


# shadow_checks / shadow_wrong: semantic hits also run for real (`verify_sample=`) and those whose answers differed.
# bypasses: calls a wrapped SDK client passed to the API uncached (a method `wrap()` does not cache).
_COUNTS = (
    "misses",
    "errors",
    "backend_errors",
    "stores",
    "not_stored",
    "corrupt",
    "bypasses",
    "shadow_checks",
    "shadow_wrong",
)
_LOG_MAX = 512  # hits recorded but not yet folded in; bounds memory in processes that never read stats


class Counters:
    """Mutable counters of one cached function (or a sum of several).

    A hit appends ``(duration, usage)`` to a log, with no lock (a list append is atomic) and no parsing; the
    log is folded into the totals under the lock when the counters are read, or every `_LOG_MAX` hits. The
    usage is an entry's raw usage JSON (`agentcache.codec.entries`), parsed once per distinct value at fold
    time, or a `Usage`. Everything else is counted under the lock, so threads never lose an increment.
    """

    __slots__ = (*_COUNTS, "_hits", "_lock", "_log", "_saved_usage", "_time_saved", "_tokens", "_usd_base")

    def __init__(self) -> None:
        self.misses = 0
        self.errors = 0
        self.backend_errors = 0
        self.stores = 0
        self.not_stored = 0
        self.corrupt = 0  # entries that failed their checksum or key digest (served as misses, then deleted)
        self.shadow_checks = 0
        self.shadow_wrong = 0
        self.bypasses = 0  # calls a wrapped SDK client passed to the API uncached (a method `wrap()` does not cache)
        self._hits = 0
        self._time_saved = 0.0
        self._tokens = 0
        self._usd_base = 0.0
        # Tokens saved per model (in `Usage` field order): priced only when read, so a hit does no price lookup.
        self._saved_usage: dict[str | None, list[int]] = {}
        self._log: list[tuple[float, bytes | Usage | None]] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Counters(hits={self.hits}, misses={self.misses}, errors={self.errors})"

    def hit(self, duration: float, usage: bytes | Usage | None = None) -> None:
        """Count a hit that saved a call of `duration` seconds and `usage` tokens (entry usage bytes or `Usage`)."""
        log = self._log
        log.append((duration, usage))
        if len(log) >= _LOG_MAX:
            with self._lock:
                self._fold()

    def _fold(self) -> None:
        """Fold the logged hits into the totals (caller holds the lock; hits logged meanwhile stay queued)."""
        log = self._log
        n = len(log)
        if not n:
            return
        batch = log[:n]
        del log[:n]
        self._hits += n
        self._time_saved += sum(map(_first, batch))
        by_usage = _Tally(map(_second, batch))
        by_usage.pop(None, None)
        if by_usage:
            from agentcache.codec.entries import parse_usage

            for usage, times in by_usage.items():
                parsed = parse_usage(usage) if type(usage) is bytes else usage
                if parsed is not None:
                    self._account(parsed, times)

    def _account(self, usage: Usage, times: int) -> None:
        acc = self._saved_usage.get(usage.model)
        if acc is None:
            acc = self._saved_usage[usage.model] = [0, 0, 0, 0, 0]
        acc[0] += usage.input_tokens * times
        acc[1] += usage.output_tokens * times
        acc[2] += usage.cache_read_tokens * times
        acc[3] += usage.cache_write_tokens * times
        acc[4] += usage.cache_write_1h_tokens * times
        self._tokens += usage.total_tokens * times  # the 1 h writes are a part of cache_write_tokens

    def _read(self, name: str) -> Any:
        with self._lock:
            self._fold()
            return getattr(self, name)

    @property
    def hits(self) -> int:
        """Hits so far."""
        return int(self._read("_hits"))

    @property
    def time_saved(self) -> float:
        """Seconds of original calls not repeated (their recorded durations, summed over hits)."""
        return float(self._read("_time_saved"))

    @property
    def tokens_saved(self) -> int:
        """Tokens not paid for again."""
        return int(self._read("_tokens"))

    @property
    def usd_saved(self) -> float:
        """Dollars not paid again, at the prices in force now (`agentcache.set_prices`)."""
        with self._lock:
            self._fold()
            if not self._saved_usage:  # no tokens saved: no prices to look up (nor `agentcache.usage` to import)
                return self._usd_base
            from agentcache.usage import Usage

            saved = [Usage(a[0], a[1], a[2], a[3], a[4], model) for model, a in self._saved_usage.items()]
        return self._usd_base + sum(u.cost() for u in saved)

    def add(self, name: str, amount: int = 1) -> None:
        """Increment the counter `name` ("misses", "errors", "backend_errors", "stores", "not_stored", "corrupt",
        "bypasses")."""
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    @property
    def hit_rate(self) -> float:
        """Hits over lookups (0.0 before the first lookup)."""
        hits = self.hits
        total = hits + self.misses
        return hits / total if total else 0.0

    def info(self) -> CacheInfo:
        """A consistent snapshot as `CacheInfo`."""
        from agentcache.stats.info import CacheInfo

        usd = self.usd_saved
        with self._lock:
            self._fold()
            total = self._hits + self.misses
            return CacheInfo(
                self._hits,
                self.misses,
                self.errors,
                self.backend_errors,
                self._hits / total if total else 0.0,
                self._time_saved,
                self._tokens,
                usd,
            )

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            self._fold()
            for name in _COUNTS:
                setattr(self, name, 0)
            self._hits = 0
            self._time_saved = 0.0
            self._tokens = 0
            self._usd_base = 0.0
            self._saved_usage = {}

    def merge(self, other: Counters | Mapping[str, Any]) -> None:
        """Add another set of counters (or its `to_dict()`) into this one."""
        if isinstance(other, Counters):
            with other._lock:
                other._fold()
                saved = {m: list(c) for m, c in other._saved_usage.items()}
                base = other._usd_base
                data: Mapping[str, Any] = {
                    **{name: getattr(other, name) for name in _COUNTS},
                    "hits": other._hits,
                    "time_saved": other._time_saved,
                    "tokens_saved": other._tokens,
                }
        else:
            saved, data = {}, other
            usd: Any = data.get("usd_saved")
            base = float(usd) if _is_number(usd) else 0.0
        with self._lock:
            self._fold()
            for name in _COUNTS:
                value: Any = data.get(name)
                if _is_number(value):
                    setattr(self, name, getattr(self, name) + int(value))
            for name, attr, cast in _TOTALS:
                value = data.get(name)
                if _is_number(value):
                    setattr(self, attr, getattr(self, attr) + cast(value))
            self._usd_base += base
            for model, counts in saved.items():
                acc = self._saved_usage.setdefault(model, [0, 0, 0, 0, 0])
                for i, n in enumerate(counts):
                    acc[i] += n

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the counters (``usd_saved`` at the prices in force now)."""
        usd = self.usd_saved
        with self._lock:
            self._fold()
            out: dict[str, Any] = {"hits": self._hits}
            out.update((name, getattr(self, name)) for name in _COUNTS)
            out["time_saved"] = self._time_saved
            out["tokens_saved"] = self._tokens
        out["usd_saved"] = usd
        return out


_first = itemgetter(0)
_second = itemgetter(1)
_TOTALS: tuple[tuple[str, str, type], ...] = (
    ("hits", "_hits", int),
    ("time_saved", "_time_saved", float),
    ("tokens_saved", "_tokens", int),
)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class StatsReport(Record):
    """Totals, per layer and per function. `str(report)` is a readable table."""

    __match_args__ = ("total", "by_layer", "by_function", "layers", "prompt_cache")
    __slots__ = __match_args__
    total: Counters
    by_layer: dict[str, Counters]
    by_function: dict[str, Counters]
    layers: dict[str, str]  # function name -> layer
    prompt_cache: Any
    """Provider prompt-cache accounting (`agentcache.decorators.prompt.PromptCacheStats`) once it is in use."""

    def __init__(
        self,
        total: Counters,
        by_layer: dict[str, Counters],
        by_function: dict[str, Counters],
        layers: dict[str, str] | None = None,
        prompt_cache: Any = None,
    ) -> None:
        self._fill(total, by_layer, by_function, {} if layers is None else layers, prompt_cache)

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
        """A JSON-ready dict (plus `shadow`: measured wrong-answer rates of shadow-checked semantic hits)."""
        out: dict[str, Any] = {
            "total": self.total.to_dict(),
            "by_layer": {k: v.to_dict() for k, v in self.by_layer.items()},
            "by_function": {k: v.to_dict() for k, v in self.by_function.items()},
        }
        shadow = {name: shadow_rate(c) for name, c in self.by_function.items() if c.shadow_checks}
        if shadow:
            out["shadow"] = shadow
        return out

    def __str__(self) -> str:
        rows = [
            _row(name, self.layers.get(name, ""), c)
            for name, c in sorted(self.by_function.items(), key=lambda kv: (self.layers.get(kv[0], ""), kv[0]))
        ]
        rows.append(_row("TOTAL", "", self.total))
        table = format_table(
            [
                "function",
                "layer",
                "hits",
                "misses",
                "hit rate",
                "errors",
                "corrupt",
                "bypassed",
                "time saved",
                "tokens",
                "$ saved",
            ],
            rows,
            align="llrrrrrrrrr",
        )
        return table + "".join(
            f"\n{name}: {shadow_line(c)}" for name, c in sorted(self.by_function.items()) if c.shadow_checks
        )


def wilson(wrong: int, checks: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of a rate measured as `wrong` of `checks`."""
    if checks <= 0:
        return 0.0, 1.0
    p = wrong / checks
    denom = 1 + z * z / checks
    centre = (p + z * z / (2 * checks)) / denom
    half = z * math.sqrt(p * (1 - p) / checks + z * z / (4 * checks * checks)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def shadow_rate(c: Counters) -> dict[str, float | int]:
    """Measured wrong-answer rate of shadow-verified semantic hits, with its 95% Wilson interval."""
    low, high = wilson(c.shadow_wrong, c.shadow_checks)
    rate = c.shadow_wrong / c.shadow_checks if c.shadow_checks else 0.0
    return {"checks": c.shadow_checks, "wrong": c.shadow_wrong, "wrong_rate": rate, "ci_low": low, "ci_high": high}


def shadow_line(c: Counters) -> str:
    """`shadow_rate` as one line of text."""
    r = shadow_rate(c)
    return (
        f"{r['wrong']} wrong of {r['checks']} shadow-checked semantic hits: "
        f"{r['wrong_rate']:.1%} (95% CI {r['ci_low']:.1%}-{r['ci_high']:.1%})"
    )


def _row(name: str, layer: str, c: Counters) -> list[str]:
    return [
        name,
        layer,
        str(c.hits),
        str(c.misses),
        f"{c.hit_rate:.0%}",
        str(c.errors + c.backend_errors),
        str(c.corrupt),
        str(c.bypasses),
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
