"""The profile's DR events, created by the operator when each one's time comes during the run.

Edge (a blocking operator call of a few ms). A duty of the supervisor's loop: called every turn while running.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from harness.core.targeting import targeted
from harness.core.exits import SetupFailed
from harness.core.profile import Profile
from harness.core.simclock import SimClock
from harness.run.operator import Operator
from harness.run.setup import fleet_of


class DrEventFiring:
    """Creates each due DR event once; `fired` rows feed summary.json's event_fanout."""

    def __init__(self, profile: Profile, operator: Operator, program_id: str, notes: list[str],
                 sim_start_epoch_s: float | None = None) -> None:
        self.profile = profile
        self.sim_start_epoch_s = sim_start_epoch_s  # the workers' simulated start (fleet.replay's); None: t0
        self.operator = operator
        self.program_id = program_id
        self.notes = notes
        self.fired: list[dict[str, Any]] = []

    def __call__(self, t0_epoch: float) -> None:
        p = self.profile
        if len(self.fired) >= len(p.dr_events):
            return
        elapsed = time.time() - t0_epoch
        for i, e in enumerate(p.dr_events):
            if i < len(self.fired) or elapsed < e.at_s:
                continue
            mask = targeted(p.seed, i, np.arange(p.vens, dtype=np.int64), e.share)
            names = None if e.share >= 1.0 else [fleet_of(p).ven_name(int(j)) for j in np.flatnonzero(mask)]
            created = time.time()
            sim_start = t0_epoch if self.sim_start_epoch_s is None else self.sim_start_epoch_s
            start_sim = SimClock(sim_start, p.time_scale).at(created + e.notice_s - t0_epoch)  # the workers' clock
            row = {"id": None, "at_s": e.at_s, "level": e.level, "targeted": 0,
                   "created_epoch_s": created, "start_epoch_s": created + e.notice_s}
            try:
                event_id = self.operator.create_dr_event(
                    self.program_id, f"{p.program_name}-dr-{i}-{int(created)}", start_sim,
                    e.duration_s * p.time_scale, e.level, names,
                )
            except SetupFailed as exc:
                self.notes.append(f"DR event {i} not created: {exc}")
                self.fired.append({**row, "error": str(exc)})  # fails the run's verdict (outcome.dr_reasons)
                continue
            # Fan-out counts from the POST of the event, not from the target grants a 3.1.0 operator made first.
            row["created_epoch_s"] = max(created, self.operator.dr_sent_epoch_s)
            self.fired.append({**row, "id": event_id, "targeted": int(mask.sum())})
            self.notes.append(f"DR event {i} ({event_id}) created at {elapsed:.1f}s for {int(mask.sum())} VENs, "
                              f"SIMPLE level {e.level}")
