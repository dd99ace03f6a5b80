"""The meter off the loop: a worker's VENs read tick k while tick k+1 is computed in a thread, and DR events learnt
by many VENs reach the meter as one vectorised event, from the first tick computed after they were learnt."""

from __future__ import annotations

import asyncio

import numpy as np

from harness import dialects
from harness.core.fleet import FleetSpec, build_shard
from harness.core.recorder import Recorder
from harness.core.shard import Credentials, ShardSpec
from harness.core.simclock import SimClock
from harness.dialects import EventInfo, Signal
from harness.meter import Meter, simple_level_shed
from harness.meter.dr import make_event
from harness.run.ven import ShardVens

SEED, START, TICK = 5, 1_749_988_800.0, 60.0
FLEET = FleetSpec(vens=30)


def _vens(meter: Meter) -> ShardVens:
    shard = meter.shard
    spec = ShardSpec(worker_id=0, fleet=FLEET, ven_start=0, ven_stop=shard.n_vens, seed=SEED,
                     target="http://127.0.0.1:9/openadr3/3.0.1", program_id="1", event_id="0", interval_s=1.0,
                     duration_s=10.0, reports_per_ven=None, connection="pooled", pool_size=1, timeout_s=1.0,
                     credentials=Credentials(), meter_tick_s=TICK)

    def no_transport(row: int) -> object:
        raise AssertionError("no request is sent in this test")

    return ShardVens(spec, shard, meter, dialects.get(spec.dialect), Recorder(), no_transport,  # type: ignore[arg-type]
                     SimClock(START, 60.0))


def _event(start: float, level: int) -> EventInfo:
    return EventInfo("ev-1", "1", None, start, 3600.0, Signal("SIMPLE", (level,), level, 1), None, ())


def test_the_snapshot_a_report_reads_is_the_synchronous_meter_tick_for_tick() -> None:
    shard = build_shard(FLEET, SEED, 0, 30)
    ref = Meter(shard, SEED, START, TICK)
    vens = _vens(Meter(shard, SEED, START, TICK))

    async def walk() -> list[int]:
        seen = []
        for tick in (0, 1, 2, 5, 6, 9):  # boundaries one at a time and several at once
            await vens.advance_meter(tick)
            ref.advance_to(START + tick * TICK)
            assert vens.feed.visible_tick == tick
            np.testing.assert_array_equal(vens.feed.site_energy, ref.site_sum(ref.energy_kwh))
            np.testing.assert_array_equal(vens.feed.site_power, ref.site_sum(ref.power_kw))
            assert vens.feed.next_tick is not None  # the next tick is already on its way
            seen.append(int((await vens.feed.next_tick).tick))
        return seen

    assert asyncio.run(walk()) == [1, 2, 3, 6, 7, 10]


def test_an_event_learnt_by_every_ven_is_one_meter_event_that_sheds_what_one_event_for_all_would() -> None:
    shard = build_shard(FLEET, SEED, 0, 30)
    ref = Meter(shard, SEED, START, TICK)
    meter = Meter(shard, SEED, START, TICK)
    vens = _vens(meter)
    start = START + 3 * TICK

    async def run() -> None:
        vens.t0 = asyncio.get_running_loop().time()  # the run starts now: the simulated clock is at START
        await vens.advance_meter(1)  # tick 2 is being computed: the event can first apply to tick 3
        for row in range(shard.n_vens):
            vens.on_event(row, _event(start, 2))
        assert vens.feed.dr_queue and meter._events == []  # nothing touches the meter while its thread may run
        await vens.advance_meter(8)

    asyncio.run(run())
    assert len(meter._events) == 1  # 30 VENs learnt it: one vectorised event, not 30
    ref.apply_dr(np.arange(shard.n_sites, dtype=np.int64), start, start + 3600.0, shed_fraction=simple_level_shed(2))
    ref.advance_to(START + 8 * TICK)
    np.testing.assert_array_equal(vens.feed.site_power, ref.site_sum(ref.power_kw))
    # Learnt before tick 3 was computed: the shed shows from the event's own start.
    assert vens.feed.shed_pending == {row: [("ev-1", start)] for row in range(shard.n_vens)}
    vens.feed.note_shed_reported(0, start + TICK - 1)
    assert "ev-1" not in vens.feed.shed


def test_an_event_learnt_after_its_start_applies_from_the_first_tick_computed_after() -> None:
    shard = build_shard(FLEET, SEED, 0, 30)
    meter = Meter(shard, SEED, START, TICK)
    vens = _vens(meter)
    start = START  # already running when learnt

    async def run() -> None:
        vens.t0 = asyncio.get_running_loop().time()
        await vens.advance_meter(4)  # tick 5 is being computed
        vens.on_event(0, _event(start, 3))
        await vens.advance_meter(5)  # the event reaches the meter when tick 6's computation starts

    asyncio.run(run())
    assert vens.feed.shed_pending == {0: [("ev-1", START + 5 * TICK)]}
    vens.feed.note_shed_reported(0, START + 6 * TICK - 1)
    assert "ev-1" not in vens.feed.shed
    vens.feed.note_shed_reported(0, START + 6 * TICK)
    assert len(vens.feed.shed["ev-1"]) == 1 and vens.feed.shed_pending == {}


def test_dr_events_with_the_same_request_merge_and_shed_as_separate_ones_would() -> None:
    shard = build_shard(FLEET, SEED, 0, 30)
    merged, apart = Meter(shard, SEED, START, TICK), Meter(shard, SEED, START, TICK)
    kw = dict(shed_fraction=None, limit_kw=0.5)
    for m in (merged, apart):
        m.advance_to(START + 2 * TICK)
    merged.apply_dr(np.arange(0, 10), START + 2 * TICK, START + 6 * TICK, **kw)  # type: ignore[arg-type]
    merged.apply_dr(np.arange(10, 20), START + 2 * TICK, START + 6 * TICK, **kw)  # type: ignore[arg-type]
    merged.apply_dr(np.arange(20, 25), START + 2 * TICK, START + 7 * TICK, **kw)  # type: ignore[arg-type]
    apart.apply_dr(np.arange(0, 10), START + 2 * TICK, START + 6 * TICK, **kw)  # type: ignore[arg-type]
    apart._events.append(make_event(
        np.arange(10, 20), shard.load_offsets, shard.load_flexible, apart._payback, shard.load_rated_kw,
        START + 2 * TICK, START + 6 * TICK, shed_fraction=None, limit_kw=0.5, rebound_s=900.0))
    apart.apply_dr(np.arange(20, 25), START + 2 * TICK, START + 7 * TICK, **kw)  # type: ignore[arg-type]
    assert len(merged._events) == 2 and len(apart._events) == 3
    for tick in range(3, 40):
        for m in (merged, apart):
            m.advance_to(START + tick * TICK)
        np.testing.assert_array_equal(merged.power_kw, apart.power_kw)


def test_a_meter_built_before_the_start_is_known_steps_as_one_built_at_it() -> None:
    """Workers build the meter before Ready and set the simulated start at Start: same values, tick for tick."""
    shard = build_shard(FLEET, SEED, 0, 30)
    early, exact = Meter(shard, SEED, START - 86_400.0 * 100, TICK), Meter(shard, SEED, START, TICK)
    early.set_start(START)
    for tick in range(1, 30):
        for m in (early, exact):
            m.advance_to(START + tick * TICK)
        np.testing.assert_array_equal(early.power_kw, exact.power_kw)
        np.testing.assert_array_equal(early.energy_kwh, exact.energy_kwh)
    try:
        early.set_start(START)
    except RuntimeError as e:
        assert "before the first step" in str(e)
    else:
        raise AssertionError("set_start after a step must fail")


def test_randomize_start_spreads_each_vens_shed_by_its_own_seeded_delay() -> None:
    """An event with randomizeStart PT10M: each of 30 VENs sheds from start + its own delay in [0, 600 s) for the
    event's whole duration — seeded (the same again for the same run), spread (not one instant); without it every
    VEN sheds from the start."""
    from dataclasses import replace

    from harness.core.targeting import randomized_starts

    shard = build_shard(FLEET, SEED, 0, 30)
    start = START + 3 * TICK
    spread = replace(_event(start, 2), randomize_start_s=600.0)

    def queued(ev: EventInfo) -> list[tuple[float, float]]:
        vens = _vens(Meter(shard, SEED, START, TICK))

        async def learn() -> None:
            vens.t0 = asyncio.get_running_loop().time()  # the simulated clock is at START, before the event
            for row in range(shard.n_vens):
                vens.on_event(row, ev)

        asyncio.run(learn())
        return [(s, e) for _, _, s, e, _ in vens.feed.dr_queue]

    got = queued(spread)
    delays = np.array([s - start for s, _ in got])
    assert len(got) == 30 and all(e - s == 3600.0 for s, e in got)
    assert delays.min() >= 0.0 and delays.max() < 600.0 and len(set(delays.round(6))) == 30
    np.testing.assert_allclose(delays, randomized_starts(SEED, "ev-1", np.arange(30), 600.0), atol=1e-6)
    assert queued(spread) == got  # seeded
    assert {s for s, _ in queued(_event(start, 2))} == {start}


def test_randomize_start_is_read_from_the_interval_period() -> None:
    from harness.dialects import get

    d = get("openadr-3.1.0")
    (ev,) = d.parse_events([{"id": "1", "programID": "p", "intervalPeriod": {
        "start": "2026-12-06T10:00:00Z", "duration": "PT1H", "randomizeStart": "PT5M"},
        "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]}]}])
    assert ev.randomize_start_s == 300.0
    (plain,) = d.parse_events([{"id": "2", "programID": "p", "intervalPeriod": {"start": "2026-12-06T10:00:00Z",
                                "duration": "PT1H"}, "intervals": []}])
    assert plain.randomize_start_s == 0.0
