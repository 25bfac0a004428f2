"""The metrics of a `StatsReport`, described once for every exporter (Prometheus, OpenTelemetry, the CLI).

`families(report)` turns a report into `MetricFamily` records: a Prometheus-style name (a counter's without its
``_total``), a kind (``"counter"`` or ``"gauge"``), a help text, a unit and its samples, one per cached function,
labelled ``function`` and ``layer``. The exporters in `agentcache.integrations.prometheus` and
`agentcache.integrations.opentelemetry` only translate these records; neither computes a value of its own.
"""

from __future__ import annotations

from agentcache._record import Record
from agentcache.stats.counters import shadow_rate

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

    from agentcache.stats.counters import StatsReport

    Kind = Literal["counter", "gauge"]

__all__ = ["PREFIX", "MetricFamily", "families", "schema"]

PREFIX = "agentcache_"
"""Every metric's name starts with it."""


class MetricFamily(Record):
    """One metric and its samples: ``(labels, value)`` pairs.

    `name` is the full name without a counter's ``_total`` (Prometheus and OpenMetrics add it to the sample);
    `unit` is a Prometheus base unit the name ends with (``"seconds"``, ``"ratio"``, ``"bytes"``) or ``""``.
    """

    __match_args__ = ("name", "kind", "documentation", "unit", "samples")
    __slots__ = __match_args__
    name: str
    kind: Kind
    documentation: str
    unit: str
    samples: list[tuple[dict[str, str], float]]

    def __init__(
        self,
        name: str,
        kind: Kind,
        documentation: str,
        unit: str = "",
        samples: list[tuple[dict[str, str], float]] | None = None,
    ) -> None:
        self._fill(name, kind, documentation, unit, [] if samples is None else samples)


# Per function: (key in `Counters.to_dict()`, name, kind, unit, help). Counters are cumulative since the process
# started (or since `agentcache.reset()`; `agentcache stats` sums every process's last snapshot).
_PER_FUNCTION: tuple[tuple[str, str, Kind, str, str], ...] = (
    ("hits", "hits", "counter", "", "Lookups served from the cache."),
    ("misses", "misses", "counter", "", "Lookups that found no usable entry (the function ran)."),
    ("errors", "errors", "counter", "", "Cached calls that raised, entries that could not be read, failed embeddings."),
    (
        "backend_errors",
        "backend_errors",
        "counter",
        "",
        "Store operations that failed (a cached call degrades to a miss).",
    ),
    ("stores", "stores", "counter", "", "Results written to the store."),
    ("not_stored", "not_stored", "counter", "", "Results not written: refused by cache_if=, or not encodable."),
    ("corrupt", "corrupt", "counter", "", "Entries that failed their checksum or key digest (served as misses)."),
    ("bypasses", "bypasses", "counter", "", "Calls a wrapped SDK client passed to the API uncached."),
    ("time_saved", "time_saved_seconds", "counter", "seconds", "Recorded durations of the calls hits replaced."),
    ("tokens_saved", "tokens_saved", "counter", "", "Tokens of the calls hits replaced (not paid for again)."),
    ("usd_saved", "usd_saved", "gauge", "", "Dollars hits saved, priced at read time (agentcache.set_prices)."),
)

# Per shadow-checked semantic function (`verify_sample=`): `shadow_rate`, the measured wrong-answer rate and its
# 95% Wilson interval.
_SHADOW: tuple[tuple[str, str, Kind, str, str], ...] = (
    ("checks", "shadow_checks", "counter", "", "Semantic hits also run for real to check the served answer."),
    ("wrong", "shadow_wrong", "counter", "", "Shadow-checked semantic hits whose served answer was wrong."),
    (
        "wrong_rate",
        "shadow_wrong_ratio",
        "gauge",
        "ratio",
        "Measured wrong-answer rate of shadow-checked semantic hits.",
    ),
    (
        "ci_low",
        "shadow_wrong_ci_low_ratio",
        "gauge",
        "ratio",
        "Lower bound of the 95% Wilson interval of the shadow wrong ratio.",
    ),
    (
        "ci_high",
        "shadow_wrong_ci_high_ratio",
        "gauge",
        "ratio",
        "Upper bound of the 95% Wilson interval of the shadow wrong ratio.",
    ),
)

# The process-wide provider prompt-cache ledger (`PromptCacheStats`), once a call was recorded: no labels.
_PROMPT_CACHE: tuple[tuple[str, str, str], ...] = (
    ("calls", "prompt_cache_calls", "Provider calls recorded by the prompt-cache ledger."),
    ("input_tokens", "prompt_cache_input_tokens", "Prompt tokens neither read from nor written to the provider cache."),
    ("cache_read_tokens", "prompt_cache_read_tokens", "Prompt tokens read from the provider's prompt cache."),
    ("cache_write_tokens", "prompt_cache_write_tokens", "Prompt tokens written to the provider's prompt cache."),
    ("cache_write_1h_tokens", "prompt_cache_write_1h_tokens", "Of those, tokens written with a 1 h lifetime."),
    ("busted_prefixes", "prompt_cache_busted_prefixes", "Cached prefixes written again instead of read."),
    ("cost_usd", "prompt_cache_cost_usd", "Dollars the recorded calls cost, priced when recorded."),
    ("uncached_cost_usd", "prompt_cache_uncached_cost_usd", "Dollars they would have cost with no prompt caching."),
)


def families(report: StatsReport) -> list[MetricFamily]:
    """The metrics of `report`, in a fixed order; each counter of each function is read once.

    Every family in `_PER_FUNCTION` is present (with no samples before the first cached function); the shadow
    families only hold functions with shadow checks, the prompt-cache ones only appear once a call was recorded.
    """
    per_function = [_family(name, kind, unit, doc) for _, name, kind, unit, doc in _PER_FUNCTION]
    shadow = [_family(name, kind, unit, doc) for _, name, kind, unit, doc in _SHADOW]
    for function in sorted(report.by_function):
        counters = report.by_function[function]
        labels = {"function": _label(function), "layer": report.layers.get(function, "")}
        values = counters.to_dict()
        for family, (key, *_) in zip(per_function, _PER_FUNCTION, strict=True):
            family.samples.append((labels, float(values[key])))
        if values["shadow_checks"]:
            measured = shadow_rate(counters)
            for family, (key, *_) in zip(shadow, _SHADOW, strict=True):
                family.samples.append((labels, float(measured[key])))
    out = per_function + [f for f in shadow if f.samples]
    prompt = report.prompt_cache
    if prompt is not None and prompt.calls:
        out.extend(_prompt_cache(prompt))
    return out


def schema() -> list[MetricFamily]:
    """Every family `families` can return, with no samples: what an exporter declares before the first read."""
    rows = [(name, kind, unit, doc) for _, name, kind, unit, doc in (*_PER_FUNCTION, *_SHADOW)]
    out = [_family(name, kind, unit, doc) for name, kind, unit, doc in rows]
    return out + _prompt_cache(None)


def _family(name: str, kind: Kind, unit: str, documentation: str) -> MetricFamily:
    return MetricFamily(PREFIX + name, kind, documentation, unit)


def _prompt_cache(stats: Any) -> list[MetricFamily]:
    """The ledger's families, each with its one sample (none when `stats` is None)."""
    rows: list[tuple[str, Kind, str, float]] = [
        (name, "counter", doc, 0.0 if stats is None else float(getattr(stats, field)))
        for field, name, doc in _PROMPT_CACHE
    ]
    net = 0.0 if stats is None else float(stats.uncached_cost_usd - stats.cost_usd)
    rows.append(("prompt_cache_net_saved_usd", "gauge", "Dollars prompt caching saved after the write premium.", net))
    return [
        MetricFamily(PREFIX + name, kind, doc, "", [] if stats is None else [({}, value)])
        for name, kind, doc, value in rows
    ]


def _label(function: str) -> str:
    """A function's name as a label value; a store's row (``<store redis://user:secret@host>``) loses its password,
    since metrics are read by other programs than the one that configured the store."""
    if not function.startswith("<store "):
        return function
    scheme, sep, rest = function.partition("://")
    userinfo, at, host = rest.partition("@")
    if not (sep and at) or "/" in userinfo or ":" not in userinfo:
        return function
    return f"{scheme}{sep}{userinfo.partition(':')[0]}:***@{host}"
