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
import ssl
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any, Protocol
from urllib.parse import urlsplit

import numpy as np

from harness import __version__, dialects
from harness.core.targeting import targeted
from harness.core.fleet import FleetSpec, split
from harness.core.health import HealthLimits, first_saturated, judge
from harness.core.messages import Start, Stop, WorkerDelta, WorkerDone, WorkerFailed, WorkerReady
from harness.core.profile import Profile, ProfileError
from harness.core.results import RunResults, event_fanout, stage_rows, summary
from harness.core.shard import Credentials, ShardSpec
from harness.core.simclock import SimClock
from harness.core.stages import bounds as stage_bounds
from harness.core.thresholds import (
    Threshold,
    ThresholdResult,
    evaluate,
    failure_reasons,
    mark_aborted,
    should_abort,
    to_json,
)
from harness.dialects import resolve_granularity
from harness.host.limits import check_fleet, loopback_sources
from harness.net import tls
from harness.run.backend import Backend, LocalBackend
from harness.run.operator import Operator, SetupFailed
from harness.sinks.base import NullView, Snapshot, View
from harness.sinks.junit import junit_xml
from harness.sinks.resultsdir import (
    make_run_dir,
    write_bytes_atomic,
    write_health,
    write_histograms,
    write_json,
    write_series,
)

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_INVALID, EXIT_ABORTED = 0, 1, 2, 3, 4
EXIT_SIGINT, EXIT_SIGTERM = 130, 143
READY_TIMEOUT_S = 60.0
START_MARGIN_S = 0.3
SNAPSHOT_EVERY_S = 5.0
EMBEDDED_DIALECT = "openadr-3.0.1"  # what the embedded VTN speaks
HUNG_KILL_AFTER_S = 2.0  # a hung worker gets this long to die from SIGTERM before SIGKILL
VTN_STOP_S, VTN_STOP_INTERRUPTED_S, VTN_STOP_FORCED_S = 10.0, 2.0, 0.5


@dataclass
class Outcome:
    exit_code: int
    verdict: str
    run_dir: Path
    summary: dict[str, Any]


def resolve_credentials(p: Profile, embedded: bool = True) -> Credentials:
    """Secrets from the environment variables the profile names; the embedded VTN's defaults (`bl-secret`,
    `ven-secret`) apply only to the embedded VTN: for another target an unset variable is a ProfileError."""
    found: dict[str, str] = {}
    for key, env, default in (("bl_secret_env", p.bl_secret_env, "bl-secret"), ("ven_secret_env", p.ven_secret_env, "ven-secret")):
        value = os.environ.get(env)
        if value is None and not embedded:
            raise ProfileError(f"profile: target.{key}: environment variable {env} is not set "
                               f"(a --target needs its real secret; defaults apply only to the embedded VTN)")
        found[key] = default if value is None else value
    prov_secret = ""
    if p.provisioning_client_id is not None:
        # The embedded VTN's BL client may create VENs: its secret is the embedded default.
        prov_secret = os.environ.get(p.provisioning_secret_env, "bl-secret" if embedded else "")
        if not prov_secret:
            raise ProfileError(f"profile: target.provisioning_secret_env names {p.provisioning_secret_env}, which is not set")
    return Credentials(p.bl_client_id, found["bl_secret_env"], p.ven_client_prefix, found["ven_secret_env"],
                       p.provisioning_client_id, prov_secret)


def preflight(p: Profile, embedded: bool) -> tuple[Credentials, ssl.SSLContext | None]:
    """Everything a run needs that a user can get wrong, checked before anything starts (each a one-line
    ProfileError): the dialect and its granularity, TLS files, the dialect an embedded VTN speaks, secrets."""
    try:
        dialect = dialects.get(p.dialect)
    except ValueError as exc:
        raise ProfileError(f"profile: target.{exc}") from None
    try:
        resolve_granularity(dialect, p.target_settings.granularity)
        if p.target_settings.uses_tls_files:
            tls.client_context(p.target_settings)  # the files exist and load, whatever the scheme
        ctx = tls.context_for(p.target_settings.base_url(p.target or "http://127.0.0.1"), p.target_settings)
    except ValueError as exc:
        raise ProfileError(f"profile: {exc}") from None
    if embedded and p.dialect != EMBEDDED_DIALECT:
        raise ProfileError(f"profile: target.dialect {p.dialect} needs --target: the embedded VTN speaks only {EMBEDDED_DIALECT}")
    return resolve_credentials(p, embedded), ctx


class Supervisor:
    def __init__(
        self,
        profile: Profile,
        out_dir: str | os.PathLike[str] = ".",
        view: View | None = None,
        *,
        reachable_window_s: float = 10.0,
        backend: Backend | None = None,
        heartbeat_s: float | None = None,
        embedded_target: bool = False,
    ) -> None:
        self.profile = profile
        self.embedded_target = embedded_target  # profile.target is an embedded VTN the caller started (capacity)
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
        self.operator: Operator | None = None
        self.abort: tuple[ThresholdResult, float] | None = None  # the threshold that stopped the run, and when
        # A worker that sends nothing (no delta, no message) for heartbeat_s is hung: terminated, then killed.
        self.heartbeat_s = heartbeat_s if heartbeat_s is not None else profile.heartbeat_s
        self.last_heard: dict[int, float] = {}  # worker id -> monotonic instant of its last message, from Start
        self.hung: dict[int, float] = {}  # worker id -> when it was found hung and terminated
        self.killed: set[int] = set()  # hung workers that outlived SIGTERM and were sent SIGKILL

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
        creds, ssl_context = preflight(p, embedded=p.target is None or self.embedded_target)
        if isinstance(self.backend, LocalBackend):  # a cluster's nodes have their own limits
            target_host = urlsplit(p.target).hostname if p.target else None
            sources = loopback_sources(p.vens, p.connection, target_host, p.target_settings.source_addresses)
            if sources != p.target_settings.source_addresses:
                p = self.profile = replace(p, target_settings=replace(p.target_settings, source_addresses=sources))
                self.notes.append(f"{p.vens:,} own connections exceed one address's ephemeral ports: VENs connect "
                                  f"from {', '.join(sources)} in turn")
            problem = check_fleet(p.vens, self._n_workers(), p.connection, p.target is None,
                                  sources=len(p.target_settings.source_addresses))
            if problem is not None:
                raise ProfileError(problem)
        run_dir = make_run_dir(self.out_dir, p.name)
        self.run_dir = run_dir
        started_epoch = time.time()
        # Signals are recorded until the very end (teardown included), and the results are written before
        # teardown, so a slow or interrupted teardown never loses them.
        with self._signals(), ExitStack() as stack:
            target = p.target
            vtn = None
            if target is None:
                from harness.vtn import EmbeddedVtn, VtnConfig  # the embedded VTN is optional at import time

                vtn = EmbeddedVtn(VtnConfig(db_path=str(run_dir / "vtn.sqlite"), **_vtn_faults(p))).start()
                stack.callback(lambda: vtn.stop(timeout=self._vtn_stop_s()))
                target = vtn.url
                self.vtn_pid = vtn.pid
            self.target = target
            op = self.operator = Operator(p.target_settings.base_url(target), dialects.get(p.dialect), creds.bl_client_id,
                                          creds.bl_secret, p.timeout_s, ssl_context)
            op.wait_reachable(self.reachable_window_s)
            op.discover_token_url()
            program_id = op.ensure_program(p.program_name)
            event_id = op.ensure_event(program_id, f"{p.program_name}-telemetry", time.time())
            self.program_id = program_id
            specs = self._specs(target, program_id, event_id, creds)
            stack.callback(self.backend.close)
            t0_epoch, measured_s = self._drive(specs)
            for kind, dev in op.dialect.deviations.take().items():  # what the operator's calls tolerated
                self.results.note_deviation(kind, dev.count, dev.example)
            return self._finish(run_dir, started_epoch, t0_epoch, measured_s, target, program_id, event_id)

    def _vtn_stop_s(self) -> float:
        """How long the embedded VTN may take to finish in-flight requests: short once interrupted, shorter on
        a second signal (a stalled VTN must not hold the exit)."""
        return VTN_STOP_S if not self.signals else VTN_STOP_INTERRUPTED_S if len(self.signals) == 1 else VTN_STOP_FORCED_S

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
                timeout_s=max([p.timeout_s, *p.op_timeouts.values()]),
                op_timeouts=tuple(sorted(p.op_timeouts.items())),
                credentials=creds,
                dialect=p.dialect,
                time_scale=p.time_scale,
                meter_tick_s=p.meter_tick_s,
                warmup_s=p.warmup_s,
                events=p.events,
                poll_interval_s=p.poll_interval_s,
                unsubscribe=p.unsubscribe,
                target_settings=p.target_settings,
                stages=p.stages,
                startup_s=p.startup_s,
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
            self.last_heard = {wid: time.monotonic() + START_MARGIN_S for wid in self.specs}
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
        wid = getattr(msg, "worker_id", None)
        if wid in self.last_heard:
            self.last_heard[wid] = time.monotonic()
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

    def _check_heartbeats(self) -> None:
        """Terminate a worker silent for heartbeat_s (e.g. stopped, or stuck in a blocking call), kill it if it
        is still there HUNG_KILL_AFTER_S later; it is then reported lost like a worker that died."""
        now = time.monotonic()
        if not any(now - last > self.heartbeat_s for wid, last in self.last_heard.items() if wid not in self.finished):
            return
        while (msg := self.backend.get(0.0)) is not None:  # the supervisor may be the one that was busy
            self._handle(msg)
        stop_worker = getattr(self.backend, "stop_worker", None)  # a cluster backend cannot stop one task
        for wid, last in self.last_heard.items():
            if wid in self.finished:
                continue
            since = self.hung.get(wid)
            if since is None and now - last > self.heartbeat_s:
                self.hung[wid] = now
                self.notes.append(f"worker {wid} sent nothing for {now - last:.0f}s (heartbeat deadline "
                                  f"{self.heartbeat_s:g}s): terminating it")
                if stop_worker is None:
                    self._mark_lost(wid, "not stopped (the backend cannot stop one worker)")
                else:
                    stop_worker(wid, force=False)
            elif since is not None and wid not in self.killed and now - since > HUNG_KILL_AFTER_S and stop_worker:
                self.killed.add(wid)
                stop_worker(wid, force=True)

    def _check_alive(self) -> None:
        if self.last_heard:
            self._check_heartbeats()
        gone = {wid: how for wid, how in self.backend.exited().items() if wid not in self.finished}
        if not gone:
            return
        while (msg := self.backend.get(0.0)) is not None:  # their last words may still be queued
            self._handle(msg)
        for wid, how in gone.items():
            if wid not in self.finished:
                self._mark_lost(wid, how)

    def _mark_lost(self, wid: int, how: str) -> None:
        self.finished.add(wid)
        spec = self.specs[wid]
        w = self.results.worker(wid)
        w.status = "lost"
        w.ended_epoch_s = time.time()
        if wid in self.hung:
            how = f"hung (no message for {self.heartbeat_s:g}s), terminated{', then killed' if wid in self.killed else ''}: {how}"
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
        assert self.operator is not None  # set up before any worker starts
        for i, e in enumerate(p.dr_events):
            if i < len(self.fired) or elapsed < e.at_s:
                continue
            fleet = FleetSpec(vens=p.vens, sites_per_ven=p.sites_per_ven, mix=p.mix, name_prefix=p.name_prefix)
            mask = targeted(p.seed, i, np.arange(p.vens, dtype=np.int64), e.share)
            names = None if e.share >= 1.0 else [fleet.ven_name(int(j)) for j in np.flatnonzero(mask)]
            created = time.time()
            start_sim = SimClock(t0_epoch, p.time_scale).at(created + e.notice_s - t0_epoch)  # the workers' clock
            try:
                event_id = self.operator.create_dr_event(
                    self.program_id, f"{p.program_name}-dr-{i}-{int(created)}", start_sim,
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
        if self.operator is not None and self.operator.transient_failures:
            self.results.counters["setup_transient_failures"] = self.operator.transient_failures
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
