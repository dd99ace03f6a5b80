"""Simulated weather: outdoor temperature and cloudiness per VEN, clear-sky PV output.

Pure: callers pass the tick; the OU noise at tick k depends only on (seed, VEN index, k), never on sharding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from harness.core.fleet import hash64, key_int, mix64
from harness.meter.profiles import PV_DERATE

STREAM_TEMP = 101
STREAM_CLOUD = 102
STREAM_LOCAL = 103
_SQRT3 = math.sqrt(3.0)
MASK_INIT = (1 << 63) | 0x1D  # a tick key no real tick reaches: the stationary initial draw


@dataclass(frozen=True)
class Climate:
    """Where and when the fleet lives. The simulated instant is UTC; local time = UTC + utc_offset_h."""

    utc_offset_h: float = 0.0
    latitude_deg: float = 48.0
    mean_temp_c: float = 11.0
    seasonal_amp_c: float = 9.0  # warmest mid-July, coldest mid-January
    daily_amp_c: float = 4.5  # warmest 15:00 local
    regional_temp_sd_c: float = 3.0  # OU shared by the whole fleet (weather systems)
    regional_temp_tau_s: float = 36 * 3600.0
    local_temp_sd_c: float = 0.8  # OU per VEN
    local_temp_tau_s: float = 6 * 3600.0
    regional_cloud_sd: float = 1.0
    regional_cloud_tau_s: float = 4 * 3600.0
    local_cloud_sd: float = 0.5
    local_cloud_tau_s: float = 2700.0

    def __post_init__(self) -> None:
        if not -14.0 <= self.utc_offset_h <= 14.0:
            raise ValueError(f"climate: utc_offset_h must be within -14..14, got {self.utc_offset_h}")
        if not -66.0 <= self.latitude_deg <= 66.0:
            raise ValueError(f"climate: latitude_deg must be within -66..66, got {self.latitude_deg}")


def _unit_int(seed: int, stream: int, *keys: int) -> float:
    """A zero-mean, unit-variance (uniform) innovation from a keyed hash, as a Python float."""
    u = (key_int(seed, stream, *keys) >> 11) * (1.0 / (1 << 53))
    return _SQRT3 * (2.0 * u - 1.0)


class _Ou:
    """AR(1) samples of a scalar Ornstein-Uhlenbeck process on a grid, keyed by (seed, stream, grid index)."""

    def __init__(self, seed: int, stream: int, sd: float, tau_s: float, step_s: float) -> None:
        self.phi = math.exp(-step_s / tau_s)
        self.kick = sd * math.sqrt(1.0 - self.phi * self.phi)
        self.seed, self.stream = seed, stream
        self.value = sd * _unit_int(seed, stream, MASK_INIT)

    def step(self, index: int) -> None:
        self.value = self.phi * self.value + self.kick * _unit_int(self.seed, self.stream, index)


class _LocalOu:
    """Two AR(1) processes per VEN (temperature, cloudiness) fed by one 64-bit hash of (seed, VEN, grid index):
    its high and low 32-bit halves, read as signed words, are the two zero-mean uniform innovations.

    The next grid's values are prepared a slice of VENs at a time (`prepare`) and take effect together (`swap`),
    so the cost is spread over the ticks of a grid span while the values stay keyed by (VEN, grid) only.
    """

    def __init__(self, seed: int, ven_ids: npt.NDArray[np.uint64], sd: tuple[float, float],
                 tau_s: tuple[float, float], step_s: float, parts: int) -> None:
        n = ven_ids.shape[0]
        self.base = hash64(seed, STREAM_LOCAL, ven_ids)
        self.phi = [math.exp(-step_s / t) for t in tau_s]
        # unit-variance innovation = sqrt(3) x word / 2**31
        self.scale = [s * math.sqrt(1.0 - f * f) * _SQRT3 / 2.0**31 for s, f in zip(sd, self.phi)]
        init = mix64(self.base ^ np.uint64(MASK_INIT))  # grid -1: a stationary draw
        self.temp = self._high(init) * (sd[0] * _SQRT3 / 2.0**31)
        self.cloud = self._low(init) * (sd[1] * _SQRT3 / 2.0**31)
        self.next_temp = np.empty(n)
        self.next_cloud = np.empty(n)
        self.parts = [(j * n // parts, (j + 1) * n // parts) for j in range(parts)]
        self.prepare(0, 0, n)
        self.swap()

    @staticmethod
    def _high(h: npt.NDArray[np.uint64]) -> npt.NDArray[np.float64]:
        return (h.view(np.int64) >> np.int64(32)).astype(np.float64)

    @staticmethod
    def _low(h: npt.NDArray[np.uint64]) -> npt.NDArray[np.float64]:
        return (h << np.uint64(32)).view(np.int64).astype(np.float64) * (1.0 / 2.0**32)

    def prepare(self, grid: int, lo: int, hi: int) -> None:
        """Values at `grid` for VENs [lo, hi), from the current (grid - 1) ones."""
        if hi <= lo:
            return
        h = mix64(self.base[lo:hi] ^ np.uint64(grid))
        self.next_temp[lo:hi] = self.temp[lo:hi] * self.phi[0] + self._high(h) * self.scale[0]
        self.next_cloud[lo:hi] = self.cloud[lo:hi] * self.phi[1] + self._low(h) * self.scale[1]

    def swap(self) -> None:
        self.temp, self.next_temp = self.next_temp, self.temp
        self.cloud, self.next_cloud = self.next_cloud, self.cloud


class Weather:
    """Outdoor temperature and cloudiness: regional processes stepped every tick, per-VEN ones on a coarser grid.

    The regional state at tick k depends on (seed, k); the per-VEN state at grid g on (seed, VEN index, g).
    """

    def __init__(self, climate: Climate, seed: int, ven_ids: npt.NDArray[np.uint64], tick_s: float,
                 ticks_per_grid: int) -> None:
        c = climate
        self.climate = c
        self.ticks_per_grid = ticks_per_grid
        self.temp_regional = _Ou(seed, STREAM_TEMP, c.regional_temp_sd_c, c.regional_temp_tau_s, tick_s)
        self.cloud_regional = _Ou(seed, STREAM_CLOUD, c.regional_cloud_sd, c.regional_cloud_tau_s, tick_s)
        self.local = _LocalOu(seed, ven_ids, (c.local_temp_sd_c, c.local_cloud_sd),
                              (c.local_temp_tau_s, c.local_cloud_tau_s), tick_s * ticks_per_grid, ticks_per_grid)

    def step(self, tick: int) -> None:
        """Regional processes to tick `tick` (callers go 0, 1, 2, ...)."""
        self.temp_regional.step(tick)
        self.cloud_regional.step(tick)

    def after_tick(self, tick: int) -> bool:
        """Prepare a slice of the next grid's per-VEN values; True when they took effect (from tick + 1 on)."""
        grid, part = divmod(tick, self.ticks_per_grid)
        self.local.prepare(grid + 1, *self.local.parts[part])
        if part == self.ticks_per_grid - 1:
            self.local.swap()
            return True
        return False

    def temp_c(self, utc_s: float, ven_rows: npt.NDArray[np.intp] | npt.NDArray[np.int32] | None = None) -> npt.NDArray[np.float64]:
        """Outdoor temperature of the VEN rows (all if None) at `utc_s`."""
        local = self.local.temp if ven_rows is None else self.local.temp[ven_rows]
        return local + (climate_temp_c(self.climate, utc_s) + self.temp_regional.value)

    def clear_fraction(self, local_cloud: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Share of clear-sky PV output given per-VEN cloudiness (gathered by the caller) and the regional one."""
        x = local_cloud + self.cloud_regional.value
        x *= 0.32
        x += 0.72
        return np.clip(x, 0.12, 1.0, out=x)


def _local(c: Climate, utc_s: float) -> tuple[float, float]:
    """(day of year 0..365, local hour 0..24)."""
    local = utc_s + c.utc_offset_h * 3600.0
    days = local / 86400.0
    hour = (days - math.floor(days)) * 24.0
    doy = (days + 0.0) % 365.2425  # epoch is Jan 1st; good enough for climate cycles
    return doy, hour


def climate_temp_c(c: Climate, utc_s: float) -> float:
    """Noise-free outdoor temperature: seasonal and daily cosines."""
    doy, hour = _local(c, utc_s)
    sign = 1.0 if c.latitude_deg >= 0 else -1.0
    seasonal = -sign * c.seasonal_amp_c * math.cos(2.0 * math.pi * (doy - 16.0) / 365.2425)
    daily = c.daily_amp_c * math.cos(2.0 * math.pi * (hour - 15.0) / 24.0)
    return c.mean_temp_c + seasonal + daily


def clear_sky_fraction(c: Climate, utc_s: float) -> float:
    """PV AC output per kWp under a clear sky (0 at night)."""
    doy, hour = _local(c, utc_s)
    decl = math.radians(23.44) * math.sin(2.0 * math.pi * (284.0 + doy) / 365.2425)
    lat = math.radians(c.latitude_deg)
    hour_angle = math.radians(15.0 * (hour - 12.0))
    sin_elev = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(hour_angle)
    if sin_elev <= 0.0:
        return 0.0
    return float(PV_DERATE * sin_elev**1.15)
