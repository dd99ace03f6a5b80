"""The meter: shard-independent readings, physical signs, energy = integral of power, demand response."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.core.fleet import LOAD_KINDS, SITE_KINDS, TYPICAL_MIX, FleetShard, FleetSpec, build_shard, split
from harness.meter import Climate, Meter, simple_level_shed
from tests.strategies import fleet_specs, seeds, start_epochs, tick_seconds

ALL_KINDS = tuple((k, 1.0) for k in SITE_KINDS)
JUNE_NOON = 1_749_988_800.0  # 2025-06-15T12:00:00Z, a Sunday
JAN_MONDAY = 1_736_726_400.0  # 2025-01-13T00:00:00Z
K = {name: i for i, name in enumerate(LOAD_KINDS)}
DEFERRABLE = np.array([K["hvac"], K["water_heater"], K["heat_pump"]])
STATEFUL = np.array([K["ev"], K["battery"]])


def _site_series(spec: FleetSpec, seed: int, shards: int, start: float, tick_s: float, ticks: int,
                 ) -> npt.NDArray[np.float64]:
    """Per-site (power, energy) after each tick, shards concatenated in VEN order."""
    cols = []
    for a, b in split(spec.vens, shards):
        m = Meter(build_shard(spec, seed, a, b), seed, start, tick_s)
        rows = []
        for k in range(1, ticks + 1):
            m.advance_to(start + k * tick_s)
            rows.append(np.concatenate([m.site_sum(m.power_kw), m.site_sum(m.energy_kwh)]))
        cols.append(np.array(rows).reshape(ticks, 2, -1))
    return np.concatenate(cols, axis=2)


@settings(max_examples=12, deadline=None)
@given(fleet_specs(min_vens=7, max_vens=30), seeds, start_epochs, tick_seconds)
def test_same_seed_same_site_series_for_1_2_and_7_shards(spec: FleetSpec, seed: int, start: float,
                                                          tick_s: float) -> None:
    """Every site's power and energy series is bit-identical whether the fleet runs in 1, 2 or 7 shards."""
    one = _site_series(spec, seed, 1, start, tick_s, 24)
    assert np.array_equal(one, _site_series(spec, seed, 2, start, tick_s, 24))
    assert np.array_equal(one, _site_series(spec, seed, 7, start, tick_s, 24))


@pytest.mark.parametrize(("tick_s", "ticks"), [(900.0, 96), (60.0, 150), (7.0, 100)])
def test_shard_independence_with_every_kind(tick_s: float, ticks: int) -> None:
    """Every site kind (refresh grid, weather, EV slots, batteries) reads the same in 1 and 3 shards."""
    spec = FleetSpec(vens=60, sites_per_ven=2, mix=ALL_KINDS)
    one = _site_series(spec, 9, 1, JUNE_NOON, tick_s, ticks)
    assert np.array_equal(one, _site_series(spec, 9, 3, JUNE_NOON, tick_s, ticks))


@settings(max_examples=10, deadline=None)
@given(fleet_specs(max_vens=20), seeds, start_epochs, tick_seconds)
def test_signs(spec: FleetSpec, seed: int, start: float, tick_s: float) -> None:
    """Consuming loads never go negative, PV never consumes, batteries stay within their state of charge."""
    shard = build_shard(spec, seed, 0, spec.vens)
    m = Meter(shard, seed, start, tick_s)
    consuming = ~np.isin(shard.load_kind, [K["pv"], K["battery"]])
    for k in range(1, 40):
        m.advance_to(start + k * tick_s)
        p = m.power_kw
        assert np.all(p[consuming] >= 0.0)
        assert np.all(p[shard.load_kind == K["pv"]] <= 0.0)
        _, soc = m.battery_soc
        assert np.all((soc >= 0.05 - 1e-6) & (soc <= 0.95 + 1e-6))


@settings(max_examples=10, deadline=None)
@given(fleet_specs(max_vens=20), seeds, start_epochs, tick_seconds)
def test_energy_is_the_integral_of_power(spec: FleetSpec, seed: int, start: float, tick_s: float) -> None:
    """energy_kwh equals the sum of power_kw x tick over the ticks stepped, per load and per site."""
    shard = build_shard(spec, seed, 0, spec.vens)
    m = Meter(shard, seed, start, tick_s)
    integral = np.zeros(shard.n_loads)
    for k in range(1, 30):
        assert m.advance_to(start + k * tick_s) == 1
        integral += m.power_kw * (tick_s / 3600.0)
    np.testing.assert_allclose(m.energy_kwh, integral, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(m.site_sum(m.energy_kwh), m.site_sum(integral), rtol=1e-12, atol=1e-9)


@settings(max_examples=10, deadline=None)
@given(fleet_specs(max_vens=10), seeds, seeds, start_epochs)
def test_different_seeds_give_different_series(spec: FleetSpec, seed_a: int, seed_b: int, start: float) -> None:
    """Two seeds give different readings (same fleet shape)."""
    if seed_a == seed_b:
        seed_b = seed_a + 1
    shard = build_shard(spec, seed_a, 0, spec.vens)
    a, b = Meter(shard, seed_a, start), Meter(shard, seed_b, start)
    a.advance_to(start + 600.0)
    b.advance_to(start + 600.0)
    assert not np.array_equal(a.energy_kwh, b.energy_kwh)


def _dr_pair(shard: FleetShard, seed: int, start: float, tick_s: float, **dr: float) -> tuple[Meter, Meter]:
    base, shed = Meter(shard, seed, start, tick_s), Meter(shard, seed, start, tick_s)
    shed.apply_dr(np.arange(shard.n_sites), **dr)
    return base, shed


@settings(max_examples=15, deadline=None)
@given(seeds, st.floats(min_value=0.05, max_value=1.0), st.integers(min_value=2, max_value=20),
       st.integers(min_value=1, max_value=12), st.sampled_from([60.0, 300.0]))
def test_shed_cuts_the_flexible_part_by_x_inside_the_window_only(
        seed: int, x: float, start_tick: int, length: int, tick_s: float) -> None:
    """A shed of X cuts each flexible load to (1 - X) inside the window, changes nothing before it, and after
    the rebound the deferrable loads read exactly as without the event; inflexible loads never change."""
    spec = FleetSpec(vens=40, mix=(("household", 3.0), ("heat_pump_home", 1.0), ("hotel", 0.3)))
    shard = build_shard(spec, seed, 0, spec.vens)
    start = JAN_MONDAY + 16 * 3600.0
    t_on, t_off, rebound_s = start + start_tick * tick_s, start + (start_tick + length) * tick_s, 1800.0
    base, shed = _dr_pair(shard, seed, start, tick_s, start_epoch_s=t_on, end_epoch_s=t_off,
                          shed_fraction=x, rebound_s=rebound_s)
    deferrable = np.isin(shard.load_kind, DEFERRABLE)
    stateful = np.isin(shard.load_kind, STATEFUL)
    shed_kwh = extra_kwh = 0.0
    for k in range(1, start_tick + length + int(rebound_s / tick_s) + 4):
        t = start + k * tick_s
        base.advance_to(t)
        shed.advance_to(t)
        pb, ps = base.power_kw, shed.power_kw
        assert np.array_equal(pb[~shard.load_flexible], ps[~shard.load_flexible])
        if t <= t_on:
            assert np.array_equal(pb, ps)
        elif t <= t_off:
            np.testing.assert_allclose(ps[deferrable], (1.0 - x) * pb[deferrable], rtol=1e-6, atol=1e-6)
            assert np.all(ps[stateful] <= np.maximum(0.0, (1.0 - x) * shard.load_rated_kw[stateful]) + 1e-4)
            shed_kwh += float((pb - ps)[deferrable].sum()) * tick_s / 3600.0
        elif t <= t_off + rebound_s:
            assert np.all(ps[deferrable] >= pb[deferrable] - 1e-4)
            extra_kwh += float((ps - pb)[deferrable].sum()) * tick_s / 3600.0
        else:
            assert np.array_equal(pb[deferrable], ps[deferrable])
    assert extra_kwh <= shed_kwh + 1e-3
    if shed_kwh > 1.0:
        assert extra_kwh > 0.0  # paid back at up to rated power, for at most rebound_s


def test_rebound_pays_back_the_payback_share() -> None:
    """With room to recover, water heaters pay back all their shed energy after the event."""
    spec = FleetSpec(vens=200)
    shard = build_shard(spec, 3, 0, spec.vens)
    start = JAN_MONDAY + 6 * 3600.0
    base, shed = _dr_pair(shard, 3, start, 60.0, start_epoch_s=start + 600.0, end_epoch_s=start + 2400.0,
                          shed_fraction=1.0, rebound_s=7200.0)
    wh = shard.load_kind == K["water_heater"]
    base.advance_to(start + 2400.0)
    shed.advance_to(start + 2400.0)
    owed = float((base.energy_kwh - shed.energy_kwh)[wh].sum())
    base.advance_to(start + 2400.0 + 7200.0)
    shed.advance_to(start + 2400.0 + 7200.0)
    assert owed > 5.0
    assert float((base.energy_kwh - shed.energy_kwh)[wh].sum()) == pytest.approx(0.0, abs=1e-6)


def test_limit_caps_each_site_flexible_part() -> None:
    """limit_kw keeps every site's flexible consumption at or below the limit during the window."""
    spec = FleetSpec(vens=100, mix=(("household", 1.0), ("hotel", 1.0), ("ev_station", 1.0)))
    shard = build_shard(spec, 4, 0, spec.vens)
    start = JUNE_NOON + 5 * 3600.0
    m = Meter(shard, 4, start, 60.0)
    sites = np.arange(0, shard.n_sites, 2)
    m.apply_dr(sites, start + 300.0, start + 1800.0, limit_kw=2.0)
    flex = shard.load_flexible.astype(float)
    for k in range(6, 31):
        m.advance_to(start + k * 60.0)
        site_flex = m.site_sum(np.maximum(m.power_kw, 0.0) * flex)
        assert np.all(site_flex[sites] <= 2.0 + 1e-4)
    assert float(m.site_sum(np.maximum(m.power_kw, 0.0) * flex)[1::2].max()) > 2.0  # others untouched


@settings(max_examples=15, deadline=None)
@given(seeds, st.floats(min_value=0.0, max_value=30.0), start_epochs)
def test_limit_holds_for_any_limit(seed: int, limit_kw: float, start: float) -> None:
    """For any limit, each site's flexible draw stays at or below it on every tick fully inside the window."""
    spec = FleetSpec(vens=30, mix=(("household", 2.0), ("heat_pump_home", 1.0), ("restaurant", 0.5)))
    shard = build_shard(spec, seed, 0, spec.vens)
    m = Meter(shard, seed, start, 60.0)
    m.apply_dr(np.arange(shard.n_sites), start + 120.0, start + 1200.0, limit_kw=limit_kw)
    flex = shard.load_flexible.astype(float)
    for k in range(3, 21):
        m.advance_to(start + 60.0 * k)
        assert np.all(m.site_sum(np.maximum(m.power_kw, 0.0) * flex) <= limit_kw * (1 + 1e-6) + 1e-4)


def test_partial_tick_overlap_sheds_in_proportion() -> None:
    """An event covering half a tick cuts that tick's mean power by X / 2."""
    shard = build_shard(FleetSpec(vens=50, mix=(("heat_pump_home", 1.0),)), 2, 0, 50)
    start = JAN_MONDAY
    base, shed = _dr_pair(shard, 2, start, 60.0, start_epoch_s=start + 90.0, end_epoch_s=start + 150.0,
                          shed_fraction=0.5, rebound_s=0.0)
    hp = shard.load_kind == K["heat_pump"]
    for k in (1, 2, 3):
        base.advance_to(start + 60.0 * k)
        shed.advance_to(start + 60.0 * k)
        ratio = 1.0 if k == 1 else 0.75
        np.testing.assert_allclose(shed.power_kw[hp], ratio * base.power_kw[hp], rtol=1e-6)


def test_simple_levels() -> None:
    """SIMPLE levels 0..3 map to shed fractions 0, 0.25, 0.5, 1; others are refused."""
    assert [simple_level_shed(level) for level in range(4)] == [0.0, 0.25, 0.5, 1.0]
    with pytest.raises(ValueError, match="dr: SIMPLE level must be 0..3, got 4"):
        simple_level_shed(4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "dr: give exactly one of shed_fraction and limit_kw"),
        ({"shed_fraction": 0.5, "limit_kw": 1.0}, "dr: give exactly one of shed_fraction and limit_kw"),
        ({"shed_fraction": 1.5}, "dr: shed_fraction must be within 0..1, got 1.5"),
        ({"limit_kw": -1.0}, "dr: limit_kw must be >= 0, got -1.0"),
        ({"shed_fraction": 0.5, "rebound_s": -1.0}, "dr: rebound_s must be >= 0, got -1.0"),
    ],
)
def test_dr_validation(kwargs: dict[str, float], message: str) -> None:
    """A malformed DR request is refused with a message naming the parameter."""
    m = Meter(build_shard(FleetSpec(vens=2), 0, 0, 2), 0, 0.0)
    with pytest.raises(ValueError, match=message):
        m.apply_dr(np.array([0]), 100.0, 200.0, **kwargs)


def test_dr_rejects_bad_window_and_sites() -> None:
    """An empty window or a site row outside the shard is refused."""
    m = Meter(build_shard(FleetSpec(vens=2), 0, 0, 2), 0, 0.0)
    with pytest.raises(ValueError, match=r"dr: end must be after start, got \[200.0, 100.0\)"):
        m.apply_dr(np.array([0]), 200.0, 100.0, shed_fraction=0.5)
    with pytest.raises(ValueError, match=r"dr: site rows must be within 0..1"):
        m.apply_dr(np.array([2]), 100.0, 200.0, shed_fraction=0.5)


def test_advance_to_steps_whole_ticks_and_never_goes_back() -> None:
    """advance_to steps each tick whose end is <= t, returns the count, and ignores earlier instants."""
    m = Meter(build_shard(FleetSpec(vens=3), 0, 0, 3), 0, 1000.0, 60.0)
    assert m.tick == 0 and m.sim_epoch_s == 1000.0
    assert np.all(m.power_kw == 0.0) and np.all(m.energy_kwh == 0.0)
    assert m.advance_to(1059.9) == 0
    assert m.advance_to(1060.0) == 1
    assert m.advance_to(1000.0 + 0.1 * 3 * 60 * 10) == 2  # float arithmetic on the boundary still counts
    assert m.advance_to(1500.0) == 5
    assert m.advance_to(1100.0) == 0
    assert m.tick == 8 and m.sim_epoch_s == 1480.0


def test_meter_validation() -> None:
    """A non-positive tick is refused with its value."""
    with pytest.raises(ValueError, match="meter: tick_s must be > 0, got 0.0"):
        Meter(build_shard(FleetSpec(vens=1), 0, 0, 1), 0, 0.0, 0.0)


def test_ven_sum_adds_sites() -> None:
    """ven_sum equals the sum of the VEN's site sums."""
    shard = build_shard(FleetSpec(vens=5, sites_per_ven=3, mix=ALL_KINDS), 1, 0, 5)
    m = Meter(shard, 1, JUNE_NOON)
    m.advance_to(JUNE_NOON + 3600.0)
    sites = m.site_sum(m.energy_kwh)
    np.testing.assert_allclose(m.ven_sum(m.energy_kwh), sites.reshape(5, 3).sum(axis=1))


def test_site_shortcuts_match_site_sum() -> None:
    """site_power_kw() is site_sum(power_kw) exactly; site_energy_kwh() is site_sum(energy_kwh) within rounding."""
    shard = build_shard(FleetSpec(vens=50, sites_per_ven=2, mix=ALL_KINDS), 2, 0, 50)
    m = Meter(shard, 2, JUNE_NOON, 60.0)
    m.advance_to(JUNE_NOON + 1800.0)
    assert np.array_equal(m.site_power_kw(), m.site_sum(m.power_kw))
    np.testing.assert_allclose(m.site_energy_kwh(), m.site_sum(m.energy_kwh), rtol=1e-12, atol=1e-12)


def test_magnitudes_are_plausible() -> None:
    """A household averages 6-20 kWh a day in winter; heat pumps and PV follow the season."""
    shard = build_shard(FleetSpec(vens=400, mix=(("household", 1.0), ("heat_pump_home", 1.0))), 8, 0, 400)
    day_kwh = {}
    for name, start in (("winter", JAN_MONDAY), ("summer", JUNE_NOON - 12 * 3600.0)):
        m = Meter(shard, 8, start, 300.0)
        m.advance_to(start + 86400.0)
        day_kwh[name] = m.energy_kwh
    hh = shard.site_kind == SITE_KINDS.index("household")
    gross = day_kwh["winter"] * ~np.isin(shard.load_kind, [K["pv"], K["battery"]])
    assert 6.0 < float(m.site_sum(gross)[hh].mean()) < 20.0
    hp = shard.load_kind == K["heat_pump"]
    assert day_kwh["winter"][hp].sum() > 3 * day_kwh["summer"][hp].sum()
    pv = shard.load_kind == K["pv"]
    assert day_kwh["summer"][pv].sum() < 4 * day_kwh["winter"][pv].sum() < 0.0


def test_climate_shifts_local_time() -> None:
    """A UTC offset moves the daily shape: +10 h at 11:00 UTC behaves like 21:00 at offset 0."""
    shard = build_shard(FleetSpec(vens=300), 1, 0, 300)
    light = shard.load_kind == K["lighting"]
    evening = Meter(shard, 1, JAN_MONDAY + 21 * 3600.0, 60.0)
    east = Meter(shard, 1, JAN_MONDAY + 11 * 3600.0, 60.0, climate=Climate(utc_offset_h=10.0))
    west = Meter(shard, 1, JAN_MONDAY + 11 * 3600.0, 60.0)
    for m in (evening, east, west):
        m.advance_to(m.start_epoch_s + 60.0)
    assert float(east.power_kw[light].sum()) == pytest.approx(float(evening.power_kw[light].sum()), rel=1e-6)
    assert float(west.power_kw[light].sum()) < 0.5 * float(east.power_kw[light].sum())


def test_household_fleet_total_is_smooth() -> None:
    """2000 households' total consumption (PV and batteries aside) moves < 10 % per 5-minute tick all day."""
    shard = build_shard(FleetSpec(vens=2000), 5, 0, 2000)
    consuming = ~np.isin(shard.load_kind, [K["pv"], K["battery"]])
    m = Meter(shard, 5, JAN_MONDAY, 300.0)
    totals = []
    for k in range(1, 289):
        m.advance_to(JAN_MONDAY + k * 300.0)
        totals.append(float(m.power_kw[consuming].sum()))
    rel = np.abs(np.diff(totals)) / np.abs(np.array(totals[1:]))
    assert float(rel.max()) < 0.10
