"""One run from set-up to summary: preflight, the results folder, the target (embedded VTN or not), the operator's
set-up, the supervisor, the verdict, and the sinks told each fact.

Edge. Signals are recorded from set-up to the very end (teardown included), and the results are final before
teardown, so a slow or interrupted teardown never loses them.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from harness.core import embedded
from harness.core.delivery import run_tag
from harness.core.profile import Profile
from harness.core.results import RunResults
from harness.run.audit import AuditSettings, audit_run, exit_code_for, faults_off, write_ledger
from harness.run.backend import Backend, LocalBackend
from harness.run.drevents import DrEventFiring
from harness.run.faultfiring import FaultFiring
from harness.run.outcome import RunFacts, conclude, refused
from harness.run.setup import (
    fit_to_host,
    preflight,
    set_up_operator,
    shard_specs,
    start_embedded_vtn,
    vtn_mqtt_counts,
    worker_count,
)
from harness.run.signals import SignalLog
from harness.run.supervisor import Supervised, Supervisor
from harness.sinks.abortwatch import AbortWatch
from harness.sinks.base import Fanout, Outcome, RunSink
from harness.sinks.loginwatch import LoginWatch
from harness.sinks.junit import JunitWriter
from harness.sinks.resultsdir import ResultsWriter, make_run_dir
from harness.sinks.web import WebDashboard


class RunSession:
    """Runs one profile once; `results` grows while it runs (tests and watches read it)."""

    def __init__(
        self,
        profile: Profile,
        out_dir: str | os.PathLike[str] = ".",
        view: RunSink | None = None,
        *,
        reachable_window_s: float = 10.0,
        backend: Backend | None = None,
        heartbeat_s: float | None = None,
        embedded_target: bool = False,
        sinks: Sequence[RunSink] = (),
        default_gates: bool = True,
        audit: AuditSettings | None = None,
        exporters: Sequence[RunSink] = (),
        report: bool = False,
    ) -> None:
        self.profile = profile
        # A profile that names no thresholds is judged by the default gates, unless its caller judges the run
        # itself (a capacity step: by the plan's SLO).
        self.default_gates = default_gates
        self.audit = audit  # set: read every report back from the VTN at the end (harness run --audit)
        self.report = report  # write report.html into the run folder at the end (harness run does)
        self.embedded_target = embedded_target  # profile.target is an embedded VTN the caller started (capacity)
        self.out_dir = Path(out_dir)
        self.views = [s for s in (view, *sinks) if s is not None]
        self.exporters = list(exporters)  # told last: the results are written before an exporter's final wait
        self.reachable_window_s = reachable_window_s
        self.backend: Backend = backend or LocalBackend()
        self.heartbeat_s = heartbeat_s
        self.results = RunResults(warmup_windows=int(math.ceil(profile.warmup_s)))
        self.signals = SignalLog()
        self.notes: list[str] = []
        self.abort_watch = AbortWatch(profile)
        self.login_watch = LoginWatch(profile)
        self.supervisor: Supervisor | None = None
        self.faults: FaultFiring | None = None

    def sinks(self, run_dir: Path) -> list[RunSink]:
        """Every sink of the run, in the order each is told a fact. A new one (dashboard, exporter) is one line."""
        return [*self.views, JunitWriter(run_dir), ResultsWriter(run_dir), self.abort_watch, self.login_watch,
                *self.exporters]

    def run(self) -> Outcome:
        p = self.profile
        # a VTN the caller started (capacity) is served at its 3.0.1 URL; our own speaks 3.1.0 too
        speaks = embedded.DIALECTS if p.target is None else (embedded.DIALECT,)
        creds, ssl_context = preflight(p, embedded_vtn=p.target is None or self.embedded_target, speaks=speaks)
        if self.backend.capabilities.runs_on_this_host:  # a cluster's nodes have their own limits
            p = self.profile = fit_to_host(p, worker_count(p, self.backend), self.notes)
        run_dir = make_run_dir(self.out_dir, p.name)
        started_epoch = time.time()
        with self.signals.recording(), ExitStack() as stack:
            target, vtn_pid, vtn = p.target, None, None
            if target is None:
                self.setting_up("starting the embedded VTN" + (" and its MQTT broker" if p.dialect == embedded.DIALECT_31 else ""))
                target, vtn_pid, vtn = start_embedded_vtn(stack, p, run_dir, self.signals, creds)
            self.setting_up(f"logging in to {target} and finding program {p.program_name!r}")
            op, program_id, event_id = set_up_operator(p, target, creds, ssl_context, self.reachable_window_s)
            tag = run_tag(run_dir.name)  # in every report's id, for the delivery audit
            specs = shard_specs(p, worker_count(p, self.backend), target, program_id, event_id, creds, tag)
            stack.callback(self.backend.close)
            sinks = self.sinks(run_dir)
            sim_start = specs[0].sim_start_epoch_s  # fleet.replay's first sample; None: t0 (the same in every spec)
            firing = DrEventFiring(p, op, program_id, self.notes, sim_start)
            for s in sinks:
                if isinstance(s, WebDashboard):  # the live page shows each DR event as it is created
                    s.fired = firing.fired
            faults = self.faults = FaultFiring(p, target, vtn, self.notes)
            self.results.faults = faults.rows  # the live view shows each fault as it starts and ends
            self.setting_up(f"starting {len(specs)} worker{'s' if len(specs) > 1 else ''} for {p.vens:,} VENs")
            self.signals.interrupting = None  # from here the supervisor acts on signals: drain, then the verdict
            sup = self.supervisor = Supervisor(
                p, self.backend, specs, self.results, Fanout(sinks), target=target, run_dir=run_dir,
                signals=self.signals, notes=self.notes, heartbeat_s=self.heartbeat_s, duties=[firing, faults],
            )
            ran = sup.run()
            vtn_mqtt = vtn_mqtt_counts(vtn)
            for kind, dev in op.dialect.deviations.take().items():  # what the operator's calls tolerated
                self.results.note_deviation(kind, dev.count, dev.example)
            if op.transient_failures:
                self.results.counters["setup_transient_failures"] = op.transient_failures
            self.results.faults = faults.finish()
            facts = RunFacts(started_epoch, ran.t0_epoch_s, self._measured_s(ran), target, program_id, event_id,
                             workers=len(specs), vtn_pid=vtn_pid, fired=firing.fired, notes=self.notes,
                             report_tag=tag, sim_start_epoch_s=sim_start, vtn_mqtt=vtn_mqtt)
            outcome = self.finish(run_dir, facts, Fanout(sinks))
            ledger = write_ledger(run_dir, self.results.ledgers.values(), p.vens)
            if self.audit is not None:
                if p.target is None:
                    faults_off(target)  # our own VTN: read what it stored, not its injected faults
                _, doc = audit_run(run_dir, op, self.audit, ledger=ledger)
                outcome = replace(outcome, summary=doc, verdict=doc["verdict"],
                                  exit_code=exit_code_for(doc, outcome.exit_code))
            if self.report and len(self.signals.received) > 1:  # "stop now": the plots can be drawn later
                return replace(outcome, report_error=f"second signal: stopped now; draw it with "
                                                     f"`harness report {run_dir}`")
            return self._with_report(outcome) if self.report else outcome

    @staticmethod
    def _with_report(outcome: Outcome) -> Outcome:
        """The outcome with report.html written beside summary.json, or with why it could not be (never a failed
        run: the results are on disk and the verdict stands)."""
        from harness.reports.run import write_report  # matplotlib is imported only when a report is drawn

        try:
            return replace(outcome, report_path=write_report(outcome.run_dir))
        except Exception as exc:  # noqa: BLE001 - any failure of the drawing is a note, not a lost run
            return replace(outcome, report_error=f"{type(exc).__name__}: {exc}".splitlines()[0])

    def setting_up(self, step: str) -> None:
        """A set-up step under way: told to the views, and what a signal now interrupts (`Interrupted`)."""
        self.signals.interrupting = step
        Fanout(self.views).preparing(step)

    def finish(self, run_dir: Path, facts: RunFacts, sink: RunSink | None = None) -> Outcome:
        """The verdict and summary of a supervised run, told to the sinks (which write the results)."""
        outcome = conclude(self.profile, self.results, facts, run_dir, signals=self.signals.received,
                           abort=self.abort_watch.abort, default_gates=self.default_gates)
        if self.login_watch.refusal is not None:
            refused(outcome, self.login_watch.refusal)
        (sink or Fanout(self.sinks(run_dir))).finished(outcome)
        return outcome

    def _measured_s(self, ran: Supervised) -> float:
        p = self.profile
        span_s = min(ran.ended_epoch_s - ran.t0_epoch_s, p.duration_s + p.timeout_s + p.drain_s)
        return max(1e-9, span_s - self.results.warmup_windows)
