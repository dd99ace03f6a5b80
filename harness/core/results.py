"""The supervisor's merge of worker deltas and the results schema (summary.json, series.csv rows).

Pure: deltas are merged by addition; nothing here reads a clock or touches a file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.core.delivery import ReportLedger
from harness.core.histogram import Histogram
from harness.core.messages import ErrorDelta, Health, OpDelta, SparseHist, WorkerDelta

METRICS = ("response", "service", "lag")
METRIC_KEYS = {"response": "response_time", "service": "service_time", "lag": "start_lag"}


@dataclass(eq=False)
class OpTotals:
    ok: int = 0
    errors: int = 0
    response: Histogram = field(default_factory=Histogram.empty)
    service: Histogram = field(default_factory=Histogram.empty)
    lag: Histogram = field(default_factory=Histogram.empty)
    failed: Histogram = field(default_factory=Histogram.empty)  # failed attempts' time to outcome

    def add(self, d: OpDelta) -> None:
        self.ok += d.ok
        self.errors += d.errors
        self.response += Histogram.from_sparse(d.response)
        self.service += Histogram.from_sparse(d.service)
        self.lag += Histogram.from_sparse(d.lag)
        if len(d.failed[0]):
            self.failed += Histogram.from_sparse(d.failed)

    def __iadd__(self, other: OpTotals) -> OpTotals:
        self.ok += other.ok
        self.errors += other.errors
        self.response += other.response
        self.service += other.service
        self.lag += other.lag
        self.failed += other.failed
        return self

    def attempts(self) -> Histogram:
        """Every timed attempt's time from intended to outcome: successes' response times plus failures'."""
        h = self.response.copy()
        h += self.failed
        return h

    def hist(self, metric: str) -> Histogram:
        h: Histogram = getattr(self, metric)
        return h


@dataclass(eq=False)
class WindowOp:
    """One operation in one window: counts and a sparse histogram per metric, densified only when read, so a
    long run's per-second history costs kilobytes per second, not a dense array per window. Each worker's part
    is merged in as it comes (one part per metric, not one per worker: the history no longer grows with the
    worker count)."""

    ok: int = 0
    errors: int = 0
    parts: dict[str, list[SparseHist]] = field(default_factory=lambda: {m: [] for m in METRICS})

    def add(self, d: OpDelta) -> None:
        self.ok += d.ok
        self.errors += d.errors
        for m in METRICS:
            sparse = getattr(d, m)
            if len(sparse[0]):
                parts = self.parts[m]
                if parts:
                    parts[0] = Histogram.merge_sparse(parts[0], sparse)
                else:
                    parts.append(sparse)

    def hist(self, metric: str) -> Histogram:
        out = Histogram.empty()
        for part in self.parts[metric]:
            out += Histogram.from_sparse(part)
        return out


@dataclass(eq=False)
class WorkerState:
    worker_id: int
    pid: int = 0
    vens: int = 0
    vens_ready: int = 0
    vens_done: int = 0
    deltas: int = 0
    health: Health | None = None
    loop_lag_max_ms: float = 0.0
    cpu_percent_max: float = 0.0
    rss_max_bytes: int = 0
    status: str = "starting"  # starting | running | done | failed | lost
    detail: str = ""
    ended_epoch_s: float | None = None  # when the supervisor learned the worker had ended
    ok: int = 0
    errors: int = 0
    history: list[Health] = field(default_factory=list)


@dataclass(eq=False)
class RunResults:
    """Everything the supervisor knows about a run, merged from deltas."""

    totals: dict[str, OpTotals] = field(default_factory=dict)
    warmup: dict[str, OpTotals] = field(default_factory=dict)  # windows before warmup_windows, kept apart
    warmup_windows: int = 0
    windows: dict[int, dict[str, WindowOp]] = field(default_factory=dict)
    errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    workers: dict[int, WorkerState] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    aware: dict[str, list[float]] = field(default_factory=dict)  # DR event id -> epoch instants
    shed: dict[str, list[float]] = field(default_factory=dict)
    learned: dict[str, dict[str, int]] = field(default_factory=dict)  # DR event id -> how VENs learned -> count
    deviations: dict[str, str] = field(default_factory=dict)  # protocol deviation kind -> first example seen
    ledgers: dict[int, ReportLedger] = field(default_factory=dict)  # worker id -> its final report ledger
    faults: list[dict[str, Any]] = field(default_factory=list)  # the timed faults done (harness.run.faultfiring)

    def worker(self, worker_id: int) -> WorkerState:
        w = self.workers.get(worker_id)
        if w is None:
            w = self.workers[worker_id] = WorkerState(worker_id)
        return w

    def add(self, delta: WorkerDelta) -> None:
        window = self.windows.setdefault(delta.window, {})
        w = self.worker(delta.worker_id)
        totals = self.warmup if delta.window < self.warmup_windows else self.totals
        for op, d in delta.ops.items():
            totals.setdefault(op, OpTotals()).add(d)
            window.setdefault(op, WindowOp()).add(d)
            w.ok += d.ok
            w.errors += d.errors
        for cls, e in delta.errors.items():
            self._add_error(cls, e)
        for ev, times in delta.aware.items():
            self.aware.setdefault(ev, []).extend(times)
        for ev, times in delta.shed.items():
            self.shed.setdefault(ev, []).extend(times)
        for ev, ways in delta.learned.items():
            mine = self.learned.setdefault(ev, {})
            for how, n in ways.items():
                mine[how] = mine.get(how, 0) + n
        for k, v in delta.counters.items():  # summed over workers, but "max:..." counters, which keep the largest
            self.counters[k] = max(self.counters.get(k, v), v) if k.startswith("max:") else self.counters.get(k, 0) + v
        for kind, example in delta.deviations.items():
            self.deviations.setdefault(kind, example)
        if delta.ledger is not None:
            self.ledgers[delta.worker_id] = delta.ledger
        w.deltas += 1
        w.health = delta.health
        w.history.append(delta.health)
        w.vens_ready = delta.vens_ready
        w.vens_done = delta.vens_done
        w.loop_lag_max_ms = max(w.loop_lag_max_ms, delta.health.loop_lag_max_ms)
        w.cpu_percent_max = max(w.cpu_percent_max, delta.health.cpu_percent)
        w.rss_max_bytes = max(w.rss_max_bytes, delta.health.rss_bytes)

    # ---- views -------------------------------------------------------------------------------
    def note_deviation(self, kind: str, count: int, example: str) -> None:
        """Deviations seen outside the workers (the operator's calls), counted like theirs."""
        self.counters[f"deviation:{kind}"] = self.counters.get(f"deviation:{kind}", 0) + count
        self.deviations.setdefault(kind, example)

    def ok(self, op: str) -> int:
        t = self.totals.get(op)
        return t.ok if t else 0

    def _add_error(self, cls: str, e: ErrorDelta) -> None:
        """summary.json errors.<class>: count, the operation with most of it (and its example), and by_operation
        {op: {count, example}} — a class is credited to each operation it happened on, never all to the first."""
        cur = self.errors.get(cls)
        if cur is None:
            cur = self.errors[cls] = {"count": 0, "operation": e.op, "example": e.example, "by_operation": {}}
        cur["count"] += e.count
        by_op: dict[str, dict[str, Any]] = cur["by_operation"]
        for op, n, example in e.by_op or ((e.op, e.count, e.example),):
            slot = by_op.setdefault(op, {"count": 0, "example": example})
            slot["count"] += n
        top = max(by_op.items(), key=lambda kv: kv[1]["count"])
        cur["operation"], cur["example"] = top[0], top[1]["example"]

    def errors_of(self, op: str) -> dict[str, int]:
        """Failure class -> count for one operation (warm-up included, like summary.json errors)."""
        return {cls: e["by_operation"][op]["count"] for cls, e in sorted(self.errors.items()) if op in e["by_operation"]}

    def window_range(self) -> range:
        if not self.windows:
            return range(0)
        return range(min(self.windows), max(self.windows) + 1)

    def rate(self, op: str, last_windows: int = 1) -> float:
        """Completions per second of op over the last complete windows."""
        if not self.windows:
            return 0.0
        last = max(self.windows)
        ws = [self.windows.get(i, {}) for i in range(last - last_windows, last)]
        n = sum(w[op].ok + w[op].errors for w in ws if op in w)
        return n / max(1, last_windows)


def op_summary(t: OpTotals, measured_s: float) -> dict[str, Any]:
    """One operation: counts, rate, the successes-only latencies (response_time, service_time, start_lag) and the
    attempts view: every attempt's time to its outcome, and the latencies with each failure ranked slowest."""
    done = t.ok + t.errors
    return {
        "ok": t.ok,
        "errors": t.errors,
        "error_rate": round(t.errors / done, 6) if done else 0.0,
        "rate_per_s": round(t.ok / measured_s, 3) if measured_s > 0 else 0.0,
        **{METRIC_KEYS[m]: t.hist(m).summary_ms() for m in METRICS},
        "attempts": attempts_summary(t),
    }


def attempts_summary(t: OpTotals) -> dict[str, Any]:
    """summary.json operations.<op>.attempts. `time_to_outcome`: the real time from intended to outcome of every
    timed attempt, ok or failed (`timed` of `count`: a failure with no send, e.g. not_ready, has no time).
    `failures_as_slowest`: what thresholds judge: each latency over all attempts with every failure slower than
    any success; a statistic that lands on a failure is null."""
    return {
        "count": t.ok + t.errors,
        "failed": t.errors,
        "timed": t.ok + t.failed.total,
        "time_to_outcome": t.attempts().summary_ms(),
        "failures_as_slowest": {METRIC_KEYS[m]: t.hist(m).summary_ms_counting(t.errors) for m in METRICS},
    }


def series_rows(results: RunResults) -> list[dict[str, Any]]:
    """One row per (second, operation): counts and per-second percentiles, for series.csv."""
    rows = [row for w in results.window_range() for row in window_rows(w, results.windows.get(w, {}))]
    # A fault is a band in the series: one `fault` row per second it lasts (ok/errors empty, its label in operation).
    return rows + [{"t_s": w, "operation": f"fault:{f['label']}"} for f in results.faults
                   for w in range(int(f["started_s"]), int(math.ceil(f["ended_s"] or f["started_s"])) + 1)]


def window_rows(second: int, window: Mapping[str, WindowOp]) -> list[dict[str, Any]]:
    """The series.csv rows of one window, one per operation."""
    rows: list[dict[str, Any]] = []
    for op, t in sorted(window.items()):
        rt, st, lag = (t.hist(m).summary_ms() for m in METRICS)
        rows.append(
            {
                "t_s": second,
                "operation": op,
                "ok": t.ok,
                "errors": t.errors,
                "response_p50_ms": rt["p50_ms"],
                "response_p99_ms": rt["p99_ms"],
                "response_max_ms": rt["max_ms"],
                "service_p50_ms": st["p50_ms"],
                "service_p99_ms": st["p99_ms"],
                "start_lag_p99_ms": lag["p99_ms"],
            }
        )
    return rows


SERIES_COLUMNS = (
    "t_s",
    "operation",
    "ok",
    "errors",
    "response_p50_ms",
    "response_p99_ms",
    "response_max_ms",
    "service_p50_ms",
    "service_p99_ms",
    "start_lag_p99_ms",
)


def summary(
    *,
    run: dict[str, Any],
    results: RunResults,
    measured_s: float,
    verdict: str,
    reasons: list[str],
    thresholds: list[dict[str, Any]],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The summary.json document (extend, don't rename)."""
    ops = {op: op_summary(t, measured_s) for op, t in sorted(results.totals.items())}
    for op, o in ops.items():
        o["errors_by_class"] = results.errors_of(op)
    warm_s = float(results.warmup_windows)
    due = results.counters.get("report_due")
    if due and "report" in ops:
        # Achieved vs offered: reports completed (warm-up included) per report that was due by the schedule.
        done_ok = ops["report"]["ok"] + (results.warmup["report"].ok if "report" in results.warmup else 0)
        ops["report"]["due"] = due
        ops["report"]["achieved_fraction"] = round(done_ok / due, 6)
    workers = [
        {
            "worker": w.worker_id,
            "pid": w.pid,
            "vens": w.vens,
            "status": w.status,
            "detail": w.detail,
            "ok": w.ok,
            "errors": w.errors,
            "loop_lag_max_ms": round(w.loop_lag_max_ms, 3),
            "cpu_percent_max": round(w.cpu_percent_max, 1),
            "rss_max_bytes": w.rss_max_bytes,
            "ended_at_epoch_s": w.ended_epoch_s,
        }
        for w in sorted(results.workers.values(), key=lambda w: w.worker_id)
    ]
    doc: dict[str, Any] = {
        "run": run,
        "verdict": verdict,
        "reasons": reasons,
        "measured_s": round(measured_s, 3),
        "operations": ops,
        "warmup": {
            "seconds": warm_s,
            "operations": {op: op_summary(t, warm_s) for op, t in sorted(results.warmup.items())},
        },
        "errors": dict(sorted(results.errors.items())),
        "deviations": {
            kind: {"count": results.counters.get(f"deviation:{kind}", 0), "example": example}
            for kind, example in sorted(results.deviations.items())
        },
        "counters": dict(sorted(results.counters.items())),
        "workers": workers,
        "thresholds": thresholds,
    }
    if extra:
        doc.update(extra)
    return doc


def stage_rows(bounds: list[tuple[float, float, int]], results: RunResults, op: str = "report") -> list[dict[str, Any]]:
    """Per stage (start_s, end_s, target VENs at its end): counts, achieved rate and latency of `op`."""
    rows = []
    for i, (start, end, vens) in enumerate(bounds):
        ok = errors = 0
        parts = {m: Histogram.empty() for m in METRICS}
        for w in range(int(math.floor(start)), int(math.ceil(end))):
            t = results.windows.get(w, {}).get(op)
            if t is None:
                continue
            ok += t.ok
            errors += t.errors
            for m in METRICS:
                parts[m] += t.hist(m)
        rows.append({
            "stage": i,
            "start_s": start,
            "end_s": end,
            "target_vens": vens,
            "ok": ok,
            "errors": errors,
            "rate_per_s": round(ok / (end - start), 3) if end > start else 0.0,
            **{METRIC_KEYS[m]: parts[m].summary_ms() for m in METRICS},
        })
    return rows
