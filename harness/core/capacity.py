"""Capacity planning, the pure part: the step plan, one step's figures from its per-second windows, and whether a
step has settled. The answer drawn from the steps (largest fleet, breach, knee) is `harness.core.knee`.

Pure: no clock, no I/O; the driver (`harness.run.stepper`) runs the steps and passes their merged windows in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.core.exits import (
    CapacityError as CapacityError,  # raised here, importable from here
)
from harness.core.histogram import Histogram
from harness.core.keys import unknown_key
from harness.core.results import METRIC_KEYS, METRICS, OpTotals, RunResults, op_summary
from harness.core.thresholds import Threshold, ThresholdResult, evaluate, from_spec
from harness.core.units import format_duration, parse_duration

DEFAULT_SLO = ("report.response_time.p99 < 500ms", "errors.rate < 1%")
STABLE, SETTLING, GROWING, NO_DATA = "stable", "settling", "growing", "no data"
STABILITY_FLOOR_MS = 5.0  # median changes below this are jitter, whatever the relative change
PCTS = ("p50", "p90", "p99", "max")


@dataclass(frozen=True)
class CapacityPlan:
    """How to step the fleet: start, then +step_vens (or ×step_factor) up to and including max_vens.

    Each step runs warm-up (excluded: the first interval provisions the VENs) then holds until the last `hold_s`
    seconds are stable, at most `settle_s` longer; its figures and SLO are judged on those last `hold_s` seconds.
    """

    start_vens: int = 1000
    step_vens: int = 1000  # additive step; 0 when step_factor is used
    step_factor: float = 0.0  # multiplicative step (> 1); 0 when step_vens is used
    max_vens: int = 20000
    interval_s: float = 15.0
    hold_s: float = 30.0
    warmup_s: float = 30.0
    settle_s: float = 60.0
    slo: tuple[Threshold, ...] = field(default_factory=lambda: tuple(from_spec(s) for s in DEFAULT_SLO))
    knee_elasticity: float = 2.0
    stability: float = 0.1  # the hold's second-half median may differ from its first half by this fraction

    def __post_init__(self) -> None:
        object.__setattr__(self, "slo", tuple(from_spec(s) for s in self.slo))
        if self.start_vens <= 0:
            raise CapacityError(f"capacity.start must be > 0, got {self.start_vens}")
        if self.max_vens < self.start_vens:
            raise CapacityError(f"capacity.max must be >= capacity.start ({self.start_vens}), got {self.max_vens}")
        if (self.step_vens > 0) == (self.step_factor > 0):
            raise CapacityError("capacity.step must be one of a VEN count (500) or a factor (x1.5)")
        if self.step_vens < 0:
            raise CapacityError(f"capacity.step must be > 0, got {self.step_vens}")
        if self.step_factor and not self.step_factor > 1.0:
            raise CapacityError(f"capacity.step factor must be > 1, got x{self.step_factor:g}")
        if not self.interval_s > 0:
            raise CapacityError(f"behaviour.interval must be > 0, got {self.interval_s}")
        if not self.hold_s >= 2.0:
            raise CapacityError(f"capacity.hold must be >= 2s (two one-second windows), got {format_duration(self.hold_s)}")
        if self.warmup_s < 0 or self.settle_s < 0:
            raise CapacityError("capacity.warmup and capacity.settle must be >= 0")
        if not self.slo:
            raise CapacityError("capacity.slo must hold at least one threshold expression")
        if not self.knee_elasticity > 1.0:
            raise CapacityError(f"capacity.knee_elasticity must be > 1, got {self.knee_elasticity}")

    def fleet_sizes(self) -> list[int]:
        sizes = [self.start_vens]
        while sizes[-1] < self.max_vens:
            n = sizes[-1]
            nxt = n + self.step_vens if self.step_vens else max(n + 1, round(n * self.step_factor))
            sizes.append(min(nxt, self.max_vens))
        return sizes

    @property
    def hold_windows(self) -> int:
        return int(math.ceil(self.hold_s))

    @property
    def warmup_windows(self) -> int:
        return int(math.ceil(self.warmup_s))

    @property
    def step_duration_s(self) -> float:
        """The schedule of one step: warm-up, hold, and the most it may wait for the hold to settle."""
        return self.warmup_windows + self.hold_windows + self.settle_s

    def describe_step(self) -> str:
        return f"+{self.step_vens}" if self.step_vens else f"x{self.step_factor:g}"

    def to_json(self) -> dict[str, Any]:
        return {
            "start_vens": self.start_vens,
            "step": self.describe_step(),
            "max_vens": self.max_vens,
            "fleet_sizes": self.fleet_sizes(),
            "interval_s": self.interval_s,
            "hold_s": self.hold_s,
            "warmup_s": self.warmup_s,
            "settle_s": self.settle_s,
            "slo": [t.expr for t in self.slo],
            "knee_elasticity": self.knee_elasticity,
            "stability": self.stability,
        }


# ---- parsing ----------------------------------------------------------------------------------------------------
def parse_step(value: Any, what: str = "capacity.step") -> tuple[int, float]:
    """`500` (add 500 VENs a step) → (500, 0); `x1.5` or `*1.5` (multiply) → (0, 1.5)."""
    if isinstance(value, bool):
        raise CapacityError(f"{what} must be a VEN count like 500 or a factor like x1.5, got {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise CapacityError(f"{what} must be > 0, got {value}")
        return value, 0.0
    text = str(value).strip().lower()
    if text[:1] in ("x", "*", "×"):
        try:
            factor = float(text[1:])
        except ValueError:
            raise CapacityError(f"{what} must be a VEN count like 500 or a factor like x1.5, got {value!r}") from None
        if not factor > 1.0 or math.isinf(factor):
            raise CapacityError(f"{what} factor must be > 1, got {value!r}")
        return 0, factor
    if text.isdigit() and int(text) > 0:
        return int(text), 0.0
    raise CapacityError(f"{what} must be a VEN count like 500 or a factor like x1.5, got {value!r}")


_PLAN_KEYS = ("start", "step", "max", "hold", "warmup", "settle", "slo", "knee_elasticity", "stability")


def _count(key: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise CapacityError(f"capacity.{key} must be an integer, got {value!r}")
    return value


def _dur(key: str, value: Any) -> float:
    try:
        return parse_duration(value, f"capacity.{key}")
    except ValueError as exc:
        raise CapacityError(str(exc)) from None


def plan_from_mapping(doc: Mapping[str, Any], *, interval_s: float, default_warmup_s: float = 0.0, **flags: Any) -> CapacityPlan:
    """A plan from a profile's `[capacity]` table, then flags (None: not given). Warm-up: flag, else
    `capacity.warmup`, else the profile's `run.warmup` (default_warmup_s) — at least two intervals (the first
    interval provisions the fleet, the second lets its backlog clear)."""
    unknown = sorted(set(doc) - set(_PLAN_KEYS))
    if unknown:
        raise CapacityError(unknown_key(f"capacity.{unknown[0]}", (f"capacity.{k}" for k in _PLAN_KEYS)))
    values: dict[str, Any] = {}
    if "start" in doc:
        values["start_vens"] = _count("start", doc["start"])
    if "max" in doc:
        values["max_vens"] = _count("max", doc["max"])
    if "step" in doc:
        values["step_vens"], values["step_factor"] = parse_step(doc["step"])
    for key in ("hold", "warmup", "settle"):
        if key in doc:
            values[f"{key}_s"] = _dur(key, doc[key])
    if "slo" in doc:
        slo = doc["slo"]
        if isinstance(slo, str) or not isinstance(slo, (list, tuple)):
            raise CapacityError(f"capacity.slo must be a list of threshold expressions, got {slo!r}")
        values["slo"] = tuple(_slo(i, s) for i, s in enumerate(slo))
    for key in ("knee_elasticity", "stability"):
        if key in doc:
            v = doc[key]
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise CapacityError(f"capacity.{key} must be a number, got {v!r}")
            values[key] = float(v)
    for key, v in flags.items():  # CLI flags: start_vens, step (text), max_vens, hold_s, settle_s, slo
        if v is None:
            continue
        if key == "step":
            values["step_vens"], values["step_factor"] = parse_step(v, "--step")
        else:
            values[key] = v
    values["interval_s"] = interval_s
    values["warmup_s"] = max(float(values.get("warmup_s", default_warmup_s)), 2.0 * interval_s)
    return CapacityPlan(**values)


def _slo(i: int, item: Any) -> Threshold:
    try:
        return from_spec(item)
    except ValueError as exc:
        raise CapacityError(f"capacity.slo[{i}]: {exc}") from None


# ---- one step's figures ---------------------------------------------------------------------------------------
def window_totals(results: RunResults, lo: int, hi: int) -> dict[str, OpTotals]:
    """Per-operation totals (counts and exact histograms) of the windows lo..hi-1."""
    totals: dict[str, OpTotals] = {}
    for w in range(lo, hi):
        for op, wop in results.windows.get(w, {}).items():
            t = totals.setdefault(op, OpTotals())
            t.ok += wop.ok
            t.errors += wop.errors
            for m in METRICS:
                h: Histogram = getattr(t, m)
                h += wop.hist(m)
                setattr(t, m, h)
    return totals


def window_doc(results: RunResults, lo: int, hi: int, offered_rate_per_s: float) -> dict[str, Any]:
    """A summary-shaped document of windows lo..hi-1, for threshold expressions. Error classes count the whole run
    (workers send them per delta, not per window)."""
    seconds = float(max(1, hi - lo))
    ops = {op: op_summary(t, seconds) for op, t in sorted(window_totals(results, lo, hi).items())}
    return {
        "run": {"target_report_rate_per_s": offered_rate_per_s},
        "operations": ops,
        "errors": dict(results.errors),
        "measured_s": seconds,
    }


def trend(results: RunResults, lo: int, hi: int, tolerance: float, op: str = "report") -> str:
    """Whether op's median response time held steady over windows lo..hi-1: the second half's median against the
    first half's. `settling`: still falling (a backlog clearing); `growing`: rising (a queue building)."""
    mid = lo + (hi - lo) // 2
    halves = []
    for a, b in ((lo, mid), (mid, hi)):
        t = window_totals(results, a, b).get(op)
        p50 = t.response.summary_ms().get("p50_ms") if t is not None and t.ok else None
        if p50 is None:
            return NO_DATA
        halves.append(float(p50))
    first, second = halves
    allowed = max(tolerance * first, STABILITY_FLOOR_MS)
    if second - first > allowed:
        return GROWING
    if first - second > allowed:
        return SETTLING
    return STABLE


@dataclass(frozen=True)
class StepFigures:
    """One step, measured over its hold windows."""

    index: int  # 1-based
    vens: int
    interval_s: float
    window: tuple[int, int]  # seconds since the step's t0: [lo, hi)
    ok: int
    errors: int
    achieved_rate_per_s: float  # report completions (ok) per second in the hold
    response_ms: dict[str, float | None]
    service_ms: dict[str, float | None]
    verdict: str  # the step run's own verdict: pass | invalid | interrupted (thresholds are not set on steps)
    slo: tuple[ThresholdResult, ...]
    trend: str
    reasons: tuple[str, ...] = ()
    run_dir: str = ""

    @property
    def offered_rate_per_s(self) -> float:
        return self.vens / self.interval_s

    @property
    def error_rate(self) -> float:
        done = self.ok + self.errors
        return self.errors / done if done else 0.0

    @property
    def slo_passed(self) -> bool:
        return all(r.passed for r in self.slo)

    @property
    def broken(self) -> list[ThresholdResult]:
        return [r for r in self.slo if not r.passed]

    @property
    def p99_ms(self) -> float | None:
        return self.response_ms.get("p99")

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.index,
            "vens": self.vens,
            "offered_rate_per_s": round(self.offered_rate_per_s, 3),
            "achieved_rate_per_s": round(self.achieved_rate_per_s, 3),
            "ok": self.ok,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 6),
            "response_time": {f"{k}_ms": v for k, v in self.response_ms.items()},
            "service_time": {f"{k}_ms": v for k, v in self.service_ms.items()},
            "window_s": list(self.window),
            "trend": self.trend,
            "verdict": self.verdict,
            "within_slo": self.verdict == "pass" and self.slo_passed,
            "slo": [{"expr": r.expr, "passed": r.passed, "value": r.value, "unit": r.unit, "detail": r.detail} for r in self.slo],
            "reasons": list(self.reasons),
            "run_dir": self.run_dir,
        }


def step_figures(
    results: RunResults, *, index: int, vens: int, plan: CapacityPlan, window: tuple[int, int], verdict: str,
    reasons: Sequence[str] = (), trend_: str | None = None, run_dir: str = "",
) -> StepFigures:
    lo, hi = window
    offered = vens / plan.interval_s
    doc = window_doc(results, lo, hi, offered)
    ops = doc["operations"]
    rep = ops.get("report") or {}
    ok = sum(int(o["ok"]) for o in ops.values())
    errs = sum(int(o["errors"]) for o in ops.values())
    return StepFigures(
        index=index,
        vens=vens,
        interval_s=plan.interval_s,
        window=(lo, hi),
        ok=ok,
        errors=errs,
        achieved_rate_per_s=float(rep.get("ok", 0)) / max(1, hi - lo),
        response_ms=_pcts(rep.get(METRIC_KEYS["response"])),
        service_ms=_pcts(rep.get(METRIC_KEYS["service"])),
        verdict=verdict,
        slo=tuple(evaluate(plan.slo, doc)),
        trend=trend_ if trend_ is not None else trend(results, lo, hi, plan.stability),
        reasons=tuple(reasons),
        run_dir=run_dir,
    )


def _pcts(latency: Mapping[str, Any] | None) -> dict[str, float | None]:
    return {k: (latency or {}).get(f"{k}_ms") for k in PCTS}


def stop_reason(step: StepFigures) -> str | None:
    """Why the search ends after this step, or None to go on. Precedence as a run's verdict: interrupted, then
    invalid (the generator was the limit: its figures say nothing about the target), then an SLO breach."""
    if step.verdict == "interrupted":
        return "interrupted"
    if step.verdict == "invalid":
        return "generator limit"
    if not step.slo_passed:
        return "slo breach"
    return None
