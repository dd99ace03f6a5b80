"""The meter: steps every load of a shard on a fixed tick grid, vectorised, and keeps power and energy.

Pure: callers pass simulated time in. Randomness is keyed by (seed, global load/VEN id, tick), so readings
don't depend on how the fleet is sharded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from harness.core.fleet import LOAD_KINDS, SITE_KINDS, FleetShard, hash64, uniform01
from harness.core.replay import Replay
from harness.meter import profiles as pr
from harness.meter.dr import DrEvent, PerKind, make_event
from harness.meter.storage import Batteries, EvChargers
from harness.meter.weather import Climate, Weather, clear_sky_fraction

STREAM_LOAD = 201
STREAM_JITTER = 202
STREAM_INIT = 203
STREAM_PHASE = 230

_GOLDEN32 = 0x9E3779B9
_M1 = np.uint32(0x7FEB352D)
_M2 = np.uint32(0x846CA68B)
_S16, _S15 = np.uint32(16), np.uint32(15)
_BYTE_SHIFT = tuple(np.uint32(24 - 8 * j) for j in range(4))  # byte j of a hash to the top of the word
TICKS_PER_HASH = 4  # one 32-bit hash per load gives 4 ticks of innovations (one byte on top each)
_SQRT3 = math.sqrt(3.0)
_KIND = {name: i for i, name in enumerate(LOAD_KINDS)}


def _rows(kinds: npt.NDArray[np.int16], *names: str) -> npt.NDArray[np.intp]:
    return np.flatnonzero(np.isin(kinds, [_KIND[n] for n in names])).astype(np.intp)


@dataclass(frozen=True, eq=False)
class _Phase:
    """The loads refreshed on ticks k with k % refresh_ticks == j, and what their refresh needs."""

    rows: npt.NDArray[np.int32]
    cls: npt.NDArray[np.int32]
    th_pos: npt.NDArray[np.intp]  # positions in `rows` of temperature-driven loads
    th_ven: npt.NDArray[np.int32]
    th_floor: npt.NDArray[np.float32]
    th_gain: npt.NDArray[np.float32]
    th_thr: npt.NDArray[np.float32]
    th_slope: npt.NDArray[np.float32]
    light_pos: npt.NDArray[np.intp]


class Meter:
    """Simulated metering of one shard: call `advance_to(t)`, then read `power_kw` / `energy_kwh` per load."""

    def __init__(self, shard: FleetShard, seed: int, start_epoch_s: float, tick_s: float = 60.0, *,
                 climate: Climate | None = None, replay: Replay | None = None, refresh_s: float = 300.0) -> None:
        if not (math.isfinite(tick_s) and tick_s > 0.0):
            raise ValueError(f"meter: tick_s must be > 0, got {tick_s}")
        if not (math.isfinite(refresh_s) and refresh_s > 0.0):
            raise ValueError(f"meter: refresh_s must be > 0, got {refresh_s}")
        if not math.isfinite(start_epoch_s):
            raise ValueError(f"meter: start_epoch_s must be finite, got {start_epoch_s}")
        self.shard = shard
        self.seed = seed
        self.start_epoch_s = float(start_epoch_s)
        self.tick_s = float(tick_s)
        self.climate = climate if climate is not None else Climate()
        self.tick = 0
        # Slow inputs (load shapes, temperature response, daylight, battery schedule) are re-evaluated every
        # R = refresh_s / tick_s ticks per load, a 1/R share of the loads each tick (the share keyed by load
        # id): smooth in aggregate, even in cost. Per-VEN weather moves on the same R-tick grid.
        self.refresh_ticks = max(1, round(float(refresh_s) / self.tick_s))
        self._offset_s = self.climate.utc_offset_h * 3600.0
        kind, rated = shard.load_kind, shard.load_rated_kw
        site_kind, ven_row = shard.site_kind[shard.load_site], shard.site_ven[shard.load_site]  # per load
        jitter = (hash64(seed, STREAM_JITTER, shard.load_id) % np.uint64(pr.N_JITTER)).astype(np.int64)
        cls = pr.class_index(site_kind, kind, jitter)
        self._init_noise()
        self._phases = self._build_phases(cls, site_kind, ven_row)
        self._pv = _rows(kind, "pv")
        self._pv_ven = ven_row[self._pv]
        self._pv_neg_kwp = -rated[self._pv]
        ev_rows = _rows(kind, "ev")
        self._evs = EvChargers(shard, seed, ev_rows, site_kind[ev_rows])
        self._bats = Batteries(shard, seed, _rows(kind, "battery"))
        self._weather = Weather(self.climate, seed, np.arange(shard.ven_start, shard.ven_stop, dtype=np.uint64),
                                self.tick_s, self.refresh_ticks)
        self._pv_cloud = self._weather.local.cloud[self._pv_ven]
        self._replay_rows: npt.NDArray[np.intp] | None = None
        self._replay = replay
        if replay is not None:
            rows, cols, scale = replay.assign(kind, shard.load_id, rated)
            self._replay_rows, self._replay_cols, self._replay_scale = rows, cols, scale
        # Each load's payback factor, looked up by its kind when an event takes it (not an array of every load's).
        self._payback = PerKind(np.array([pr.PAYBACK.get(k, 0.0) for k in LOAD_KINDS]), kind)
        self._events: list[DrEvent] = []

    def _init_noise(self) -> None:
        """The generic part: level(class, local time) x AR(1) noise, in float32 (half the memory traffic)."""
        shard, seed = self.shard, self.seed
        n, kind, rated = shard.n_loads, shard.load_kind, shard.load_rated_kw
        key = hash64(seed, STREAM_LOAD, shard.load_id)
        self._key_a = (key & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        self._key_b = (key >> np.uint64(32)).astype(np.uint32)
        sd_k = np.array([pr.NOISE[k][0] for k in LOAD_KINDS])
        phi_k = np.array([math.exp(-self.tick_s / pr.NOISE[k][1]) if pr.NOISE[k][0] > 0 else 0.0
                          for k in LOAD_KINDS])
        sd, phi = sd_k[kind], phi_k[kind]
        kick = sd * np.sqrt(1.0 - phi * phi)
        self._phi = phi.astype(np.float32)
        # innovation = kick x sqrt(3) x (signed 32-bit word / 2**31): zero mean, unit variance
        self._c = (_SQRT3 * kick * rated / 2.0**31).astype(np.float32)
        self._d = ((1.0 - phi) * rated).astype(np.float32)
        init = uniform01(hash64(seed, STREAM_INIT, shard.load_id))
        self._s = (rated * (1.0 + sd * _SQRT3 * (2.0 * init - 1.0))).astype(np.float32)
        # hashes of (load, block b = tick // 4) for this block; the next block's are computed a quarter of the
        # loads per tick (same values whatever the sharding, even cost per tick)
        self._quarters = [(j * n // TICKS_PER_HASH, (j + 1) * n // TICKS_PER_HASH) for j in range(TICKS_PER_HASH)]
        self._z = np.empty(n, dtype=np.uint32)
        self._z_next = np.empty(n, dtype=np.uint32)
        self._t = np.empty(n - 3 * (n // TICKS_PER_HASH), dtype=np.uint32)
        for lo, hi in self._quarters:
            self._hash_block(0, lo, hi, self._z)
        self._w = np.empty(n, dtype=np.uint32)
        self._f = np.empty(n, dtype=np.float32)
        self._lv = np.empty(n, dtype=np.float32)
        self._p = np.zeros(n, dtype=np.float32)  # exact in float64 too: energy sums the very values shown
        self._p_sum = np.zeros(n)

    def _build_phases(self, cls: npt.NDArray[np.intp], site_kind: npt.NDArray[np.int16],
                      ven_row: npt.NDArray[np.int64]) -> list[_Phase]:
        """The loads of each refresh phase, with what their refresh needs (temperature response, daylight)."""
        shard = self.shard
        n, kind = shard.n_loads, shard.load_kind
        thermal_rows = _rows(kind, "hvac", "heat_pump")
        coeffs = np.zeros((len(SITE_KINDS), len(LOAD_KINDS), 4))
        for s, sname in enumerate(SITE_KINDS):
            for k, kname in enumerate(LOAD_KINDS):
                th = pr.thermal(sname, kname)
                if th is not None:
                    coeffs[s, k] = (th.floor, th.gain, th.threshold_c, th.slope_per_c)
        th_coef = np.zeros((n, 4), dtype=np.float32)
        th_coef[thermal_rows] = coeffs[site_kind[thermal_rows], kind[thermal_rows]]
        is_th = np.zeros(n, dtype=bool)
        is_th[thermal_rows] = True
        is_light = kind == _KIND["lighting"]
        # turns go by blocks of 64 global sites: whole runs of rows, cheap to gather and scatter
        block = shard.site_id[shard.load_site] // np.uint64(64)
        phase = (hash64(self.seed, STREAM_PHASE, block) % np.uint64(self.refresh_ticks)).astype(np.intp)
        # Row numbers and class indices as int32 (a shard has far fewer than 2**31 loads): half the bytes of intp
        # for arrays that hold every load of the shard (~40 B a VEN saved, benchmarks/anatomy.py state).
        order = np.argsort(phase, kind="stable").astype(np.int32)
        bounds = np.searchsorted(phase[order], np.arange(self.refresh_ticks + 1))
        phases: list[_Phase] = []
        for j in range(self.refresh_ticks):
            rows = order[bounds[j]:bounds[j + 1]]
            th_pos = np.flatnonzero(is_th[rows])
            c = th_coef[rows[th_pos]]
            phases.append(_Phase(
                rows=rows, cls=cls[rows].astype(np.int32), th_pos=th_pos, th_ven=ven_row[rows[th_pos]].astype(np.int32),
                th_floor=c[:, 0].copy(), th_gain=c[:, 1].copy(), th_thr=c[:, 2].copy(), th_slope=c[:, 3].copy(),
                light_pos=np.flatnonzero(is_light[rows])))
        return phases

    # ---- reading --------------------------------------------------------------------------------------

    @property
    def sim_epoch_s(self) -> float:
        return self.start_epoch_s + self.tick * self.tick_s

    @property
    def power_kw(self) -> npt.NDArray[np.float64]:
        """Per load, mean power over the last tick (a copy). PV < 0 (export); batteries either sign."""
        return self._p.astype(np.float64)

    @property
    def energy_kwh(self) -> npt.NDArray[np.float64]:
        """Per load, energy since start: the sum of power_kw x tick_s / 3600 over the ticks stepped."""
        return self._p_sum * (self.tick_s / 3600.0)

    @property
    def battery_soc(self) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
        """(battery load rows, state of charge 0..1)."""
        return self._bats.rows.copy(), self._bats.soc_kwh / self._bats.cap_kwh

    def site_sum(self, per_load: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Per-site totals of a per-load array (every site has at least one load)."""
        return np.add.reduceat(per_load, self.shard.load_offsets[:-1])

    def site_power_kw(self) -> npt.NDArray[np.float64]:
        """site_sum(power_kw) without the per-load copy (identical values)."""
        return np.add.reduceat(self._p, self.shard.load_offsets[:-1], dtype=np.float64)

    def site_energy_kwh(self) -> npt.NDArray[np.float64]:
        """site_sum(energy_kwh) without the per-load copy (equal within rounding)."""
        return np.add.reduceat(self._p_sum, self.shard.load_offsets[:-1]) * (self.tick_s / 3600.0)

    def ven_sum(self, per_load: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Per-VEN totals of a per-load array."""
        return np.add.reduceat(self.site_sum(per_load), self.shard.site_offsets[:-1])

    # ---- demand response ---------------------------------------------------------------------------------

    def apply_dr(self, site_rows: npt.NDArray[np.int64], start_epoch_s: float, end_epoch_s: float, *,
                 shed_fraction: float | None = None, limit_kw: float | None = None,
                 rebound_s: float = 900.0) -> None:
        """Shed (or cap per site) the flexible loads of `site_rows` during [start, end), then pay back.

        Sites joining an event already applied (same window, level and rebound; rebound not begun) join its
        DrEvent, so an event that reaches a shard's VENs over many ticks stays one vectorised event per tick."""
        ev = make_event(
            site_rows, self.shard.load_offsets, self.shard.load_flexible, self._payback, self.shard.load_rated_kw,
            start_epoch_s, end_epoch_s, shed_fraction=shed_fraction, limit_kw=limit_kw, rebound_s=rebound_s)
        for old in self._events:
            if old.absorb(ev):
                return
        self._events.append(ev)

    # ---- stepping ---------------------------------------------------------------------------------------

    def set_start(self, start_epoch_s: float) -> None:
        """Move the simulated start before the first step (nothing built so far depends on it): a worker builds
        its meter before the run's start instant is known."""
        if self.tick != 0:
            raise RuntimeError("meter: the start can only change before the first step")
        if not math.isfinite(start_epoch_s):
            raise ValueError(f"meter: start_epoch_s must be finite, got {start_epoch_s}")
        self.start_epoch_s = float(start_epoch_s)

    def tick_at(self, sim_epoch_s: float) -> int:
        """How many whole ticks end at or before `sim_epoch_s` (the tick count advance_to would reach)."""
        return math.floor((sim_epoch_s - self.start_epoch_s) / self.tick_s + 1e-9)

    def advance_to(self, sim_epoch_s: float) -> int:
        """Step every whole tick that ends at or before `sim_epoch_s`; returns how many (never goes back)."""
        target = self.tick_at(sim_epoch_s)
        stepped = 0
        while self.tick < target:
            self.step()
            stepped += 1
        return stepped

    def step(self) -> None:
        """Advance one tick."""
        k = self.tick
        t0 = self.start_epoch_s + k * self.tick_s
        t1 = t0 + self.tick_s
        mid = t0 + 0.5 * self.tick_s
        dt_h = self.tick_s / 3600.0
        r = self.refresh_ticks
        self._weather.step(k)
        if k == 0:  # every load needs inputs before its first turn; phase j's first hold is ticks [0, j)
            for j in range(1, r):
                self._refresh_phase(j, self.start_epoch_s + 0.5 * j * self.tick_s)
        self._refresh_phase(k % r, self.start_epoch_s + (k + 0.5 * r) * self.tick_s)  # middle of its hold
        p = self._p
        self._generic(k)
        if self._pv.size:
            self._solar(p, mid)
        if self._evs.rows.size:
            self._evs.desired(p, t0, t1, dt_h, self._offset_s)
        if self._bats.rows.size:
            self._bats.limit(p, dt_h)
        if self._replay is not None and self._replay_rows is not None and self._replay_rows.size:
            p[self._replay_rows] = self._replay.curves.mean_kw(t0, t1)[self._replay_cols] * self._replay_scale
        if self._events:
            for ev in self._events:
                ev.shed(p, t0, t1)
            for ev in self._events:
                ev.rebound(p, t0, t1)
            self._events = [ev for ev in self._events if not ev.is_done(t1)]
        if self._evs.rows.size:
            self._evs.charged(p, dt_h)
        if self._bats.rows.size:
            self._bats.charged(p, dt_h)
        np.add(self._p_sum, p, out=self._p_sum)
        if self._weather.after_tick(k):
            self._pv_cloud = self._weather.local.cloud[self._pv_ven]
        self.tick = k + 1

    def _hash_block(self, block: int, lo: int, hi: int, out: npt.NDArray[np.uint32]) -> None:
        """lowbias32 of (per-load key, block) for loads [lo, hi) into out[lo:hi]."""
        z, t = out[lo:hi], self._t[: hi - lo]
        np.add(self._key_a[lo:hi], np.uint32((block * _GOLDEN32) & 0xFFFFFFFF), out=z)
        np.bitwise_xor(z, self._key_b[lo:hi], out=z)
        np.right_shift(z, _S16, out=t)
        np.bitwise_xor(z, t, out=z)
        np.multiply(z, _M1, out=z)
        np.right_shift(z, _S15, out=t)
        np.bitwise_xor(z, t, out=z)
        np.multiply(z, _M2, out=z)
        np.right_shift(z, _S16, out=t)
        np.bitwise_xor(z, t, out=z)

    def _refresh_phase(self, j: int, utc_s: float) -> None:
        """Re-evaluate level x temperature response x daylight for the loads of refresh phase j at `utc_s`."""
        ph = self._phases[j]
        if ph.rows.size == 0:
            return
        vals = pr.levels_at(utc_s + self._offset_s)[ph.cls]
        if ph.th_pos.size:
            r = self._weather.temp_c(utc_s, ph.th_ven).astype(np.float32)
            r -= ph.th_thr
            r *= ph.th_slope
            np.clip(r, np.float32(0.0), np.float32(1.0), out=r)
            r *= ph.th_gain
            r += ph.th_floor
            vals[ph.th_pos] *= r
        if ph.light_pos.size:  # lights follow daylight: most of them are off once the sun is well up
            daylight = min(1.0, clear_sky_fraction(self.climate, utc_s) / pr.DAYLIGHT_FULL)
            vals[ph.light_pos] *= np.float32(1.0 - pr.DAYLIGHT_DIMMING * daylight)
        self._lv[ph.rows] = vals

    def _generic(self, k: int) -> None:
        block, phase = divmod(k, TICKS_PER_HASH)
        f = self._f
        # innovation of tick k: byte `phase` of hash(seed, load id, k // 4) on top of a signed word (the bytes
        # below it fill the low bits). Depends on (seed, load id, k) only.
        if phase == TICKS_PER_HASH - 1:
            word = self._z
        else:
            word = self._w
            np.left_shift(self._z, _BYTE_SHIFT[phase], out=word)
        np.multiply(word.view(np.int32), self._c, out=f, dtype=np.float32, casting="unsafe")
        lo, hi = self._quarters[phase]
        self._hash_block(block + 1, lo, hi, self._z_next)
        if phase == TICKS_PER_HASH - 1:
            self._z, self._z_next = self._z_next, self._z
        s = self._s  # s = rated x (1 + AR(1) noise):  s <- phi s + innovation + (1 - phi) rated
        np.multiply(s, self._phi, out=s)
        np.add(s, f, out=s)
        np.add(s, self._d, out=s)
        np.maximum(s, np.float32(0.0), out=f)  # consumption never negative
        np.multiply(self._lv, f, out=self._p)

    def _solar(self, p: npt.NDArray[np.float32], mid: float) -> None:
        sun = clear_sky_fraction(self.climate, mid)
        if sun == 0.0:
            p[self._pv] = 0.0
        else:
            p[self._pv] = self._weather.clear_fraction(self._pv_cloud) * self._pv_neg_kwp * sun
