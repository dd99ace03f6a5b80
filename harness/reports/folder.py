"""The one reader of a results folder: summary.json, and the series, health and histograms beside it, as the run
report, the capacity report and `harness compare` read them.

Edge (files). Only summary.json is required for a report (a killed run may have nothing else); compare needs the
histograms too. Every unreadable file is a one-line error naming the file.
"""

from __future__ import annotations

import csv
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from harness.core.exits import HarnessError, ReportError, RunDirError
from harness.core.histogram import Histogram
from harness.sinks.resultsdir import read_histograms

FloatArray = npt.NDArray[np.float64]
# Okabe-Ito based: distinguishable for colour-blind readers and in greyscale print; the main operation is blue.
OP_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#8C6D31", "#7F7F7F", "#393B79")
Totals = dict[str, dict[str, Histogram]]  # op -> response_time|service_time|start_lag -> Histogram


@dataclass
class RunData:
    """What a run folder holds, as arrays: series per operation on a dense second axis, health per worker."""

    run_dir: Path
    summary: dict[str, Any]
    seconds: FloatArray = field(default_factory=lambda: np.zeros(0))
    series: dict[str, dict[str, FloatArray]] = field(default_factory=dict)
    health: dict[int, dict[str, FloatArray]] = field(default_factory=dict)
    totals: Totals = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @property
    def operations(self) -> list[str]:
        """Operations in display order: the main one first, then by name."""
        names = set(self.summary.get("operations", {})) | set(self.series)
        main = self.main_operation
        return sorted(names, key=lambda op: (op != main, op))

    @property
    def main_operation(self) -> str:
        ops: dict[str, Any] = self.summary.get("operations", {})
        if "report" in ops or "report" in self.series:
            return "report"
        return max(ops, key=lambda op: ops[op].get("ok", 0), default="report")

    @property
    def warmup_s(self) -> float:
        return float((self.summary.get("warmup") or {}).get("seconds") or 0.0)

    def colour(self, op: str) -> str:
        ops = self.operations
        return OP_COLOURS[ops.index(op) % len(OP_COLOURS)] if op in ops else "#7F7F7F"


def read_summary(run_dir: str | os.PathLike[str], error: type[HarnessError] = RunDirError,
                 folder: str = "results folder") -> dict[str, Any]:
    """summary.json of a results folder; `error` (named for the command that reads) says what is wrong."""
    path = Path(run_dir)
    if not path.is_dir():
        raise error(f"{path}: no such {folder}")
    summary = path / "summary.json"
    try:
        doc = orjson.loads(summary.read_bytes())
    except FileNotFoundError:
        raise error(f"{path}: no summary.json (not a {folder}?)") from None
    except OSError as exc:
        raise error(f"{summary}: cannot read: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise error(f"{summary}: not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("operations"), dict):
        raise error(f"{summary}: not a harness summary (no \"operations\" object)")
    return doc


def read_run(run_dir: str | os.PathLike[str]) -> tuple[dict[str, Any], Totals]:
    """summary.json and the total histograms, both required (what `harness compare` judges)."""
    path = Path(run_dir)
    doc = read_summary(path)
    try:
        hists = read_histograms(path / "histograms.npz")
    except FileNotFoundError:
        raise RunDirError(f"{path}: no histograms.npz") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise RunDirError(f"{path / 'histograms.npz'}: unreadable: {exc}") from None
    return doc, hists


def load_run(run_dir: Path) -> RunData:
    """Everything a report shows; only summary.json is required (a killed run may have nothing else)."""
    run_dir = Path(run_dir)
    data = RunData(run_dir, read_summary(run_dir, ReportError, "run folder"))
    _load_series(data, run_dir / "series.csv")
    _load_health(data, run_dir / "health.csv")
    _load_histograms(data, run_dir / "histograms.npz")
    return data


def _read_csv(path: Path, data: RunData) -> list[dict[str, str]] | None:
    if not path.is_file():
        data.missing.append(path.name)
        return None
    try:
        with path.open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ReportError(f"{path}: cannot read: {exc}") from None


def _num(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def nans(n: int) -> FloatArray:
    return np.full(n, math.nan)


def _load_series(data: RunData, path: Path) -> None:
    rows = _read_csv(path, data)
    if not rows:
        return
    try:
        ts = [int(r["t_s"]) for r in rows]
    except (KeyError, ValueError) as exc:
        raise ReportError(f"{path}: bad t_s column: {exc}") from None
    lo, hi = min(ts), max(ts)
    data.seconds = np.arange(lo, hi + 1, dtype=np.float64)
    columns = [c for c in rows[0] if c not in ("t_s", "operation")]
    for t, r in zip(ts, rows):
        op = r.get("operation", "")
        if op.startswith("fault:"):  # a fault's band: drawn from summary.json faults (plots.time_axis)
            continue
        cols = data.series.get(op)
        if cols is None:
            cols = data.series[op] = {
                c: (np.zeros if c in ("ok", "errors") else nans)(data.seconds.size) for c in columns
            }
        for c in columns:
            cols[c][t - lo] = _num(r.get(c))


def _load_health(data: RunData, path: Path) -> None:
    rows = _read_csv(path, data)
    if not rows:
        return
    by_worker: dict[int, list[dict[str, str]]] = {}
    for r in rows:
        try:
            by_worker.setdefault(int(r["worker"]), []).append(r)
        except (KeyError, ValueError) as exc:
            raise ReportError(f"{path}: bad worker column: {exc}") from None
    for wid, wrows in sorted(by_worker.items()):
        data.health[wid] = {c: np.array([_num(r.get(c)) for r in wrows]) for c in wrows[0] if c != "worker"}


def _load_histograms(data: RunData, path: Path) -> None:
    if not path.is_file():
        data.missing.append(path.name)
        return
    try:
        data.totals = read_histograms(path)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ReportError(f"{path}: unreadable: {exc}") from None
