"""The metrics exporters' cost per second of a run: the Prometheus families and the OTLP export built from a run's
merged results (6 operations with full histograms, 8 workers), and one scrape's exposition text.

Run: pytest benchmarks/bench_export.py -o python_files=bench_*.py  (pytest-benchmark; not part of the test suite).
"""

from __future__ import annotations

import numpy as np
import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from prometheus_client.exposition import generate_latest

from harness.core.histogram import Histogram
from harness.core.messages import Health
from harness.core.results import OpTotals, RunResults
from harness.sinks.metricsview import RunState
from harness.sinks.otlp import metrics_data
from harness.sinks.prometheus import families

OPS = ("token", "create_ven", "find_ven", "create_resource", "poll_events", "report")
STATE = RunState(elapsed_s=60.0, target_vens=1000)


@pytest.fixture(scope="module")
def results() -> RunResults:
    rng = np.random.default_rng(1)
    r = RunResults()
    for op in OPS:
        t = r.totals[op] = OpTotals(ok=1_000_000, errors=10)
        t.response, t.service, t.lag = (Histogram.of_s(rng.lognormal(-4, 1, 200_000)) for _ in range(3))
    for w in range(8):
        r.worker(w).health = Health(1.0, 0.5, 50.0, 10**8, 100, 10, 0)
    return r


def test_prometheus_families(benchmark: pytest.FixtureRequest, results: RunResults) -> None:
    """The families the Prometheus sink builds in the run's main thread at each snapshot."""
    fams = benchmark(families, results, STATE)
    assert len(fams) > 20


def test_prometheus_scrape(benchmark: pytest.FixtureRequest, results: RunResults) -> None:
    """One scrape's exposition text (built in the server's thread), and its size."""
    fams = families(results, STATE)

    class Published:
        def collect(self) -> list[object]:
            return list(fams)

    text = benchmark(generate_latest, Published())
    lines = text.count(b"\n")
    print(f"\nscrape: {len(text):,} bytes, {lines:,} lines")


def test_otlp_export_build(benchmark: pytest.FixtureRequest, results: RunResults) -> None:
    """One OTLP push's MetricsData and its protobuf encoding, and its size."""
    def build() -> bytes:
        return bytes(encode_metrics(metrics_data(results, STATE, 0, 1, "bench")).SerializeToString())

    body = benchmark(build)
    print(f"\notlp push: {len(body):,} bytes")
