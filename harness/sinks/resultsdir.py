"""The results folder of a run: created and checked before the run, written atomically during and after.

Edge (files). Every file is written to a temporary name and renamed into place, so a reader — or a run
killed mid-write — never sees a torn file.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from harness.core.histogram import Histogram
from harness.core.results import METRIC_KEYS, METRICS, SERIES_COLUMNS, RunResults, series_rows

MIN_FREE_BYTES = 64 * 2**20  # a run's folder (series, histograms, the embedded VTN's database) needs room to grow


class OutputError(RuntimeError):
    """The output folder cannot be used (exit code 2)."""


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


class RunDirError(ValueError):
    """A results folder that cannot be read back (exit code 2)."""


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


def read_run(run_dir: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, dict[str, Histogram]]]:
    """summary.json and the total histograms of a results folder; RunDirError names what is missing or broken."""
    path = Path(run_dir)
    if not path.is_dir():
        raise RunDirError(f"{path}: no such results folder")
    try:
        doc = orjson.loads((path / "summary.json").read_bytes())
    except FileNotFoundError:
        raise RunDirError(f"{path}: no summary.json (not a results folder?)") from None
    except orjson.JSONDecodeError as exc:
        raise RunDirError(f"{path / 'summary.json'}: not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("operations"), dict):
        raise RunDirError(f"{path / 'summary.json'}: not a harness summary (no operations)")
    try:
        hists = read_histograms(path / "histograms.npz")
    except FileNotFoundError:
        raise RunDirError(f"{path}: no histograms.npz") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise RunDirError(f"{path / 'histograms.npz'}: unreadable: {exc}") from None
    return doc, hists
