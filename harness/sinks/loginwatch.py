"""Abort fast on first contact refused: about once a second while a run starts, judge whether every one of its
first tokens (or VEN creations) failed with the same 4xx; if so, stop the run within seconds, to end with exit 4
and the target's status and detail in one line, instead of repeating the refusal for the run's whole duration.

Edge sink (steers the run through RunControl; the judging is `harness.core.refusal`).
"""

from __future__ import annotations

from harness.core.profile import Profile
from harness.core.refusal import Refusal, first_contact_refusal
from harness.sinks.base import BaseSink, RunControl, RunInfo, Snapshot


class LoginWatch(BaseSink):
    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.control: RunControl | None = None
        self.refusal: Refusal | None = None  # the refused first contact that stopped the run
        self._cleared = False  # a first contact succeeded: nothing to watch any more

    def started(self, info: RunInfo) -> None:
        self.control = info.control

    def snapshot(self, snap: Snapshot) -> None:
        if self.refusal is not None or self._cleared or snap.phase != "running":
            return
        totals = snap.results.totals
        if all(op in totals and totals[op].ok for op in ("token", "create_ven")):
            self._cleared = True
            return
        self.refusal = first_contact_refusal(snap.results, self.profile.vens)
        if self.refusal is not None and self.control is not None:
            self.control.note(self.refusal.message())
            self.control.request_stop("first contact refused", drain_s=0.0)
