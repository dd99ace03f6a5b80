"""Default gates and the attempts view: a failed run never passes, failures count in latency thresholds."""

from __future__ import annotations

from typing import Any

import pytest

from harness.core.messages import Health, WorkerDelta
from harness.core.recorder import Recorder
from harness.core.results import RunResults, summary
from harness.core.thresholds import DEFAULT_GATES, evaluate, failure_reasons, gates, parse, to_json

H = Health(0.0, 0.0, 0.0, 0, 0, 0, 0)


def run_doc(rec: Recorder, counters: dict[str, int] | None = None) -> dict[str, Any]:
    """The summary document of a run whose one worker recorded what `rec` holds."""
    ops, errors = rec.flush()
    results = RunResults()
    results.add(WorkerDelta(0, 0, ops, errors, H, 1, 1, True, counters or {}))
    return summary(run={"name": "t"}, results=results, measured_s=10.0, verdict="pass", reasons=[], thresholds=[])


def healthy(reports: int = 100, report_fail: int = 0, token_fail: int = 0) -> Recorder:
    rec = Recorder()
    for i in range(10):
        rec.ok("token", 0.0, 0.0, 0.002)
        rec.ok("create_ven", 0.0, 0.0, 0.003)
    for i in range(token_fail):
        rec.fail("token", "http_403", "refused", 0.0, 0.001)
    for i in range(reports - report_fail):
        rec.ok("report", float(i), float(i), i + 0.010 + i * 1e-5)
    for i in range(report_fail):
        rec.fail("report", "read_timeout", "timeout", float(i), i + 2.0)
    return rec


def judged(doc: dict[str, Any], named: tuple[str, ...] = ()) -> list[Any]:
    return evaluate(gates(tuple(parse(e) for e in named)), doc)


def test_default_gates_apply_when_a_profile_names_none_and_say_so() -> None:
    """No thresholds: the four default gates judge the run, each flagged as a default in summary.json."""
    doc = run_doc(healthy(), {"report_due": 100})
    results = judged(doc)
    assert [r.expr for r in results] == list(DEFAULT_GATES)
    assert all(r.passed and r.is_default for r in results)
    assert all(entry["default"] is True for entry in to_json(results))


def test_a_profile_threshold_replaces_the_default_gates() -> None:
    """Naming any threshold replaces every default gate (none is flagged default)."""
    results = judged(run_doc(healthy(), {"report_due": 100}), ("report.ok >= 100",))
    assert [(r.expr, r.is_default, r.passed) for r in results] == [("report.ok >= 100", False, True)]


def test_errors_gate_fails_above_one_percent_of_operations_exactly() -> None:
    """120 operations: 1 failed report (0.83 %) passes errors.rate <= 1 %; 2 (1.67 %) fail it, named as a default gate."""
    ok = {r.expr: r for r in judged(run_doc(healthy(100, 1), {"report_due": 100}))}
    assert ok["errors.rate <= 1%"].passed
    bad = judged(run_doc(healthy(100, 2), {"report_due": 100}))
    reasons = failure_reasons(bad)
    assert reasons[0] == "default gate failed: errors.rate <= 1% (1.667% is not <= 1%)"


def test_achieved_gate_fails_when_reports_due_were_not_delivered() -> None:
    """98 of 100 due reports ok: report.achieved_fraction 98 % fails the >= 99 % gate."""
    [r] = [r for r in judged(run_doc(healthy(98), {"report_due": 100})) if r.metric == "report.achieved_fraction"]
    assert (r.passed, r.value) == (False, 0.98)


def test_provisioning_gate_counts_tokens_vens_and_resources() -> None:
    """20 provisioning ops ok and 1 token refused: 95.2 % fails provisioning.ok_rate >= 99 %."""
    [r] = [r for r in judged(run_doc(healthy(token_fail=1), {"report_due": 100})) if r.metric == "provisioning.ok_rate"]
    assert not r.passed and r.value == pytest.approx(20 / 21)


def test_provisioning_gate_counts_the_warm_up_where_provisioning_happened() -> None:
    """A warm-up that covers the startup holds every provisioning operation: the gate judges them there (a
    25,000-VEN run with --startup 60s --warmup 90s failed with "no data" although all 75,000 succeeded), a refusal
    in the warm-up still fails it, and a run with provisioning nowhere still has no data."""
    measured = run_doc(healthy(), {"report_due": 100})
    warm = run_doc(healthy(reports=0, token_fail=1))["operations"]
    for name in ("token", "create_ven"):
        del measured["operations"][name]
    assert not any(n in measured["operations"] for n in ("token", "create_ven"))
    [r] = [r for r in judged({**measured, "warmup": {"seconds": 90.0, "operations": warm}}) if r.metric == "provisioning.ok_rate"]
    assert not r.passed and r.value == pytest.approx(20 / 21)  # the warm-up's 20 ok and 1 refused
    warm["token"]["errors"] = 0
    [r] = [r for r in judged({**measured, "warmup": {"seconds": 90.0, "operations": warm}}) if r.metric == "provisioning.ok_rate"]
    assert r.passed and r.value == 1.0
    [r] = [r for r in judged({**measured, "warmup": {"seconds": 90.0, "operations": {}}}) if r.metric == "provisioning.ok_rate"]
    assert not r.passed and r.value is None and "no provisioning operations" in r.detail


def test_a_dead_target_never_passes() -> None:
    """0 of 350 operations ok: every default gate fails (no report ok, errors 100 %, no data for achieved)."""
    rec = Recorder()
    for i in range(200):
        rec.fail("token", "connect_refused", "refused", float(i), float(i))
    for i in range(150):
        rec.fail("report", "not_ready", "VEN not provisioned")
    results = judged(run_doc(rec, {"report_due": 150}))
    assert [r.passed for r in results] == [False, False, False, False]
    assert results[3].detail == "0 is not >= 1"


def test_failed_attempts_rank_slower_than_any_success_at_the_exact_boundary() -> None:
    """1,000 attempts at 10 ms: 10 failed (1 %) -> p99 is a success and passes `< 10s`; 11 failed -> p99 is a
    failed attempt and fails, the detail counting them; successes-only p99 stays 10 ms either way."""
    def doc_with(failed: int) -> dict[str, Any]:
        rec = Recorder()
        for i in range(1000 - failed):
            rec.ok("report", 0.0, 0.0, 0.010)
        for i in range(failed):
            rec.fail("report", "read_timeout", "timeout", 0.0, 30.0)
        return run_doc(rec)

    [at] = evaluate([parse("report.response_time.p99 < 10s")], doc_with(10))
    assert (at.passed, at.value) == (True, pytest.approx(10.0, rel=0.01))
    d = doc_with(11)
    [over] = evaluate([parse("report.response_time.p99 < 10s")], d)
    assert not over.passed and over.failed_attempt
    assert over.detail == ("a failed attempt is not < 10 s: 11 of 1,000 report attempts failed (1.1%), "
                           "failures rank slower than any success")
    assert to_json([over])[0]["value"] is None
    rep = d["operations"]["report"]
    assert rep["response_time"]["p99_ms"] == pytest.approx(10.0, rel=0.01)  # successes only
    assert rep["attempts"]["count"] == 1000 and rep["attempts"]["failed"] == 11 and rep["attempts"]["timed"] == 1000
    assert rep["attempts"]["time_to_outcome"]["max_ms"] == 30_000.0  # the failures' real time to outcome
    assert rep["attempts"]["failures_as_slowest"]["response_time"]["p99_ms"] is None
    assert rep["attempts"]["failures_as_slowest"]["response_time"]["p50_ms"] == pytest.approx(10.0, rel=0.01)


def test_p999_rank_is_exact_integer_arithmetic() -> None:
    """p99.9 of 1,000 attempts with exactly 1 failure is a success (rank 999), with 2 a failure."""
    def value(failed: int) -> float | None:
        rec = Recorder()
        for i in range(1000 - failed):
            rec.ok("report", 0.0, 0.0, 0.010)
        for i in range(failed):
            rec.fail("report", "reset", "reset", 0.0, 1.0)
        v: float | None = run_doc(rec)["operations"]["report"]["attempts"]["failures_as_slowest"]["response_time"]["p999_ms"]
        return v

    assert value(1) == pytest.approx(10.0, rel=0.01)
    assert value(2) is None


def test_live_view_final_table_and_junit_list_the_default_gates() -> None:
    """The live view says the run is judged by the default gates, the final table lists each with its result, and
    junit.xml files them under their own class."""
    from io import StringIO

    from rich.console import Console

    from harness.core.profile import Profile
    from harness.sinks.base import Snapshot
    from harness.sinks.junit import junit_xml
    from harness.sinks.terminal import final_report, live_renderable

    doc = run_doc(healthy(100, 2), {"report_due": 100})
    results = judged(doc)
    doc.update(thresholds=to_json(results), thresholds_source="default", verdict="fail", reasons=failure_reasons(results))
    out = StringIO()
    console = Console(file=out, width=200, color_system=None)
    console.print(live_renderable(Snapshot(Profile(), RunResults(), 1.0, "running", "embedded")))
    assert "judged by default gates (the profile names no thresholds): errors.rate <= 1%; " in out.getvalue()
    final_report(console, doc, RunResults(), "runs/x")
    text = out.getvalue()
    assert "Default gates (the profile names no thresholds)" in text
    assert "FAIL" in text and "1.667% is not <= 1%" in text
    xml = junit_xml("ci", results, []).decode()
    assert xml.count('classname="harness.ci.default_gates"') == 4 and 'failures="2"' in xml  # errors and achieved (98 of 100)
