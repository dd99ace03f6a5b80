"""Demand-response events on a shard's flexible loads: shed or cap during a window, then the rebound.

Pure: events carry their own simulated times; the meter applies them tick by tick, vectorised per event.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# OpenADR SIMPLE levels: 0 normal, 1 moderate, 2 high, 3 special (full shed of flexible load).
SIMPLE_LEVEL_SHED: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)


def simple_level_shed(level: int) -> float:
    """Shed fraction of flexible load for an OpenADR SIMPLE level 0..3."""
    if not 0 <= level < len(SIMPLE_LEVEL_SHED):
        raise ValueError(f"dr: SIMPLE level must be 0..3, got {level}")
    return SIMPLE_LEVEL_SHED[level]


@dataclass(eq=False)
class DrEvent:
    """One event on some flexible loads; `deferred_kwh` is what each deferrable load owes back after `end_s`."""

    loads: npt.NDArray[np.intp]  # shard load rows (flexible loads of the event's sites)
    group: npt.NDArray[np.intp]  # index of each load's site within the event (for limit_kw)
    n_groups: int
    start_s: float
    end_s: float
    rebound_s: float
    shed_fraction: float | None
    limit_kw: float | None
    payback: npt.NDArray[np.float64]  # share of shed energy owed back; 0 for stateful loads (EV, battery)
    deferred_kwh: npt.NDArray[np.float64]
    headroom_kw: npt.NDArray[np.float64]  # rated power: the rebound can't exceed it
    owed_kwh: npt.NDArray[np.float64] | None = None  # deferred_kwh when the rebound began

    def absorb(self, other: DrEvent) -> bool:
        """Take `other`'s loads into this event if both ask the same (window, shed or limit, rebound) and this
        one's rebound has not begun; False (nothing changed) otherwise. The loads' sites stay separate groups."""
        same = (self.start_s, self.end_s, self.rebound_s, self.shed_fraction, self.limit_kw) == (
            other.start_s, other.end_s, other.rebound_s, other.shed_fraction, other.limit_kw)
        if not same or self.owed_kwh is not None or other.owed_kwh is not None:
            return False
        self.loads = np.concatenate([self.loads, other.loads])
        self.group = np.concatenate([self.group, other.group + self.n_groups])
        self.n_groups += other.n_groups
        self.payback = np.concatenate([self.payback, other.payback])
        self.deferred_kwh = np.concatenate([self.deferred_kwh, other.deferred_kwh])
        self.headroom_kw = np.concatenate([self.headroom_kw, other.headroom_kw])
        return True

    def is_done(self, t0_s: float) -> bool:
        return t0_s >= self.end_s + self.rebound_s

    def shed(self, power_kw: npt.NDArray[np.float32], t0_s: float, t1_s: float) -> None:
        """Cut the positive part of the event's loads in place for the share of [t0, t1) inside the window."""
        overlap = max(0.0, min(t1_s, self.end_s) - max(t0_s, self.start_s)) / (t1_s - t0_s)
        if overlap <= 0.0 or self.owed_kwh is not None:
            return
        p = power_kw[self.loads].astype(np.float64)
        positive = np.maximum(p, 0.0)
        if self.shed_fraction is not None:
            keep: float | npt.NDArray[np.float64] = 1.0 - self.shed_fraction * overlap
        else:
            assert self.limit_kw is not None
            flex = np.bincount(self.group, weights=positive, minlength=self.n_groups)
            with np.errstate(divide="ignore", invalid="ignore"):
                site_keep = np.where(flex > self.limit_kw, self.limit_kw / flex, 1.0)
            keep = 1.0 - (1.0 - site_keep[self.group]) * overlap
        new = np.where(p > 0.0, p * keep, p)  # multiplicative: no cancellation when nearly all is shed
        power_kw[self.loads] = new
        self.deferred_kwh += (p - new) * self.payback * ((t1_s - t0_s) / 3600.0)

    def rebound(self, power_kw: npt.NDArray[np.float32], t0_s: float, t1_s: float) -> None:
        """Pay back what was deferred, on a schedule decaying linearly to 0 over `rebound_s` after `end_s`
        (peak 2 x owed / rebound_s), never above rated power; a backlog is caught up when there is room and
        whatever is still owed at end_s + rebound_s is forgiven (comfort or losses absorbed it)."""
        lo, hi = max(t0_s, self.end_s), min(t1_s, self.end_s + self.rebound_s)
        if hi <= lo:
            return
        if self.owed_kwh is None:  # first rebound tick: the event's shedding is complete
            self.owed_kwh = self.deferred_kwh.copy()
        if not self.deferred_kwh.any():
            return
        x = (hi - self.end_s) / self.rebound_s
        due = self.owed_kwh * (1.0 - (1.0 - x) ** 2) - (self.owed_kwh - self.deferred_kwh)
        dt_h = (t1_s - t0_s) / 3600.0
        p = power_kw[self.loads].astype(np.float64)
        room_kwh = np.maximum(self.headroom_kw - p, 0.0) * (dt_h * (hi - lo) / (t1_s - t0_s))
        paid = np.clip(np.minimum(due, room_kwh), 0.0, self.deferred_kwh)
        power_kw[self.loads] = p + paid / dt_h
        self.deferred_kwh -= paid


class PerKind:
    """A per-load value held per load kind: `by_load[rows]` is `table[kind[rows]]`, without an array of every load."""

    __slots__ = ("table", "kind")

    def __init__(self, table: npt.NDArray[np.float64], kind: npt.NDArray[np.int16]) -> None:
        self.table, self.kind = table, kind

    def __getitem__(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        return self.table[self.kind[rows]]


def make_event(site_rows: npt.NDArray[np.int64], load_offsets: npt.NDArray[np.int64],
               load_flexible: npt.NDArray[np.bool_], payback_by_load: npt.NDArray[np.float64] | PerKind,
               rated_kw: npt.NDArray[np.float64], start_s: float, end_s: float, *,
               shed_fraction: float | None, limit_kw: float | None, rebound_s: float) -> DrEvent:
    """Validate the request and collect the flexible loads of `site_rows` (vectorised over the CSR)."""
    if (shed_fraction is None) == (limit_kw is None):
        raise ValueError("dr: give exactly one of shed_fraction and limit_kw")
    if shed_fraction is not None and not 0.0 <= shed_fraction <= 1.0:
        raise ValueError(f"dr: shed_fraction must be within 0..1, got {shed_fraction}")
    if limit_kw is not None and not limit_kw >= 0.0:
        raise ValueError(f"dr: limit_kw must be >= 0, got {limit_kw}")
    if not (math.isfinite(start_s) and math.isfinite(end_s) and end_s > start_s):
        raise ValueError(f"dr: end must be after start, got [{start_s}, {end_s})")
    if not rebound_s >= 0.0:
        raise ValueError(f"dr: rebound_s must be >= 0, got {rebound_s}")
    sites = np.unique(np.asarray(site_rows, dtype=np.int64))
    n_sites = load_offsets.shape[0] - 1
    if sites.size and (sites[0] < 0 or sites[-1] >= n_sites):
        raise ValueError(f"dr: site rows must be within 0..{n_sites - 1}")
    starts, stops = load_offsets[sites], load_offsets[sites + 1]
    counts = stops - starts
    group_all = np.repeat(np.arange(sites.size, dtype=np.intp), counts)
    rows_all = (np.arange(int(counts.sum()), dtype=np.intp)
                - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(starts, counts))
    keep = load_flexible[rows_all]
    loads = rows_all[keep]
    return DrEvent(
        loads=loads, group=group_all[keep], n_groups=int(sites.size), start_s=float(start_s), end_s=float(end_s),
        rebound_s=float(rebound_s), shed_fraction=shed_fraction, limit_kw=limit_kw,
        payback=payback_by_load[loads], deferred_kwh=np.zeros(loads.shape[0]), headroom_kw=rated_kw[loads],
    )
