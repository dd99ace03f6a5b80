"""junit.xml content, and the supervisor's verdict from thresholds: precedence, exit codes, early abort."""

from __future__ import annotations

import signal
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner

from harness.cli import cli
from harness.core.histogram import Histogram
from harness.core.messages import ErrorDelta, Health, OpDelta, Stop, WorkerDelta
from harness.core.profile import Profile
from harness.core.exits import EXIT_FAIL, EXIT_INVALID, EXIT_PASS, EXIT_SIGINT
from harness.core.thresholds import evaluate
from harness.run.outcome import RunFacts
from harness.run.session import RunSession
from harness.run.supervisor import Supervisor
from harness.sinks.junit import junit_xml

HEALTHY = Health(loop_lag_max_ms=1.0, loop_lag_mean_ms=0.5, cpu_percent=10.0, rss_bytes=50 << 20, open_fds=10,
                 in_flight=0, backlog=0)


def delta(window: int, ok: int, errors: int, latency_ms: float) -> WorkerDelta:
    sparse = Histogram.of_ns([int(latency_ms * 1e6)] * ok).to_sparse()
    return WorkerDelta(
        worker_id=0, window=window, ops={"report": OpDelta(ok, errors, sparse, sparse, Histogram.empty().to_sparse())},
        errors={"http_503": ErrorDelta(errors, "report", "HTTP 503")} if errors else {}, health=HEALTHY,
        vens_ready=10, vens_done=0,
    )


class RecordingBackend:
    """A backend with one worker that never runs: it records what the supervisor sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, Any]] = []

    def send(self, worker_id: int, msg: Any) -> None:
        self.sent.append((worker_id, msg))


def supervisor(tmp_path: Path, *thresholds: Any, deltas: list[WorkerDelta]) -> tuple[RunSession, RecordingBackend]:
    backend = RecordingBackend()
    sup = RunSession(Profile(name="ci", vens=10, interval_s=1.0, thresholds=thresholds), tmp_path, backend=backend)  # type: ignore[arg-type]
    workers = Supervisor(sup.profile, backend, [], sup.results, sup.abort_watch, target="http://vtn", run_dir=tmp_path)  # type: ignore[arg-type]
    workers.specs = {0: None}  # type: ignore[dict-item]  # one worker, never started
    sup.abort_watch.control = workers
    for d in deltas:
        sup.results.add(d)
    return sup, backend


def finish(sup: RunSession, tmp_path: Path) -> Any:
    return sup.finish(tmp_path, RunFacts(time.time(), time.time(), 10.0, "http://vtn", "p", "e"))


def cases(xml: bytes) -> dict[str, ET.Element | None]:
    """testcase name -> its <failure> (None when it passed)."""
    root = ET.fromstring(xml)
    return {c.attrib["name"]: c.find("failure") for c in root.iter("testcase")}


def test_junit_has_a_case_per_threshold_and_one_for_generator_health() -> None:
    """Two passing and one failing threshold plus a valid run: 4 test cases, 1 failure with value and limit."""
    summary = {"operations": {"report": {"ok": 100, "errors": 0, "error_rate": 0.0, "rate_per_s": 10.0,
                                         "response_time": {"p99_ms": 612.5}}}, "errors": {}}
    results = evaluate(["report.ok == 100", "report.error_rate < 1%", "report.response_time.p99 < 500ms"], summary)
    xml = junit_xml("ci", results, [])
    root = ET.fromstring(xml)
    assert (root.tag, root.attrib["tests"], root.attrib["failures"]) == ("testsuites", "4", "1")
    suite = root.find("testsuite")
    assert suite is not None and (suite.attrib["name"], suite.attrib["tests"], suite.attrib["failures"]) == ("harness.ci", "4", "1")
    got = cases(xml)
    assert list(got) == ["report.ok == 100", "report.error_rate < 1%", "report.response_time.p99 < 500ms", "generator health"]
    failure = got["report.response_time.p99 < 500ms"]
    assert failure is not None and failure.attrib["message"] == "612.5 ms is not < 500 ms"
    assert failure.text == "metric: report.response_time.p99\nvalue: 612.5 ms\nlimit: < 500 ms\n"
    assert [got[n] is None for n in ("report.ok == 100", "report.error_rate < 1%", "generator health")] == [True, True, True]


def test_junit_fails_generator_health_when_invalid_and_shows_no_data() -> None:
    """An invalid run fails the "generator health" case with its reasons; a no-data threshold fails with "no data"."""
    results = evaluate(["event_fanout.max < 30s"], {"operations": {}})
    got = cases(junit_xml("ci", results, ["worker 1 lost: killed", "generator saturated: worker 0"]))
    health, fanout = got["generator health"], got["event_fanout.max < 30s"]
    assert health is not None and health.attrib["message"] == "the run is invalid: worker 1 lost: killed; generator saturated: worker 0"
    assert health.text == "worker 1 lost: killed\ngenerator saturated: worker 0\n"
    assert fanout is not None and "value: no data\n" in (fanout.text or "")


def test_failed_threshold_makes_the_verdict_fail_with_exit_1(tmp_path: Path) -> None:
    """A healthy run with one failing threshold: verdict fail, exit 1, summary.json and junit.xml say which."""
    sup, _ = supervisor(tmp_path, "report.ok == 100", "report.response_time.p99 < 20ms",
                        deltas=[delta(0, 50, 0, 25.0), delta(1, 50, 0, 25.0)])
    out = finish(sup, tmp_path)
    assert (out.exit_code, out.verdict) == (EXIT_FAIL, "fail")
    doc = orjson.loads((tmp_path / "summary.json").read_bytes())
    assert doc["verdict"] == "fail"
    assert [(t["expr"], t["passed"]) for t in doc["thresholds"]] == [("report.ok == 100", True), ("report.response_time.p99 < 20ms", False)]
    assert doc["reasons"] == ["threshold failed: report.response_time.p99 < 20ms (25 ms is not < 20 ms)"]
    got = cases((tmp_path / "junit.xml").read_bytes())
    assert [name for name, f in got.items() if f is not None] == ["report.response_time.p99 < 20ms"]


def test_passing_thresholds_pass(tmp_path: Path) -> None:
    """All thresholds met on a healthy run: verdict pass, exit 0, junit.xml without failures."""
    sup, _ = supervisor(tmp_path, "report.ok == 100", "errors.count == 0", deltas=[delta(0, 100, 0, 5.0)])
    out = finish(sup, tmp_path)
    assert (out.exit_code, out.verdict, out.summary["reasons"]) == (EXIT_PASS, "pass", [])
    assert ET.fromstring((tmp_path / "junit.xml").read_bytes()).attrib["failures"] == "0"


def test_invalid_beats_fail_and_interrupted_beats_invalid(tmp_path: Path) -> None:
    """A lost worker makes the run invalid (exit 3) even with a failed threshold; a signal makes it interrupted."""
    sup, _ = supervisor(tmp_path, "report.ok == 1", deltas=[delta(0, 100, 0, 5.0)])
    sup.results.worker(0).status, sup.results.worker(0).detail = "lost", "exited with code -9"
    out = finish(sup, tmp_path)
    assert (out.exit_code, out.verdict) == (EXIT_INVALID, "invalid")
    assert out.summary["reasons"] == ["worker 0 lost: exited with code -9", "threshold failed: report.ok == 1 (100 is not == 1)"]
    health = cases((tmp_path / "junit.xml").read_bytes())["generator health"]
    assert health is not None and health.attrib["message"] == "the run is invalid: worker 0 lost: exited with code -9"
    sup.signals.received.append(signal.SIGINT)
    out = finish(sup, tmp_path)
    assert (out.exit_code, out.verdict) == (EXIT_SIGINT, "interrupted")


def test_abort_threshold_stops_the_run_after_its_grace(tmp_path: Path) -> None:
    """A failing abort-on-fail threshold does nothing within its grace, then broadcasts Stop("threshold abort");
    the verdict is fail with that reason."""
    spec = {"expr": "report.error_rate < 1%", "abort_on_fail": True, "grace": "30s"}
    sup, backend = supervisor(tmp_path, spec, deltas=[delta(0, 90, 10, 5.0)])
    watch = sup.abort_watch  # judges the profile's abort-on-fail thresholds
    assert watch.check(sup.results, 20.0) is False
    assert backend.sent == [] and watch.abort is None
    assert watch.check(sup.results, 31.0) is True
    assert backend.sent == [(0, Stop(sup.profile.drain_s, "threshold abort"))]
    assert watch.abort is not None and watch.abort[0].expr == "report.error_rate < 1%"
    out = finish(sup, tmp_path)
    assert (out.exit_code, out.verdict) == (EXIT_FAIL, "fail")
    assert out.summary["reasons"] == [
        "threshold failed: report.error_rate < 1% (aborted the run at 31s: 10% is not < 1%; at the end: 10% is not < 1%)"
    ]


def test_abort_threshold_with_no_data_does_not_stop_the_run(tmp_path: Path) -> None:
    """Before any report completed, an abort threshold has no data and the run goes on."""
    sup, backend = supervisor(tmp_path, {"expr": "report.response_time.p99 < 1ms", "abort_on_fail": True}, deltas=[])
    assert sup.abort_watch.check(sup.results, 5.0) is False
    assert backend.sent == []


def test_cli_threshold_flag_error_is_one_line_exit_2() -> None:
    """`harness run --threshold` with a bad expression exits 2 with one line naming it, before any run starts."""
    result = CliRunner().invoke(cli, ["run", "--threshold", "report.p99 < fast"])
    assert result.exit_code == 2
    assert result.stderr == "harness: error: --threshold: threshold 'report.p99 < fast': limit 'fast' is not a number\n"
