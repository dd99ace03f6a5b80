"""Compare two runs: per operation, latency percentiles from the saved histograms, rates and error rates from
the summaries; each change marked a regression or an improvement when it exceeds the tolerance.

Pure: callers load the folders (resultsdir.read_run) and pass the data in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.core.histogram import PERCENTILES, Histogram

STATS: tuple[tuple[str, float | None], ...] = (*PERCENTILES, ("max", None))
REGRESSION, IMPROVEMENT = "regression", "improvement"


@dataclass(frozen=True)
class RunData:
    summary: Mapping[str, Any]
    histograms: Mapping[str, Mapping[str, Histogram]]  # op -> response_time|service_time|start_lag -> Histogram


@dataclass(frozen=True)
class Row:
    op: str
    quantity: str  # e.g. "service_time.p99", "rate_per_s", "error_rate"
    unit: str  # ms | per_s | fraction
    base: float | None
    new: float | None
    change_pct: float | None  # None: no base to compare against
    mark: str  # regression | improvement | "" (within tolerance, below the noise floor, or not judged)
    note: str = ""  # why a change was not judged

    @property
    def is_regression(self) -> bool:
        return self.mark == REGRESSION


@dataclass(frozen=True)
class Settings:
    tolerance: float = 0.10  # relative change that counts (0.10 = 10 %)
    # start_lag is the generator's own timer jitter at ms scale; what the VTN adds to it already shows in
    # response_time, so it is compared only on request.
    metrics: tuple[str, ...] = ("response_time", "service_time")
    min_ms: float = 1.0  # latency changes smaller than this (absolute) are noise
    min_error_rate: float = 0.001  # error-rate changes smaller than 0.1 percentage point are noise
    min_samples: int = 100  # an operation's latencies are judged only with this many samples in both runs
    min_tail: int = 10  # a percentile is judged only with this many samples above it in both runs


def _stat_ms(h: Histogram | None, q: float | None) -> tuple[float | None, int]:
    """The statistic in ms and how many samples lie beyond it (0 for max: a single sample)."""
    if h is None or h.total == 0:
        return None, 0
    if q is None:
        return h.max_ns / 1e6, 0
    return h.percentile_ns(q) / 1e6, int(h.total * (100.0 - q) / 100.0 + 1e-9)  # 100 - 99.9 is not exact


def _change(base: float | None, new: float | None) -> float | None:
    if base is None or new is None or base == 0:
        return None
    return (new - base) / base * 100.0


def _judge(base: float | None, new: float | None, tolerance: float, floor: float, *, higher_is_worse: bool) -> str:
    if base is None or new is None or abs(new - base) < floor:
        return ""
    grew, shrank = new > base * (1 + tolerance), new < base * (1 - tolerance)
    worse, better = (grew, shrank) if higher_is_worse else (shrank, grew)
    return REGRESSION if worse else IMPROVEMENT if better else ""


def compare(base: RunData, new: RunData, settings: Settings = Settings()) -> list[Row]:
    """One row per operation and quantity, operations in name order; see Settings for what counts."""
    s = settings
    base_ops: Mapping[str, Any] = base.summary.get("operations") or {}
    new_ops: Mapping[str, Any] = new.summary.get("operations") or {}
    rows: list[Row] = []
    for op in sorted(set(base_ops) | set(new_ops) | set(base.histograms) | set(new.histograms)):
        for metric in s.metrics:
            hb, hn = base.histograms.get(op, {}).get(metric), new.histograms.get(op, {}).get(metric)
            for name, q in STATS:
                (vb, tail_b), (vn, tail_n) = _stat_ms(hb, q), _stat_ms(hn, q)
                note = _unjudged(hb, hn, q, tail_b, tail_n, s)
                mark = "" if note else _judge(vb, vn, s.tolerance, s.min_ms, higher_is_worse=True)
                rows.append(Row(op, f"{metric}.{name}", "ms", vb, vn, _change(vb, vn), mark, note))
        rb, rn = _field(base_ops, op, "rate_per_s"), _field(new_ops, op, "rate_per_s")
        rows.append(Row(op, "rate_per_s", "per_s", rb, rn, _change(rb, rn),
                        _judge(rb, rn, s.tolerance, 0.0, higher_is_worse=False)))
        eb, en = _field(base_ops, op, "error_rate"), _field(new_ops, op, "error_rate")
        rows.append(Row(op, "error_rate", "fraction", eb, en, _change(eb, en),
                        _error_mark(eb, en, s)))
    return rows + _fault_rows(base.summary, new.summary, s)


def _fault_rows(base: Mapping[str, Any], new: Mapping[str, Any], s: Settings) -> list[Row]:
    """Per timed fault both runs had (summary.json faults): the peaks on the VTN after it, and the recovery time."""
    fb, fn = ((d.get("faults") or {}).get("faults") or [] for d in (base, new))
    rows: list[Row] = []
    for b, n in zip(fb, fn):
        op = f"fault:{b['index']} {b['label']}"
        for name, unit, scale in (("peak_ok_per_s", "per_s", 1.0), ("peak_token_requests_per_s", "per_s", 1.0),
                                  ("recovery_s", "ms", 1000.0)):
            vb, vn = (None if d.get(name) is None else float(d[name]) * scale for d in (b, n))
            rows.append(Row(op, name.removesuffix("_s") if unit == "ms" else name, unit, vb, vn, _change(vb, vn),
                            _judge(vb, vn, s.tolerance, 0.0, higher_is_worse=True)))
    return rows


def _unjudged(hb: Histogram | None, hn: Histogram | None, q: float | None, tail_b: int, tail_n: int, s: Settings) -> str:
    """Why a latency statistic is shown but not judged ("" when it is judged): too few samples to be stable."""
    if hb is None or hn is None or hb.total == 0 or hn.total == 0:
        return ""  # no mark anyway: a value is missing
    if min(hb.total, hn.total) < s.min_samples:
        return f"fewer than {s.min_samples} samples"
    if q is None:
        return "one sample"
    if min(tail_b, tail_n) < s.min_tail:
        return f"fewer than {s.min_tail} samples above it"
    return ""


def _error_mark(base: float | None, new: float | None, s: Settings) -> str:
    if base is None or new is None or abs(new - base) < s.min_error_rate:
        return ""
    if base == 0:  # any growth from zero beyond the floor is a regression; the tolerance is relative
        return REGRESSION
    return _judge(base, new, s.tolerance, s.min_error_rate, higher_is_worse=True)


def _field(ops: Mapping[str, Any], op: str, name: str) -> float | None:
    entry = ops.get(op)
    if not entry or entry.get(name) is None:
        return None
    return float(entry[name])


def regressions(rows: Sequence[Row]) -> list[Row]:
    return [r for r in rows if r.is_regression]
