"""Metrics export: the Prometheus collector, the OpenTelemetry instruments and `agentcache stats --prometheus`
export exactly what `agentcache.stats()` reports (real prometheus-client and opentelemetry-sdk)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from support.embedders import SameVector

import agentcache
from agentcache.decorators.semantic import semantic_cached
from agentcache.engine.cache import Cache
from agentcache.errors import MissingDependencyError
from agentcache.stats.counters import Counters, StatsReport, shadow_rate
from agentcache.stats.metrics import families, schema
from agentcache.stats.prompt_ledger import ledger
from agentcache.usage import Usage

SHADOWED = 4  # semantic hits, each shadow-checked (verify_sample=1.0) and each wrong (the answers differ)
COUNTED = ("hits", "misses", "errors", "backend_errors", "stores", "not_stored", "corrupt", "bypasses")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
# Names no other test module uses: `stats()` sums the functions alive in the process by name, and functions of
# earlier tests may still be alive when these run.
SEARCH, ASK = "metrics_test_search", "metrics_test_ask"
OURS = (SEARCH, ASK)


@pytest.fixture
def cache() -> Iterator[Cache]:
    c = Cache("memory://")
    yield c
    c.close()


@pytest.fixture
def alive() -> list[Any]:
    """Holds a test's cached functions: a layer counts in `agentcache.stats()` only while its function lives."""
    return []


def run_workload(backend: Any, alive: list[Any]) -> None:
    """A tool hit and miss, and `SHADOWED` shadow-checked semantic hits that were all wrong."""

    @agentcache.tool_cached(backend=backend, name=SEARCH)
    def search(q: str) -> str:
        return q.upper()

    @semantic_cached(backend=backend, embedder=SameVector(), guards=(), judge=False, verify_sample=1.0, name=ASK)
    def ask(question: str) -> str:
        return f"answer to {question}"

    search("a")
    search("a")
    search("b")
    for i in range(SHADOWED + 1):
        ask(f"q{i}")
    alive += [search, ask]


def parse(text: str) -> Samples:
    """Exposition text as {(sample name, labels): value}."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def labels(function: str, layer: str) -> frozenset[tuple[str, str]]:
    return frozenset({"function": function, "layer": layer}.items())


def assert_matches_stats(samples: Samples, report: StatsReport, only: tuple[str, ...] = ()) -> None:
    """Every per-function value of `report` (as `agentcache.stats()` shows it) is the exported one (of the
    functions `only` names, if it names some)."""
    assert report.by_function
    assert set(only) <= set(report.by_function)
    for function, counters in report.by_function.items():
        if only and function not in only:
            continue
        key = labels(function, report.layers[function])
        values = counters.to_dict()
        for name in COUNTED:
            assert samples[(f"agentcache_{name}_total", key)] == values[name], (function, name)
        assert samples[("agentcache_time_saved_seconds_total", key)] == pytest.approx(values["time_saved"])
        assert samples[("agentcache_tokens_saved_total", key)] == values["tokens_saved"]
        assert samples[("agentcache_usd_saved", key)] == pytest.approx(values["usd_saved"])
        if not counters.shadow_checks:
            assert ("agentcache_shadow_checks_total", key) not in samples
            continue
        rate = shadow_rate(counters)
        assert samples[("agentcache_shadow_checks_total", key)] == rate["checks"]
        assert samples[("agentcache_shadow_wrong_total", key)] == rate["wrong"]
        assert samples[("agentcache_shadow_wrong_ratio", key)] == pytest.approx(rate["wrong_rate"])
        assert samples[("agentcache_shadow_wrong_ci_low_ratio", key)] == pytest.approx(rate["ci_low"])
        assert samples[("agentcache_shadow_wrong_ci_high_ratio", key)] == pytest.approx(rate["ci_high"])


class TestFamilies:
    def test_values_come_from_the_counters(self) -> None:
        """Tokens and dollars saved, time saved, the shadow rate with its Wilson interval: the counters' values."""
        counters = Counters()
        usage = Usage(1000, 200, model="gpt-4o-mini")
        counters.hit(0.5, usage)
        counters.hit(0.25, usage)
        counters.add("misses")
        counters.add("shadow_checks", 10)
        counters.add("shadow_wrong", 1)
        report = StatsReport.build([("f", "llm", counters)])
        got = {f.name: f for f in families(report)}
        sample = {name: family.samples[0][1] for name, family in got.items()}
        assert got["agentcache_hits"].samples == [({"function": "f", "layer": "llm"}, 2.0)]
        assert sample["agentcache_misses"] == 1.0
        assert sample["agentcache_time_saved_seconds"] == 0.75
        assert sample["agentcache_tokens_saved"] == 2400
        assert sample["agentcache_usd_saved"] == pytest.approx(2 * usage.cost()) and usage.cost() > 0
        assert sample["agentcache_shadow_wrong_ratio"] == 0.1
        low, high = sample["agentcache_shadow_wrong_ci_low_ratio"], sample["agentcache_shadow_wrong_ci_high_ratio"]
        assert low == pytest.approx(0.0179, abs=1e-4) and high == pytest.approx(0.4042, abs=1e-4)
        assert got["agentcache_usd_saved"].kind == "gauge" and got["agentcache_hits"].kind == "counter"

    def test_an_empty_report_has_the_families_and_no_samples(self) -> None:
        out = families(StatsReport.build([]))
        assert [f.name for f in out] == [f.name for f in schema()][: len(out)]
        assert all(not f.samples for f in out)
        assert not any("shadow" in f.name or "prompt" in f.name for f in out)

    def test_a_stores_password_is_not_a_label(self) -> None:
        """A store's error row names its URL: the password in it is not exported."""
        report = StatsReport.build([("<store redis://app:s3cret@db:6379/0>", "backend", {"backend_errors": 3})])
        (sample,) = next(f for f in families(report) if f.name == "agentcache_backend_errors").samples
        assert sample == ({"function": "<store redis://app:***@db:6379/0>", "layer": "backend"}, 3.0)
        assert "s3cret" not in repr(families(report))

    def test_the_prompt_cache_ledger(self) -> None:
        """The process-wide ledger appears once a call was recorded, with the ledger's own totals."""
        assert not any(f.name.startswith("agentcache_prompt_cache") for f in families(agentcache.stats()))
        ledger.record(Usage(100, 10, cache_read_tokens=900, model="claude-sonnet-4-5"))
        snapshot = ledger.snapshot()
        got = {f.name: f.samples for f in families(agentcache.stats())}
        assert got["agentcache_prompt_cache_calls"] == [({}, 1.0)]
        assert got["agentcache_prompt_cache_read_tokens"] == [({}, 900.0)]
        assert got["agentcache_prompt_cache_cost_usd"] == [({}, pytest.approx(snapshot.cost_usd))]
        assert got["agentcache_prompt_cache_net_saved_usd"] == [({}, pytest.approx(snapshot.net_saved_usd))]
        assert snapshot.net_saved_usd > 0


class TestPrometheus:
    def test_a_scrape_exports_what_stats_reports(self, cache: Cache, alive: list[Any]) -> None:
        from agentcache.integrations.prometheus import register

        registry = CollectorRegistry()
        register(registry)
        run_workload(cache, alive)
        samples = parse(generate_latest(registry).decode())
        report = agentcache.stats()
        assert_matches_stats(samples, report, only=OURS)
        tool, shadow = labels(SEARCH, "tool"), labels(ASK, "semantic")
        assert (samples[("agentcache_hits_total", tool)], samples[("agentcache_misses_total", tool)]) == (1, 2)
        assert samples[("agentcache_shadow_checks_total", shadow)] == SHADOWED
        assert samples[("agentcache_shadow_wrong_ratio", shadow)] == 1.0
        assert 0.0 < samples[("agentcache_shadow_wrong_ci_low_ratio", shadow)] < 1.0

    def test_each_scrape_reads_the_counters_again(self, cache: Cache) -> None:
        from agentcache.integrations.prometheus import register

        registry = CollectorRegistry()
        register(registry)

        @agentcache.tool_cached(backend=cache, name="again")
        def again(q: str) -> str:
            return q

        again("x")
        assert registry.get_sample_value("agentcache_hits_total", {"function": "again", "layer": "tool"}) == 0
        again("x")
        again("x")
        assert registry.get_sample_value("agentcache_hits_total", {"function": "again", "layer": "tool"}) == 2

    def test_describe_declares_every_family(self, cache: Cache, alive: list[Any]) -> None:
        """The registry checks names with `describe()`: a second collector is refused, and everything a scrape
        exports (shadow and prompt-cache families included) was declared."""
        from agentcache.integrations.prometheus import PrometheusCollector, register

        registry = CollectorRegistry()
        collector = register(registry)
        with pytest.raises(ValueError, match="Duplicated timeseries"):
            register(registry)
        run_workload(cache, alive)
        ledger.record(Usage(10, 1, cache_read_tokens=10))
        declared = {m.name for m in collector.describe()}
        collected = {m.name for m in PrometheusCollector().collect()}
        assert "agentcache_shadow_wrong_ratio" in collected and "agentcache_prompt_cache_calls" in collected
        assert collected <= declared

    def test_every_value_goes_to_its_own_metric(self) -> None:
        """Distinct values for every counter (as a snapshot holds them) come out under their own names."""
        from agentcache.integrations.prometheus import exposition

        row = {name: i for i, name in enumerate((*COUNTED, "shadow_checks", "shadow_wrong"), start=1)}
        row.update(time_saved=11.5, tokens_saved=12, usd_saved=0.13, shadow_checks=40, shadow_wrong=3)
        report = StatsReport.build([("f", "llm", row)])
        samples = parse(exposition(report))
        assert_matches_stats(samples, report)
        key = labels("f", "llm")
        assert {name: samples[(f"agentcache_{name}_total", key)] for name in COUNTED} == {n: row[n] for n in COUNTED}
        assert samples[("agentcache_time_saved_seconds_total", key)] == 11.5
        assert samples[("agentcache_tokens_saved_total", key)] == 12
        assert samples[("agentcache_usd_saved", key)] == 0.13
        assert samples[("agentcache_shadow_wrong_ratio", key)] == 3 / 40
        low, high = (
            samples[("agentcache_shadow_wrong_ci_low_ratio", key)],
            samples[("agentcache_shadow_wrong_ci_high_ratio", key)],
        )
        assert 0.0 < low < 3 / 40 < high < 1.0

    def test_exposition_of_a_given_report(self, cache: Cache, alive: list[Any]) -> None:
        from agentcache.integrations.prometheus import exposition

        run_workload(cache, alive)
        report = agentcache.stats()
        assert_matches_stats(parse(exposition(report)), report, only=OURS)

    def test_without_prometheus_client(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in ("prometheus_client", "prometheus_client.core", "prometheus_client.registry"):
            monkeypatch.setitem(sys.modules, name, None)
        monkeypatch.delitem(sys.modules, "agentcache.integrations.prometheus", raising=False)
        with pytest.raises(MissingDependencyError, match=r"agentcache-py\[prometheus\]") as caught:
            import agentcache.integrations.prometheus  # noqa: F401
        assert caught.value.extra == "prometheus"


def otel_points(reader: Any) -> dict[tuple[str, frozenset[tuple[str, Any]]], float]:
    data = reader.get_metrics_data()
    return {
        (metric.name, frozenset(dict(point.attributes or {}).items())): point.value
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        for point in metric.data.data_points
    }


class TestOpenTelemetry:
    @pytest.fixture
    def reader(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
        """An SDK MeterProvider with an in-memory reader (the test run's environment disables the SDK by default:
        tests/support/offline.py)."""
        monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader])
        reader.provider = provider  # for the tests' instrument() calls
        yield reader
        provider.shutdown()

    def test_a_collection_exports_what_stats_reports(self, cache: Cache, reader: Any, alive: list[Any]) -> None:
        from agentcache.integrations.opentelemetry import instrument

        instruments = instrument(reader.provider)
        assert len(instruments) == len(schema())
        run_workload(cache, alive)
        points = otel_points(reader)
        report = agentcache.stats()
        kinds = {f.name: f.kind for f in schema()}  # the same names, a counter's without `_total`
        samples = {(name + ("_total" if kinds[name] == "counter" else ""), k): v for (name, k), v in points.items()}
        assert_matches_stats(samples, report, only=OURS)
        shadow = labels(ASK, "semantic")
        assert points[("agentcache_shadow_wrong", shadow)] == SHADOWED

    def test_the_report_is_read_once_per_collection(self, reader: Any) -> None:
        from agentcache.integrations.opentelemetry import instrument

        reads: list[StatsReport] = []

        def source() -> StatsReport:
            counters = Counters()
            counters.add("misses", len(reads) + 1)
            reads.append(StatsReport.build([("f", "tool", counters)]))
            return reads[-1]

        instrument(reader.provider, source=source)
        key = ("agentcache_misses", labels("f", "tool"))
        assert otel_points(reader)[key] == 1
        assert len(reads) == 1
        assert otel_points(reader)[key] == 2
        assert len(reads) == 2

    def test_without_opentelemetry(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in ("opentelemetry", "opentelemetry.metrics"):
            monkeypatch.setitem(sys.modules, name, None)
        monkeypatch.delitem(sys.modules, "agentcache.integrations.opentelemetry", raising=False)
        with pytest.raises(MissingDependencyError, match=r"agentcache-py\[otel\]") as caught:
            import agentcache.integrations.opentelemetry  # noqa: F401
        assert caught.value.extra == "otel"


class TestCli:
    def test_stats_prometheus_parses_and_matches(
        self, tmp_path: Path, alive: list[Any], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`agentcache stats --prometheus`: the store's summed snapshots (here: this process's stats) and what
        the store holds, in the text format."""
        from agentcache.cli.main import main

        url = f"sqlite://{tmp_path / 'm.db'}"
        run_workload(url, alive)
        agentcache.flush_stats()
        expected = agentcache.stats()
        assert main(["--url", url, "stats", "--prometheus"]) == 0
        samples = parse(capsys.readouterr().out)
        # the store holds the snapshot of the functions that ran (earlier tests' idle layers may still be alive)
        assert_matches_stats(samples, expected, only=OURS)
        assert samples[("agentcache_stats_snapshots", frozenset())] == 1
        assert main(["--url", url, "stats", "--json"]) == 0
        groups = json.loads(capsys.readouterr().out)["store"]["groups"]
        assert groups
        for g in groups:
            key = frozenset({"namespace": g["namespace"], "layer": g["layer"]}.items())
            assert samples[("agentcache_store_entries", key)] == g["entries"]
            assert samples[("agentcache_store_bytes", key)] == g["bytes"]

    def test_an_empty_store(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        from agentcache.cli.main import main

        assert main(["--url", f"sqlite://{tmp_path / 'none.db'}", "stats", "--prometheus"]) == 0
        samples = parse(capsys.readouterr().out)
        assert samples == {("agentcache_stats_snapshots", frozenset()): 0}

    def test_usage_errors(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from agentcache.cli.main import main

        url = f"sqlite://{tmp_path / 'e.db'}"
        assert main(["--url", url, "--json", "stats", "--prometheus"]) == 2
        assert "choose one" in capsys.readouterr().err
        for name in ("prometheus_client", "prometheus_client.core", "prometheus_client.registry"):
            monkeypatch.setitem(sys.modules, name, None)
        monkeypatch.delitem(sys.modules, "agentcache.integrations.prometheus", raising=False)
        assert main(["--url", url, "stats", "--prometheus"]) == 2
        assert "agentcache-py[prometheus]" in capsys.readouterr().err


LIGHT = textwrap.dedent(
    """
    import json, sys
    import agentcache
    @agentcache.tool_cached(backend="memory://")
    def f(q):
        return q
    f(1)
    agentcache.stats()
    print(json.dumps([m for m in sys.modules if m.startswith(("prometheus_client", "opentelemetry"))
                      or m == "agentcache.stats.metrics"]))
    """
)


def test_stats_import_no_exporter() -> None:
    """`import agentcache`, a cached call and `agentcache.stats()` load neither exporter nor the metrics module."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCACHE_")}
    out = subprocess.run([sys.executable, "-c", LIGHT], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
