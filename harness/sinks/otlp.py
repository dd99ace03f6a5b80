"""`harness run --otlp URL`: the run's metrics pushed to an OpenTelemetry collector (OTLP/HTTP, protobuf).

Edge sink. The OpenTelemetry SDK's data model and its OTLP/HTTP exporter, fed directly (no MeterProvider, so no
reader thread): every `interval_s` from the run's main thread, and a final flush with the final counts. Counters
are cumulative sums from the run's start; latencies are exponential histograms at scale 6 (64 buckets a power of
two, as fine as harness's own), built from harness's buckets, never from re-recorded values.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Buckets,
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Gauge,
    Metric,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from harness import __version__
from harness.core.exits import UsageError
from harness.core.histogram import MID_NS, Histogram
from harness.core.results import RunResults
from harness.sinks.base import BaseSink, Outcome, RunControl, RunInfo, Snapshot
from harness.sinks.metricsview import RunState, Series, latencies, series

SCALE = 6
UNITS = {"seconds": "s", "bytes": "By", "percent": "%", "": "1"}
EXPORT_TIMEOUT_S = 3.0  # the exporter retries within it; a push that fails holds the main thread that long
BACKOFF_MAX_S = 300.0  # consecutive failed pushes space the next ones out: interval x 2**failures, at most this
CUMULATIVE = AggregationTemporality.CUMULATIVE


def otlp_endpoint(url: str) -> str:
    """The OTLP/HTTP metrics endpoint of URL: /v1/metrics added to a bare base URL; a one-line UsageError for a
    URL that is not http(s)://HOST[:PORT][/PATH]."""
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 1) > 0  # a bad port raises
    except ValueError:
        ok = False
    if not ok:
        raise UsageError(f"--otlp: {url!r} is not an OTLP/HTTP URL; give http(s)://HOST:PORT, e.g. http://127.0.0.1:4318")
    path = parts.path if parts.path not in ("", "/") else "/v1/metrics"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def exponential_point(h: Histogram, attrs: dict[str, str], start_ns: int, now_ns: int) -> ExponentialHistogramDataPoint:
    """harness's histogram as an OTel exponential one: each bucket's count in the scale-6 bucket of its midpoint."""
    nz = np.flatnonzero(h.counts)
    mids_s = MID_NS[nz] / 1e9
    zero = mids_s <= 0.0
    idx = np.ceil(np.log2(mids_s[~zero]) * (1 << SCALE)).astype(np.int64) - 1 if (~zero).any() else np.zeros(0, np.int64)
    offset = int(idx.min()) if idx.size else 0
    counts = np.bincount(idx - offset, weights=h.counts[nz][~zero]).astype(np.int64) if idx.size else np.zeros(0, np.int64)
    total = h.total
    return ExponentialHistogramDataPoint(
        attributes=attrs, start_time_unix_nano=start_ns, time_unix_nano=now_ns, count=total,
        sum=float((h.counts * MID_NS).sum()) / 1e9, scale=SCALE, zero_count=int(h.counts[nz][zero].sum()),
        positive=Buckets(offset, counts.tolist()), negative=Buckets(0, []), flags=0,
        min=h.min_ns / 1e9 if total else 0.0, max=h.max_ns / 1e9 if total else 0.0)


def metrics_data(results: RunResults, state: RunState, start_ns: int, now_ns: int, run: str) -> MetricsData:
    """The run as one OTLP export: the shared view's counters and gauges, then the latency histograms."""
    metrics = [_metric(s, start_ns, now_ns) for s in series(results, state)]
    by_name: dict[str, list[ExponentialHistogramDataPoint]] = {}
    for lat in latencies(results):
        by_name.setdefault(lat.name, []).append(exponential_point(lat.hist, lat.labels, start_ns, now_ns))
    metrics += [Metric(f"harness.{name}", f"{name} of each successful operation", "s", ExponentialHistogram(points, CUMULATIVE))
                for name, points in by_name.items()]
    scope = ScopeMetrics(InstrumentationScope("harness", __version__), metrics, "")
    resource = Resource.create({"service.name": "harness", "harness.run": run})
    return MetricsData([ResourceMetrics(resource, [scope], "")])


def _metric(s: Series, start_ns: int, now_ns: int) -> Metric:
    points = [NumberDataPoint(dict(lbl), start_ns, now_ns, int(v) if s.kind == "counter" else v) for lbl, v in s.points]
    data = Sum(points, CUMULATIVE, is_monotonic=True) if s.kind == "counter" else Gauge(points)
    return Metric(f"harness.{s.name}", s.help, UNITS[s.unit], data)


class OtlpSink(BaseSink):
    """Pushes the run every interval_s while it goes and once more with its final counts."""

    def __init__(self, url: str, interval_s: float = 10.0) -> None:
        self.endpoint = otlp_endpoint(url)
        self.interval_s = interval_s
        # The exporter logs each failure itself; harness says it once, in run.notes and on stderr.
        logging.getLogger("opentelemetry.exporter.otlp").setLevel(logging.CRITICAL)
        self._exporter = OTLPMetricExporter(endpoint=self.endpoint, timeout=EXPORT_TIMEOUT_S)
        self._control: RunControl | None = None
        self._start_ns = 0
        self._run = ""
        self._target_vens = 0
        self._next_s = interval_s
        self.exports = 0
        self.problem: str | None = None  # the first failed export, for the user
        self._is_closed = False
        self._failures = 0  # consecutive failed pushes

    def started(self, info: RunInfo) -> None:
        if info.is_started:
            self._control, self._start_ns = info.control, int(info.t0_epoch_s * 1e9)
            self._run, self._target_vens = info.run_dir.name, info.profile.vens

    def snapshot(self, snap: Snapshot) -> None:
        if self._control is None or snap.elapsed_s < self._next_s:
            return
        is_ok = self._push(snap.results, RunState(elapsed_s=snap.elapsed_s, target_vens=self._target_vens))
        self._failures = 0 if is_ok else self._failures + 1
        self._next_s = snap.elapsed_s + min(BACKOFF_MAX_S, self.interval_s * 2**self._failures)

    def finished(self, outcome: Outcome) -> None:
        if self._control is None:
            return
        elapsed_s = max(0.0, time.time() - self._start_ns / 1e9)
        self._push(outcome.results, RunState(elapsed_s, self._target_vens, is_finished=True, verdict=outcome.verdict))
        self.close()

    def _push(self, results: RunResults, state: RunState) -> bool:
        data = metrics_data(results, state, self._start_ns, time.time_ns(), self._run)
        if self._exporter.export(data, timeout_millis=EXPORT_TIMEOUT_S * 1e3) == MetricExportResult.SUCCESS:
            self.exports += 1
            return True
        if self.problem is None:
            self.problem = f"otlp: export to {self.endpoint} failed (is a collector listening there?)"
            if self._control is not None and not state.is_finished:
                self._control.note(self.problem)
        return False

    def close(self) -> None:
        if not self._is_closed:
            self._is_closed = True
            self._exporter.shutdown()
