"""Micro-benchmarks of the hot paths: payload build + encode, histogram record and merge, delta pickling.

Run: pytest benchmarks/bench_core.py  (pytest-benchmark; not part of the test suite).
"""

from __future__ import annotations

import pickle

import numpy as np
import orjson
import pytest

from harness.dialects import Site, get
from harness.histogram import Histogram
from harness.recorder import Recorder
from harness.simclock import iso_duration, rfc3339

D = get("openadr-3.0.1")


@pytest.mark.parametrize("sites", [1, 4])
def test_report_build_and_encode(benchmark: pytest.FixtureRequest, sites: int) -> None:
    """One report body built by the dialect and encoded by orjson (what a VEN does per interval)."""
    ss = [Site(f"harness-ven-0000001-site-{i:03d}", 0.0123 * i, 2.5 * i) for i in range(sites)]
    start, dur = rfc3339(1_790_000_000.0), iso_duration(15)

    def build() -> bytes:
        return orjson.dumps(D.report("12", "34", "harness-ven-0000001", ss, start, dur).json)

    body = benchmark(build)
    assert body.startswith(b'{"objectType":"REPORT"')


def test_histogram_record_100k(benchmark: pytest.FixtureRequest) -> None:
    """Recording 100,000 latencies into a histogram (vectorised)."""
    values = np.random.default_rng(1).lognormal(np.log(2e7), 0.6, 100_000).astype(np.int64)

    def record() -> Histogram:
        h = Histogram.empty()
        h.record_ns(values)
        return h

    assert benchmark(record).total == 100_000


def test_histogram_merge(benchmark: pytest.FixtureRequest) -> None:
    """Merging one sparse worker delta into a dense total (what the supervisor does per delta per metric)."""
    h = Histogram.of_ns(np.random.default_rng(2).lognormal(np.log(2e7), 0.6, 5_000).astype(np.int64))
    sparse = h.to_sparse()
    total = Histogram.empty()

    def merge() -> None:
        nonlocal total
        total += Histogram.from_sparse(sparse)

    benchmark(merge)


def test_recorder_ok_and_flush_per_second_at_5k_rps(benchmark: pytest.FixtureRequest) -> None:
    """One second of a worker at 5,000 requests/s: 5,000 records, then one flush into a delta."""

    def second() -> object:
        rec = Recorder()
        for i in range(5000):
            t = i * 0.0002
            rec.ok("report", t, t + 0.0001, t + 0.002)
        return rec.flush()

    ops, _ = benchmark(second)
    assert ops["report"].ok == 5000


def test_delta_pickle_size_and_time(benchmark: pytest.FixtureRequest) -> None:
    """Pickling one delta (6 operations, sparse histograms): the per-second cost on the results queue."""
    rec = Recorder()
    rng = np.random.default_rng(3)
    for op in ("token", "create_ven", "find_ven", "create_resource", "get_events", "report"):
        for x in rng.lognormal(np.log(0.02), 0.6, 2000):
            rec.ok(op, 0.0, 0.0, float(x))
    delta = rec.flush()
    data = benchmark(pickle.dumps, delta)
    benchmark.extra_info["delta_bytes"] = len(data)
    assert len(data) < 100_000
