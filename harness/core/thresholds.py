"""Threshold expressions over the summary document (`report.response_time.p99 < 500ms`): parse, evaluate, judge.

Pure: no clock, no I/O; callers pass the summary dict and the elapsed time. A metric that the summary does not
hold evaluates to "no data" and fails — a check that cannot be made is not a pass. A latency statistic is judged
over every attempt, a failed one ranked slower than any success (so `p99 < X` fails when more than 1 % failed).
With no thresholds named, the DEFAULT_GATES apply: a run passes only if it did its job.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from harness.core.keys import unknown_key
from harness.core.units import parse_duration

COMPARATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
LATENCY_METRICS = ("response_time", "service_time", "start_lag")
STATS = ("p50", "p90", "p95", "p99", "p999", "max", "mean")
OP_FIELDS = {"rate_per_s": "per_s", "error_rate": "fraction", "errors": "count", "ok": "count",
             "achieved_fraction": "fraction"}
DEFAULT_OP = "report"
# The operations that bring a VEN into being: its tokens, the VEN, its resources.
PROVISIONING_OPS = ("token", "provisioning_token", "create_ven", "find_ven", "create_resource")
# Applied when a profile names no thresholds (a profile's own list replaces them all).
DEFAULT_GATES = (
    "errors.rate <= 1%",
    "report.achieved_fraction >= 99%",
    "provisioning.ok_rate >= 99%",
    "report.ok >= 1",
)
DR_GATE = "event_fanout.never_received == 0"  # a default gate too when the run creates DR events

_EXPR = re.compile(r"^\s*(?P<metric>[^\s<>=!]+)\s*(?P<cmp><=|>=|==|!=|<|>)\s*(?P<limit>\S(?:.*\S)?)\s*$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_NUMBER = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(.*)$")
_MS_PER_UNIT = {"": 1.0, "ms": 1.0, "us": 1e-3, "µs": 1e-3, "s": 1e3, "m": 60e3, "h": 3600e3}
_EXAMPLES = "e.g. report.response_time.p99, report.error_rate, errors.rate, errors.http_503.count, achieved_rate"


@dataclass(frozen=True)
class Threshold:
    """One parsed expression. `kind`/`args` say where the value lives; `limit` is in the metric's unit."""

    expr: str
    metric: str  # canonical name, e.g. "report.response_time.p99"
    comparator: str
    limit: float
    unit: str  # ms | per_s | fraction | count
    kind: str  # latency | op_field | errors_rate | errors_count | error_class | achieved_rate | fanout
    args: tuple[str, ...] = ()
    abort_on_fail: bool = False
    grace_s: float = 0.0
    is_default: bool = False  # one of DEFAULT_GATES, applied because the profile named none


@dataclass(frozen=True)
class ThresholdResult:
    expr: str
    metric: str
    comparator: str
    limit: float
    value: float | None  # None: no data
    passed: bool
    detail: str
    unit: str = "ms"
    abort_on_fail: bool = False
    grace_s: float = 0.0
    is_default: bool = False
    failed_attempt: bool = False  # the latency statistic landed on a failed attempt (value is inf)


def default_gates(dr_events: bool = False) -> tuple[Threshold, ...]:
    """The default gates; with DR events, also that every targeted VEN learned of its event."""
    return tuple(replace(parse(e), is_default=True) for e in DEFAULT_GATES + ((DR_GATE,) if dr_events else ()))


def gates(named: Sequence[Threshold], dr_events: bool = False) -> tuple[Threshold, ...]:
    """What a run is judged by: the thresholds it names, or else the default gates."""
    return tuple(named) if named else default_gates(dr_events)


def _err(expr: str, what: str) -> ValueError:
    return ValueError(f"threshold {expr!r}: {what}")


def parse(expr: str, *, abort_on_fail: bool = False, grace_s: float = 0.0) -> Threshold:
    """Parse `METRIC CMP LIMIT`; a ValueError names the expression and what is wrong."""
    if not isinstance(expr, str):
        raise ValueError(f"threshold must be a string, got {expr!r}")
    m = _EXPR.match(expr)
    if not m:
        raise _err(expr, "expected METRIC COMPARATOR LIMIT with a comparator among < <= > >= == !=")
    metric_text, cmp, limit_text = m.group("metric"), m.group("cmp"), m.group("limit")
    if grace_s < 0 or math.isnan(grace_s):
        raise _err(expr, f"grace must be >= 0, got {grace_s!r}")
    kind, args, unit, canonical = _resolve(expr, metric_text, limit_text)
    limit = _limit(expr, limit_text, unit)
    return Threshold(expr.strip(), canonical, cmp, limit, unit, kind, args, abort_on_fail, float(grace_s))


def _resolve(expr: str, metric: str, limit_text: str) -> tuple[str, tuple[str, ...], str, str]:
    if metric.endswith(".p99.9"):
        metric = metric[: -len(".p99.9")] + ".p999"
    parts = metric.split(".")
    for p in parts:
        if not _NAME.match(p):
            raise _err(expr, f"bad metric name {metric!r} ({_EXAMPLES})")
    if parts == ["achieved_rate"]:
        return "achieved_rate", (), "fraction", "achieved_rate"
    if parts[0] == "errors":
        if len(parts) == 1:  # `errors < 0.1%` is the rate, `errors == 0` the count
            if limit_text.rstrip().endswith("%"):
                return "errors_rate", (), "fraction", "errors.rate"
            return "errors_count", (), "count", "errors.count"
        if parts[1:] == ["rate"]:
            return "errors_rate", (), "fraction", "errors.rate"
        if parts[1:] == ["count"]:
            return "errors_count", (), "count", "errors.count"
        if len(parts) == 3 and parts[2] == "count":
            return "error_class", (parts[1],), "count", metric
        raise _err(expr, f"unknown errors metric {metric!r} (expected errors.rate, errors.count or errors.<class>.count)")
    if parts[0] == "provisioning":
        if parts[1:] == ["ok_rate"]:
            return "provisioning", (), "fraction", metric
        raise _err(expr, f"unknown provisioning metric {metric!r} (expected provisioning.ok_rate)")
    if parts[0] == "recovery":  # summary.json faults.recovery: the slowest recovery, reports lost or sent late
        if parts[1:] in (["p100"], ["max"]):
            return "recovery", ("p100_s",), "ms", "recovery.p100"
        if parts[1:] in (["lost"], ["late"]):
            return "recovery", (parts[1],), "count", metric
        raise _err(expr, f"unknown recovery metric {metric!r} (expected recovery.p100, recovery.lost or recovery.late)")
    if parts[0] == "event_fanout":
        if parts[1:] == ["never_received"]:  # targeted VENs not aware of their event by the end, all events
            return "fanout_count", ("never_received",), "count", metric
        if len(parts) != 2 or parts[1] not in STATS:
            raise _err(expr, f"unknown metric {metric!r} (expected event_fanout.<{'|'.join(STATS)}> or "
                             "event_fanout.never_received)")
        return "fanout", (parts[1],), "ms", metric
    if len(parts) == 2 and parts[0] in LATENCY_METRICS:
        parts = [DEFAULT_OP, *parts]
    if len(parts) == 2 and parts[1] in STATS:  # `create_ven.p99`: the response time, what a device sees
        parts = [parts[0], "response_time", parts[1]]
    if len(parts) == 3 and parts[1] in LATENCY_METRICS:
        if parts[2] not in STATS:
            raise _err(expr, f"unknown statistic {parts[2]!r} (expected one of {', '.join(STATS)})")
        return "latency", tuple(parts), "ms", ".".join(parts)
    if len(parts) == 2 and parts[1] in OP_FIELDS:
        return "op_field", tuple(parts), OP_FIELDS[parts[1]], metric
    raise _err(expr, f"unknown metric {metric!r} ({_EXAMPLES})")


def _limit(expr: str, text: str, unit: str) -> float:
    m = _NUMBER.match(text.strip())
    if not m:
        raise _err(expr, f"limit {text!r} is not a number")
    value, suffix = float(m.group(1)), m.group(2).strip()
    if unit == "ms":
        if suffix not in _MS_PER_UNIT:
            raise _err(expr, f"limit {text!r} must be a duration like 500ms, 2s or 50us (a bare number is ms)")
        return value * _MS_PER_UNIT[suffix]
    if unit == "fraction":
        if suffix == "%":
            return value / 100.0
        if suffix:
            raise _err(expr, f"limit {text!r} must be a percentage like 0.1% or a fraction")
        if value > 1.0:
            raise _err(expr, f"limit {text!r} is a fraction > 1; write {value:g}% for a percentage")
        return value
    if unit == "per_s":
        if suffix not in ("", "/s"):
            raise _err(expr, f"limit {text!r} must be a rate per second like 60 or 60/s")
        return value
    if suffix:
        raise _err(expr, f"limit {text!r} must be a plain count")
    return value


def from_spec(item: Any) -> Threshold:
    """A profile item: a string, or a table `{ expr = "...", abort_on_fail = true, grace = "30s" }`."""
    if isinstance(item, Threshold):
        return item
    if isinstance(item, str):
        return parse(item)
    if not isinstance(item, Mapping):
        raise ValueError(f"must be a string or a table with expr, got {item!r}")
    unknown = sorted(set(item) - {"expr", "abort_on_fail", "grace"})
    if unknown:
        raise ValueError(unknown_key(unknown[0], ("expr", "abort_on_fail", "grace")))
    expr = item.get("expr")
    if not isinstance(expr, str):
        raise ValueError(f"expr must be a string, got {expr!r}")
    abort = item.get("abort_on_fail", False)
    if not isinstance(abort, bool):
        raise ValueError(f"abort_on_fail must be true or false, got {abort!r}")
    return parse(expr, abort_on_fail=abort, grace_s=parse_duration(item.get("grace", 0.0), "grace"))


# ---- evaluation ---------------------------------------------------------------------------------
def _value(t: Threshold, doc: Mapping[str, Any]) -> tuple[float | None, str]:
    """The metric's value from the summary, or None with why there is no data."""
    ops: Mapping[str, Any] = doc.get("operations") or {}
    if t.kind == "latency":
        op, metric, stat = t.args
        if op not in ops:
            return None, f"no {op} operations in the run"
        attempts = ops[op].get("attempts")
        if attempts is None:  # a summary from before the attempts view: successes only
            v = (ops[op].get(metric) or {}).get(f"{stat}_ms")
            return (None, f"no successful {op} operations") if v is None else (float(v), "")
        v = (attempts["failures_as_slowest"].get(metric) or {}).get(f"{stat}_ms")
        failed, count = int(attempts["failed"]), int(attempts["count"])
        if v is not None:
            return float(v), ""
        if failed:
            return math.inf, f"{failed:,} of {count:,} {op} attempts failed ({_pct(failed, count)})"
        return None, f"no {op} attempts"
    if t.kind == "op_field":
        op, name = t.args
        if op not in ops:
            return None, f"no {op} operations in the run"
        if name not in ops[op]:
            return None, f"the run has no {op}.{name}"
        return float(ops[op][name]), ""
    if t.kind == "provisioning":
        # Provisioning happens once per VEN, mostly at the start: a warm-up that covers it keeps it out of the
        # latency figures, not out of whether every VEN came into being. The warm-up's operations count here.
        both = (ops, (doc.get("warmup") or {}).get("operations") or {})
        ok = sum(int(o[name]["ok"]) for o in both for name in PROVISIONING_OPS if name in o)
        done = ok + sum(int(o[name]["errors"]) for o in both for name in PROVISIONING_OPS if name in o)
        return (ok / done, "") if done else (None, "no provisioning operations in the run")
    if t.kind in ("errors_rate", "errors_count"):
        if not ops:
            return None, "no operations in the run"
        errors = sum(int(o["errors"]) for o in ops.values())
        if t.kind == "errors_count":
            return float(errors), ""
        done = errors + sum(int(o["ok"]) for o in ops.values())
        return (float(errors) / done, "") if done else (None, "no completed operations")
    if t.kind == "error_class":
        entry = (doc.get("errors") or {}).get(t.args[0])
        return float(entry["count"]) if entry else 0.0, ""  # a class never seen occurred zero times
    if t.kind == "achieved_rate":
        target = (doc.get("run") or {}).get("target_report_rate_per_s")
        if not target:
            return None, "the run has no target report rate"
        if DEFAULT_OP not in ops:
            return None, f"no {DEFAULT_OP} operations in the run"
        return float(ops[DEFAULT_OP]["rate_per_s"]) / float(target), ""
    if t.kind == "recovery":
        return _recovery(t, doc)
    if t.kind in ("fanout", "fanout_count"):
        return _fanout(t, doc)
    raise AssertionError(t.kind)  # pragma: no cover


def _fanout(t: Threshold, doc: Mapping[str, Any]) -> tuple[float | None, str]:
    fanout = doc.get("event_fanout")
    if not fanout:
        return None, "event fan-out was not measured in this run"
    if t.kind == "fanout_count":
        return float(fanout[t.args[0]]), ""
    v = fanout.get(f"{t.args[0]}_ms")
    return (None, "no VEN saw the event") if v is None else (float(v), "")


def _recovery(t: Threshold, doc: Mapping[str, Any]) -> tuple[float | None, str]:
    rec = (doc.get("faults") or {}).get("recovery")
    if not rec:
        return None, "the run had no [[faults]]"
    v = rec.get(t.args[0])
    if v is None:
        return math.inf, "not every fault recovered before the run ended"
    return float(v) * (1000.0 if t.unit == "ms" else 1.0), ""


def _pct(n: int, of: int) -> str:
    return f"{100.0 * n / of:.4g}%" if of else "-"


def format_value(value: float, unit: str) -> str:
    if math.isinf(value):
        return "a failed attempt" if value > 0 else "-inf"
    if unit == "ms":
        if 0 < value < 1:
            return f"{value * 1000:.4g} us"
        return f"{value:.4g} ms" if value < 1000 else f"{value / 1000:.4g} s"
    if unit == "fraction":
        return f"{value * 100:.4g}%"
    if unit == "per_s":
        return f"{value:.4g}/s"
    return f"{value:.10g}"


def evaluate_one(t: Threshold, doc: Mapping[str, Any]) -> ThresholdResult:
    value, why = _value(t, doc)
    limit = format_value(t.limit, t.unit)
    if value is None:
        passed, detail = False, f"no data: {why}"
    else:
        passed = COMPARATORS[t.comparator](value, t.limit)
        shown = format_value(value, t.unit)
        detail = f"{shown} {t.comparator} {limit}" if passed else f"{shown} is not {t.comparator} {limit}"
        if math.isinf(value) and why:  # the statistic is a failed attempt: say how many failed
            detail += f": {why}, failures rank slower than any success"
    return ThresholdResult(t.expr, t.metric, t.comparator, t.limit, value, passed, detail, t.unit, t.abort_on_fail,
                           t.grace_s, t.is_default, math.isinf(value) if value is not None else False)


def evaluate(thresholds: Iterable[Threshold | str], summary: Mapping[str, Any]) -> list[ThresholdResult]:
    """Each threshold judged against the summary document, in order."""
    return [evaluate_one(from_spec(t), summary) for t in thresholds]


def should_abort(results: Sequence[ThresholdResult], elapsed_s: float) -> ThresholdResult | None:
    """The first abort-on-fail threshold failing on a measured value after its grace; None: keep going.

    "No data" never aborts: early in a run it means "not yet", and the final evaluation still fails it.
    """
    for r in results:
        if r.abort_on_fail and not r.passed and r.value is not None and elapsed_s >= r.grace_s:
            return r
    return None


def mark_aborted(results: Sequence[ThresholdResult], abort: ThresholdResult, elapsed_s: float) -> list[ThresholdResult]:
    """Final results with the threshold that stopped the run failed and saying so."""
    note = f"aborted the run at {elapsed_s:.0f}s: {abort.detail}"
    return [
        replace(r, passed=False, detail=f"{note}; at the end: {r.detail}")
        if r.expr == abort.expr
        else r
        for r in results
    ]


def failure_reasons(results: Iterable[ThresholdResult]) -> list[str]:
    return [f"{'default gate' if r.is_default else 'threshold'} failed: {r.expr} ({r.detail})"
            for r in results if not r.passed]


def to_json(results: Iterable[ThresholdResult]) -> list[dict[str, Any]]:
    """summary["thresholds"]: one object per threshold, the limit and value in the metric's unit."""
    return [
        {
            "expr": r.expr,
            "metric": r.metric,
            "comparator": r.comparator,
            "limit": r.limit,
            "unit": r.unit,
            # JSON has no infinity: a statistic that is a failed attempt is null with failed_attempt true.
            "value": None if r.value is not None and math.isinf(r.value) else r.value,
            "passed": r.passed,
            "detail": r.detail,
            "abort_on_fail": r.abort_on_fail,
            "default": r.is_default,
            "failed_attempt": r.failed_attempt,
        }
        for r in results
    ]
