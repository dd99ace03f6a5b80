"""The supervisor: starts the workers, merges their deltas, drives the live view, ends the run, writes results.

Edge. It creates no event loop, session or thread: workers start from an explicit spawn context and get
only picklable specs; signal handlers only record the signal; the main loop waits on the results queue
with a timeout and dispatches.
"""

from __future__ import annotations

import math
import os
import platform
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import numpy as np

from harness import __version__, dialects
from harness.backend import Backend, LocalBackend
from harness.businesslogic import Operator, SetupFailed
from harness.events import targeted
from harness.fleet import FleetSpec, split
from harness.limits import check_fleet
from harness.health import HealthLimits, first_saturated, judge
from harness.messages import Start, Stop, WorkerDelta, WorkerDone, WorkerFailed, WorkerReady
from harness.profile import Profile, ProfileError
from harness.results import RunResults, event_fanout, stage_rows, summary
from harness.stages import bounds as stage_bounds
from harness.junit import junit_xml
from harness.resultsdir import make_run_dir, write_bytes_atomic, write_health, write_histograms, write_json, write_series
from harness.shard import Credentials, ShardSpec
from harness.thresholds import Threshold, ThresholdResult, evaluate, failure_reasons, mark_aborted, should_abort, to_json

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_INVALID, EXIT_ABORTED = 0, 1, 2, 3, 4
EXIT_SIGINT, EXIT_SIGTERM = 130, 143
READY_TIMEOUT_S = 60.0
START_MARGIN_S = 0.3
SNAPSHOT_EVERY_S = 5.0


class View(Protocol):
    """What the supervisor tells the live view (rich on a TTY, plain lines otherwise)."""

    def update(self, snap: Snapshot) -> None: ...
    def close(self) -> None: ...


class NullView:
    def update(self, snap: Snapshot) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class Snapshot:
    profile: Profile
    results: RunResults
    elapsed_s: float
    phase: str  # starting | running | draining | done
    target: str
    notes: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    exit_code: int
    verdict: str
    run_dir: Path
    summary: dict[str, Any]


def resolve_credentials(p: Profile) -> Credentials:
    return Credentials(
        bl_client_id=p.bl_client_id,
        bl_secret=os.environ.get(p.bl_secret_env, "bl-secret"),
        ven_client_prefix=p.ven_client_prefix,
        ven_secret=os.environ.get(p.ven_secret_env, "ven-secret"),
    )


class Supervisor:
    def __init__(
        self,
        profile: Profile,
        out_dir: str | os.PathLike[str] = ".",
        view: View | None = None,
        *,
        reachable_window_s: float = 10.0,
        backend: Backend | None = None,
    ) -> None:
        self.profile = profile
        self.out_dir = Path(out_dir)
        self.view = view or NullView()
        self.reachable_window_s = reachable_window_s
        self.results = RunResults(warmup_windows=int(math.ceil(profile.warmup_s)))
        self.limits = HealthLimits(max_loop_lag_ms=profile.max_loop_lag_ms, max_cpu_percent=profile.max_cpu_percent)
        self._warned_saturated = False
        self.signals: list[int] = []
        self.backend: Backend = backend or LocalBackend()
        self.specs: dict[int, ShardSpec] = {}
        self.finished: set[int] = set()
        self.notes: list[str] = []
        self.target = profile.target or "embedded"
        self.vtn_pid: int | None = None
        self.fired: list[dict[str, Any]] = []
        self.abort: tuple[ThresholdResult, float] | None = None  # the threshold that stopped the run, and when

    # ---- signals: record only -----------------------------------------------------------------
    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)

    @contextmanager
    def _signals(self) -> Iterator[None]:
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    # ---- run ----------------------------------------------------------------------------------
    def run(self) -> Outcome:
        p = self.profile
        if isinstance(self.backend, LocalBackend):  # a cluster's nodes have their own limits
            problem = check_fleet(p.vens, self._n_workers(), p.connection, p.target is None)
            if problem is not None:
                raise ProfileError(problem)
        run_dir = make_run_dir(self.out_dir, p.name)
        self.run_dir = run_dir
        started_epoch = time.time()
        with ExitStack() as stack, self._signals():
            target = p.target
            vtn = None
            if target is None:
                from harness.vtn import EmbeddedVtn, VtnConfig  # the embedded VTN is optional at import time

                vtn = stack.enter_context(EmbeddedVtn(VtnConfig(db_path=str(run_dir / "vtn.sqlite"), **_vtn_faults(p))))
                target = vtn.url
                self.vtn_pid = vtn.pid
            self.target = target
            creds = resolve_credentials(p)
            op = self.operator = Operator(target, dialects.get(p.dialect), creds.bl_client_id, creds.bl_secret, p.timeout_s)
            op.wait_reachable(self.reachable_window_s)
            program_id = op.ensure_program(p.program_name)
            event_id = op.ensure_event(program_id, f"{p.program_name}-telemetry", time.time())
            self.program_id = program_id
            specs = self._specs(target, program_id, event_id, creds)
            stack.callback(self.backend.close)
            t0_epoch, measured_s = self._drive(specs)
        return self._finish(run_dir, started_epoch, t0_epoch, measured_s, target, program_id, event_id)

    def _n_workers(self) -> int:
        p = self.profile
        # Default: one worker per core; with the embedded VTN on this machine, leave it a core of its own.
        default = (os.cpu_count() or 1) - (1 if p.target is None else 0)
        cluster_size = getattr(self.backend, "default_workers", None)  # on a cluster: one shard per worker thread
        if cluster_size is not None:
            default = cluster_size()
        return int(min(p.workers or max(1, default), p.vens))

    def _specs(self, target: str, program_id: str, event_id: str, creds: Credentials) -> list[ShardSpec]:
        p = self.profile
        n_workers = self._n_workers()
        fleet = FleetSpec(vens=p.vens, sites_per_ven=p.sites_per_ven, mix=p.mix, name_prefix=p.name_prefix)
        duration = p.duration_s
        return [
            ShardSpec(
                worker_id=i,
                fleet=fleet,
                ven_start=lo,
                ven_stop=hi,
                seed=p.seed,
                target=target,
                program_id=program_id,
                event_id=event_id,
                interval_s=p.interval_s,
                duration_s=duration,
                reports_per_ven=p.reports_per_ven,
                connection=p.connection,
                pool_size=max(1, p.pool_size // n_workers),
                timeout_s=p.timeout_s,
                credentials=creds,
                dialect=p.dialect,
                time_scale=p.time_scale,
                meter_tick_s=p.meter_tick_s,
                warmup_s=p.warmup_s,
                events=p.events,
                poll_interval_s=p.poll_interval_s,
                stages=p.stages,
            )
            for i, (lo, hi) in enumerate(split(p.vens, n_workers))
        ]

    def _drive(self, specs: list[ShardSpec]) -> tuple[float, float]:
        self.specs = {s.worker_id: s for s in specs}
        pids = self.backend.start(specs)
        for spec in specs:
            w = self.results.worker(spec.worker_id)
            w.vens = spec.vens
            w.pid = pids.get(spec.worker_id, 0)
        # Wait until every worker has built its shard, then start all on one shared instant.
        ready: set[int] = set()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while len(ready) < len(specs) and not self._all_finished():
            if self.signals:
                break
            if time.monotonic() > deadline:
                self.notes.append(f"workers not ready after {READY_TIMEOUT_S:g}s")
                break
            msg = self.backend.get(0.1)
            if isinstance(msg, WorkerReady):
                ready.add(msg.worker_id)
            if msg is not None:
                self._handle(msg)
            self._check_alive()
        t0_epoch = time.time() + START_MARGIN_S
        if self.signals or len(ready) < len(specs):
            self._broadcast(Stop(0.0, "aborted before start"))
        else:
            self._broadcast(Start(t0_epoch))
            for w in self.results.workers.values():
                w.status = "running"
        self._loop(t0_epoch)
        end = time.time()
        p = self.profile
        measured = max(1e-9, min(end - t0_epoch, p.duration_s + p.timeout_s + p.drain_s) - self.results.warmup_windows)
        return t0_epoch, measured

    def _loop(self, t0_epoch: float) -> None:
        p = self.profile
        next_view = time.monotonic()
        next_snapshot = time.monotonic() + SNAPSHOT_EVERY_S
        next_abort_check = time.monotonic() + 1.0
        abort_checks = [t for t in p.thresholds if t.abort_on_fail]
        handled_signals = 0
        phase = "running"
        while not self._all_finished():
            if len(self.fired) < len(p.dr_events) and phase == "running":
                self._fire_due_events(t0_epoch)
            if len(self.signals) > handled_signals:
                handled_signals = len(self.signals)
                if handled_signals == 1:
                    phase = "draining"
                    self.notes.append(f"{signal.Signals(self.signals[0]).name}: stopping, draining in-flight requests")
                    self._broadcast(Stop(min(p.drain_s, 3.0), "interrupted"))
                else:
                    self.notes.append("second signal: stopping workers now")
                    self.backend.terminate()
            msg = self.backend.get(0.1)
            if msg is not None:
                self._handle(msg)
            self._check_alive()
            now = time.monotonic()
            if now >= next_view:
                next_view = now + 1.0
                self.view.update(Snapshot(p, self.results, time.time() - t0_epoch, phase, self.target, self.notes))
            if now >= next_snapshot:
                next_snapshot = now + SNAPSHOT_EVERY_S
                self._write_partial(t0_epoch)
            if abort_checks and phase == "running" and now >= next_abort_check:
                next_abort_check = now + 1.0
                if self._check_abort(t0_epoch, abort_checks):
                    phase = "draining"
        # Messages still queued after the last worker ended.
        while (msg := self.backend.get(0.0)) is not None:
            self._handle(msg)

    def _handle(self, msg: Any) -> None:
        if isinstance(msg, WorkerDelta):
            self.results.add(msg)
            if not self._warned_saturated:
                warning = first_saturated([(msg.worker_id, msg.health)], self.limits)
                if warning is not None:
                    self._warned_saturated = True
                    self.notes.append(warning)
        elif isinstance(msg, WorkerDone):
            w = self.results.worker(msg.worker_id)
            w.status = "done"
            w.detail = msg.reason
            w.ended_epoch_s = time.time()
            self.finished.add(msg.worker_id)
        elif isinstance(msg, WorkerFailed):
            w = self.results.worker(msg.worker_id)
            w.status = "failed"
            w.detail = msg.traceback
            w.ended_epoch_s = time.time()
            self.finished.add(msg.worker_id)
            self.notes.append(f"worker {msg.worker_id} failed: {msg.traceback.strip().splitlines()[-1]}")
        elif isinstance(msg, WorkerReady):
            w = self.results.worker(msg.worker_id)
            w.status = "ready"
            if msg.pid:
                w.pid = msg.pid

    def _check_alive(self) -> None:
        gone = {wid: how for wid, how in self.backend.exited().items() if wid not in self.finished}
        if not gone:
            return
        while (msg := self.backend.get(0.0)) is not None:  # their last words may still be queued
            self._handle(msg)
        for wid, how in gone.items():
            if wid in self.finished:
                continue
            self.finished.add(wid)
            spec = self.specs[wid]
            w = self.results.worker(wid)
            w.status = "lost"
            w.ended_epoch_s = time.time()
            w.detail = f"{how}, carrying VENs {spec.ven_start}..{spec.ven_stop - 1} ({spec.vens} VENs)"
            self.notes.append(f"worker {wid} lost: {w.detail}")

    def _all_finished(self) -> bool:
        return len(self.finished) >= len(self.specs)

    def _broadcast(self, msg: Any) -> None:
        for wid in self.specs:
            if wid not in self.finished:
                self.backend.send(wid, msg)

    # ---- results ------------------------------------------------------------------------------
    def _verdict(self) -> tuple[str, int, list[str]]:
        reasons: list[str] = []
        if self.signals:
            sig = self.signals[0]
            return "interrupted", EXIT_SIGTERM if sig == signal.SIGTERM else EXIT_SIGINT, [f"stopped by {signal.Signals(sig).name}"]
        lost = [w for w in self.results.workers.values() if w.status in ("lost", "failed")]
        reasons += [f"worker {w.worker_id} {w.status}: {w.detail.strip().splitlines()[-1] if w.detail else ''}" for w in lost]
        history = {w.worker_id: w.history[self.results.warmup_windows:] for w in self.results.workers.values()}
        reasons += judge(history, self.limits)
        if reasons:
            return "invalid", EXIT_INVALID, reasons
        return "pass", EXIT_PASS, reasons

    def _manifest(self, started_epoch: float, t0_epoch: float, target: str, program_id: str, event_id: str) -> dict[str, Any]:
        p = self.profile
        prof = asdict(p)
        return {
            "name": p.name,
            "profile": prof,
            "seed": p.seed,
            "target": target,
            "embedded_vtn": p.target is None,
            "vtn_pid": self.vtn_pid,
            "program_id": program_id,
            "event_id": event_id,
            "started_at": _iso(started_epoch),
            "t0": _iso(t0_epoch),
            "t0_epoch_s": t0_epoch,
            "sim_start_epoch_s": t0_epoch,  # the meter's simulated clock starts at t0 (time_scale in the profile)
            "ended_at": _iso(time.time()),
            "workers": len(self.specs),
            "target_report_rate_per_s": round(p.target_rate_per_s, 3),
            "versions": {
                "harness": __version__,
                "python": platform.python_version(),
                "numpy": np.__version__,
                "aiohttp": _version("aiohttp"),
                "uvloop": _version("uvloop"),
            },
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "hostname": platform.node()},
            "notes": list(self.notes),
        }

    def _extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.fired:
            extra["event_fanout"] = event_fanout([f for f in self.fired if f["id"]], self.results)
        if self.profile.stages:
            extra["stages"] = stage_rows(stage_bounds(self.profile.stages), self.results)
        return extra

    def _fire_due_events(self, t0_epoch: float) -> None:
        """The operator creates each DR event when its time comes (a blocking call of a few ms)."""
        p = self.profile
        elapsed = time.time() - t0_epoch
        for i, e in enumerate(p.dr_events):
            if i < len(self.fired) or elapsed < e.at_s:
                continue
            fleet = FleetSpec(vens=p.vens, sites_per_ven=p.sites_per_ven, mix=p.mix, name_prefix=p.name_prefix)
            mask = targeted(p.seed, i, np.arange(p.vens, dtype=np.int64), e.share)
            names = None if e.share >= 1.0 else [fleet.ven_name(int(j)) for j in np.flatnonzero(mask)]
            created = time.time()
            sim = lambda wall: t0_epoch + (wall - t0_epoch) * p.time_scale  # noqa: E731 - the workers' clock
            try:
                event_id = self.operator.create_dr_event(
                    self.program_id, f"{p.program_name}-dr-{i}-{int(created)}", sim(created + e.notice_s),
                    e.duration_s * p.time_scale, e.level, names,
                )
            except SetupFailed as exc:
                self.notes.append(f"DR event {i} not created: {exc}")
                self.fired.append({"id": None, "at_s": e.at_s, "level": e.level, "targeted": 0,
                                   "created_epoch_s": created, "start_epoch_s": created + e.notice_s})
                continue
            self.fired.append({
                "id": event_id, "at_s": e.at_s, "level": e.level, "targeted": int(mask.sum()),
                "created_epoch_s": created, "start_epoch_s": created + e.notice_s,
            })
            self.notes.append(f"DR event {i} ({event_id}) created at {elapsed:.1f}s for {int(mask.sum())} VENs, SIMPLE level {e.level}")

    def _write_partial(self, t0_epoch: float) -> None:
        measured = max(1e-9, time.time() - t0_epoch)
        doc = summary(run={"name": self.profile.name, "partial": True}, results=self.results, measured_s=measured,
                      verdict="running", reasons=[], thresholds=[])
        write_json(self.run_dir / "summary.json", doc)

    def _check_abort(self, t0_epoch: float, checks: list[Threshold]) -> bool:
        """Judge the abort-on-fail thresholds on the run so far; when one fails past its grace, stop the workers."""
        elapsed_s = time.time() - t0_epoch
        if elapsed_s < max(0.0, min(t.grace_s for t in checks)):
            return False
        run = {"name": self.profile.name, "partial": True, "target_report_rate_per_s": round(self.profile.target_rate_per_s, 3)}
        doc = summary(run=run, results=self.results, measured_s=max(1e-9, elapsed_s - self.results.warmup_windows),
                      verdict="running", reasons=[], thresholds=[])
        failed = should_abort(evaluate(checks, doc), elapsed_s)
        if failed is None:
            return False
        self.abort = (failed, elapsed_s)
        self.notes.append(f"threshold abort at {elapsed_s:.0f}s: {failed.expr} ({failed.detail}); stopping")
        self._broadcast(Stop(self.profile.drain_s, "threshold abort"))
        return True

    def _finish(self, run_dir: Path, started_epoch: float, t0_epoch: float, measured_s: float, target: str,
                program_id: str, event_id: str) -> Outcome:
        verdict, code, reasons = self._verdict()
        invalid_reasons = list(reasons) if verdict == "invalid" else []
        doc = summary(
            run=self._manifest(started_epoch, t0_epoch, target, program_id, event_id),
            results=self.results,
            measured_s=measured_s,
            verdict=verdict,
            reasons=reasons,
            thresholds=[],
            extra=self._extra(),
        )
        # Precedence: interrupted > invalid > fail > pass; failed thresholds are listed as reasons in every case.
        checks = evaluate(self.profile.thresholds, doc)
        if self.abort is not None:
            checks = mark_aborted(checks, *self.abort)
        reasons = reasons + failure_reasons(checks)
        if verdict == "pass" and reasons:
            verdict, code = "fail", EXIT_FAIL
        doc.update(verdict=verdict, reasons=reasons, thresholds=to_json(checks))
        write_series(run_dir / "series.csv", self.results)
        write_histograms(run_dir / "histograms.npz", self.results)
        write_health(run_dir / "health.csv", self.results)
        write_bytes_atomic(run_dir / "junit.xml", junit_xml(self.profile.name, checks, invalid_reasons))
        write_json(run_dir / "summary.json", doc)
        self.view.update(Snapshot(self.profile, self.results, measured_s, "done", self.target, self.notes))
        return Outcome(code, verdict, run_dir, doc)


def _vtn_faults(p: Profile) -> dict[str, Any]:
    if not p.vtn_faults:
        return {}
    from harness.vtn import parse_faults

    return {"faults": parse_faults(p.vtn_faults)}


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _version(mod: str) -> str:
    try:
        from importlib.metadata import version

        return version(mod)
    except Exception:  # noqa: BLE001
        return "unknown"
