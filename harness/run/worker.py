"""A worker process: one uvloop event loop for its whole life, its own aiohttp sessions, one shard of VENs.

Edge. `main(spec, ctrl, out)` is the process entry (module level, picklable arguments only). Scheduling is
done by this loop's timers; every session is created and closed inside this loop; the worker never writes
to the terminal — it sends messages up `out` and takes commands from the `ctrl` pipe. What a VEN does when an
operation falls due is the lifecycle's (lifecycle.py); the worker keeps time and deltas; its transports are
connections.py's.
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
import signal
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Protocol

import numpy as np

from harness import dialects
from harness.core.fleet import build_shard
from harness.core.messages import Start, Stop, WorkerDelta, WorkerDone, WorkerFailed, WorkerReady
from harness.core.recorder import Recorder
from harness.core.schedule import STREAM_POLL_PHASE, Stream, phases, startup_slots
from harness.core.shard import ShardSpec
from harness.core.simclock import SimClock
from harness.core.stages import ranks
from harness.host import collector
from harness.host.limits import raise_fd_limit
from harness.meter import Meter
from harness.net import transports
from harness.net.base import Transport
from harness.notify.webhook import WebhookReceiver
from harness.run.connections import Connections, TransportFactory
from harness.run.lifecycle import POLL_EVENTS, REPORT, Lifecycle
from harness.run.mqttvens import MqttVens
from harness.run.probe import HealthProbe
from harness.run.ven import ShardVens


class Sink(Protocol):
    def put(self, item: Any) -> None: ...


def main(spec: ShardSpec, ctrl: Connection, out: Sink) -> None:
    """Process entry: run the worker in one uvloop loop, report a bug as WorkerFailed."""
    # Ctrl-C reaches the whole process group; the supervisor alone decides how a run stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    collector.tune()
    raise_fd_limit()  # one socket per VEN: use the hard limit the supervisor checked against
    try:
        import uvloop

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        loop_factory = None
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(Worker(spec, ctrl, out).run())
    except BaseException:  # noqa: BLE001 - a worker reports its own bug before dying
        out.put(WorkerFailed(spec.worker_id, traceback.format_exc()))
        raise SystemExit(1) from None


MIN_SLEEP_S = 0.001  # the scheduler's shortest sleep: uvloop's timer resolution
TRIM_EVERY = 10  # delta windows between heap trims (malloc_trim: well under a millisecond; see host.collector.trim)


def default_transport(spec: ShardSpec, limit: int, sources: tuple[str, ...] = ()) -> Transport:
    """The transport the target's scheme asks for (harness.net.transports), with the run's TLS settings."""
    return transports.for_target(spec.target_settings.base_url(spec.target), spec.target_settings, limit=limit,
                                 timeout_s=spec.timeout_s, sources=sources)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _resolve_on_done(fut: asyncio.Future[None], _done: asyncio.Future[Any]) -> None:
    _resolve(fut)


class Worker:
    def __init__(
        self, spec: ShardSpec, ctrl: Connection, out: Sink, transport_factory: TransportFactory = default_transport
    ) -> None:
        self.spec = spec
        self.ctrl = ctrl
        self.out = out
        self.rec = Recorder()
        self.conns = Connections(spec, transport_factory)
        self.stop_reason: str | None = None
        self.drain_s = 5.0
        self.deltas_sent = 0
        self.wakeups = 0  # scheduler sleeps ended (timer or control message)
        self.t0 = 0.0
        self._meter_task: asyncio.Task[None] | None = None  # advancing the meter to the clock (see _keep_meter_current)
        self._flush_handle: asyncio.TimerHandle | None = None
        self.probe = HealthProbe()
        self._ctrl_msgs: asyncio.Queue[Any] = asyncio.Queue()
        self._ctrl_get: asyncio.Future[Any] | None = None  # the pending get() of _ctrl_msgs, kept across wake-ups
        self.bug: BaseException | None = None
        self.receiver: WebhookReceiver | MqttVens | None = None  # the notification channel

    # ---- control pipe -------------------------------------------------------------------------
    def _on_ctrl(self) -> None:
        try:
            while self.ctrl.poll():
                self._ctrl_msgs.put_nowait(self.ctrl.recv())
        except (EOFError, OSError):
            # The supervisor is gone: stop at once, nobody is left to read what we measure.
            asyncio.get_running_loop().remove_reader(self.ctrl.fileno())
            self._ctrl_msgs.put_nowait(Stop(drain_s=0.0, reason="supervisor gone"))

    def _on_bug(self, exc: BaseException) -> None:
        """An operation raised (a bug, not an HTTP failure): stop the worker and report it."""
        if self.bug is None:
            self.bug = exc
            self._ctrl_msgs.put_nowait(Stop(drain_s=0.0, reason="worker bug"))

    # ---- main ---------------------------------------------------------------------------------
    async def run(self) -> None:
        spec = self.spec
        loop = asyncio.get_running_loop()
        loop.add_reader(self.ctrl.fileno(), self._on_ctrl)
        shard = build_shard(spec.fleet, spec.seed, spec.ven_start, spec.ven_stop)
        # Everything that takes time is built before Ready (a 500,000-VEN meter takes ~1 s): the start margin
        # is the same whatever the fleet. The simulated start is t0's instant unless set, so it is set at Start.
        provisional = spec.sim_start_epoch_s if spec.sim_start_epoch_s is not None else time.time()
        meter = Meter(shard, spec.seed, provisional, spec.meter_tick_s, replay=spec.replay)
        self.vens = ShardVens(spec, shard, meter, dialects.get(spec.dialect), self.rec, self.conns.transport_for,
                              SimClock(provisional, spec.time_scale))
        # Each VEN comes online (provisions) at report slot online_slot[row], spread over the startup window,
        # then reports from the next slot on; with no startup window beyond one interval that is slot 0.
        online = startup_slots(spec.seed, spec.ven_start, spec.ven_stop, spec.interval_s, spec.startup_s)
        self.lifecycle = Lifecycle(self.vens, self.rec, online, spec.reports_per_ven, self.conns.go_offline,
                                   self._on_bug, loop)
        self.vens.side_task = self.lifecycle.side_task
        collector.freeze()  # the shard, meter and VEN state live for the run: out of the collector's walks
        self.out.put(WorkerReady(spec.worker_id, os.getpid(), shard.n_vens))
        msg = await self._ctrl_msgs.get()
        if isinstance(msg, Stop):
            self.out.put(WorkerDone(spec.worker_id, msg.reason, 0))
            return
        assert isinstance(msg, Start)
        await self._start(msg, meter)
        try:
            await self._run_schedule(loop, self.t0)
        finally:
            await self._close()
        if self.bug is not None:
            raise self.bug
        self._flush(final=True)
        self.out.put(WorkerDone(spec.worker_id, self.stop_reason or "done", self.deltas_sent))

    async def _start(self, msg: Start, meter: Meter) -> None:
        """Start: map the shared wall-clock t0 onto this loop's monotonic clock; open what the run needs."""
        spec = self.spec
        t0 = time.monotonic() + (msg.t0_epoch_s - time.time())
        sim_start = spec.sim_start_epoch_s if spec.sim_start_epoch_s is not None else msg.t0_epoch_s
        meter.set_start(sim_start)
        self.vens.start(t0, SimClock(sim_start, spec.time_scale))
        if spec.connection == "pooled":
            self.conns.open_pool()
        await self.vens.discover_token_url()  # 3.1.0 /auth/server, once per worker, inside the start margin
        if spec.events == "webhook":
            on_event = self.vens.on_event if spec.reread_s is None else self._notified
            self.receiver = WebhookReceiver(self.vens.callback_token, on_event, self.vens.shard.n_vens,
                                            self.vens.dialect, self.vens.read_by_id)
            self.vens.callback_base = await self.receiver.start()
        elif spec.events == "mqtt":
            self.receiver = self.vens.mqtt = MqttVens(self.vens)
        self.t0 = t0
        for at_s in spec.drops_at_s:  # [[faults]] drop_connections: on this loop's clock, like the schedule
            asyncio.get_running_loop().call_at(t0 + at_s, self._drop_connections)
        if spec.stages:
            self.lifecycle.ramp(ranks(spec.seed, spec.fleet.vens, spec.ven_start, spec.ven_stop), spec.stages, t0)

    def _drop_connections(self) -> None:
        if self.stop_reason is None:  # draining: the connections close anyway
            self.conns.drop_all()

    def _notified(self, row: int, ev: Any) -> None:
        """behaviour.reread_after_notification: a VEN told of an event it did not know re-reads the events later."""
        seen = self.vens.event_seen.get(ev.id)
        known = seen is not None and bool(seen[row])
        self.vens.on_event(row, ev)
        seen = self.vens.event_seen.get(ev.id)
        if known or seen is None or not seen[row] or self.spec.reread_s is None:
            return
        self.vens.calls.count("reread_after_notification")
        at = time.monotonic() + self.spec.reread_s
        asyncio.get_running_loop().call_later(self.spec.reread_s, self.lifecycle.due, POLL_EVENTS, row, 0, at)

    def _streams(self, t0: float) -> dict[str, Stream]:
        """Due slots per operation: reports from t0 (slot 0 provisions), polls one poll interval after t0."""
        spec = self.spec
        end = t0 + spec.duration_s
        online = self.lifecycle.online_slot
        last = None if spec.reports_per_ven is None else spec.reports_per_ven + int(online.max(initial=0))
        streams = {
            REPORT: Stream(phases(spec.seed, spec.ven_start, spec.ven_stop, spec.interval_s), spec.interval_s, t0, end, 0, last)
        }
        if spec.events == "poll":
            # Polls run while reports do: in count mode until the last report slot, else until the end.
            poll_end = end if last is None else min(end, t0 + (last + 1) * spec.interval_s)
            poll_phase = phases(spec.seed, spec.ven_start, spec.ven_stop, spec.poll_interval_s, STREAM_POLL_PHASE)
            # Slot 0 of a poll would fall before the VEN exists: polls start one poll interval after t0.
            streams[POLL_EVENTS] = Stream(poll_phase, spec.poll_interval_s, t0, poll_end, 1)
        return streams

    async def _run_schedule(self, loop: asyncio.AbstractEventLoop, t0: float) -> None:
        spec = self.spec
        streams = self._streams(t0)
        self._flush_handle = loop.call_at(t0 + spec.delta_interval_s, self._on_flush_timer, 1)
        due_op = self.lifecycle.due
        while self.stop_reason is None:
            now = time.monotonic()  # not loop.time(): uvloop's is whole milliseconds (and cached per iteration)
            due = [(t, op, row, slot) for op, st in streams.items() for row, slot, t in st.take_due(now)]
            if len(streams) > 1:
                due.sort()
            for t, op, row, slot in due:
                due_op(op, row, slot, t)
            wake = min(st.next_due() for st in streams.values())
            if wake == math.inf:
                break
            msg = await self._sleep_until(loop, wake)
            if isinstance(msg, Stop):
                self.stop_reason = msg.reason
                self.drain_s = msg.drain_s
        # Schedule over (or stopped): wait for in-flight and queued work, bounded by the drain deadline.
        if self.stop_reason is None:
            self.stop_reason = "count reached" if spec.reports_per_ven is not None else "duration elapsed"
            drain_deadline = max(t0 + spec.duration_s, loop.time()) + spec.timeout_s + self.drain_s
        else:
            drain_deadline = loop.time() + self.drain_s
        await self._drain(loop, drain_deadline)
        await self.lifecycle.abandon()
        if spec.unsubscribe and self.vens.subscription_id and self.stop_reason != "supervisor gone":
            await self._unsubscribe_all(loop.time() + spec.timeout_s + self.drain_s)

    async def _sleep_until(self, loop: asyncio.AbstractEventLoop, wake: float) -> Any:
        """Sleep until `wake` or a control message; the message, or None on the timer. One timer and one plain
        future per wake-up (wait_for made and, on every timeout, cancelled a task per wake-up: 5-10 % of a
        saturated worker's CPU)."""
        getter = self._ctrl_get
        if getter is None:
            getter = self._ctrl_get = loop.create_task(self._ctrl_msgs.get())
        if not getter.done():
            woken: asyncio.Future[None] = loop.create_future()
            # uvloop's timers count whole milliseconds from a cached clock, so one can fire up to ~1 ms before
            # `wake`; re-armed for under 1 ms it would fire at once, again and again (a hot spin that ate a
            # saturated worker's CPU). Sleep at least 1 ms unless work is already due: what falls due meanwhile
            # is taken together, up to ~1 ms late, and the lateness is measured (start lag).
            delay = wake - time.monotonic()
            timer = loop.call_later(delay if delay <= 0 else max(delay, MIN_SLEEP_S), _resolve, woken)
            on_msg = functools.partial(_resolve_on_done, woken)
            getter.add_done_callback(on_msg)
            await woken
            self.wakeups += 1
            timer.cancel()
            getter.remove_done_callback(on_msg)
            if not getter.done():
                self.probe.late_by(time.monotonic() - wake)
                return None
        self._ctrl_get = None
        return getter.result()

    async def _drain(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """Wait for in-flight work until the deadline; a Stop meanwhile can only bring the deadline closer."""
        life = self.lifecycle
        while life.working and loop.time() < deadline:
            ctrl = self._ctrl_get = self._ctrl_get or asyncio.ensure_future(self._ctrl_msgs.get())
            done, _ = await asyncio.wait(
                [life.idle(), ctrl], timeout=deadline - loop.time(), return_when=asyncio.FIRST_COMPLETED
            )
            if ctrl in done:
                self._ctrl_get = None
                msg = ctrl.result()
                if isinstance(msg, Stop):
                    self.stop_reason = msg.reason
                    deadline = min(deadline, loop.time() + msg.drain_s)
        if self._ctrl_get is not None:
            self._ctrl_get.cancel()
            self._ctrl_get = None

    async def _unsubscribe_all(self, deadline: float) -> None:
        """Delete every VEN's subscription, a bounded batch at a time, before the deadline."""
        loop = asyncio.get_running_loop()
        rows = self.vens.subscribed_rows()
        batch = max(1, min(256, self.spec.pool_size if self.spec.connection == "pooled" else 256))
        for i in range(0, len(rows), batch):
            left = deadline - loop.time()
            if left <= 0:
                break
            tasks = [loop.create_task(self.vens.unsubscribe(r)) for r in rows[i : i + batch]]
            _, pending = await asyncio.wait(tasks, timeout=left)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    # ---- deltas -------------------------------------------------------------------------------
    def _on_flush_timer(self, window: int) -> None:
        loop = asyncio.get_running_loop()
        planned = self.t0 + window * self.spec.delta_interval_s
        self.probe.late_by(time.monotonic() - planned)
        self._flush(final=False, window=window - 1)
        self._keep_meter_current(loop)
        if window % TRIM_EVERY == 0:
            collector.trim()  # what provisioning and backlogs freed goes back to the system, not kept as peak RSS
        self._flush_handle = loop.call_at(planned + self.spec.delta_interval_s, self._on_flush_timer, window + 1)

    def _keep_meter_current(self, loop: asyncio.AbstractEventLoop) -> None:
        """Once a second: start advancing the meter to the clock's tick if nothing is doing so already."""
        if self._meter_task is not None:
            return
        tick = self.vens.meter_behind()
        if tick is not None:
            task = self._meter_task = loop.create_task(self.vens.advance_meter(tick))
            task.add_done_callback(self._meter_advanced)

    def _meter_advanced(self, task: asyncio.Task[None]) -> None:
        self._meter_task = None
        if not task.cancelled() and task.exception() is not None:
            self._on_bug(task.exception())  # type: ignore[arg-type]

    def _flush(self, final: bool, window: int | None = None) -> None:
        if window is None:
            window = max(0, int((time.monotonic() - self.t0) // self.spec.delta_interval_s))
        ops, errs = self.rec.flush()
        facts = self.vens.take_facts()
        counters = facts.counters
        if self.receiver is not None:
            for k, v in self.receiver.counters.items():
                counters[k] = counters.get(k, 0) + v
            self.receiver.counters = {}
        life = self.lifecycle
        flown = life.take_flown()
        if flown:
            counters["report_flights"] = flown  # reports the lane sent as flights (the rest: tasks)
        health = self.probe.take(len(life.in_flight), life.backlog)
        done = self.vens.reports_done(self.spec.reports_per_ven or 1 << 30)
        for i, end_s in enumerate(self.spec.fault_ends_s if final else ()):  # VENs that reported after each fault
            counters[f"reported_after_fault:{i}"] = int(np.count_nonzero(self.vens.last_ok > self.t0 + end_s))
            back = self.vens.back_at[i]
            if np.isfinite(back).any():  # the instant (ms since t0) this shard's last VEN to report again did
                counters[f"max:every_ven_back_ms:{i}"] = int(np.ceil((np.nanmax(back) - self.t0) * 1000))
        if final:
            counters["connections_opened"] = self.conns.opened()
            if self.conns.dropped:
                counters["connections_dropped"] = self.conns.dropped
        self.out.put(
            WorkerDelta(self.spec.worker_id, window, ops, errs, health, life.ready_count(), done, final, counters,
                        facts.aware, facts.shed, deviations=facts.deviations, learned=facts.learned,
                        ledger=self.vens.book.ledger(self.spec.ven_start) if final and self.vens.book else None)
        )
        self.deltas_sent += 1

    async def _close(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        if self._meter_task is not None:
            self._meter_task.cancel()
            await asyncio.gather(self._meter_task, return_exceptions=True)
        if self.receiver is not None:
            await self.receiver.close()
        await self.conns.close()
        try:
            asyncio.get_running_loop().remove_reader(self.ctrl.fileno())
        except (OSError, ValueError):
            pass
