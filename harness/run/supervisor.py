"""The supervisor: starts the workers on one instant, waits on their results with a timeout and dispatches, merges
their deltas, watches their heartbeats, stops them (escalating to kill), and tells the run's sinks what happened.

Edge. It creates no event loop, session or thread and renders nothing: the backend starts workers from picklable
specs; signal handlers only record the signal; run set-up and the verdict live in `harness.run.session`.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.health import HealthLimits, first_saturated
from harness.core.messages import Start, Stop, WorkerDelta, WorkerDone, WorkerFailed, WorkerReady
from harness.core.profile import Profile
from harness.core.results import RunResults
from harness.core.shard import ShardSpec
from harness.core.windows import WindowGate
from harness.run.backend import Backend
from harness.run.signals import SignalLog
from harness.sinks.base import RunInfo, RunSink, Snapshot

READY_TIMEOUT_S = 60.0
START_MARGIN_S = 0.3  # every worker gets Start this long before t0
SNAPSHOT_EVERY_S = 1.0
HUNG_KILL_AFTER_S = 2.0  # a hung worker gets this long to die from SIGTERM before SIGKILL
INTERRUPT_DRAIN_S = 3.0  # the most a first Ctrl-C waits for in-flight requests
Duty = Callable[[float], None]  # called every turn of the loop while running, with t0 (epoch seconds)


@dataclass(frozen=True)
class Supervised:
    t0_epoch_s: float
    ended_epoch_s: float


class Supervisor:
    """One run's workers from start to end; implements `RunControl` for its sinks."""

    def __init__(self, profile: Profile, backend: Backend, specs: Sequence[ShardSpec], results: RunResults,
                 sink: RunSink, *, target: str, run_dir: Path, signals: SignalLog | None = None,
                 notes: list[str] | None = None, heartbeat_s: float | None = None, duties: Sequence[Duty] = ()) -> None:
        self.profile = profile
        self.backend = backend
        self.specs: dict[int, ShardSpec] = {s.worker_id: s for s in specs}
        self.results = results
        self.sink = sink
        self.target = target
        self.run_dir = run_dir
        self.signals = signals or SignalLog()
        self.notes = notes if notes is not None else []
        self.duties = list(duties)
        self.limits = HealthLimits(max_loop_lag_ms=profile.max_loop_lag_ms, max_cpu_percent=profile.max_cpu_percent)
        # A worker that sends nothing (no delta, no message) for heartbeat_s is hung: terminated, then killed.
        self.heartbeat_s = heartbeat_s if heartbeat_s is not None else profile.heartbeat_s
        self.phase = "starting"
        self.finished: set[int] = set()
        self.last_heard: dict[int, float] = {}  # worker id -> monotonic instant of its last message, from Start
        self.hung: dict[int, float] = {}  # worker id -> when it was found hung and terminated
        self.killed: set[int] = set()  # hung workers that outlived SIGTERM and were sent SIGKILL
        self.gate = WindowGate(self.specs)
        self._warned_saturated = False

    # ---- RunControl ---------------------------------------------------------------------------
    def request_stop(self, reason: str, drain_s: float | None = None) -> None:
        self.phase = "draining"
        self._broadcast(Stop(self.profile.drain_s if drain_s is None else drain_s, reason))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def is_signalled(self) -> bool:
        return bool(self.signals.received)

    # ---- the run ------------------------------------------------------------------------------
    def run(self) -> Supervised:
        specs = list(self.specs.values())
        pids = self.backend.start(specs)
        for spec in specs:
            w = self.results.worker(spec.worker_id)
            w.vens, w.pid = spec.vens, pids.get(spec.worker_id, 0)
        is_ready = self._wait_ready()
        t0_epoch = time.time() + START_MARGIN_S
        if self.signals.received or not is_ready:
            self._broadcast(Stop(0.0, "aborted before start"))
        else:
            self._broadcast(Start(t0_epoch))
            self.last_heard = {wid: time.monotonic() + START_MARGIN_S for wid in self.specs}
            for w in self.results.workers.values():
                w.status = "running"
        self.phase = "running"
        self.sink.started(RunInfo(self.profile, self.run_dir, self.target, t0_epoch, len(specs), self,
                                  self.results, is_started=is_ready and not self.signals.received))
        self._loop(t0_epoch)
        return Supervised(t0_epoch, time.time())

    def _wait_ready(self) -> bool:
        """Until every worker has built its shard (all then start on one shared instant)."""
        ready: set[int] = set()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while len(ready) < len(self.specs) and not self._all_finished() and not self.signals.received:
            if time.monotonic() > deadline:
                self.notes.append(f"workers not ready after {READY_TIMEOUT_S:g}s")
                break
            msg = self.backend.get(0.1)
            if isinstance(msg, WorkerReady):
                ready.add(msg.worker_id)
            if msg is not None:
                self._handle(msg)
            self._check_alive()
        return len(ready) == len(self.specs)

    def _loop(self, t0_epoch: float) -> None:
        next_snapshot = time.monotonic()
        handled_signals = 0
        while not self._all_finished():
            if self.phase == "running":
                for duty in self.duties:
                    duty(t0_epoch)
            if len(self.signals.received) > handled_signals:
                handled_signals = len(self.signals.received)
                self._on_signal(handled_signals)
            msg = self.backend.get(0.1)
            if msg is not None:
                self._handle(msg)
            self._check_alive()
            if time.monotonic() >= next_snapshot:
                next_snapshot = time.monotonic() + SNAPSHOT_EVERY_S
                self.sink.snapshot(Snapshot(self.profile, self.results, time.time() - t0_epoch, self.phase, self.target,
                                            self.notes))
        self._drain_queue()  # messages still queued after the last worker ended

    def _on_signal(self, count: int) -> None:
        if count == 1:
            self.notes.append(f"{signal.Signals(self.signals.received[0]).name}: stopping, draining in-flight requests")
            self.request_stop("interrupted", min(self.profile.drain_s, INTERRUPT_DRAIN_S))
        else:
            self.notes.append("second signal: stopping workers now")
            self.backend.terminate()

    # ---- dispatch -----------------------------------------------------------------------------
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
            self._publish(self.gate.arrived(msg.worker_id, msg.window))
        elif isinstance(msg, (WorkerDone, WorkerFailed)):
            w = self.results.worker(msg.worker_id)
            w.ended_epoch_s = time.time()
            if isinstance(msg, WorkerDone):
                w.status, w.detail = "done", msg.reason
            else:
                w.status, w.detail = "failed", msg.traceback
                self.notes.append(f"worker {msg.worker_id} failed: {msg.traceback.strip().splitlines()[-1]}")
            self._end(msg.worker_id)
        elif isinstance(msg, WorkerReady):
            w = self.results.worker(msg.worker_id)
            w.status = "ready"
            if msg.pid:
                w.pid = msg.pid

    def _publish(self, closed: range) -> None:
        for second in closed:
            self.sink.window_closed(second, self.results.windows.get(second, {}))

    def _end(self, wid: int) -> None:
        self.finished.add(wid)
        self._publish(self.gate.ended(wid))

    def _drain_queue(self) -> None:
        while (msg := self.backend.get(0.0)) is not None:
            self._handle(msg)

    # ---- liveness -----------------------------------------------------------------------------
    def _check_heartbeats(self) -> None:
        """Terminate a worker silent for heartbeat_s (e.g. stopped, or stuck in a blocking call), kill it if it
        is still there HUNG_KILL_AFTER_S later; it is then reported lost like a worker that died."""
        now = time.monotonic()
        if not any(now - last > self.heartbeat_s for wid, last in self.last_heard.items() if wid not in self.finished):
            return
        self._drain_queue()  # the supervisor may be the one that was busy
        can_stop = self.backend.capabilities.stops_one_worker  # a cluster backend cannot stop one task
        for wid, last in self.last_heard.items():
            if wid in self.finished:
                continue
            since = self.hung.get(wid)
            if since is None and now - last > self.heartbeat_s:
                self.hung[wid] = now
                self.notes.append(f"worker {wid} sent nothing for {now - last:.0f}s (heartbeat deadline "
                                  f"{self.heartbeat_s:g}s): terminating it")
                if can_stop:
                    self.backend.stop_worker(wid, force=False)
                else:
                    self._mark_lost(wid, "not stopped (the backend cannot stop one worker)")
            elif since is not None and wid not in self.killed and now - since > HUNG_KILL_AFTER_S and can_stop:
                self.killed.add(wid)
                self.backend.stop_worker(wid, force=True)

    def _check_alive(self) -> None:
        if self.last_heard:
            self._check_heartbeats()
        gone = {wid: how for wid, how in self.backend.exited().items() if wid not in self.finished}
        if not gone:
            return
        self._drain_queue()  # their last words may still be queued
        for wid, how in gone.items():
            if wid not in self.finished:
                self._mark_lost(wid, how)

    def _mark_lost(self, wid: int, how: str) -> None:
        spec = self.specs[wid]
        w = self.results.worker(wid)
        w.status = "lost"
        w.ended_epoch_s = time.time()
        if wid in self.hung:
            how = f"hung (no message for {self.heartbeat_s:g}s), terminated{', then killed' if wid in self.killed else ''}: {how}"
        w.detail = f"{how}, carrying VENs {spec.ven_start}..{spec.ven_stop - 1} ({spec.vens} VENs)"
        self.notes.append(f"worker {wid} lost: {w.detail}")
        self._end(wid)

    def _all_finished(self) -> bool:
        return len(self.finished) >= len(self.specs)

    def _broadcast(self, msg: Any) -> None:
        for wid in self.specs:
            if wid not in self.finished:
                self.backend.send(wid, msg)
