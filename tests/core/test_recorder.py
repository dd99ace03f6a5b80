"""Recorder and results merge: three latencies per operation, classified errors, merge by addition."""

from __future__ import annotations

from harness.core.histogram import Histogram
from harness.core.messages import Health, WorkerDelta
from harness.core.recorder import Recorder
from harness.core.results import RunResults, op_summary, series_rows

H = Health(0.0, 0.0, 0.0, 0, 0, 0, 0)


def test_three_latencies_from_three_instants() -> None:
    """response = done - intended, service = done - sent, lag = sent - intended, each in its histogram."""
    r = Recorder()
    r.ok("report", intended=10.0, sent=10.5, done=10.75)
    ops, errors = r.flush()
    d = ops["report"]
    assert (d.ok, d.errors, errors) == (1, 0, {})
    assert Histogram.from_sparse(d.response).max_ns == 750_000_000
    assert Histogram.from_sparse(d.service).max_ns == 250_000_000
    assert Histogram.from_sparse(d.lag).max_ns == 500_000_000


def test_errors_keep_count_operation_and_first_example() -> None:
    """Failures are counted per class with the first example; flush resets the window."""
    r = Recorder()
    r.fail("report", "http_503", "ven-1: 503")
    r.fail("report", "http_503", "ven-2: 503")
    r.fail("token", "connect_refused", "ven-3: refused")
    ops, errors = r.flush()
    assert ops["report"].errors == 2 and ops["token"].errors == 1
    assert errors["http_503"].count == 2 and errors["http_503"].example == "ven-1: 503"
    assert errors["connect_refused"].op == "token"
    assert r.flush() == ({}, {})


def test_supervisor_merge_adds_deltas_from_workers_and_windows() -> None:
    """Totals are the sums of all deltas; each window keeps its own counts; rates use measured time."""
    results = RunResults()
    for worker in (0, 1):
        for window in (0, 1, 2):
            rec = Recorder()
            for i in range(10):
                rec.ok("report", 0.0, 0.001 * i, 0.002 * (i + 1))
            rec.fail("report", "http_500", "boom")
            ops, errs = rec.flush()
            results.add(WorkerDelta(worker, window, ops, errs, H, 10, 0))
    t = results.totals["report"]
    assert (t.ok, t.errors, t.response.total) == (60, 6, 60)
    assert results.errors["http_500"]["count"] == 6
    assert [(row["t_s"], row["ok"], row["errors"]) for row in series_rows(results)] == [(0, 20, 2), (1, 20, 2), (2, 20, 2)]
    s = op_summary(t, measured_s=3.0)
    assert s["rate_per_s"] == 20.0 and s["error_rate"] == round(6 / 66, 6)
    assert set(s) >= {"response_time", "service_time", "start_lag"}


def test_a_window_keeps_one_merged_part_whatever_the_worker_count() -> None:
    """Four workers' deltas for one window are merged into one sparse part per metric, holding every count."""
    results = RunResults()
    for worker in range(4):
        rec = Recorder()
        for i in range(25):
            rec.ok("report", 0.0, 0.0, 0.001 * (worker * 25 + i + 1))
        ops, errs = rec.flush()
        results.add(WorkerDelta(worker, 0, ops, errs, H, 25, 0))
    w = results.windows[0]["report"]
    assert [len(w.parts[m]) for m in ("response", "service", "lag")] == [1, 1, 1]
    h = w.hist("response")
    assert (h.total, h.max_ns) == (100, 100_000_000)


def test_a_class_spread_over_operations_is_credited_to_each() -> None:
    """79 http_503 of which 70 on report and 9 on create_ven, over two workers and windows: summary.json says so in
    errors.http_503.by_operation and operations.<op>.errors_by_class, and names report (most of it), not the first."""
    from harness.core.results import summary

    results = RunResults()
    for worker, (n_ven, n_report) in enumerate(((9, 0), (0, 70))):
        r = Recorder()
        for i in range(n_ven):
            r.fail("create_ven", "http_503", f"w{worker} ven-{i}: POST /vens -> 503")
        for i in range(n_report):
            r.fail("report", "http_503", f"w{worker} ven-{i}: POST /reports -> 503")
        r.fail("report", "read_timeout", "ven-x: no response")
        r.ok("report", 1.0, 1.0, 1.1)
        r.ok("create_ven", 1.0, 1.0, 1.1)
        ops, errors = r.flush()
        results.add(WorkerDelta(worker, worker, ops, errors, H, 1, 0))
    doc = summary(run={}, results=results, measured_s=1.0, verdict="pass", reasons=[], thresholds=[])
    e = doc["errors"]["http_503"]
    assert (e["count"], e["operation"], e["example"]) == (79, "report", "w1 ven-0: POST /reports -> 503")
    assert e["by_operation"] == {"create_ven": {"count": 9, "example": "w0 ven-0: POST /vens -> 503"},
                                 "report": {"count": 70, "example": "w1 ven-0: POST /reports -> 503"}}
    assert doc["operations"]["report"]["errors_by_class"] == {"http_503": 70, "read_timeout": 2}
    assert doc["operations"]["create_ven"]["errors_by_class"] == {"http_503": 9}
    for op, o in doc["operations"].items():
        assert sum(o["errors_by_class"].values()) == o["errors"], op


def test_the_errors_table_has_a_row_per_class_and_operation() -> None:
    """The live view's errors table shows each (class, operation) with its own count."""
    from io import StringIO

    from rich.console import Console

    from harness.sinks.terminal import errors_table

    results = RunResults()
    r = Recorder()
    for op, n in (("create_ven", 9), ("report", 70)):
        for _ in range(n):
            r.fail(op, "http_503", f"{op} 503")
    ops, errors = r.flush()
    results.add(WorkerDelta(0, 0, ops, errors, H, 1, 0))
    table = errors_table(results)
    assert table is not None
    out = StringIO()
    Console(file=out, width=120, color_system=None).print(table)
    lines = [ln for ln in out.getvalue().splitlines() if "http_503" in ln]
    assert len(lines) == 2 and "70" in lines[0] and "report" in lines[0] and "9" in lines[1] and "create_ven" in lines[1]
