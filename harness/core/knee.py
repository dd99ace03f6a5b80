"""The answer of a capacity search from the steps it ran: the largest fleet within SLO, the first breach, the knee,
whether the generator became the limit, and the exit code.

Pure: no clock, no I/O. The knee: walking up the valid steps, step i turns super-linear when its report p99
response time grows with elasticity e_i = ln(p99_i / p99_{i-1}) / ln(n_i / n_{i-1}) above `knee_elasticity`
(default 2: latency growing at least as the square of the fleet) and p99_i is above twice the lowest p99 seen so
far (jitter near the floor never counts). The knee is the step before it, n_{i-1}: the largest fleet on the
flat-or-linear part of the curve; the true knee lies between n_{i-1} and n_i. A step with no successful report has
infinite p99.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.capacity import CapacityPlan, StepFigures, stop_reason
from harness.core.exits import (
    EXIT_FIRST_BREACH,
    EXIT_FOUND,
    EXIT_GENERATOR,
    EXIT_INTERRUPTED,
)
from harness.core.units import format_duration

KNEE_FLOOR_FACTOR = 2.0  # a super-linear step must also be this many times the lowest p99 so far


@dataclass(frozen=True)
class Knee:
    vens: int  # the last step before super-linear growth
    next_vens: int  # the step where it began
    elasticity: float  # of that growth (inf: the next step had no successful report)


@dataclass(frozen=True)
class CapacityResult:
    largest_vens: int | None  # largest fleet within SLO
    breach: StepFigures | None  # the first step that broke the SLO
    knee: Knee | None
    generator_limited: StepFigures | None  # the step whose run was invalid
    interrupted: bool
    stop: str  # slo breach | generator limit | max reached | interrupted | no steps
    answer: str
    exit_code: int

    def to_json(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "largest_vens_within_slo": self.largest_vens,
            "stop": self.stop,
            "first_breach": None if self.breach is None else {
                "step": self.breach.index,
                "vens": self.breach.vens,
                "broken": [{"expr": r.expr, "detail": r.detail} for r in self.breach.broken],
            },
            "knee": None if self.knee is None else {
                "vens": self.knee.vens,
                "next_vens": self.knee.next_vens,
                "elasticity": None if math.isinf(self.knee.elasticity) else round(self.knee.elasticity, 3),
            },
            "generator_limited": self.generator_limited is not None,
            "generator_limited_at_vens": None if self.generator_limited is None else self.generator_limited.vens,
            "interrupted": self.interrupted,
            "exit_code": self.exit_code,
        }


def find_knee(steps: Sequence[StepFigures], elasticity: float) -> Knee | None:
    """The knee as the module docstring defines it, over the steps whose runs were valid."""
    valid = [s for s in steps if s.verdict == "pass"]
    floor = math.inf
    for prev, cur in zip(valid, valid[1:]):
        p_prev, p_cur = prev.p99_ms, cur.p99_ms
        if p_prev is not None and p_prev > 0:
            floor = min(floor, p_prev)
        if p_prev is None or p_prev <= 0 or cur.vens <= prev.vens:
            continue
        if p_cur is None:
            return Knee(prev.vens, cur.vens, math.inf)
        e = math.log(p_cur / p_prev) / math.log(cur.vens / prev.vens) if p_cur > 0 else -math.inf
        if e > elasticity and p_cur > KNEE_FLOOR_FACTOR * floor:
            return Knee(prev.vens, cur.vens, e)
    return None


def analyse(steps: Sequence[StepFigures], plan: CapacityPlan) -> CapacityResult:
    """The answer from the steps run, in order (the driver stops after the first `stop_reason`)."""
    at = format_duration(plan.interval_s)
    knee = find_knee(steps, plan.knee_elasticity)
    largest: int | None = None
    for s in steps:
        reason = stop_reason(s)
        if reason is not None:
            break
        largest = s.vens if largest is None else max(largest, s.vens)
    else:
        reason = "max reached" if steps else "no steps"
    last = steps[-1] if steps else None
    breach = last if reason == "slo breach" else None
    limited = last if reason == "generator limit" else None
    if reason == "slo breach" and largest is None:
        assert last is not None
        broken = "; ".join(f"{r.expr} ({r.detail})" for r in last.broken)
        answer = f"no fleet within SLO at {at}: the first step, {last.vens:,} VENs, already breached {broken}"
        code = EXIT_FIRST_BREACH
    elif reason == "slo breach":
        assert last is not None
        broken = "; ".join(f"{r.expr} ({r.detail})" for r in last.broken)
        answer = f"largest fleet within SLO at {at}: {largest:,} VENs (breached at {last.vens:,}: {broken})"
        code = EXIT_FOUND
    elif reason == "generator limit":
        assert last is not None
        lower = f"at least {largest:,} VENs" if largest is not None else "unknown"
        answer = (f"largest fleet within SLO at {at}: {lower} — the generator became the limit at {last.vens:,} VENs "
                  f"before any SLO breach (run invalid: {'; '.join(last.reasons) or 'generator saturated'}); "
                  "add workers or machines (--cluster) and search again")
        code = EXIT_GENERATOR
    elif reason == "max reached":
        answer = f"largest fleet within SLO at {at}: at least {largest:,} VENs (every step up to max passed)"
        code = EXIT_FOUND
    elif reason == "interrupted":
        lower = f"at least {largest:,} VENs" if largest is not None else "unknown"
        answer = f"interrupted: largest fleet within SLO at {at} so far: {lower}"
        code = EXIT_INTERRUPTED
    else:
        answer = "no steps were run"
        code = EXIT_FIRST_BREACH
    if knee is not None:
        e = "∞" if math.isinf(knee.elasticity) else f"{knee.elasticity:.1f}"
        answer += f"; knee at {knee.vens:,} VENs (p99 grew super-linearly to {knee.next_vens:,}, elasticity {e})"
    return CapacityResult(largest, breach, knee, limited, reason == "interrupted", reason, answer, code)


@dataclass
class CapacityOutcome:
    plan: CapacityPlan
    steps: list[StepFigures]
    result: CapacityResult
    out_dir: Path
    target: str
