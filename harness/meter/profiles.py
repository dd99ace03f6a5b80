"""Load shapes: hourly weekday/weekend profiles per (site kind, load kind), noise and EV/battery parameters.

Pure data and small table arithmetic; callers pass the local time in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from harness.core.fleet import LOAD_KINDS, SITE_KINDS

HOURS = 24
# Per-load time jitter of the shapes (minutes): loads of one class don't all switch on the same minute.
JITTER_MIN: tuple[float, ...] = (-50.0, -20.0, 10.0, 40.0)
N_JITTER = len(JITTER_MIN)

Blocks = dict[tuple[int, int], float]


def _day(default: float, blocks: Blocks | None = None) -> list[float]:
    """24 hourly levels: `default`, overridden on inclusive hour ranges."""
    out = [default] * HOURS
    for (h0, h1), v in (blocks or {}).items():
        for h in range(h0, h1 + 1):
            out[h] = v
    return out


def _week(wd: list[float], we: list[float] | None = None) -> tuple[list[float], list[float]]:
    return wd, (we if we is not None else wd)


# Levels are the expected fraction of rated power at the middle of each local hour (battery: charge > 0,
# discharge < 0 as a fraction of inverter rating). HVAC/heat-pump levels are usage weights, multiplied by
# a temperature response. EV and PV shapes come from sessions and the sun, not from these tables.
_RESIDENTIAL: dict[str, tuple[list[float], list[float]]] = {
    "base": _week(_day(0.7, {(17, 22): 0.8}), _day(0.7, {(9, 22): 0.8})),
    "lighting": _week(
        _day(0.04, {(0, 5): 0.02, (6, 7): 0.2, (17, 17): 0.15, (18, 21): 0.35, (22, 22): 0.22, (23, 23): 0.08}),
        _day(0.05, {(0, 6): 0.02, (7, 9): 0.12, (17, 17): 0.18, (18, 21): 0.35, (22, 22): 0.25, (23, 23): 0.1}),
    ),
    "kitchen": _week(
        _day(0.01, {(0, 5): 0.004, (6, 7): 0.06, (11, 12): 0.04, (17, 19): 0.15, (20, 20): 0.05}),
        _day(0.01, {(0, 6): 0.004, (8, 10): 0.07, (11, 12): 0.1, (17, 19): 0.15, (20, 20): 0.05}),
    ),
    "water_heater": _week(
        _day(0.045, {(0, 4): 0.02, (5, 5): 0.09, (6, 7): 0.25, (8, 8): 0.13, (17, 17): 0.07, (18, 21): 0.13,
                     (22, 22): 0.09}),
        _day(0.05, {(0, 5): 0.02, (6, 6): 0.09, (7, 10): 0.2, (18, 21): 0.13, (22, 22): 0.09}),
    ),
    "hvac": _week(_day(0.45, {(0, 5): 0.5, (6, 7): 0.6, (16, 22): 1.0, (23, 23): 0.7}), _day(0.6, {(9, 22): 0.9})),
    "heat_pump": _week(_day(0.8, {(0, 4): 0.65, (5, 8): 1.0, (16, 21): 0.95, (22, 23): 0.75})),
    "other": _week(_day(0.14, {(0, 6): 0.07, (7, 8): 0.2, (17, 22): 0.4, (23, 23): 0.2}), _day(0.07, {(9, 22): 0.35})),
    "pool_pump": _week(_day(0.5, {(8, 19): 0.9})),
    "process": _week(_day(0.5)),
    "battery": _week(_day(0.0, {(10, 14): 0.5, (17, 21): -0.45})),
    "ev": _week(_day(0.0)),
    "pv": _week(_day(0.0)),
}
_SPECIFIC: dict[tuple[str, str], tuple[list[float], list[float]]] = {
    ("restaurant", "base"): _week(_day(0.8)),
    ("restaurant", "kitchen"): _week(_day(0.02, {
        (9, 10): 0.2, (11, 11): 0.45, (12, 13): 0.75, (14, 16): 0.3, (17, 17): 0.5, (18, 20): 0.8,
        (21, 21): 0.5, (22, 22): 0.2, (23, 23): 0.05})),
    ("restaurant", "hvac"): _week(_day(0.1, {(10, 23): 1.0})),
    ("restaurant", "lighting"): _week(_day(0.05, {(10, 23): 0.85})),
    ("restaurant", "water_heater"): _week(_day(0.05, {(10, 15): 0.45, (16, 22): 0.55, (23, 23): 0.2})),
    ("restaurant", "other"): _week(_day(0.1, {(10, 23): 0.6})),
    ("school", "base"): _week(_day(0.5, {(7, 16): 0.9}), _day(0.5)),
    ("school", "lighting"): _week(
        _day(0.03, {(7, 7): 0.5, (8, 15): 0.85, (16, 16): 0.5, (17, 18): 0.2}), _day(0.03)),
    ("school", "hvac"): _week(_day(0.1, {(6, 16): 1.0, (17, 17): 0.4}), _day(0.1)),
    ("school", "kitchen"): _week(_day(0.01, {(9, 10): 0.3, (11, 13): 0.8, (14, 14): 0.2}), _day(0.01)),
    ("school", "other"): _week(_day(0.15, {(8, 16): 0.8}), _day(0.15)),
    ("school", "heat_pump"): _week(_day(0.4, {(5, 16): 1.0}), _day(0.4)),
    ("hotel", "base"): _week(_day(0.85)),
    ("hotel", "hvac"): _week(_day(0.7, {(0, 5): 0.6, (6, 9): 0.8, (16, 23): 0.9})),
    ("hotel", "lighting"): _week(_day(0.35, {(0, 5): 0.2, (6, 8): 0.6, (17, 22): 0.85, (23, 23): 0.5})),
    ("hotel", "kitchen"): _week(_day(0.15, {
        (0, 5): 0.02, (6, 9): 0.6, (10, 10): 0.2, (11, 13): 0.55, (17, 21): 0.7, (22, 23): 0.1})),
    ("hotel", "water_heater"): _week(_day(0.35, {(0, 5): 0.15, (6, 9): 0.8, (17, 22): 0.6, (23, 23): 0.3})),
    ("hotel", "pool_pump"): _week(_day(0.5, {(7, 21): 0.9})),
    ("hotel", "other"): _week(_day(0.5, {(7, 22): 0.7})),
    ("swimming_pool", "base"): _week(_day(0.8)),
    ("swimming_pool", "pool_pump"): _week(_day(0.6, {(6, 21): 0.95})),
    ("swimming_pool", "heat_pump"): _week(_day(0.7)),
    ("swimming_pool", "water_heater"): _week(_day(0.05, {(6, 9): 0.5, (10, 15): 0.35, (16, 21): 0.6})),
    ("swimming_pool", "hvac"): _week(_day(0.4, {(6, 21): 1.0})),
    ("swimming_pool", "lighting"): _week(_day(0.05, {(6, 21): 0.9})),
    ("industry", "base"): _week(_day(0.85)),
    ("industry", "process"): _week(_day(0.25, {(6, 13): 0.85, (14, 21): 0.8, (22, 23): 0.3}), _day(0.15)),
    ("industry", "hvac"): _week(_day(0.4, {(6, 21): 1.0}), _day(0.3)),
    ("industry", "lighting"): _week(_day(0.2, {(6, 21): 0.9}), _day(0.1)),
    ("industry", "other"): _week(_day(0.3, {(6, 21): 0.8}), _day(0.2)),
    ("industry", "battery"): _week(_day(0.0, {(0, 5): 0.4, (8, 11): -0.5, (12, 13): 0.3, (14, 17): -0.4})),
    ("ev_station", "base"): _week(_day(0.9)),
    ("ev_station", "lighting"): _week(_day(1.0, {(7, 17): 0.15})),
    ("ev_station", "battery"): _week(_day(0.0, {(0, 6): 0.3, (7, 9): -0.4, (10, 13): 0.2, (16, 19): -0.5})),
    ("pv_site", "base"): _week(_day(0.9)),
    ("battery_site", "base"): _week(_day(0.8)),
    ("battery_site", "battery"): _week(_day(0.0, {(1, 4): 0.7, (7, 9): -0.8, (11, 14): 0.6, (17, 20): -0.9})),
}
_COMMERCIAL = ("restaurant", "school", "hotel", "swimming_pool", "industry")


def shape_table() -> npt.NDArray[np.float64]:
    """Levels as an array [site kind, load kind, day type (0 weekday, 1 weekend), hour]."""
    out = np.zeros((len(SITE_KINDS), len(LOAD_KINDS), 2, HOURS))
    for s, site in enumerate(SITE_KINDS):
        for k, load in enumerate(LOAD_KINDS):
            wd, we = _SPECIFIC.get((site, load), _RESIDENTIAL[load])
            out[s, k, 0] = wd
            out[s, k, 1] = we
    return out


SHAPES = shape_table()


def levels_at(local_s: float) -> npt.NDArray[np.float32]:
    """Level per (site kind, load kind, jitter) at a local instant, flattened: ((s * L) + k) * J + j."""
    out = np.empty((len(SITE_KINDS), len(LOAD_KINDS), N_JITTER))
    for j, jit in enumerate(JITTER_MIN):
        t = local_s + jit * 60.0
        day = np.floor(t / 86400.0)
        weekend = 1 if (int(day) + 3) % 7 >= 5 else 0  # 1970-01-01 was a Thursday
        hour = (t - day * 86400.0) / 3600.0 - 0.5  # levels sit at the middle of each hour
        h0 = int(np.floor(hour)) % HOURS
        frac = hour - np.floor(hour)
        table = SHAPES[:, :, weekend, :]
        out[:, :, j] = table[:, :, h0] * (1.0 - frac) + table[:, :, (h0 + 1) % HOURS] * frac
    return out.ravel().astype(np.float32)


def class_index(site_kind: npt.NDArray[np.int16], load_kind: npt.NDArray[np.int16],
                jitter: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
    """Index into `levels_at` for each load."""
    return ((site_kind.astype(np.intp) * len(LOAD_KINDS) + load_kind.astype(np.intp)) * N_JITTER
            + jitter.astype(np.intp))


# AR(1) noise on each load's level: (relative sigma, correlation time s). Zero sigma: no noise.
NOISE: dict[str, tuple[float, float]] = {
    "base": (0.10, 7200.0),
    "water_heater": (0.45, 900.0),
    "hvac": (0.20, 1200.0),
    "kitchen": (0.60, 600.0),
    "lighting": (0.20, 1800.0),
    "ev": (0.0, 1.0),
    "pv": (0.0, 1.0),
    "battery": (0.0, 1.0),
    "heat_pump": (0.15, 1800.0),
    "pool_pump": (0.05, 14400.0),
    "process": (0.15, 3600.0),
    "other": (0.40, 1200.0),
}


@dataclass(frozen=True)
class Thermal:
    """Temperature response: level x (floor + gain * clip((T - threshold_c) * slope, 0, 1))."""

    floor: float
    gain: float
    threshold_c: float
    slope_per_c: float


def thermal(site_kind: str, load_kind: str) -> Thermal | None:
    if load_kind == "hvac":
        if site_kind in _COMMERCIAL:  # ventilation always, cooling from 18 degC (internal gains)
            return Thermal(0.25, 0.75, 18.0, 1.0 / 14.0)
        return Thermal(0.02, 0.98, 22.0, 1.0 / 12.0)
    if load_kind == "heat_pump":  # domestic hot water all year, space heating below 16 degC
        return Thermal(0.08, 0.92, 16.0, -1.0 / 26.0)
    return None


@dataclass(frozen=True)
class EvSessions:
    """One possible charging session per slot of `slot_s` starting at local `anchor_h`."""

    slot_s: float
    anchor_h: float
    probability: tuple[float, float]  # weekday, weekend (of the slot start)
    hourly_weight: tuple[float, ...]  # x probability, by local hour of the slot start
    arrival_s: tuple[float, float]  # offset into the slot
    dwell_s: tuple[float, float]
    need_kwh: tuple[float, float]


_H = 3600.0
_FLAT = (1.0,) * HOURS
EV_SESSIONS: dict[str, EvSessions] = {
    "household": EvSessions(86400.0, 12.0, (0.55, 0.35), _FLAT, (4 * _H, 9.5 * _H), (9 * _H, 15 * _H), (5.0, 30.0)),
    "hotel": EvSessions(86400.0, 12.0, (0.5, 0.6), _FLAT, (4 * _H, 11 * _H), (9 * _H, 13 * _H), (10.0, 50.0)),
    "industry": EvSessions(86400.0, 0.0, (0.7, 0.1), _FLAT, (6 * _H, 9 * _H), (7 * _H, 9 * _H), (8.0, 30.0)),
    "ev_station": EvSessions(
        3600.0, 0.0, (0.55, 0.5),
        tuple(_day(0.8, {(0, 5): 0.1, (6, 6): 0.4, (7, 9): 0.7, (16, 19): 1.0, (20, 21): 0.6, (22, 23): 0.3})),
        (0.0, 2700.0), (900.0, 2700.0), (15.0, 55.0)),
}


def ev_sessions(site_kind: str) -> EvSessions:
    return EV_SESSIONS.get(site_kind, EV_SESSIONS["household"])


BATTERY_HOURS = 2.0  # energy capacity = rated kW x hours
BATTERY_EFFICIENCY = 0.95  # one way
BATTERY_SOC_RANGE = (0.05, 0.95)
DAYLIGHT_FULL = 0.25  # clear-sky PV share above which daylight is full (sun ~15 degrees up)
DAYLIGHT_DIMMING = 0.8  # share of lighting switched off in full daylight
PV_DERATE = 0.85  # kWp -> AC kW at clear-sky normal irradiance (temperature, inverter, soiling)
PAYBACK = {"water_heater": 1.0, "hvac": 0.7, "heat_pump": 0.8}  # share of shed energy paid back after an event
