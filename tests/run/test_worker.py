"""The worker, run in-process in one uvloop loop against an in-memory VTN: schedule, open model, deltas."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
from typing import Any

import numpy as np
import pytest
import uvloop

from harness.core.schedule import phases
from harness.core.fleet import FleetSpec
from harness.core.histogram import Histogram
from harness.core.messages import Start, WorkerDelta, WorkerDone, WorkerReady
from harness.core.results import RunResults
from harness.core.shard import Credentials, ShardSpec
from harness.run.worker import Worker
from tests.doubles import FakeVtn


def spec(**kw: Any) -> ShardSpec:
    base = dict(
        worker_id=0, fleet=FleetSpec(vens=20, sites_per_ven=2), ven_start=0, ven_stop=20, seed=3,
        target="http://fake", program_id="p", event_id="e", interval_s=0.2, duration_s=30.0,
        reports_per_ven=3, connection="per-ven", pool_size=10, timeout_s=5.0, credentials=Credentials(),
        meter_tick_s=0.1,
    )
    base.update(kw)
    return ShardSpec(**base)  # type: ignore[arg-type]


def run_worker(s: ShardSpec, vtn: FakeVtn, drain_s: float | None = None) -> tuple[list[Any], Worker]:
    """Run one worker to completion in this process, as main() would in a child (drain_s: its drain limit)."""
    out: list[Any] = []

    class Sink:
        def put(self, item: Any) -> None:
            out.append(item)

    recv, send = mp.Pipe(duplex=False)
    send.send(Start(time.time() + 0.05))
    w = Worker(s, recv, Sink(), vtn.factory)
    if drain_s is not None:
        w.drain_s = drain_s
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
        r.run(w.run())
    recv.close()
    send.close()
    return out, w


def merged(out: list[Any]) -> RunResults:
    res = RunResults()
    for m in out:
        if isinstance(m, WorkerDelta):
            res.add(m)
    return res


def test_count_mode_sends_exact_totals_and_closes_everything() -> None:
    """20 VENs x 3 reports: exactly 60 reports, 20 VENs, 40 resources; every transport closed; Ready..Done."""
    vtn = FakeVtn()
    out, w = run_worker(spec(), vtn)
    assert isinstance(out[0], WorkerReady) and isinstance(out[-1], WorkerDone)
    assert out[-1].reason == "count reached"
    res = merged(out)
    assert vtn.accepted == {"POST /reports": 60, "POST /vens": 20, "POST /vens/*/resources": 40}
    assert (res.ok("report"), res.ok("token"), res.ok("create_ven"), res.ok("create_resource")) == (60, 20, 20, 40)
    assert res.errors == {}
    assert len(w.conns.per_ven) == 0  # closed and dropped
    names = {r["clientName"] for r in vtn.reports}
    assert len(names) == 20 and all(len(r["resources"]) == 2 for r in vtn.reports)


def test_open_model_queues_behind_a_slow_vtn_and_keeps_intended_times() -> None:
    """Reports due every 0.1 s but answered in 0.5 s queue per VEN: service ~0.5 s, response grows to ~2.1 s."""
    vtn = FakeVtn(delays_s={"POST /reports": 0.5})
    out, _ = run_worker(spec(fleet=FleetSpec(vens=4), ven_stop=4, interval_s=0.1, reports_per_ven=5), vtn)
    t = merged(out).totals["report"]
    assert t.ok == 20
    svc, resp = t.service, t.response
    assert 495 <= svc.percentile_ns(50) / 1e6 <= 560
    # 5th report intended at phase+0.5 s, sent after 4 earlier ones (done at phase+2.1 s), done at phase+2.6 s.
    assert 2050 <= resp.max_ns / 1e6 <= 2300
    assert resp.percentile_ns(50) > 3 * svc.percentile_ns(50) / 2


def test_http_errors_are_counted_by_class_not_raised() -> None:
    """A VTN answering 503 to every report: 0 ok, 30 http_503 errors with an example; the worker finishes."""
    vtn = FakeVtn(statuses={"POST /reports": 503})
    out, _ = run_worker(spec(fleet=FleetSpec(vens=10), ven_stop=10), vtn)
    res = merged(out)
    assert res.ok("report") == 0 and res.totals["report"].errors == 30
    assert res.errors["http_503"]["count"] == 30 and "503" in res.errors["http_503"]["example"]


def test_provisioning_failure_is_retried_at_the_next_slot() -> None:
    """When VEN creation fails, each due report is a not_ready error and provisioning is tried again."""
    vtn = FakeVtn(statuses={"POST /vens": 500})
    out, _ = run_worker(spec(fleet=FleetSpec(vens=5), ven_stop=5), vtn)
    res = merged(out)
    assert res.errors["not_ready"]["count"] == 15  # 5 VENs x 3 due reports
    assert res.errors["http_500"]["count"] == 20  # 1 + 3 retries per VEN


def test_phases_are_shard_independent_and_spread() -> None:
    """A VEN's phase depends on the seed and its global index only, and phases cover the interval."""
    whole = phases(5, 0, 1000, 15.0)
    assert np.array_equal(np.concatenate([phases(5, 0, 400, 15.0), phases(5, 400, 1000, 15.0)]), whole)
    assert whole.min() >= 0 and whole.max() < 15.0
    assert np.histogram(whole, bins=5, range=(0, 15))[0].min() > 150
    assert not np.array_equal(phases(6, 0, 1000, 15.0), whole)


def test_messages_per_second_do_not_depend_on_request_rate() -> None:
    """Deltas are per window, not per request: 10x the requests gives the same number of messages."""
    small, _ = run_worker(spec(fleet=FleetSpec(vens=5), ven_stop=5, interval_s=0.25, reports_per_ven=4, delta_interval_s=0.25), FakeVtn())
    big, _ = run_worker(spec(fleet=FleetSpec(vens=50), ven_stop=50, interval_s=0.25, reports_per_ven=4, delta_interval_s=0.25), FakeVtn())
    n_small = sum(isinstance(m, WorkerDelta) for m in small)
    n_big = sum(isinstance(m, WorkerDelta) for m in big)
    assert merged(big).ok("report") == 10 * merged(small).ok("report") == 200
    assert abs(n_big - n_small) <= 1


def test_startup_window_spreads_provisioning_and_keeps_exact_counts() -> None:
    """VENs coming online over 1 s (5 intervals) still send exactly 3 reports each, after provisioning."""
    from harness.core.schedule import startup_slots

    slots = startup_slots(3, 0, 20, 0.2, 1.0)
    assert slots.min() == 0 and slots.max() == 4 and len(set(slots.tolist())) > 2
    vtn = FakeVtn()
    out, _ = run_worker(spec(startup_s=1.0), vtn)
    res = merged(out)
    assert vtn.accepted == {"POST /reports": 60, "POST /vens": 20, "POST /vens/*/resources": 40}
    assert res.ok("report") == 60 and res.errors == {}


def test_times_are_measured_below_the_millisecond() -> None:
    """An in-memory VTN answers in microseconds: service times come out in microseconds, not 0 or 1 ms (uvloop's
    loop.time() counts whole milliseconds; measuring with it made every figure a multiple of 1 ms)."""
    vtn = FakeVtn()
    out, _ = run_worker(spec(reports_per_ven=2), vtn)
    service = merged(out).totals["report"].service
    # Resolution, not speed: the median and the fastest are below 1 ms and not whole milliseconds (a loaded box
    # may push the tail past 1 ms; a millisecond clock would make every value 0 or a multiple of 1 ms).
    p50_ns, min_ns = service.percentile_ns(50), service.min_ns
    assert 0 < min_ns <= p50_ns < 1_000_000, (min_ns, p50_ns)
    assert p50_ns % 1_000_000 != 0 and min_ns % 1_000_000 != 0


def test_the_scheduler_sleeps_between_due_operations_instead_of_spinning() -> None:
    """uvloop's timers count whole milliseconds: re-armed for under 1 ms, a timer fires at once. The scheduler
    sleeps at least 1 ms instead, so it wakes at most once per due operation and once per millisecond — a spin
    would wake tens of thousands of times in the same run."""
    vtn = FakeVtn()
    s = spec(fleet=FleetSpec(vens=200), ven_stop=200, interval_s=0.05, reports_per_ven=10)
    t = time.monotonic()
    out, w = run_worker(s, vtn)
    elapsed_ms = (time.monotonic() - t) * 1000
    assert merged(out).ok("report") == 2000
    assert w.wakeups <= min(2000 + 200, elapsed_ms * 1.05), (w.wakeups, elapsed_ms)


def test_the_meter_keeps_up_with_the_clock_while_no_report_reads_it() -> None:
    """A shard still provisioning reads no meter; the worker advances it every second all the same, so the first
    reports find it current instead of waiting for a catch-up (a 500,000-VEN shard: ~11 s after 15 minutes)."""
    vtn = FakeVtn(statuses={"POST /vens": 500})  # nobody provisions: no report ever reads the meter
    s = spec(fleet=FleetSpec(vens=4), ven_stop=4, interval_s=1.0, reports_per_ven=None, duration_s=2.6,
             meter_tick_s=0.25)
    out, w = run_worker(s, vtn)
    assert merged(out).ok("report") == 0
    assert w.vens.feed.visible_tick >= 6  # 0.25 s ticks, advanced at 1 s and 2 s


def test_abandoned_work_is_counted_by_its_operation_tag_not_by_a_coroutine_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """4 VENs whose reports never get an answer before the drain deadline: each has one report in flight and one
    queued, so exactly 8 reports are abandoned — counted under `report` even when the coroutine has another name."""
    from harness.run.ven import ShardVens

    original = ShardVens.report

    async def send_interval(self: ShardVens, row: int, intended: float, prepared: Any = None) -> bool:  # not "report"
        return await original(self, row, intended, prepared)

    monkeypatch.setattr(ShardVens, "report", send_interval)
    vtn = FakeVtn(delays_s={"POST /reports": 60.0})
    s = spec(fleet=FleetSpec(vens=4), ven_stop=4, interval_s=0.2, reports_per_ven=2, duration_s=1.0, timeout_s=0.2)
    out, _ = run_worker(s, vtn, drain_s=0.1)
    res = merged(out)
    assert res.ok("create_ven") == 4 and res.ok("report") == 0
    assert res.errors["abandoned"]["count"] == 8 and res.totals["report"].errors == 8
