"""The VEN state machine of a shard: what each VEN does when an operation falls due.

Edge (starts tasks in the worker's loop). A VEN is NEW, PROVISIONING, READY or FAILED; it does one request at a
time (busy), so work that falls due meanwhile queues with its intended time; a 429 + Retry-After holds it; a VEN
ramped out of the fleet goes offline. Every in-flight task and queued entry carries the operation it counts
against, so work abandoned at the drain deadline is counted by that tag, never by a coroutine's name.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.core import errors
from harness.core.recorder import Recorder
from harness.core.stages import Stage, target_at
from harness.net.h1client import Flight
from harness.run.reportlane import ReportLane
from harness.run.ven import ShardVens
from harness.run.venreports import Prepared

NEW, PROVISIONING, READY, FAILED = 0, 1, 2, 3
# The operations the schedule starts, as tags of in-flight and queued work (provisioning counts as create_ven).
REPORT, POLL_EVENTS, PROVISION = "report", "poll_events", "create_ven"


class Lifecycle:
    """Per-VEN state (rows of arrays), queued work and in-flight tasks, and the transitions between them."""

    def __init__(
        self,
        vens: ShardVens,
        recorder: Recorder,
        online_slot: npt.NDArray[np.int64],
        reports_per_ven: int | None,
        on_offline: Callable[[int], None],
        on_bug: Callable[[BaseException], None],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        n = vens.shard.n_vens
        # The worker's loop, kept: asyncio.get_running_loop() makes a getpid() system call on every call (it
        # checks for a fork), and two calls per report cost a saturated worker ~15 % of its CPU (py-spy --native).
        self._loop = loop
        self._idle: asyncio.Future[None] | None = None  # see idle()
        self._resume: list[int] = []  # busy rows whose next queued operation starts on the loop's next pass
        self.vens = vens
        self.rec = recorder
        self.state = np.zeros(n, dtype=np.int8)
        self.busy = np.zeros(n, dtype=bool)
        # One element at a time the hot path reads and writes these through memoryviews of the same memory: a
        # numpy scalar read costs 30-140 ns, a memoryview's ~20 ns (several per report add up at saturation).
        self._state, self._busy = self.state.data, self.busy.data
        self.pending: dict[int, deque[tuple[str, float]]] = {}  # row -> [(operation, intended)] waiting for the VEN
        # task or report flight -> its operation (None: a Retry-After hold)
        self.in_flight: dict[asyncio.Task[Any] | Flight, str | None] = {}
        self._buffer = vens.spec.reconnect.buffer  # reports a VEN keeps to send late (0: a failed report is lost)
        self._retried: set[tuple[int, float]] = set()  # (row, intended) of reports that failed once and wait
        self.online_slot = online_slot  # the report slot at which each VEN comes online (provisions)
        self._online = online_slot.data
        self._reports_per_ven = reports_per_ven
        self._on_offline = on_offline
        self._on_bug = on_bug
        self._rank: npt.NDArray[np.int64] | None = None
        self._stages: tuple[Stage, ...] = ()
        self._t0 = 0.0
        lane = ReportLane(self)  # most reports: sent and settled by callbacks, no task per report
        self._lane = lane if lane.enabled else None

    def ramp(self, rank: npt.NDArray[np.int64], stages: tuple[Stage, ...], t0: float) -> None:
        """With stages, a VEN takes part only while its rank is below the ramp's target at that time."""
        self._rank, self._stages, self._t0 = rank, stages, t0

    # ---- facts for the delta ------------------------------------------------------------------
    @property
    def working(self) -> bool:
        """Something is in flight, or a VEN's next queued operation is about to start (the drain waits for both)."""
        return bool(self.in_flight or self._resume)

    @property
    def backlog(self) -> int:
        return sum(len(d) for d in self.pending.values())

    def ready_count(self) -> int:
        return int(np.count_nonzero(self.state == READY))

    # ---- transitions --------------------------------------------------------------------------
    def _is_active(self, row: int, intended: float) -> bool:
        if self._rank is None:
            return True
        return bool(self._rank[row] < target_at(self._stages, intended - self._t0))

    def due(self, op: str, row: int, slot: int, intended: float) -> None:
        """Operation `op` (REPORT or POLL_EVENTS) of this VEN falls due at report/poll slot `slot`."""
        if not self._is_active(row, intended):
            if not self._busy[row]:
                self._on_offline(row)
            return
        if op == REPORT:
            online = self._online[row]
            if slot < online or (count := self._reports_per_ven) is not None and slot > online + count:
                return  # not online yet, or done with its count
            if slot == online or self._state[row] == NEW:
                if self._busy[row]:
                    return  # still going offline; it provisions at its next slot
                self._provision(row, intended)
                return
            self.vens.count_due()
        if self._busy[row]:
            # A device does one request at a time: the due operation waits, keeping its intended time.
            queue = self.pending.setdefault(row, deque())
            queue.append((op, intended))
            if op == REPORT and self._buffer:
                self._bound(row, queue)
            return
        self._start_op(op, row, intended)

    def _start_op(self, op: str, row: int, intended: float) -> None:
        state = self._state[row]
        if state == READY:
            if op == REPORT:
                if self._lane is None or not self._lane.start(row, intended):
                    self._start(row, REPORT, self._report(row, intended))
            else:
                self._start(row, POLL_EVENTS, self.vens.poll_events(row, intended))
        elif op == POLL_EVENTS:
            pass  # a VEN that does not exist yet has nothing to poll; its next poll comes on schedule
        elif state == FAILED:
            if op == REPORT:
                self.vens.calls.count("report_lost")
            self.rec.fail(REPORT, errors.NOT_READY, f"{self.vens.ven_name(row)}: VEN not provisioned; retrying provisioning")
            self._provision(row, intended)
        else:  # pragma: no cover - PROVISIONING implies busy
            self.pending.setdefault(row, deque()).append((op, intended))

    async def _report(self, row: int, intended: float, prepared: Prepared | None = None) -> None:
        self.reported(row, intended, await self.vens.report(row, intended, prepared))

    def reported(self, row: int, intended: float, ok: bool) -> None:
        """One due report's outcome: sent (late if it failed before), kept to try again (buffer), or lost."""
        count = self.vens.calls.count
        if ok:
            count("report_sent")
            if (row, intended) in self._retried:
                self._retried.discard((row, intended))
                count("report_late")
            return
        if not self._buffer:
            count("report_lost")
            return
        self._retried.add((row, intended))
        queue = self.pending.setdefault(row, deque())
        queue.appendleft((REPORT, intended))  # the oldest first, after the back-off's hold
        self._bound(row, queue)

    def _bound(self, row: int, queue: deque[tuple[str, float]]) -> None:
        """At most `buffer` reports wait: the oldest beyond that is lost."""
        reports = [e for e in queue if e[0] == REPORT]
        if len(reports) > self._buffer:
            queue.remove(reports[0])
            self._retried.discard((row, reports[0][1]))
            self.vens.calls.count("report_lost")

    def _provision(self, row: int, intended: float) -> None:
        self._state[row] = PROVISIONING
        self._start(row, PROVISION, self._provisioned(row, intended))

    async def _provisioned(self, row: int, intended: float) -> None:
        ok = await self.vens.provision(row, intended)
        self._state[row] = READY if ok else FAILED

    def _start(self, row: int, op: str | None, coro: Coroutine[Any, Any, Any]) -> None:
        self._busy[row] = True
        task = (self._loop or asyncio.get_running_loop()).create_task(coro)
        self.in_flight[task] = op
        task.add_done_callback(functools.partial(self._finished, row))

    def side_task(self, op: str, coro: Coroutine[Any, Any, Any]) -> None:
        """Work a VEN starts outside its schedule (reading an event a notification named): drained and, at the
        deadline, abandoned like every operation, without holding the VEN's scheduled work."""
        task = (self._loop or asyncio.get_running_loop()).create_task(coro)
        self.in_flight[task] = op
        task.add_done_callback(self._side_done)

    def idle(self) -> asyncio.Future[None]:
        """A future done once nothing is in flight (the drain waits on it: one future, not every task each time one
        of thousands completes)."""
        if self._idle is None or self._idle.done():
            self._idle = (self._loop or asyncio.get_running_loop()).create_future()
        if not self.working:
            self._idle.set_result(None)
        return self._idle

    def _check_idle(self) -> None:
        if not self.working and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    def _side_done(self, task: asyncio.Task[Any]) -> None:
        self.in_flight.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            self._on_bug(task.exception())  # type: ignore[arg-type]
        self._check_idle()

    # ---- the report lane's flights (reportlane.py) -----------------------------------------------
    def start_report_task(self, row: int, intended: float, prepared: Prepared) -> None:
        """A report the lane built but cannot fly (several POSTs, no connection yet): the coroutine path's."""
        self._start(row, REPORT, self._report(row, intended, prepared))

    def fly(self, row: int, flight: Flight) -> None:
        self._busy[row] = True
        self.in_flight[flight] = REPORT

    def landed(self, row: int, flight: Flight) -> None:
        """A flight's outcome is settled: the VEN's next work, as after a task."""
        self.in_flight.pop(flight, None)
        self._free(row, cancelled=False)
        self._check_idle()

    def landed_into_task(self, row: int, flight: Flight, coro: Coroutine[Any, Any, Any]) -> None:
        """A flight's report goes on as a task (a 401's token refresh and resend); the VEN stays busy."""
        self.in_flight.pop(flight, None)
        self._start(row, REPORT, coro)

    def take_flown(self) -> int:
        """Reports the lane has sent as flights since the last call."""
        lane = self._lane
        if lane is None:
            return 0
        n, lane.flown = lane.flown, 0
        return n

    def bug(self, exc: BaseException) -> None:
        self._on_bug(exc)

    def _finished(self, row: int, task: asyncio.Task[Any]) -> None:
        self.in_flight.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            # Operations record HTTP failures as data; an exception here is a bug: stop and report it.
            self._on_bug(task.exception())  # type: ignore[arg-type]
        self._free(row, task.cancelled())
        self._check_idle()  # after the VEN's next queued operation (if any) is set to start

    def _free(self, row: int, cancelled: bool) -> None:
        loop = self._loop or asyncio.get_running_loop()
        wait_s = self.vens.held_until(row) - loop.time()
        if wait_s > 0 and not cancelled:
            # The VTN said 429 + Retry-After: the VEN stays busy until then; what falls due meanwhile queues.
            self._start(row, None, asyncio.sleep(wait_s))
            return
        if row in self.pending:
            # The next queued operation starts on the loop's next pass, not inside this reply's callback: started
            # here, each reply's callback sends a request whose reply lands in the same poll phase, so with
            # thousands of busy VENs one loop iteration grew to 49,152 replies (48 epoll_waits x 1,024 events) and
            # starved the loop's timers for seconds. The VEN stays busy meanwhile, so what falls due keeps its order.
            resume = self._resume
            resume.append(row)
            if len(resume) == 1:
                loop.call_soon(self._resume_queued)
            return
        self._busy[row] = False

    def _resume_queued(self) -> None:
        """Each row freed since the last pass starts its oldest queued operation (unless the drain dropped it)."""
        rows, self._resume = self._resume, []
        pending, busy = self.pending, self._busy
        try:
            for row in rows:
                busy[row] = False
                queue = pending.get(row)
                if queue:
                    op, intended = queue.popleft()
                    if not queue:
                        del pending[row]
                    self._start_op(op, row, intended)
        except Exception as exc:  # a bug: stop and report it, as from a task
            self._on_bug(exc)
        self._check_idle()

    async def abandon(self) -> None:
        """The drain deadline passed: each queued or in-flight operation counts once as abandoned, under its tag.
        Queued work is dropped before the cancellations, whose done callbacks would otherwise start it."""
        abandoned = [op for d in self.pending.values() for op, _ in d]
        abandoned += [op for op in self.in_flight.values() if op is not None]
        self.pending.clear()
        flights = [f for f in self.in_flight if isinstance(f, Flight)]
        for flight in flights:  # all ended before any connection closes (a close hands its pool slot on)
            flight.cancel()
            del self.in_flight[flight]
        for flight in flights:
            flight.drop()
        tasks = [t for t in self.in_flight if not isinstance(t, Flight)]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for op in abandoned:
            self.rec.fail(op, errors.ABANDONED, "in flight or queued when the drain deadline passed")
        self.vens.calls.count("report_lost", abandoned.count(REPORT))
