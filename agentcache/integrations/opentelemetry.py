"""OpenTelemetry: the metrics of `agentcache.stats()` as observable instruments on a meter.

::

    from agentcache.integrations.opentelemetry import instrument

    instrument()  # on the global MeterProvider (opentelemetry.metrics.set_meter_provider)

`instrument` registers one observable counter or gauge per family of `agentcache.stats.metrics` (the names are
the Prometheus exporter's, a counter's without ``_total``) on the meter ``agentcache``. Their callbacks share one
reading: a collection sums this process's counters once, whatever the number of instruments. Needs the ``otel``
extra (opentelemetry-api) and, to export anything, an OpenTelemetry SDK with a metric reader.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from agentcache.errors import MissingDependencyError
from agentcache.stats.metrics import MetricFamily, families, schema

try:
    from opentelemetry import metrics
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
except ImportError as exc:
    raise MissingDependencyError("opentelemetry-api", "otel") from exc

if TYPE_CHECKING:
    from agentcache.stats.counters import StatsReport

__all__ = ["instrument"]

UNITS = {"seconds": "s", "ratio": "1"}
"""OpenTelemetry (UCUM) units of the families' Prometheus units."""


def _this_process() -> StatsReport:
    from agentcache.engine.report import stats_report

    return stats_report()


class _Reading:
    """The families of one report, shared by every instrument's callback.

    An instrument asking a second time starts a new reading, so a collection (which calls each callback once)
    reads the report once, in whatever order the SDK calls the callbacks.
    """

    def __init__(self, source: Callable[[], StatsReport], names: Iterable[str]) -> None:
        self._source = source
        self._names = frozenset(names)
        self._unread: set[str] = set()
        self._families: dict[str, MetricFamily] = {}
        self._lock = threading.Lock()

    def observe(self, name: str) -> list[Observation]:
        with self._lock:
            if name not in self._unread:
                self._families = {f.name: f for f in families(self._source())}
                self._unread = set(self._names)
            self._unread.discard(name)
            family = self._families.get(name)
        if family is None:
            return []
        return [Observation(value, dict(labels)) for labels, value in family.samples]


def instrument(
    meter_provider: MeterProvider | None = None, *, source: Callable[[], StatsReport] | None = None
) -> list[metrics.ObservableCounter | metrics.ObservableGauge]:
    """Register agentcache's metrics on the meter ``agentcache`` of `meter_provider` (default: the global one).

    Args:
        meter_provider: an OpenTelemetry ``MeterProvider`` (default: ``opentelemetry.metrics`` global provider).
        source: returns the `StatsReport` to export (default: this process's, as `agentcache.stats()`).

    Returns the instruments. Call it once per provider: OpenTelemetry has no way to remove an instrument.
    """
    from agentcache import __version__

    meter = metrics.get_meter("agentcache", __version__, meter_provider=meter_provider)
    declared = schema()
    reading = _Reading(_this_process if source is None else source, (f.name for f in declared))
    out: list[metrics.ObservableCounter | metrics.ObservableGauge] = []
    for family in declared:
        callbacks = [_callback(reading, family.name)]
        unit = UNITS.get(family.unit, family.unit)
        if family.kind == "counter":
            out.append(meter.create_observable_counter(family.name, callbacks, unit, family.documentation))
        else:
            out.append(meter.create_observable_gauge(family.name, callbacks, unit, family.documentation))
    return out


def _callback(reading: _Reading, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        return reading.observe(name)

    return observe
