"""The capacity search's watch over one step: as each window closes, whether the last `hold` windows are stable.

Edge sink (steers the run through RunControl; the judging is `harness.core.capacity`). It stops the step's
workers once the hold is stable — or growing past the SLO, which waiting cannot mend — and records the hold
windows it judged.
"""

from __future__ import annotations

from collections.abc import Mapping

from harness.core.capacity import GROWING, STABLE, CapacityPlan, trend, window_doc
from harness.core.results import RunResults, WindowOp
from harness.core.thresholds import evaluate
from harness.sinks.base import BaseSink, RunControl, RunInfo

STOP_DRAIN_S = 2.0


class StepWatch(BaseSink):
    def __init__(self, plan: CapacityPlan, vens: int) -> None:
        self.plan = plan
        self.vens = vens
        self.control: RunControl | None = None
        self.results: RunResults | None = None
        self.window: tuple[int, int] | None = None  # the hold windows judged: [lo, hi)
        self.trend: str | None = None
        self.stopped_early = False

    def started(self, info: RunInfo) -> None:
        if info.is_started:
            self.control, self.results = info.control, info.results

    def window_closed(self, second: int, window: Mapping[str, WindowOp]) -> None:
        if self.window is not None or self.control is None or self.results is None:
            return
        lo, hi = second + 1 - self.plan.hold_windows, second + 1
        if lo < self.plan.warmup_windows:
            return
        t = trend(self.results, lo, hi, self.plan.stability)
        breached = False
        if t == GROWING:
            doc = window_doc(self.results, lo, hi, self.vens / self.plan.interval_s)
            breached = not all(r.passed for r in evaluate(self.plan.slo, doc))
        if t == STABLE or breached:
            self.window, self.trend, self.stopped_early = (lo, hi), t, True
            self.control.request_stop(f"capacity: hold {t}", STOP_DRAIN_S)
