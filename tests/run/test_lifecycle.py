"""The VEN state machine's hand-over of queued work: a reply's callback frees the VEN, the loop's next pass starts
its next queued operation (so one loop iteration cannot chain reply -> request -> reply without bound)."""

from __future__ import annotations

import asyncio
from collections import Counter
from types import SimpleNamespace
from typing import Any

import numpy as np
import uvloop

from harness.core.recorder import Recorder
from harness.net.h1conn import Flight
from harness.run.lifecycle import READY, REPORT, Lifecycle


class Calls:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] += n

    def op_timeout(self, op: str) -> float:
        return 1.0  # a report timeout of its own: the coroutine path, so this test needs no connections


class Vens:
    """The few facts and calls of ShardVens the lifecycle uses; report() records when each report starts."""

    def __init__(self, n: int) -> None:
        self.shard = SimpleNamespace(n_vens=n)
        self.spec = SimpleNamespace(reconnect=SimpleNamespace(buffer=0))
        self.calls = Calls()
        self.started: list[tuple[int, float]] = []

    def held_until(self, row: int) -> float:
        return 0.0

    def count_due(self) -> None:
        self.calls.count("report_due")

    async def report(self, row: int, intended: float, prepared: Any = None) -> bool:
        self.started.append((row, intended))
        return True


def life_of(n: int) -> tuple[Lifecycle, Vens, Recorder]:
    vens, rec = Vens(n), Recorder()
    life = Lifecycle(vens, rec, np.zeros(n, dtype=np.int64), None, lambda row: None, lambda exc: None)  # type: ignore[arg-type]
    life.state[:] = READY
    return life, vens, rec


def land_with_work_queued(life: Lifecycle, rows: range) -> None:
    """Each row has a report in flight (a flight) and two more due meanwhile; then every flight lands."""
    flights = {row: Flight() for row in rows}
    for row, flight in flights.items():
        life.fly(row, flight)
        life.due(REPORT, row, 2, 2.0)
        life.due(REPORT, row, 3, 3.0)
    for row, flight in flights.items():
        life.landed(row, flight)


def test_a_landed_reply_starts_the_next_queued_report_on_the_next_pass_and_the_drain_waits_for_it() -> None:
    async def main() -> None:
        life, vens, _ = life_of(50)
        land_with_work_queued(life, range(50))
        # Inside the callbacks nothing started, nothing is in flight, yet the shard is not idle: the drain waits.
        assert vens.started == [] and not life.in_flight and life.working
        idle = life.idle()
        assert not idle.done() and bool(life.busy.all())
        await asyncio.sleep(0)  # the loop's next pass: each VEN starts its oldest queued report, once
        assert vens.started == [] and len(life.in_flight) == 50  # the tasks are created, not yet run
        await asyncio.wait_for(idle, 5.0)  # both queued reports of every VEN ran, one at a time, then idle
        assert sorted(vens.started) == sorted([(r, 2.0) for r in range(50)] + [(r, 3.0) for r in range(50)])
        assert vens.calls.counts["report_sent"] == 100 and life.pending == {} and not life.busy.any()
        assert not life.working

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
        r.run(main())


def test_work_about_to_resume_when_the_drain_deadline_passes_is_abandoned_once_and_never_started() -> None:
    async def main() -> None:
        life, vens, rec = life_of(3)
        land_with_work_queued(life, range(3))
        await life.abandon()  # before the loop's next pass
        await asyncio.sleep(0)
        assert vens.started == [] and not life.busy.any() and not life.working and life.idle().done()
        assert vens.calls.counts["report_lost"] == 6
        _, errors = rec.flush()
        assert {k: e.count for k, e in errors.items()} == {"abandoned": 6}

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
        r.run(main())
