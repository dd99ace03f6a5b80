"""How a run ends: its verdict and exit code, the manifest of what ran where, and the summary.json document.

Edge (reads the clock and the installed versions for the manifest). Precedence of verdicts: interrupted > invalid
> fail > pass; a failed threshold is listed as a reason in every case.
"""

from __future__ import annotations

import os
import platform
import signal
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness import __version__
from harness.core.exits import EXIT_ABORTED, EXIT_FAIL, EXIT_INVALID, EXIT_PASS, EXIT_SIGINT, EXIT_SIGTERM
from harness.core.fanout import event_fanout, notifications
from harness.core.health import HealthLimits, judge
from harness.core.profile import Profile
from harness.core.recovery import faults_summary
from harness.core.refusal import Refusal
from harness.core.results import RunResults, stage_rows, summary
from harness.core.stages import bounds as stage_bounds
from harness.core.thresholds import ThresholdResult, evaluate, failure_reasons, gates, mark_aborted, to_json
from harness.sinks.base import Outcome


@dataclass(frozen=True)
class RunFacts:
    """What set-up and supervision learned about a run, for its manifest."""

    started_epoch_s: float
    t0_epoch_s: float
    measured_s: float
    target: str
    program_id: str
    event_id: str
    workers: int = 0
    vtn_pid: int | None = None
    fired: Sequence[dict[str, Any]] = ()  # the DR events the operator created (harness.run.drevents)
    notes: Sequence[str] = field(default_factory=list)
    report_tag: str = ""  # the run's tag in every report id (harness.core.delivery)
    sim_start_epoch_s: float | None = None  # where simulated time starts (fleet.replay: the file's); None: t0
    vtn_mqtt: dict[str, Any] | None = None  # the embedded VTN's MQTT publish counts at the end (3.1.0)


def verdict(signals: Sequence[int], results: RunResults, limits: HealthLimits) -> tuple[str, int, list[str]]:
    """interrupted (a signal), invalid (a worker lost or failed, the generator saturated), else pass."""
    if signals:
        sig = signals[0]
        return "interrupted", EXIT_SIGTERM if sig == signal.SIGTERM else EXIT_SIGINT, [f"stopped by {signal.Signals(sig).name}"]
    lost = [w for w in results.workers.values() if w.status in ("lost", "failed")]
    reasons = [f"worker {w.worker_id} {w.status}: {w.detail.strip().splitlines()[-1] if w.detail else ''}" for w in lost]
    history = {w.worker_id: w.history[results.warmup_windows:] for w in results.workers.values()}
    reasons += judge(history, limits)
    if reasons:
        return "invalid", EXIT_INVALID, reasons
    return "pass", EXIT_PASS, reasons


def conclude(p: Profile, results: RunResults, facts: RunFacts, run_dir: Path, *, signals: Sequence[int],
             abort: tuple[ThresholdResult, float] | None = None, default_gates: bool = True) -> Outcome:
    """The verdict, the thresholds judged on the final summary, and the summary document itself."""
    limits = HealthLimits(max_loop_lag_ms=p.max_loop_lag_ms, max_cpu_percent=p.max_cpu_percent)
    name, code, reasons = verdict(signals, results, limits)
    invalid_reasons = list(reasons) if name == "invalid" else []
    doc = summary(run=manifest(p, facts), results=results, measured_s=facts.measured_s, verdict=name,
                  reasons=reasons, thresholds=[], extra=_extra(p, results, facts))
    checks = evaluate(gates(p.thresholds, bool(p.dr_events)) if default_gates else p.thresholds, doc)  # none named: the default gates
    if abort is not None:
        checks = mark_aborted(checks, *abort)
    reasons = reasons + failure_reasons(checks) + dr_reasons(facts.fired)
    if name == "pass" and reasons:
        name, code = "fail", EXIT_FAIL
    doc.update(verdict=name, reasons=reasons, thresholds=to_json(checks),
               thresholds_source="profile" if p.thresholds or not default_gates else "default")
    return Outcome(code, name, run_dir, doc, results, checks, invalid_reasons)


def dr_reasons(fired: Sequence[dict[str, Any]]) -> list[str]:
    """One line per DR event the operator could not create: a run whose DR check never happened does not pass."""
    return [f"DR check: DR event {i} (at {f['at_s']:g}s) not created: {f['error']}"
            for i, f in enumerate(fired) if f.get("error")]


def refused(outcome: Outcome, refusal: Refusal) -> None:
    """A run the target refused at first contact (harness.sinks.loginwatch stopped it): verdict fail, exit 4, the
    refusal first among the reasons and under summary.json "aborted". An interrupted run stays interrupted."""
    if outcome.verdict == "interrupted":
        return
    reason = refusal.message()
    outcome.verdict, outcome.exit_code = "fail", EXIT_ABORTED
    doc = outcome.summary
    doc["verdict"] = "fail"
    doc["reasons"] = [reason, *doc.get("reasons", [])]
    doc["aborted"] = {"reason": reason, "operation": refusal.operation, "status": refusal.status,
                      "failures": refusal.failures, "example": refusal.example}


def manifest(p: Profile, facts: RunFacts) -> dict[str, Any]:
    return {
        "name": p.name,
        "profile": asdict(p),
        "seed": p.seed,
        "target": facts.target,
        "embedded_vtn": p.target is None,
        "vtn_pid": facts.vtn_pid,
        "program_id": facts.program_id,
        "event_id": facts.event_id,
        "report_tag": facts.report_tag,
        "started_at": _iso(facts.started_epoch_s),
        "t0": _iso(facts.t0_epoch_s),
        "t0_epoch_s": facts.t0_epoch_s,
        # The meter's simulated clock starts here (t0, or fleet.replay's first sample) and runs at the profile's time_scale.
        "sim_start_epoch_s": facts.t0_epoch_s if facts.sim_start_epoch_s is None else facts.sim_start_epoch_s,
        "ended_at": _iso(time.time()),
        "workers": facts.workers,
        "target_report_rate_per_s": round(p.target_rate_per_s, 3),
        "versions": {
            "harness": __version__,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "aiohttp": _version("aiohttp"),
            "uvloop": _version("uvloop"),
        },
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "hostname": platform.node()},
        "notes": list(facts.notes),
    }


def _extra(p: Profile, results: RunResults, facts: RunFacts) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if facts.fired:
        extra["event_fanout"] = event_fanout([f for f in facts.fired if f["id"]], results)
    if p.events in ("webhook", "mqtt"):
        extra["notifications"] = notifications(p.events, results.counters, facts.vtn_mqtt)
    if results.faults:
        extra["faults"] = faults_summary(results, p.target_rate_per_s, p.interval_s, p.vens)
    if p.stages:
        extra["stages"] = stage_rows(stage_bounds(p.stages), results)
    return extra


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _version(mod: str) -> str:
    try:
        from importlib.metadata import version

        return version(mod)
    except Exception:  # noqa: BLE001
        return "unknown"
