"""What the live web dashboard shows: a bounded per-second timeline and the run as it stands, as one plain JSON
document (orjson bytes) that the dashboard's server thread hands out unchanged.

Edge helper (no I/O, no threads): called from the run's main thread. The timeline keeps at most MAX_POINTS points:
when full, neighbouring points merge (rates averaged, percentiles and loop lag the worse of the two), so a 2-hour
run keeps its whole shape at a coarser step instead of losing its start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from harness.core.fanout import aware_curve
from harness.core.profile import Profile
from harness.core.results import RunResults, WindowOp, summary
from harness.core.stages import bounds, target_at
from harness.core.targeting import targeted
from harness.core.thresholds import evaluate, gates, to_json

MAX_POINTS = 1200  # per series: 20 minutes at one second, a 2-hour run at 8 s
PCTS = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0))


@dataclass
class Timeline:
    """Columns of equal length over time; `step_s` seconds a point. Percentiles and keys ending in _max merge by
    max, others by mean (a missing value, None, is skipped)."""

    step_s: int = 1
    t: list[float] = field(default_factory=list)
    cols: dict[str, list[float | None]] = field(default_factory=dict)
    _pending: dict[str, list[float | None]] = field(default_factory=dict)
    _pending_t: float | None = None
    _pending_n: int = 0

    def add(self, t_s: float, values: Mapping[str, float | None]) -> None:
        """One second's values; kept as a point once `step_s` seconds have gathered."""
        if self._pending_t is None:
            self._pending_t = t_s
        for k, v in values.items():
            self._pending.setdefault(k, []).append(v)
        self._pending_n += 1
        if self._pending_n >= self.step_s:
            self._flush()

    def _flush(self) -> None:
        assert self._pending_t is not None
        n = len(self.t)
        for k, vs in self._pending.items():
            self.cols.setdefault(k, [_absent(k)] * n).append(_merge(k, vs))
        for k, col in self.cols.items():
            if len(col) == n:  # a key absent this time
                col.append(_absent(k))
        self.t.append(self._pending_t)
        self._pending, self._pending_t, self._pending_n = {}, None, 0
        if len(self.t) > MAX_POINTS:
            self._coarsen()

    def _coarsen(self) -> None:
        """Halve the points (pairs merged) and double the step."""
        self.t = self.t[::2]
        self.cols = {k: [_merge(k, col[i:i + 2]) for i in range(0, len(col), 2)] for k, col in self.cols.items()}
        self.step_s *= 2

    def as_json(self) -> dict[str, Any]:
        return {"step_s": self.step_s, "t": self.t, "cols": self.cols}


def _absent(key: str) -> float | None:
    """An operation absent from a window completed nothing in it (0/s); its percentiles are unknown (None)."""
    return 0.0 if key.endswith((".ok", ".errors")) else None


def _merge(key: str, vs: list[float | None]) -> float | None:
    got = [v for v in vs if v is not None]
    if not got:
        return None
    return max(got) if key.endswith(("_max", "p99", "p90", "p50")) else sum(got) / len(got)


def window_values(second: int, window: Mapping[str, WindowOp], p: Profile) -> dict[str, float | None]:
    """One window as timeline columns: the report rate target and achieved, per operation ok/s, errors/s and
    response-time percentiles (ms)."""
    vens = target_at(p.stages, second + 0.5) if p.stages else float(p.vens)
    out: dict[str, float | None] = {"target_rate": vens / p.interval_s}
    for op, w in window.items():
        out[f"{op}.ok"] = float(w.ok)
        out[f"{op}.errors"] = float(w.errors)
        h = w.hist("response")
        for name, q in PCTS:
            out[f"{op}.{name}"] = round(h.percentile_ns(q) / 1e6, 3) if h.total else None
    return out


def health_values(results: RunResults) -> dict[str, float | None]:
    """Each worker's latest health as timeline columns (loop lag merges by max)."""
    out: dict[str, float | None] = {}
    for wid, w in results.workers.items():
        if w.health is not None:
            out[f"w{wid}.loop_lag_max"] = round(w.health.loop_lag_max_ms, 3)
            out[f"w{wid}.cpu"] = round(w.health.cpu_percent, 1)
    return out


def workers(results: RunResults) -> list[dict[str, Any]]:
    rows = []
    for wid, w in sorted(results.workers.items()):
        h = w.health
        rows.append({"worker": wid, "pid": w.pid, "status": w.status, "vens": w.vens, "ready": w.vens_ready,
                     "ok": w.ok, "errors": w.errors, "loop_lag_ms": h.loop_lag_max_ms if h else None,
                     "loop_lag_max_ms": w.loop_lag_max_ms, "cpu_percent": h.cpu_percent if h else None,
                     "rss_mb": round(h.rss_bytes / 2**20, 1) if h else None, "in_flight": h.in_flight if h else None,
                     "backlog": h.backlog if h else None})
    return rows


def stages(p: Profile, elapsed_s: float) -> dict[str, Any]:
    rows = [{"stage": i + 1, "from_s": a, "to_s": b, "vens": v, "is_current": a <= elapsed_s < b}
            for i, (a, b, v) in enumerate(bounds(p.stages))]
    return {"rows": rows, "target_vens": round(target_at(p.stages, elapsed_s)) if p.stages else p.vens}


def thresholds(p: Profile, results: RunResults, elapsed_s: float) -> list[dict[str, Any]]:
    """Each threshold (or default gate) judged on the run so far: how it stands, not the verdict."""
    doc = summary(run={"name": p.name, "target_report_rate_per_s": p.target_rate_per_s}, results=results,
                  measured_s=max(1e-9, elapsed_s - results.warmup_windows), verdict="running", reasons=[], thresholds=[])
    return to_json(evaluate(gates(p.thresholds, bool(p.dr_events)), doc))


def fanout(p: Profile, results: RunResults, fired: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each DR event created so far: VENs targeted and aware, how they learned, the aware curve (≤101 points)."""
    out = []
    for i, f in enumerate(fired):
        ev = f.get("id")
        if not ev:
            continue
        times = results.aware.get(ev, [])
        n = f.get("targeted") or int(targeted(p.seed, i, np.arange(p.vens, dtype=np.int64), p.dr_events[i].share).sum())
        out.append({"id": ev, "at_s": f.get("at_s"), "targeted": n, "aware": len(times),
                    "learned_by": dict(results.learned.get(ev, {})),
                    "curve": aware_curve([t - f["created_epoch_s"] for t in times])})
    return out


def document(head: dict[str, Any], timeline: Timeline, health: Timeline, rest: dict[str, Any]) -> bytes:
    """The whole snapshot as JSON bytes (immutable: safe to hand to another thread)."""
    return orjson.dumps({**head, "timeline": timeline.as_json(), "health": health.as_json(), **rest},
                        option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
