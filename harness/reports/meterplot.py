"""Picture of the meter model: a simulated day per load kind (winter and summer) and one DR event's effect.

An edge (writes a PNG, imports matplotlib inside `main`): `python -m harness.reports.meterplot --out docs/meter-day.png`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.core.fleet import LOAD_KINDS, SITE_KINDS, TYPICAL_MIX, FleetShard, FleetSpec, build_shard
from harness.meter import Climate, Meter, simple_level_shed

UTC_OFFSET_H = 1.0  # central Europe, winter time
JAN_TUESDAY = 1_736_809_200.0 - UTC_OFFSET_H * 3600.0  # 2025-01-14 00:00 local
JUL_TUESDAY = 1_752_530_400.0 - UTC_OFFSET_H * 3600.0  # 2025-07-15 00:00 local
DAY_TICK_S = 300.0
DR_TICK_S = 60.0
REBOUND_S = 7200.0
HOMES = ("household", "heat_pump_home")
# where each load kind is shown: homes where they have it, else the site kinds that do
SHOWN_AT: dict[str, tuple[str, ...]] = {k: HOMES for k in LOAD_KINDS}
SHOWN_AT.update({"pool_pump": ("swimming_pool", "hotel"), "process": ("industry",)})


@dataclass(frozen=True)
class DaySeries:
    hours: npt.NDArray[np.float64]
    mean_kw: npt.NDArray[np.float64]  # [tick, load kind] mean power per load of that kind
    sample_kw: npt.NDArray[np.float64]  # [tick, load kind] one load of that kind


def shown(shard: FleetShard) -> npt.NDArray[np.bool_]:
    """Loads shown in their kind's panel (see SHOWN_AT)."""
    site_kind = shard.site_kind[shard.load_site]
    out = np.zeros(shard.n_loads, dtype=bool)
    for k, name in enumerate(LOAD_KINDS):
        sites = [SITE_KINDS.index(s) for s in SHOWN_AT[name]]
        out |= (shard.load_kind == k) & np.isin(site_kind, sites)
    return out


def simulate_day(shard: FleetShard, seed: int, start_s: float) -> DaySeries:
    """Mean power per load kind (and one sample load per kind) over a local day at 5-minute ticks."""
    climate = Climate(utc_offset_h=UTC_OFFSET_H)
    m = Meter(shard, seed, start_s, DAY_TICK_S, climate=climate)
    keep = shown(shard)
    kind = np.where(keep, shard.load_kind, len(LOAD_KINDS))  # hidden loads go to an extra bin
    counts = np.bincount(kind, minlength=len(LOAD_KINDS) + 1)[:-1].astype(float)
    ticks = int(86400 / DAY_TICK_S)
    mean = np.zeros((ticks, len(LOAD_KINDS)))
    every = np.zeros((ticks, shard.n_loads), dtype=np.float32)
    for k in range(ticks):
        m.advance_to(start_s + (k + 1) * DAY_TICK_S)
        p = m.power_kw
        mean[k] = np.bincount(kind, weights=p, minlength=len(LOAD_KINDS) + 1)[:-1] / np.maximum(counts, 1.0)
        every[k] = p
    samples = [_typical_load(shard, keep, m.energy_kwh, k) for k in range(len(LOAD_KINDS))]
    sample = np.stack([every[:, r] if r >= 0 else np.full(ticks, np.nan) for r in samples], axis=1)
    hours = (np.arange(ticks, dtype=np.float64) + 0.5) * (DAY_TICK_S / 3600.0)
    return DaySeries(hours, mean, sample.astype(np.float64))


def _typical_load(shard: FleetShard, keep: npt.NDArray[np.bool_], energy_kwh: npt.NDArray[np.float64],
                  kind: int) -> int:
    """A typical shown load of `kind`: the one whose day's energy per rated kW is closest to the kind's mean."""
    rows = np.flatnonzero((shard.load_kind == kind) & keep)
    if rows.size == 0:
        return -1
    per_kw = energy_kwh[rows] / shard.load_rated_kw[rows]
    return int(rows[np.argmin(np.abs(per_kw - per_kw.mean()))])


@dataclass(frozen=True)
class DrSeries:
    hours: npt.NDArray[np.float64]
    base_mw: npt.NDArray[np.float64]
    event_mw: npt.NDArray[np.float64]
    base_flex_mw: npt.NDArray[np.float64]
    event_flex_mw: npt.NDArray[np.float64]
    window_h: tuple[float, float]
    shed: float


def simulate_dr(seed: int, vens: int = 3000) -> DrSeries:
    """A winter evening on a residential fleet, with and without a SIMPLE level 2 event 17:00-19:00."""
    spec = FleetSpec(vens=vens, mix=(("household", 0.8), ("heat_pump_home", 0.2)))
    shard = build_shard(spec, seed, 0, vens)
    climate = Climate(utc_offset_h=UTC_OFFSET_H)
    start = JAN_TUESDAY + 14 * 3600.0
    base = Meter(shard, seed, start, DR_TICK_S, climate=climate)
    event = Meter(shard, seed, start, DR_TICK_S, climate=climate)
    on, off = JAN_TUESDAY + 17 * 3600.0, JAN_TUESDAY + 19 * 3600.0
    shed = simple_level_shed(2)
    event.apply_dr(np.arange(shard.n_sites), on, off, shed_fraction=shed, rebound_s=REBOUND_S)
    flex = shard.load_flexible
    ticks = int(8 * 3600 / DR_TICK_S)
    out = np.zeros((4, ticks))
    for k in range(ticks):
        t = start + (k + 1) * DR_TICK_S
        base.advance_to(t)
        event.advance_to(t)
        pb, pe = base.power_kw, event.power_kw
        out[:, k] = (pb.sum(), pe.sum(), pb[flex].sum(), pe[flex].sum())
    hours = 14.0 + (np.arange(ticks, dtype=np.float64) + 0.5) * (DR_TICK_S / 3600.0)
    return DrSeries(hours, out[0] / 1e3, out[1] / 1e3, out[2] / 1e3, out[3] / 1e3, (17.0, 19.0), shed)


def _kind_panel(fig: Any, cell: Any, i: int, winter: DaySeries, summer: DaySeries, count: int) -> None:
    """One load kind's weekday: the fleet mean in winter and summer, and one typical load (right axis)."""
    name = LOAD_KINDS[i]
    ax = fig.add_subplot(cell)
    ax.plot(winter.hours, winter.mean_kw[:, i], color="tab:blue", lw=2, label="fleet mean, 14 Jan")
    ax.plot(summer.hours, summer.mean_kw[:, i], color="tab:orange", lw=2, label="fleet mean, 15 Jul")
    ax.axhline(0.0, color="0.6", lw=0.6)
    where = "homes" if SHOWN_AT[name] == HOMES else " & ".join(s.replace("_", " ") for s in SHOWN_AT[name])
    ax.set_title(f"{name} at {where} (n={count})", fontsize=11)
    ax.set_xlim(0, 24)
    ax.set_xticks(range(0, 25, 6))
    ax.grid(alpha=0.3)
    if i % 4 == 0:
        ax.set_ylabel("kW per load (mean)")
    if i >= 8:
        ax.set_xlabel("local hour")
    twin = ax.twinx()
    twin.plot(summer.hours, summer.sample_kw[:, i], color="0.45", lw=0.7, alpha=0.8,
              label="one typical load, 15 Jul (right axis)")
    twin.tick_params(axis="y", colors="0.45", labelsize=8)
    lo = min(0.0, float(np.nanmin(summer.sample_kw[:, i])) * 1.1) if count else 0.0
    hi = max(0.1, float(np.nanmax(summer.sample_kw[:, i])) * 1.1) if count else 1.0
    twin.set_ylim(lo, hi)
    if i == 0:
        lines = ax.get_lines()[:2] + twin.get_lines()
        ax.legend(lines, [str(ln.get_label()) for ln in lines], fontsize=8, loc="upper left")


def _dr_panel(ax: Any, dr: DrSeries) -> None:
    """The fleet's power through a DR event against the same day without it: the shed and the rebound."""
    ax.axvspan(*dr.window_h, color="tab:red", alpha=0.08, label="DR event (SIMPLE level 2: shed 50 %)")
    ax.plot(dr.hours, dr.base_mw, color="0.3", lw=2, label="fleet total, no event")
    ax.plot(dr.hours, dr.event_mw, color="tab:red", lw=2, label="fleet total, with event")
    ax.plot(dr.hours, dr.base_flex_mw, color="0.3", lw=1, ls="--", label="flexible part, no event")
    ax.plot(dr.hours, dr.event_flex_mw, color="tab:red", lw=1, ls="--", label="flexible part, with event")
    inside = (dr.hours > dr.window_h[0]) & (dr.hours < dr.window_h[1])
    after = (dr.hours > dr.window_h[1]) & (dr.hours < dr.window_h[1] + REBOUND_S / 3600.0)
    shed_mw = float((dr.base_mw - dr.event_mw)[inside].mean())
    peak_mw = float((dr.event_mw - dr.base_mw)[after].max())
    ax.set_title(f"Demand response on 3000 residential VENs, 14 Jan: {shed_mw:.2f} MW shed on average, "
                 f"rebound peak +{peak_mw:.2f} MW, paid back over {REBOUND_S / 3600:g} h", fontsize=12)
    ax.set_xlabel("local hour")
    ax.set_ylabel("MW")
    ax.set_xlim(dr.hours[0] - 0.01, dr.hours[-1] + 0.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=9)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.reports.meterplot", description=__doc__)
    parser.add_argument("--out", default="docs/meter-day.png", help="PNG to write")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--vens", type=int, default=4000, help="VENs in the per-kind fleet")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shard = build_shard(FleetSpec(vens=args.vens, mix=TYPICAL_MIX), args.seed, 0, args.vens)
    winter = simulate_day(shard, args.seed, JAN_TUESDAY)
    summer = simulate_day(shard, args.seed, JUL_TUESDAY)
    keep = shown(shard)
    counts = np.bincount(shard.load_kind[keep], minlength=len(LOAD_KINDS))

    fig = plt.figure(figsize=(16, 15), layout="constrained")
    grid = fig.add_gridspec(5, 4, height_ratios=[1, 1, 1, 0.08, 1.5])
    fig.suptitle(f"harness meter model: one simulated weekday per load kind ({args.vens} VENs, typical mix, "
                 f"UTC+{UTC_OFFSET_H:g}, 5-min ticks). PV export < 0; battery charge > 0, discharge < 0",
                 fontsize=14)
    for i in range(len(LOAD_KINDS)):
        _kind_panel(fig, grid[i // 4, i % 4], i, winter, summer, int(counts[i]))
    _dr_panel(fig.add_subplot(grid[4, :]), simulate_dr(args.seed))
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
