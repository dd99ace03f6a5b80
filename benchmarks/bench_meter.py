"""Meter and fleet speed: one vectorised tick over 1,000,000 loads beside the same tick as a per-load Python loop.

Run with `pytest benchmarks/bench_meter.py` (not part of the test suite). Target: <= 15 ms per 1M-load tick.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from harness.core.fleet import LOAD_KINDS, FleetSpec, build_shard
from harness.meter import Meter
from harness.meter import profiles as pr
from harness.meter.model import _BYTE_SHIFT, _GOLDEN32, TICKS_PER_HASH
from harness.meter.weather import clear_sky_fraction, climate_temp_c

START = 1_749_988_800.0  # 2025-06-15T12:00:00Z: PV, batteries and EVs all active
HOUSEHOLDS_FOR_1M_LOADS = 199_000  # ~5.03 loads per household
LOOP_LOADS = 20_000  # the Python loop runs on a slice; its time is scaled to 1M loads
RESULTS: dict[str, float] = {}


@pytest.fixture(scope="module")
def meter_1m() -> Meter:
    shard = build_shard(FleetSpec(vens=HOUSEHOLDS_FOR_1M_LOADS), 1, 0, HOUSEHOLDS_FOR_1M_LOADS)
    m = Meter(shard, 1, START, 60.0)
    m.advance_to(START + 8 * 60.0)  # past first-touch page faults
    return m


@pytest.fixture(scope="module", autouse=True)
def summary(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print the vectorised/loop ratio after pytest-benchmark's table (output capture is over by then)."""
    yield
    if {"vectorised_ms_per_1m", "loop_ms_per_1m"} <= RESULTS.keys():
        vec, loop = RESULTS["vectorised_ms_per_1m"], RESULTS["loop_ms_per_1m"]
        line = (f"meter tick, 1M loads: vectorised {vec:.2f} ms (mean incl. refresh ticks; "
                f"{RESULTS['vectorised_median_ms_per_1m']:.2f} ms median), Python loop {loop:.0f} ms "
                f"(scaled from {LOOP_LOADS} loads) -> {loop / vec:.0f}x")
        reporter = request.config.pluginmanager.getplugin("terminalreporter")
        request.config.add_cleanup(lambda: reporter.write_line(line) if reporter is not None else print(line))


class LoopMeter:
    """The meter's tick written load by load in plain Python (lists, floats): the yardstick for vectorising.

    It mirrors Meter.step after tick 0 for the first `n` loads of a vectorised meter, whose state it copies:
    noise, the refresh of one phase's inputs, PV, EV and battery state. Weather is per VEN, not per load, so it
    steps its own copy of the meter's (numpy) Weather object.
    """

    def __init__(self, m: Meter, n: int) -> None:
        self.m = m
        self.n = n
        self.weather = copy.deepcopy(m._weather)
        self.local_temp = self.weather.local.temp.tolist()
        self.local_cloud = self.weather.local.cloud.tolist()
        self.key_a = m._key_a[:n].tolist()
        self.key_b = m._key_b[:n].tolist()
        self.z = m._z[:n].tolist()
        self.z_next = m._z_next[:n].tolist()
        self.s = m._s[:n].astype(np.float64).tolist()
        self.phi = m._phi[:n].astype(np.float64).tolist()
        self.c = m._c[:n].astype(np.float64).tolist()
        self.d = m._d[:n].astype(np.float64).tolist()
        self.lv = m._lv[:n].astype(np.float64).tolist()
        self.kind = m.shard.load_kind[:n].tolist()
        self.rated = m.shard.load_rated_kw[:n].tolist()
        self.p_sum = m._p_sum[:n].tolist()
        self.p = [0.0] * n
        self.ven = m.shard.site_ven[m.shard.load_site[:n]].tolist()
        self.phase = [-1] * n
        self.cls = [0] * n
        self.th: list[tuple[float, float, float, float] | None] = [None] * n
        self.light = [False] * n
        for j, ph in enumerate(m._phases):
            th_at = dict(zip(ph.th_pos.tolist(), zip(ph.th_floor.tolist(), ph.th_gain.tolist(),
                                                     ph.th_thr.tolist(), ph.th_slope.tolist())))
            light_at = set(ph.light_pos.tolist())
            for pos, row in enumerate(ph.rows.tolist()):
                if row < n:
                    self.phase[row] = j
                    self.cls[row] = int(ph.cls[pos])
                    self.th[row] = th_at.get(pos)
                    self.light[row] = pos in light_at
        ev_pos = {int(r): i for i, r in enumerate(m._evs.rows)}
        self.ev_pos = [ev_pos.get(i, -1) for i in range(n)]
        self.ev_start = m._evs.start.tolist()
        self.ev_stop = m._evs.stop.tolist()
        self.ev_left = m._evs.left_kwh.tolist()
        bat_pos = {int(r): i for i, r in enumerate(m._bats.rows)}
        self.bat_pos = [bat_pos.get(i, -1) for i in range(n)]
        self.soc = m._bats.soc_kwh.tolist()
        self.cap = m._bats.cap_kwh.tolist()

    @staticmethod
    def lowbias32(x: int) -> int:
        x ^= x >> 16
        x = (x * 0x7FEB352D) & 0xFFFFFFFF
        x ^= x >> 15
        x = (x * 0x846CA68B) & 0xFFFFFFFF
        return x ^ (x >> 16)

    def step(self, k: int) -> None:
        m = self.m
        n_q = self.m.shard.n_loads
        t0 = m.start_epoch_s + k * m.tick_s
        t1 = t0 + m.tick_s
        mid = t0 + 0.5 * m.tick_s
        dt_h = m.tick_s / 3600.0
        r = m.refresh_ticks
        self.weather.step(k)
        t_eval = m.start_epoch_s + (k + 0.5 * r) * m.tick_s
        levels = pr.levels_at(t_eval + m._offset_s).tolist()
        temp_base = climate_temp_c(m.climate, t_eval) + self.weather.temp_regional.value
        dim = 1.0 - pr.DAYLIGHT_DIMMING * min(1.0, clear_sky_fraction(m.climate, t_eval) / pr.DAYLIGHT_FULL)
        sun = clear_sky_fraction(m.climate, mid)
        cloud_regional = self.weather.cloud_regional.value
        block, phase = divmod(k, TICKS_PER_HASH)
        shift = int(_BYTE_SHIFT[phase])
        # the vectorised meter hashes loads [q*N/4, (q+1)*N/4) of its N loads at phase q
        lo, hi = phase * n_q // TICKS_PER_HASH, (phase + 1) * n_q // TICKS_PER_HASH
        add = ((block + 1) * _GOLDEN32) & 0xFFFFFFFF
        lo_s, hi_s = pr.BATTERY_SOC_RANGE
        eff = pr.BATTERY_EFFICIENCY
        pv_kind, ev_kind, bat_kind = (LOAD_KINDS.index(x) for x in ("pv", "ev", "battery"))
        refresh = k % r
        for i in range(self.n):
            if self.phase[i] == refresh:
                v = levels[self.cls[i]]
                th = self.th[i]
                if th is not None:
                    floor, gain, thr, slope = th
                    x = (temp_base + self.local_temp[self.ven[i]] - thr) * slope
                    v *= floor + gain * (0.0 if x < 0.0 else 1.0 if x > 1.0 else x)
                if self.light[i]:
                    v *= dim
                self.lv[i] = v
            word = (self.z[i] << shift) & 0xFFFFFFFF
            signed = word - (1 << 32) if word >= 1 << 31 else word
            if lo <= i < hi:
                self.z_next[i] = self.lowbias32(((self.key_a[i] + add) & 0xFFFFFFFF) ^ self.key_b[i])
            s = self.phi[i] * self.s[i] + self.c[i] * signed + self.d[i]
            self.s[i] = s
            p = self.lv[i] * (s if s > 0.0 else 0.0)
            kind = self.kind[i]
            if kind == pv_kind:
                clear = 0.72 + 0.32 * (self.local_cloud[self.ven[i]] + cloud_regional)
                p = -self.rated[i] * sun * (0.12 if clear < 0.12 else 1.0 if clear > 1.0 else clear)
            elif kind == ev_kind:
                e = self.ev_pos[i]
                plugged = min(max(min(t1, self.ev_stop[e]) - max(t0, self.ev_start[e]), 0.0), t1 - t0)
                p = min(self.rated[i] * plugged / (t1 - t0), self.ev_left[e] / dt_h)
                self.ev_left[e] = max(self.ev_left[e] - max(p, 0.0) * dt_h, 0.0)
            elif kind == bat_kind:
                b = self.bat_pos[i]
                charge_max = max(hi_s * self.cap[b] - self.soc[b], 0.0) / (eff * dt_h)
                discharge_max = max(self.soc[b] - lo_s * self.cap[b], 0.0) * eff / dt_h
                p = min(max(p, -discharge_max), charge_max)
                self.soc[b] += (p * eff if p > 0.0 else p / eff) * dt_h
            self.p[i] = p
            self.p_sum[i] += p
        if phase == TICKS_PER_HASH - 1:
            self.z, self.z_next = self.z_next, self.z
        if self.weather.after_tick(k):  # per VEN, not per load: the numpy Weather object does it
            self.local_temp = self.weather.local.temp.tolist()
            self.local_cloud = self.weather.local.cloud.tolist()


def test_loop_meter_is_the_same_step(meter_1m: Meter) -> None:
    """The Python-loop yardstick computes the same powers as the vectorised tick (float32 rounding aside)."""
    loop = LoopMeter(meter_1m, 5000)
    for _ in range(12):
        loop.step(meter_1m.tick)
        meter_1m.step()
        np.testing.assert_allclose(loop.p, meter_1m.power_kw[:5000], rtol=5e-4, atol=1e-4)


def test_step_1m_loads_vectorised(benchmark: Any, meter_1m: Meter) -> None:
    """One vectorised tick of ~1,000,000 loads (households, midsummer noon)."""
    assert 990_000 <= meter_1m.shard.n_loads <= 1_010_000
    benchmark.pedantic(meter_1m.step, rounds=120, iterations=1, warmup_rounds=8)
    per_1m = 1e3 * 1e6 / meter_1m.shard.n_loads
    RESULTS["vectorised_ms_per_1m"] = benchmark.stats.stats.mean * per_1m
    RESULTS["vectorised_median_ms_per_1m"] = benchmark.stats.stats.median * per_1m
    benchmark.extra_info["ms_per_1m_loads"] = RESULTS["vectorised_ms_per_1m"]


def test_step_python_loop(benchmark: Any, meter_1m: Meter) -> None:
    """The same tick as a per-load Python loop on 20,000 loads; extra_info scales it to 1M loads."""
    loop = LoopMeter(meter_1m, LOOP_LOADS)
    ticks = iter(range(meter_1m.tick, meter_1m.tick + 10_000))
    benchmark.pedantic(lambda: loop.step(next(ticks)), rounds=8, iterations=1, warmup_rounds=1)
    RESULTS["loop_ms_per_1m"] = benchmark.stats.stats.mean * 1e3 * 1e6 / LOOP_LOADS
    benchmark.extra_info["ms_per_1m_loads"] = RESULTS["loop_ms_per_1m"]


def test_build_shard_100k_vens(benchmark: Any) -> None:
    """Building a 100,000-VEN household shard (~500k loads)."""
    spec = FleetSpec(vens=100_000)
    shard = benchmark.pedantic(lambda: build_shard(spec, 1, 0, spec.vens), rounds=5, iterations=1, warmup_rounds=1)
    assert shard.n_vens == 100_000


def test_meter_init_1m_loads(benchmark: Any, meter_1m: Meter) -> None:
    """Creating a Meter over ~1M loads (keys, classes, session and battery state)."""
    benchmark.pedantic(lambda: Meter(meter_1m.shard, 1, START, 60.0), rounds=3, iterations=1, warmup_rounds=1)


def test_site_sums_1m_loads(benchmark: Any, meter_1m: Meter) -> None:
    """Per-site energy and power sums through per-load copies: site_sum(energy_kwh), site_sum(power_kw)."""
    def read() -> None:
        meter_1m.site_sum(meter_1m.energy_kwh)
        meter_1m.site_sum(meter_1m.power_kw)

    benchmark.pedantic(read, rounds=30, iterations=1, warmup_rounds=2)


def test_site_shortcuts_1m_loads(benchmark: Any, meter_1m: Meter) -> None:
    """The same sums without the copies: site_energy_kwh(), site_power_kw()."""
    def read() -> None:
        meter_1m.site_energy_kwh()
        meter_1m.site_power_kw()

    benchmark.pedantic(read, rounds=30, iterations=1, warmup_rounds=2)
