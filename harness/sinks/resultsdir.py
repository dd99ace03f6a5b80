"""The results folder of a run: created and checked before the run, written as it goes and atomically at its end.

Edge (files). Final files are written to a temporary name and renamed into place, so a reader never sees a torn
one; while the run goes, series.csv grows a window at a time (flushed), so a killed run leaves a readable file.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from harness.core.exits import OutputError
from harness.core.histogram import Histogram
from harness.core.results import METRIC_KEYS, METRICS, SERIES_COLUMNS, RunResults, WindowOp, series_rows, summary, window_rows
from harness.sinks.base import BaseSink, Outcome, RunInfo, Snapshot

MIN_FREE_BYTES = 64 * 2**20  # a run's folder (series, histograms, the embedded VTN's database) needs room to grow
PARTIAL_EVERY_S = 5.0  # a partial summary.json this often while the run goes


class ResultsWriter(BaseSink):
    """The results folder as a sink: series.csv rows appended as windows close, a partial summary.json every
    PARTIAL_EVERY_S, and at the end series.csv, histograms.npz, health.csv and summary.json written atomically."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._is_streaming = False
        self._next_partial_s = PARTIAL_EVERY_S

    def started(self, info: RunInfo) -> None:
        self._append([dict(zip(SERIES_COLUMNS, SERIES_COLUMNS))], mode="w")
        self._is_streaming = True

    def window_closed(self, second: int, window: Mapping[str, WindowOp]) -> None:
        if self._is_streaming:
            self._append(window_rows(second, window))

    def _append(self, rows: list[dict[str, Any]], mode: str = "a") -> None:
        # Opened per window (once a second), so nothing stays open if the run dies; flushed by the close.
        with open(self.run_dir / "series.csv", mode, encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=SERIES_COLUMNS, lineterminator="\n")
            for row in rows:
                w.writerow({k: ("" if v is None else v) for k, v in row.items()})

    def snapshot(self, snap: Snapshot) -> None:
        if snap.elapsed_s < self._next_partial_s:
            return
        self._next_partial_s = snap.elapsed_s + PARTIAL_EVERY_S
        doc = summary(run={"name": snap.profile.name, "partial": True}, results=snap.results,
                      measured_s=max(1e-9, snap.elapsed_s), verdict="running", reasons=[], thresholds=[])
        write_json(self.run_dir / "summary.json", doc)

    def finished(self, outcome: Outcome) -> None:
        self._is_streaming = False
        write_series(self.run_dir / "series.csv", outcome.results)  # complete, replacing the streamed file
        write_histograms(self.run_dir / "histograms.npz", outcome.results)
        write_health(self.run_dir / "health.csv", outcome.results)
        write_json(self.run_dir / "summary.json", outcome.summary)


def make_run_dir(out_dir: str | os.PathLike[str], name: str, now_epoch_s: float | None = None) -> Path:
    """`<out>/runs/<UTC time>-<name>/`, created now and proven writable."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now_epoch_s if now_epoch_s is not None else time.time()))
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"
    base = Path(out_dir) / "runs"
    try:
        base.mkdir(parents=True, exist_ok=True)
        for i in range(1000):
            path = base / (f"{stamp}-{safe}" if i == 0 else f"{stamp}-{safe}-{i}")
            try:
                path.mkdir()
                break
            except FileExistsError:
                continue
        else:  # pragma: no cover
            raise OutputError(f"output folder {base}: too many runs named {stamp}-{safe}")
        write_bytes_atomic(path / ".writable", b"")
        (path / ".writable").unlink()
        free = shutil.disk_usage(path).free
    except OSError as exc:
        raise OutputError(f"output folder {base} is not writable: {exc.strerror or exc}") from None
    if free < MIN_FREE_BYTES:
        path.rmdir()
        raise OutputError(f"output folder {base} is full: {free / 2**20:.1f} MiB free, a run needs at least "
                          f"{MIN_FREE_BYTES / 2**20:.0f} MiB")
    return path


def write_bytes_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json(path: Path, doc: Any) -> None:
    write_bytes_atomic(path, orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY) + b"\n")


def write_series(path: Path, results: RunResults) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SERIES_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in series_rows(results):
        w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    write_bytes_atomic(path, buf.getvalue().encode())


HEALTH_COLUMNS = ("t_s", "worker", "loop_lag_max_ms", "loop_lag_mean_ms", "cpu_percent", "rss_mb", "open_fds", "in_flight", "backlog")


def write_health(path: Path, results: RunResults) -> None:
    """One row per worker per window: the generator's own health over time."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEALTH_COLUMNS)
    for ws in sorted(results.workers.values(), key=lambda x: x.worker_id):
        for t, h in enumerate(ws.history):
            w.writerow([t, ws.worker_id, round(h.loop_lag_max_ms, 3), round(h.loop_lag_mean_ms, 3), round(h.cpu_percent, 1),
                        round(h.rss_bytes / 2**20, 1), h.open_fds, h.in_flight, h.backlog])
    write_bytes_atomic(path, buf.getvalue().encode())


def write_histograms(path: Path, results: RunResults) -> None:
    """Totals and per-second windows, sparse, so later commands can merge runs or windows exactly."""
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    for op, t in results.totals.items():
        for m in METRICS:
            idx, cnt, lo, hi = t.hist(m).to_sparse()
            arrays[f"total/{op}/{m}/idx"] = idx
            arrays[f"total/{op}/{m}/count"] = cnt
            arrays[f"total/{op}/{m}/minmax"] = np.array([lo, hi], dtype=np.int64)
    for w, ops in results.windows.items():
        for op, wt in ops.items():
            for m in METRICS:
                idx, cnt, lo, hi = wt.hist(m).to_sparse()
                if idx.size:
                    arrays[f"window/{w}/{op}/{m}/idx"] = idx
                    arrays[f"window/{w}/{op}/{m}/count"] = cnt
                    arrays[f"window/{w}/{op}/{m}/minmax"] = np.array([lo, hi], dtype=np.int64)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
    write_bytes_atomic(path, buf.getvalue())


def read_histograms(path: Path) -> dict[str, dict[str, Histogram]]:
    """The total histograms of histograms.npz: operation -> response_time|service_time|start_lag -> Histogram."""
    out: dict[str, dict[str, Histogram]] = {}
    with np.load(path) as data:
        for key in data.files:
            parts = key.split("/")
            if len(parts) != 4 or parts[0] != "total" or parts[3] != "idx" or parts[2] not in METRIC_KEYS:
                continue
            _, op, m, _ = parts
            lo, hi = (int(v) for v in data[f"total/{op}/{m}/minmax"])
            h = Histogram.from_sparse((data[key], data[f"total/{op}/{m}/count"], lo, hi))
            out.setdefault(op, {})[METRIC_KEYS[m]] = h
    return out
