"""Recovery from each timed fault, read from the per-second windows: summary.json `faults`.

Pure. Recovered: the report rate is back (from the fault's end, the first second from which the report rate over one
report interval is within 5 % of the target) and every VEN has had a report acknowledged after the fault's end;
recovery_s is the later of the two instants, from the fault's end (the workers ship each shard's instant its last
VEN to report again did, as counter max:every_ven_back_ms:<fault>). Peaks (all requests, token requests, VENs' in-flight requests) are over the fault and its recovery.
"""

from __future__ import annotations

import math
from typing import Any

from harness.core.results import RunResults

TOLERANCE = 0.05


def _per_s(results: RunResults, ops: tuple[str, ...] | None = None) -> dict[int, int]:
    return {w: sum(t.ok + t.errors for op, t in win.items() if ops is None or op in ops)
            for w, win in results.windows.items()}


def _recovered_at(ok: dict[int, int], start: int, last: int, span: int, target: float) -> int | None:
    for s in range(start, last - span + 2):
        rate = sum(ok.get(w, 0) for w in range(s, s + span)) / span
        if abs(rate - target) <= TOLERANCE * target:
            return s
    return None


def _in_flight(results: RunResults) -> dict[int, int]:
    out: dict[int, int] = {}
    for w in results.workers.values():
        for i, h in enumerate(w.history):
            out[i] = out.get(i, 0) + h.in_flight + h.backlog
    return out


def _backlog(results: RunResults) -> dict[int, int]:
    """Operations queued behind a VEN's work in flight (not yet started), per second, over the workers."""
    out: dict[int, int] = {}
    for w in results.workers.values():
        for i, h in enumerate(w.history):
            out[i] = out.get(i, 0) + h.backlog
    return out


def faults_summary(results: RunResults, target_rate_per_s: float, interval_s: float, vens: int) -> dict[str, Any]:
    ok = {w: win["report"].ok for w, win in results.windows.items() if "report" in win}
    requests, tokens, busy, queued = _per_s(results), _per_s(results, ("token",)), _in_flight(results), _backlog(results)
    served = {w: sum(t.ok for t in win.values()) for w, win in results.windows.items()}
    last = max(results.windows, default=0)
    span = max(1, int(math.ceil(interval_s)))
    rows = []
    for f in results.faults:
        end = f["ended_s"] if f["ended_s"] is not None else f["started_s"]
        start_w, end_w = int(math.floor(f["started_s"])), int(math.ceil(end))
        back = _recovered_at(ok, end_w, last, span, target_rate_per_s)
        upto = (back + span) if back is not None else last + 1
        around = range(start_w, upto)
        reported = results.counters.get(f"reported_after_fault:{f['index']}", 0)
        recovered = back is not None and reported >= vens  # the rate is back and every VEN has reported since
        last_back_ms = results.counters.get(f"max:every_ven_back_ms:{f['index']}")
        every_back = None if reported < vens or last_back_ms is None else round(max(0.0, last_back_ms / 1000 - end), 3)
        rate_back = None if back is None else round(max(0.0, back - end), 3)
        rows.append({
            **f,
            "rate_back_after_s": rate_back,
            "vens_reported_after": reported,
            "every_ven_back_after_s": every_back,
            "recovered": recovered,
            "recovery_s": max(rate_back, every_back) if recovered and rate_back is not None and every_back is not None
            else None,
            # From the second the fault ends in: answered ok (what the VTN served), and every attempt (refused too).
            "peak_ok_per_s": max((served.get(w, 0) for w in range(int(end), upto)), default=0),
            "peak_requests_per_s": max((requests.get(w, 0) for w in range(int(end), upto)), default=0),
            "peak_token_requests_per_s": max((tokens.get(w, 0) for w in around), default=0),
            "peak_outstanding": max((busy.get(w, 0) for w in around), default=0),
            # From the end, the first second no operation waited behind another (None: the backlog outlived the run).
            "backlog_drained_after_s": next((max(0, w - end_w) for w in range(end_w, last + 1) if queued.get(w, 0) == 0),
                                            None),
            "requests_during": sum(requests.get(w, 0) for w in range(start_w, end_w)),
        })
    c = results.counters
    reports = {k: c.get(f"report_{k}", 0) for k in ("sent", "late", "lost")}
    reports["due"] = c.get("report_due", 0)
    times = [r["recovery_s"] for r in rows]
    return {
        "faults": rows,
        "reports": reports,
        "recovery": {"p100_s": None if None in times or not times else max(times),
                     "lost": reports["lost"], "late": reports["late"], "all_recovered": None not in times},
    }
