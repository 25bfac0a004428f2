"""Prometheus: the metrics of `agentcache.stats()`, read at each scrape by a custom collector.

::

    from prometheus_client import start_http_server
    from agentcache.integrations.prometheus import register

    register()               # into prometheus_client's default registry
    start_http_server(9464)  # or your web framework's /metrics route

The collector keeps no state: each scrape sums this process's counters (`agentcache.stats()`) and translates
`agentcache.stats.metrics.families` into prometheus-client metric families. `exposition(report)` renders a
report in the text format; ``agentcache stats --prometheus`` prints it for every process sharing a store
(node_exporter's textfile collector can serve that file). Needs the ``prometheus`` extra (prometheus-client).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from agentcache.errors import MissingDependencyError
from agentcache.stats.metrics import MetricFamily, families, schema

try:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import REGISTRY, CollectorRegistry
except ImportError as exc:
    raise MissingDependencyError("prometheus-client", "prometheus") from exc

if TYPE_CHECKING:
    from agentcache.stats.counters import StatsReport

__all__ = ["PrometheusCollector", "exposition", "register", "to_prometheus"]


def _this_process() -> StatsReport:
    from agentcache.engine.report import stats_report

    return stats_report()


class PrometheusCollector:
    """A prometheus-client collector of agentcache's metrics, read from `source()` at each scrape.

    Args:
        source: returns the `StatsReport` to export (default: this process's, as `agentcache.stats()`).
    """

    def __init__(self, source: Callable[[], StatsReport] | None = None) -> None:
        self.source = _this_process if source is None else source

    def __repr__(self) -> str:
        return f"PrometheusCollector(source={self.source!r})"

    def collect(self) -> Iterator[Metric]:
        """The metric families of one fresh report (the counters are read once per scrape)."""
        for family in families(self.source()):
            yield to_prometheus(family)

    def describe(self) -> Iterator[Metric]:
        """Every family the collector can export, without samples (the registry checks names with it)."""
        for family in schema():
            yield to_prometheus(family)


def register(
    registry: CollectorRegistry | None = None, source: Callable[[], StatsReport] | None = None
) -> PrometheusCollector:
    """Register a `PrometheusCollector` in `registry` (default: prometheus-client's global ``REGISTRY``).

    Registering twice in one registry raises prometheus-client's ``ValueError`` (duplicated timeseries).
    """
    collector = PrometheusCollector(source)
    (REGISTRY if registry is None else registry).register(collector)
    return collector


def exposition(report: StatsReport, extra: Iterable[MetricFamily] = ()) -> str:
    """`report` (and `extra` families) in Prometheus's text exposition format (version 0.0.4)."""
    from prometheus_client.exposition import generate_latest

    fixed = [*families(report), *extra]

    class _Fixed:
        def collect(self) -> Iterator[Metric]:
            return map(to_prometheus, fixed)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed())
    return generate_latest(registry).decode("utf-8")


def to_prometheus(family: MetricFamily) -> Metric:
    """One `MetricFamily` as a prometheus-client metric family (a counter's samples get the ``_total`` suffix)."""
    names = sorted({name for labels, _ in family.samples for name in labels})
    metric: CounterMetricFamily | GaugeMetricFamily
    if family.kind == "counter":
        metric = CounterMetricFamily(family.name, family.documentation, labels=names, unit=family.unit)
    else:
        metric = GaugeMetricFamily(family.name, family.documentation, labels=names, unit=family.unit)
    for labels, value in family.samples:
        metric.add_metric([labels.get(name, "") for name in names], value)
    return metric
