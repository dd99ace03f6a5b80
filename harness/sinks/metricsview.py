"""What the metrics exporters export: the run as named series (counters, gauges) and latency histograms, read from
the merged RunResults, one view shared by the Prometheus endpoint and the OTLP push so both say the same.

Edge helper (no I/O): called from the run's main thread; the exporters only render what it returns.
Names are given without a prefix or unit suffix (each exporter adds its own convention).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from harness.core.histogram import PERCENTILES, Histogram
from harness.core.results import METRIC_KEYS, METRICS, OpTotals, RunResults, WorkerState

Labels = dict[str, str]


@dataclass(frozen=True)
class Series:
    """One metric: a counter (only grows over the run) or a gauge, with a point per label set."""

    name: str
    kind: str  # counter | gauge
    help: str
    unit: str = ""  # "" | seconds | bytes | percent
    points: list[tuple[Labels, float]] = field(default_factory=list)


@dataclass(frozen=True)
class Latency:
    """One latency histogram: an operation's response_time, service_time or start_lag, in one phase."""

    name: str  # response_time | service_time | start_lag
    labels: Labels  # operation, phase
    hist: Histogram


@dataclass(frozen=True)
class RunState:
    """The facts about the run itself that RunResults does not hold."""

    elapsed_s: float = 0.0
    target_vens: int = 0
    is_finished: bool = False
    verdict: str = "running"


def phases(results: RunResults) -> Iterator[tuple[str, str, OpTotals]]:
    """(phase, operation, totals): the measured window as summary.json's operations, warm-up apart (only if any)."""
    for phase, table in (("measured", results.totals), ("warmup", results.warmup)):
        for op, t in sorted(table.items()):
            yield phase, op, t


def latencies(results: RunResults) -> list[Latency]:
    return [Latency(METRIC_KEYS[m], {"operation": op, "phase": phase}, t.hist(m))
            for phase, op, t in phases(results) for m in METRICS]


# Generator health per worker: the last window's figures, and the run's peaks.
HEALTH: tuple[tuple[str, str, str, Callable[[WorkerState], float]], ...] = (
    ("worker_loop_lag_max", "event-loop lag of the worker, the worst in its last window", "seconds",
     lambda w: w.health.loop_lag_max_ms / 1e3 if w.health else 0.0),
    ("worker_loop_lag_mean", "event-loop lag of the worker, the mean over its last window", "seconds",
     lambda w: w.health.loop_lag_mean_ms / 1e3 if w.health else 0.0),
    ("worker_loop_lag_peak", "event-loop lag of the worker, the worst of the run", "seconds",
     lambda w: w.loop_lag_max_ms / 1e3),
    ("worker_cpu", "CPU use of the worker process in its last window (100 = one core)", "percent",
     lambda w: w.health.cpu_percent if w.health else 0.0),
    ("worker_rss", "resident memory of the worker process", "bytes",
     lambda w: float(w.health.rss_bytes) if w.health else 0.0),
    ("worker_open_fds", "open file descriptors (sockets included) of the worker", "",
     lambda w: float(w.health.open_fds) if w.health else 0.0),
    ("worker_in_flight", "requests in flight in the worker", "", lambda w: float(w.health.in_flight) if w.health else 0.0),
    ("worker_backlog", "operations due but not yet started in the worker", "",
     lambda w: float(w.health.backlog) if w.health else 0.0),
    ("worker_vens_ready", "VENs of the worker provisioned and running", "", lambda w: float(w.vens_ready)),
    ("worker_up", "1 while the worker runs (starting or running), 0 once it ended or failed", "",
     lambda w: 1.0 if w.status in ("starting", "running") else 0.0),
)


def series(results: RunResults, state: RunState) -> list[Series]:
    """Every counter and gauge of the run as it stands."""
    ops = Series("operations", "counter", "operations completed, by operation, outcome (ok|error) and phase")
    for phase, op, t in phases(results):
        ops.points.extend((({"operation": op, "outcome": "ok", "phase": phase}, float(t.ok)),
                           ({"operation": op, "outcome": "error", "phase": phase}, float(t.errors))))
    errors = Series("errors", "counter", "failed operations by error class and operation (warm-up included)")
    for cls, e in sorted(results.errors.items()):
        errors.points.extend(({"class": cls, "operation": op}, float(slot["count"]))
                             for op, slot in sorted(e["by_operation"].items()))
    events = Series("events", "counter", "the run's own counters (reports due, lost, deviations, ...) by name")
    events.points.extend(({"name": k}, float(v)) for k, v in sorted(results.counters.items()))
    out = [ops, errors, events, _percentiles(results)]
    workers = sorted(results.workers.values(), key=lambda w: w.worker_id)
    for name, text, unit, read in HEALTH:
        out.append(Series(name, "gauge", text, unit, [({"worker": str(w.worker_id)}, read(w)) for w in workers]))
    out += [
        Series("run_elapsed", "gauge", "time since the run's start (t0)", "seconds", [({}, state.elapsed_s)]),
        Series("run_target_vens", "gauge", "VENs the profile asks for", "", [({}, float(state.target_vens))]),
        Series("run_vens_ready", "gauge", "VENs provisioned and running, all workers", "",
               [({}, float(sum(w.vens_ready for w in workers)))]),
        Series("run_finished", "gauge", "1 once the run's final counts are in (the verdict is known)", "",
               [({}, 1.0 if state.is_finished else 0.0)]),
        Series("run_verdict", "gauge", "1 for the run's verdict (running until it is known)", "",
               [({"verdict": state.verdict}, 1.0)]),
    ]
    return out


def _percentiles(results: RunResults) -> Series:
    """harness's own percentiles of the measured window (successes), at its full precision (< 1 % error)."""
    s = Series("percentile", "gauge", "harness's percentile of a latency over the measured window, successes only "
               "(as summary.json operations.<op>.<metric>)", "seconds")
    for op, t in sorted(results.totals.items()):
        for m in METRICS:
            h = t.hist(m)
            if h.total == 0:
                continue
            for name, q in PERCENTILES:
                s.points.append(({"operation": op, "metric": METRIC_KEYS[m], "percentile": name}, h.percentile_ns(q) / 1e9))
            s.points.append(({"operation": op, "metric": METRIC_KEYS[m], "percentile": "max"}, h.max_ns / 1e9))
    return s
