"""The RunSink seam on real runs: each fact once and in order, windows closed as they complete (a dead worker holds
none back), series.csv streamed as they close, and a sink added with one line."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

from harness.core.profile import Profile
from harness.core.results import WindowOp
from harness.run.session import RunSession
from harness.sinks.base import BaseSink, Outcome, RunInfo, Snapshot
from tests.run.test_faults import KillingBackend


class Recorder(BaseSink):
    """Records every fact, and the seconds series.csv holds each time a window closes."""

    def __init__(self) -> None:
        self.facts: list[str] = []
        self.closed: list[int] = []
        self.report_ok = 0
        self.info: RunInfo | None = None
        self.streamed: dict[int, set[int]] = {}  # second closing -> seconds already in series.csv
        self.statuses: list[tuple[str, ...]] = []  # each worker's status when each window closed

    def started(self, info: RunInfo) -> None:
        self.facts.append("started")
        self.info = info

    def window_closed(self, second: int, window: Mapping[str, WindowOp]) -> None:
        assert self.info is not None
        self.closed.append(second)
        self.statuses.append(tuple(w.status for _, w in sorted(self.info.results.workers.items())))
        self.report_ok += window["report"].ok if "report" in window else 0
        with open(self.info.run_dir / "series.csv", encoding="utf-8") as f:
            self.streamed[second] = {int(r["t_s"]) for r in csv.DictReader(f)}

    def snapshot(self, snap: Snapshot) -> None:
        if self.facts[-1] != "snapshot":
            self.facts.append("snapshot")

    def finished(self, outcome: Outcome) -> None:
        self.facts.append("finished")


def test_sinks_hear_each_window_once_in_order_and_series_csv_grows_as_they_close(tmp_path: Path) -> None:
    """20 VENs x 4 reports, 2 workers: windows 0..last close once each, their report counts sum to exactly 80,
    and each time a window closes series.csv already holds every earlier window that had rows."""
    rec = Recorder()
    p = Profile(name="sinks", vens=20, interval_s=0.5, reports_per_ven=4, workers=2, max_loop_lag_ms=5000)
    outcome = RunSession(p, tmp_path, sinks=[rec]).run()
    assert outcome.summary["operations"]["report"]["ok"] == 80 and rec.report_ok == 80
    assert rec.facts[0] == "started" and rec.facts[-1] == "finished" and rec.facts.count("finished") == 1
    assert rec.closed == list(range(max(outcome.results.windows) + 1))
    with_rows = {w for w, ops in outcome.results.windows.items() if ops}
    for second, seen in rec.streamed.items():
        assert seen == {w for w in with_rows if w < second}, second
    with open(outcome.run_dir / "series.csv", encoding="utf-8") as f:
        final = list(csv.DictReader(f))
    assert sum(int(r["ok"]) for r in final if r["operation"] == "report") == 80


def test_a_killed_worker_holds_no_window_back(tmp_path: Path) -> None:
    """Worker 0 is SIGKILLed after its first reports: once it is found lost, windows close while worker 1 runs on
    (not only when the run ends), in order, once each."""
    rec = Recorder()
    backend = KillingBackend()
    p = Profile(name="kill", vens=40, interval_s=0.5, reports_per_ven=8, workers=2, seed=3, max_loop_lag_ms=5000)
    outcome = RunSession(p, tmp_path, backend=backend, sinks=[rec]).run()
    assert outcome.verdict == "invalid" and outcome.summary["workers"][0]["status"] == "lost"
    assert rec.closed == list(range(max(outcome.results.windows) + 1))
    assert rec.report_ok == outcome.summary["operations"]["report"]["ok"]
    assert ("lost", "running") in rec.statuses
