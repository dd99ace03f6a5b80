"""Loads with a state of charge: EV chargers (sessions drawn per slot) and home batteries (a scheduled
charge/discharge held within their state-of-charge range).

Pure: callers pass simulated time in; sessions are keyed by (seed, load id, slot index), never by sharding.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from harness.core.fleet import SITE_KINDS, FleetShard, hash64, uniform01
from harness.meter import profiles as pr

STREAM_EV = 210  # .. 213, and 219 for the anchor jitter
STREAM_BATTERY = 220
FloatArray = npt.NDArray[np.float64]


class EvChargers:
    """The EV loads of a shard: one possible charging session per slot; a session charges at rated power while
    the car is plugged in, until it has what it needs."""

    def __init__(self, shard: FleetShard, seed: int, rows: npt.NDArray[np.intp], ev_site: npt.NDArray[np.int16]) -> None:
        """rows: the EV loads; ev_site: the kind of site each is at."""
        self.seed = seed
        self.rows = rows
        params = [pr.ev_sessions(s) for s in SITE_KINDS]

        def per_ev(get: Callable[[pr.EvSessions], float]) -> FloatArray:
            return np.array([get(p) for p in params], dtype=np.float64)[ev_site]

        self.slot_s = per_ev(lambda p: p.slot_s)
        # short slots (public chargers) start at a per-charger offset, so the fleet's sessions don't align
        anchor_jitter = uniform01(hash64(seed, STREAM_EV + 9, shard.load_id[rows]))
        self.anchor_s = per_ev(lambda p: p.anchor_h * 3600.0) + np.where(
            self.slot_s < 86400.0, anchor_jitter * self.slot_s, 0.0)
        self.prob = np.array([p.probability for p in params])[ev_site]
        # 24 hourly weights per site kind, looked up by each EV's site kind (not 24 floats per EV)
        self.hourly_by_site = np.array([p.hourly_weight for p in params])
        self.ev_site = ev_site
        self.arr = np.array([p.arrival_s for p in params])[ev_site]
        self.dwell = np.array([p.dwell_s for p in params])[ev_site]
        self.need = np.array([p.need_kwh for p in params])[ev_site]
        self.rated = shard.load_rated_kw[rows]
        self.ids = shard.load_id[rows]
        self.slot_end = np.full(rows.shape[0], -np.inf)  # local s: draw a new session from then on
        self.start = np.zeros(rows.shape[0])  # UTC s
        self.stop = np.zeros(rows.shape[0])
        self.left_kwh = np.zeros(rows.shape[0])

    def desired(self, p: npt.NDArray[np.float32], t0: float, t1: float, dt_h: float, offset_s: float) -> None:
        """Each charger's power over [t0, t1) into p (new sessions drawn for slots that began)."""
        local_mid = 0.5 * (t0 + t1) + offset_s
        new = np.flatnonzero(self.slot_end <= local_mid)
        if new.size:
            slot = np.floor((local_mid - self.anchor_s[new]) / self.slot_s[new]).astype(np.int64)
            self._new_sessions(new, slot, t0, offset_s)
        plugged_s = np.clip(np.minimum(t1, self.stop) - np.maximum(t0, self.start), 0.0, t1 - t0)
        p[self.rows] = np.minimum(self.rated * (plugged_s / (t1 - t0)), self.left_kwh / dt_h)

    def charged(self, p: npt.NDArray[np.float32], dt_h: float) -> None:
        """What the tick's power (after DR) delivered is no longer needed."""
        self.left_kwh -= np.maximum(p[self.rows], 0.0) * dt_h
        np.maximum(self.left_kwh, 0.0, out=self.left_kwh)

    def _new_sessions(self, new: npt.NDArray[np.intp], slot: npt.NDArray[np.int64], t0: float, offset_s: float) -> None:
        slot_u = slot.astype(np.uint64)
        u = [uniform01(hash64(self.seed, STREAM_EV + i, self.ids[new], slot_u)) for i in range(4)]
        slot_s = self.slot_s[new]
        start_local = self.anchor_s[new] + slot * slot_s
        day = np.floor(start_local / 86400.0)
        weekend = ((day.astype(np.int64) + 3) % 7 >= 5).astype(np.intp)
        hour = np.floor((start_local - day * 86400.0) / 3600.0).astype(np.intp) % 24
        prob = self.prob[new, weekend] * self.hourly_by_site[self.ev_site[new], hour]
        arr_lo, arr_hi = self.arr[new, 0], self.arr[new, 1]
        dw_lo, dw_hi = self.dwell[new, 0], self.dwell[new, 1]
        nd_lo, nd_hi = self.need[new, 0], self.need[new, 1]
        start = start_local - offset_s + arr_lo + u[1] * (arr_hi - arr_lo)
        stop = np.minimum(start + dw_lo + u[2] * (dw_hi - dw_lo), start_local - offset_s + slot_s)
        need = nd_lo + u[3] * (nd_hi - nd_lo)
        present = u[0] < prob
        # a session already under way when the meter starts has charged at rated power since it arrived
        charged = self.rated[new] * np.maximum(0.0, np.minimum(t0, stop) - start) / 3600.0
        self.slot_end[new] = start_local + slot_s
        self.start[new] = start
        self.stop[new] = stop
        self.left_kwh[new] = np.where(present, np.maximum(need - charged, 0.0), 0.0)


class Batteries:
    """The battery loads of a shard: the level table's charge/discharge, held within the state-of-charge range."""

    def __init__(self, shard: FleetShard, seed: int, rows: npt.NDArray[np.intp]) -> None:
        self.rows = rows
        self.cap_kwh = shard.load_rated_kw[rows] * pr.BATTERY_HOURS
        u = uniform01(hash64(seed, STREAM_BATTERY, shard.load_id[rows]))
        self.soc_kwh = self.cap_kwh * (0.3 + 0.4 * u)

    def limit(self, p: npt.NDArray[np.float32], dt_h: float) -> None:
        """Clip the scheduled power in p to what the state of charge allows this tick."""
        lo, hi = pr.BATTERY_SOC_RANGE
        eff = pr.BATTERY_EFFICIENCY
        soc, cap = self.soc_kwh, self.cap_kwh
        charge_max = np.maximum(hi * cap - soc, 0.0) / (eff * dt_h)
        discharge_max = np.maximum(soc - lo * cap, 0.0) * eff / dt_h
        p[self.rows] = np.clip(p[self.rows], -discharge_max, charge_max)

    def charged(self, p: npt.NDArray[np.float32], dt_h: float) -> None:
        """The tick's power (after DR) charges or drains each battery, with the round-trip losses."""
        pb = p[self.rows]
        eff = pr.BATTERY_EFFICIENCY
        self.soc_kwh += np.where(pb > 0.0, pb * eff, pb / eff) * dt_h
