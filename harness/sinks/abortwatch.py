"""Threshold aborts: the profile's abort-on-fail thresholds judged on the run so far, about once a second while
it runs; the first to fail past its grace stops the run (its reason and instant go into the verdict).

Edge sink (steers the run through RunControl; the judging is `harness.core.thresholds`).
"""

from __future__ import annotations

from harness.core.profile import Profile
from harness.core.results import RunResults, summary
from harness.core.thresholds import ThresholdResult, evaluate, should_abort
from harness.sinks.base import BaseSink, RunControl, RunInfo, Snapshot


class AbortWatch(BaseSink):
    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.checks = [t for t in profile.thresholds if t.abort_on_fail]
        self.control: RunControl | None = None
        self.abort: tuple[ThresholdResult, float] | None = None  # the threshold that stopped the run, and when

    def started(self, info: RunInfo) -> None:
        self.control = info.control

    def snapshot(self, snap: Snapshot) -> None:
        if self.checks and self.abort is None and snap.phase == "running":
            self.check(snap.results, snap.elapsed_s)

    def check(self, results: RunResults, elapsed_s: float) -> bool:
        """Judge the checks at elapsed_s; when one fails past its grace, stop the workers and say so."""
        if not self.checks or elapsed_s < max(0.0, min(t.grace_s for t in self.checks)):
            return False
        p = self.profile
        run = {"name": p.name, "partial": True, "target_report_rate_per_s": round(p.target_rate_per_s, 3)}
        doc = summary(run=run, results=results, measured_s=max(1e-9, elapsed_s - results.warmup_windows),
                      verdict="running", reasons=[], thresholds=[])
        failed = should_abort(evaluate(self.checks, doc), elapsed_s)
        if failed is None:
            return False
        self.abort = (failed, elapsed_s)
        if self.control is not None:
            self.control.note(f"threshold abort at {elapsed_s:.0f}s: {failed.expr} ({failed.detail}); stopping")
            self.control.request_stop("threshold abort")
        return True
