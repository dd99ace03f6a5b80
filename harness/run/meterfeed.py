"""The meter as a shard's reports read it: ticked in a thread off the loop, one snapshot ahead, with the DR
sheds its VENs learnt.

Edge (runs the meter in the loop's default executor). Only the meter thread touches the meter while a step
runs; a snapshot is new arrays, never written afterwards, so reports read it from the loop without locks.
"""

from __future__ import annotations

import asyncio
import time
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from harness.core.fleet import LOAD_KINDS, FleetShard
from harness.dialects import LoadReading
from harness.meter import Meter


class Snapshot(NamedTuple):
    """The meter after `tick` steps, as reports read it: per-site (and, for "load" granularity, per-load) arrays."""

    tick: int
    site_energy: npt.NDArray[np.float64]
    site_power: npt.NDArray[np.float64]
    load_energy: npt.NDArray[np.float64] | None
    load_power: npt.NDArray[np.float64] | None


class MeterFeed:
    """The tick reports read (`site_energy`, `site_power`, per-load arrays), the next one computed ahead, and
    the sheds waiting for the meter and for the first report that shows them."""

    def __init__(self, meter: Meter, shard: FleetShard, per_load: bool) -> None:
        self.meter = meter
        self.shard = shard
        self.per_load = per_load
        self.visible_tick = -1
        self.next_tick: asyncio.Future[Snapshot] | None = None
        self.site_energy = np.zeros(shard.n_sites, dtype=np.float64)
        self.site_power = np.zeros(shard.n_sites, dtype=np.float64)
        # Per-load state only for "load" granularity: other granularities never pay for it.
        n_loads = shard.n_loads if per_load else 0
        self.load_energy = np.zeros(n_loads, dtype=np.float64)
        self.load_power = np.zeros(n_loads, dtype=np.float64)
        # What each site (and load) had when its VEN last reported: the next report sends the energy since.
        self.site_last_energy_kwh = np.zeros(shard.n_sites, dtype=np.float64)
        self.load_last_energy_kwh = np.zeros(n_loads, dtype=np.float64)
        # Sheds learnt since the meter's last step began: (row, event id, start, end, shed fraction). They reach the
        # meter, merged into one DR event per event, when the next tick's computation starts (see _launch_tick).
        self.dr_queue: list[tuple[int, str, float, float, float]] = []
        self.shed_pending: dict[int, list[tuple[str, float]]] = {}  # row -> [(event id, sim start of the shed)]
        self.shed: dict[str, list[float]] = {}  # event id -> first-shed-report instants (epoch s) to ship

    def queue_shed(self, row: int, ev_id: str, start: float, end: float, fraction: float) -> None:
        self.dr_queue.append((row, ev_id, start, end, fraction))

    def note_shed_reported(self, row: int, now_sim: float) -> None:
        """The first report that holds a whole meter tick of an event's window shows the shed."""
        pending = self.shed_pending.get(row)
        if not pending:
            return
        keep = []
        for ev_id, start in pending:
            if now_sim >= start + self.meter.tick_s:
                self.shed.setdefault(ev_id, []).append(time.time())
            else:
                keep.append((ev_id, start))
        if keep:
            self.shed_pending[row] = keep
        else:
            del self.shed_pending[row]

    def _flush_dr(self) -> None:
        """Hand the sheds learnt since the last step to the meter: one DR event per (event, window, level) for all
        the VENs that learnt it (not one per VEN: a fleet-wide event would cost a Python call per VEN per tick).
        It applies from the next tick the meter computes, so that tick's start is when the shed can first show."""
        if not self.dr_queue:
            return
        m = self.meter
        first_tick_s = m.start_epoch_s + m.tick * m.tick_s
        groups: dict[tuple[float, float, float], list[int]] = {}
        for row, ev_id, start, end, fraction in self.dr_queue:
            groups.setdefault((start, end, fraction), []).append(row)
            self.shed_pending.setdefault(row, []).append((ev_id, max(start, first_tick_s)))
        self.dr_queue = []
        offsets = self.shard.site_offsets
        for (start, end, fraction), rows in groups.items():
            r = np.asarray(rows, dtype=np.int64)
            lo, hi = offsets[r], offsets[r + 1]
            sites = np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in zip(lo.tolist(), hi.tolist())])
            m.apply_dr(sites, start, end, shed_fraction=fraction)

    def _compute_tick(self, step: bool) -> Snapshot:
        """In the meter thread: step once (or not, for the first snapshot) and sum per site."""
        m = self.meter
        if step:
            m.step()
        energy, power = m.energy_kwh, m.power_kw
        if self.per_load:
            return Snapshot(m.tick, m.site_sum(energy), m.site_sum(power), energy, power)
        return Snapshot(m.tick, m.site_sum(energy), m.site_sum(power), None, None)

    def _launch_tick(self) -> asyncio.Future[Snapshot]:
        self._flush_dr()
        step = self.meter.tick <= self.visible_tick
        fut = asyncio.get_running_loop().run_in_executor(None, self._compute_tick, step)
        self.next_tick = fut
        return fut

    def behind(self, now_sim: float) -> int | None:
        """The tick the clock has reached, if reports would find the meter behind it; else None. The worker
        advances the meter every second whether or not reports read it: a shard still provisioning reads no
        meter for a whole interval, and its first reports would otherwise wait for the catch-up (180 ticks of a
        500,000-VEN shard: ~11 s)."""
        tick = self.meter.tick_at(now_sim)
        return tick if tick > self.visible_tick else None

    async def advance(self, target: int) -> None:
        """Make tick `target` the one reports read. The next tick is always being computed ahead in a thread,
        so at a tick boundary the swap is instant; a report waits only if the meter cannot keep up (which its
        start lag then shows)."""
        while self.visible_tick < target:
            fut = self.next_tick or self._launch_tick()
            await asyncio.shield(fut)  # shared by every report crossing this boundary; a cancelled one leaves it be
            if self.next_tick is fut:
                snap = fut.result()
                self.visible_tick = snap.tick
                self.site_energy, self.site_power = snap.site_energy, snap.site_power
                if snap.load_energy is not None and snap.load_power is not None:
                    self.load_energy, self.load_power = snap.load_energy, snap.load_power
                self.next_tick = None
                self._launch_tick()  # tick + 1, ahead of need

    def load_readings(self, lo: int, hi: int) -> list[LoadReading]:
        """Per load of sites [lo, hi): energy since the VEN's last report and mean power ("load" granularity)."""
        shard, energy, power, last = self.shard, self.load_energy, self.load_power, self.load_last_energy_kwh
        out = []
        for s in range(lo, hi):
            site = shard.site_name(s)
            first = int(shard.load_offsets[s])
            for k in range(first, int(shard.load_offsets[s + 1])):
                kind = LOAD_KINDS[int(shard.load_kind[k])]
                out.append(LoadReading(site, f"{site}-{kind}-{k - first}", kind, float(energy[k] - last[k]), float(power[k])))
        return out

    def commit(self, lo: int, hi: int, site_energy: npt.NDArray[np.float64],
               load_energy: npt.NDArray[np.float64] | None) -> None:
        """Sites [lo, hi) reported: their next deltas start from the tick the report read."""
        self.site_last_energy_kwh[lo:hi] = site_energy[lo:hi]
        if load_energy is None:
            return
        a, b = int(self.shard.load_offsets[lo]), int(self.shard.load_offsets[hi])
        self.load_last_energy_kwh[a:b] = load_energy[a:b]
