"""Replay of measured load curves from CSV: parse, assign curves to loads, and average them over ticks.

Pure: the parse works on text (`parse_csv`); `read_csv` only reads the stream or path it is given.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from os import PathLike
from typing import TextIO

import numpy as np
import numpy.typing as npt

from harness.core.fleet import LOAD_KINDS
from harness.core.keys import unknown_key


@dataclass(frozen=True, eq=False)
class ReplayCurves:
    """Curves sampled at shared instants; linear between samples, held flat before the first and after the last."""

    times_s: npt.NDArray[np.float64]  # epoch seconds, strictly increasing
    names: tuple[str, ...]
    power_kw: npt.NDArray[np.float64]  # shape (len(times_s), len(names))
    cum_kwh: npt.NDArray[np.float64] = field(init=False, repr=False)  # energy from times_s[0] to each sample

    def __post_init__(self) -> None:
        t, p = self.times_s, self.power_kw
        if t.ndim != 1 or t.shape[0] < 1 or p.shape != (t.shape[0], len(self.names)):
            raise ValueError(f"replay: power_kw must have shape ({t.shape[0]}, {len(self.names)}), got {p.shape}")
        if t.shape[0] > 1 and not np.all(np.diff(t) > 0.0):
            raise ValueError("replay: times_s must increase strictly")
        cum = np.zeros_like(p)
        if t.shape[0] > 1:
            np.cumsum(0.5 * (p[1:] + p[:-1]) * (np.diff(t) / 3600.0)[:, None], axis=0, out=cum[1:])
        object.__setattr__(self, "cum_kwh", cum)

    def at(self, epoch_s: float) -> npt.NDArray[np.float64]:
        """Interpolated kW of every curve at one instant."""
        t, p = self.times_s, self.power_kw
        if t.shape[0] == 1 or epoch_s <= t[0]:
            return np.array(p[0], dtype=np.float64)
        if epoch_s >= t[-1]:
            return np.array(p[-1], dtype=np.float64)
        i = int(np.searchsorted(t, epoch_s, side="right")) - 1
        w = (epoch_s - t[i]) / (t[i + 1] - t[i])
        return np.asarray(p[i] * (1.0 - w) + p[i + 1] * w, dtype=np.float64)

    def integral_kwh(self, epoch_s: float) -> npt.NDArray[np.float64]:
        """Exact energy of every curve from times_s[0] to `epoch_s` (negative before times_s[0])."""
        t, p = self.times_s, self.power_kw
        if epoch_s <= t[0] or t.shape[0] == 1:
            return np.asarray(p[0] * ((epoch_s - t[0]) / 3600.0), dtype=np.float64)
        if epoch_s >= t[-1]:
            return np.asarray(self.cum_kwh[-1] + p[-1] * ((epoch_s - t[-1]) / 3600.0), dtype=np.float64)
        i = int(np.searchsorted(t, epoch_s, side="right")) - 1
        partial = 0.5 * (p[i] + self.at(epoch_s)) * ((epoch_s - t[i]) / 3600.0)
        return np.asarray(self.cum_kwh[i] + partial, dtype=np.float64)

    def mean_kw(self, t0_s: float, t1_s: float) -> npt.NDArray[np.float64]:
        """Mean kW of every curve over [t0, t1): the integral of the linear interpolant, so energy is exact."""
        return (self.integral_kwh(t1_s) - self.integral_kwh(t0_s)) * (3600.0 / (t1_s - t0_s))


def _parse_time(cell: str, where: str) -> float:
    text = cell.strip()
    if not text:
        raise ValueError(f"{where}: empty timestamp")
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise ValueError(f"{where}: timestamp must be finite, got {text!r}")
        return value
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{where}: timestamp must be RFC 3339 or epoch seconds, got {text!r}") from None
    if when.tzinfo is None:
        raise ValueError(f"{where}: timestamp needs a UTC offset (e.g. Z or +01:00), got {text!r}")
    return when.timestamp()


def parse_csv(text: str, *, source: str = "<csv>") -> ReplayCurves:
    """Parse CSV text: a header, then rows of (timestamp, kW per curve). Errors name the row and column."""
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))  # spreadsheets like a BOM
    while rows and not any(c.strip() for c in rows[-1]):
        rows.pop()
    if not rows:
        raise ValueError(f"replay: {source}: empty file, expected a header row")
    header = [c.strip() for c in rows[0]]
    if len(header) < 2:
        raise ValueError(f"replay: {source} row 1: need a timestamp column and at least one curve column")
    names = header[1:]
    for col, name in enumerate(names, start=2):
        if not name:
            raise ValueError(f"replay: {source} row 1 column {col}: empty curve name")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"replay: {source} row 1: duplicate curve name {dup!r}")
    if len(rows) < 2:
        raise ValueError(f"replay: {source}: no data rows after the header")
    times = np.empty(len(rows) - 1)
    power = np.empty((len(rows) - 1, len(names)))
    for r, row in enumerate(rows[1:]):
        line = r + 2
        if len(row) != len(header):
            raise ValueError(f"replay: {source} row {line}: expected {len(header)} columns, got {len(row)}")
        times[r] = _parse_time(row[0], f"replay: {source} row {line} column {header[0] or 1!r}")
        if r and times[r] <= times[r - 1]:
            raise ValueError(f"replay: {source} row {line} column {header[0] or 1!r}: timestamps must increase")
        for c, cell in enumerate(row[1:]):
            where = f"replay: {source} row {line} column {names[c]!r}"
            try:
                value = float(cell)
            except ValueError:
                raise ValueError(f"{where}: expected a number (kW), got {cell.strip()!r}") from None
            if not math.isfinite(value):
                raise ValueError(f"{where}: expected a finite number (kW), got {cell.strip()!r}")
            power[r, c] = value
    return ReplayCurves(times_s=times, names=tuple(names), power_kw=power)


def read_csv(source: str | PathLike[str] | TextIO) -> ReplayCurves:
    """Read a CSV from a path or an open text stream, then `parse_csv` it."""
    if isinstance(source, (str, PathLike)):
        with open(source, encoding="utf-8", newline="") as f:
            return parse_csv(f.read(), source=str(source))
    return parse_csv(source.read(), source=getattr(source, "name", "<stream>"))


@dataclass(frozen=True, eq=False)
class Replay:
    """Which curve drives which loads: by load kind, or by global load id (which wins)."""

    curves: ReplayCurves
    by_kind: Mapping[str, str] = field(default_factory=dict)
    by_load_id: Mapping[int, str] = field(default_factory=dict)
    scale_to_rated: bool = False  # curve / peak |kW| x the load's rated_kw, instead of absolute kW

    def __post_init__(self) -> None:
        for kind, name in self.by_kind.items():
            if kind not in LOAD_KINDS:
                raise ValueError(f"replay: by_kind key must be one of {', '.join(LOAD_KINDS)}, got {kind!r}")
            if name not in self.curves.names:
                raise ValueError(f"replay: by_kind[{kind!r}] names no curve in the CSV, got {name!r}")
        for load_id, name in self.by_load_id.items():
            if name not in self.curves.names:
                raise ValueError(f"replay: by_load_id[{load_id}] names no curve in the CSV, got {name!r}")

    def assign(self, load_kind: npt.NDArray[np.int16], load_id: npt.NDArray[np.uint64],
               rated_kw: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp],
                                                           npt.NDArray[np.float64]]:
        """(load rows, curve column, scale) for every replayed load of a shard."""
        curve = np.full(load_kind.shape[0], -1, dtype=np.intp)
        for kind, name in self.by_kind.items():
            curve[load_kind == LOAD_KINDS.index(kind)] = self.curves.names.index(name)
        if self.by_load_id:
            ids = np.fromiter(self.by_load_id.keys(), dtype=np.uint64, count=len(self.by_load_id))
            cols = np.array([self.curves.names.index(n) for n in self.by_load_id.values()], dtype=np.intp)
            order = np.argsort(ids)
            ids, cols = ids[order], cols[order]
            pos = np.clip(np.searchsorted(ids, load_id), 0, ids.shape[0] - 1)
            hit = ids[pos] == load_id
            curve[hit] = cols[pos[hit]]
        rows = np.flatnonzero(curve >= 0)
        cols_of = curve[rows]
        if self.scale_to_rated:
            peak = np.abs(self.curves.power_kw).max(axis=0)
            peak[peak == 0.0] = 1.0
            scale = rated_kw[rows] / peak[cols_of]
        else:
            scale = np.ones(rows.shape[0])
        return rows, cols_of, scale


REPLAY_ALIGN = ("file", "now")


@dataclass(frozen=True)
class ReplaySpec:
    """A profile's `fleet.replay`: which CSV drives which loads. The file is read at run set-up; its curves go to
    the workers in their specs (a worker on another machine needs no copy of it)."""

    file: str
    by_kind: tuple[tuple[str, str], ...] = ()  # load kind -> curve name; empty: every curve named after a load kind
    scale_to_rated: bool = False  # curve / its peak |kW| x each load's rated kW, instead of absolute kW
    align: str = "file"  # "file": simulated time starts at the file's first sample; "now": at the run's start

    def __post_init__(self) -> None:
        if not self.file.strip():
            raise ValueError("fleet.replay.file must name a CSV file")
        if self.align not in REPLAY_ALIGN:
            raise ValueError(f"fleet.replay.align must be one of {', '.join(REPLAY_ALIGN)}, got {self.align!r}")
        for kind, _ in self.by_kind:
            if kind not in LOAD_KINDS:
                raise ValueError(f"fleet.replay.by_kind key must be one of {', '.join(LOAD_KINDS)}, got {kind!r}")

    def bind(self, curves: ReplayCurves) -> Replay:
        """The Replay of these curves; without by_kind, each curve named after a load kind drives that kind."""
        by_kind = dict(self.by_kind) or {n: n for n in curves.names if n in LOAD_KINDS}
        if not by_kind:
            raise ValueError(f"replay: {self.file} has no curve named after a load kind ({', '.join(LOAD_KINDS)}): "
                             "name columns so, or map them in fleet.replay.by_kind")
        return Replay(curves, by_kind=by_kind, scale_to_rated=self.scale_to_rated)

    def sim_start_epoch_s(self, curves: ReplayCurves) -> float | None:
        """Where simulated time starts: the file's first sample ("file"), or None for the run's start ("now")."""
        return float(curves.times_s[0]) if self.align == "file" else None


def replay_spec(key: str, value: object) -> ReplaySpec:
    """A profile's `fleet.replay = "loads.csv"`, or its table: file, by_kind = {kind = "curve"}, scale_to_rated,
    align. A ValueError names the key."""
    if isinstance(value, str):
        value = {"file": value}
    if not isinstance(value, dict):
        raise ValueError(f"{key} must be a CSV file name or a table with file (and by_kind, scale_to_rated, align), "
                         f"got {value!r}")
    types = {"file": str, "by_kind": dict, "scale_to_rated": bool, "align": str}
    for k, v in value.items():
        if k not in types:
            raise ValueError(unknown_key(f"{key}.{k}", (f"{key}.{n}" for n in types)))
        if not isinstance(v, types[k]):
            raise ValueError(f"{key}.{k} must be {'a table' if types[k] is dict else types[k].__name__}, got {v!r}")
    if "file" not in value:
        raise ValueError(f"{key}.file is required (the CSV of measured curves)")
    by_kind = value.get("by_kind", {})
    for kind, curve in by_kind.items():
        if not isinstance(curve, str):
            raise ValueError(f"{key}.by_kind.{kind} must be a curve name (a CSV column), got {curve!r}")
    return ReplaySpec(value["file"], tuple(sorted(by_kind.items())), value.get("scale_to_rated", False),
                      value.get("align", "file"))
