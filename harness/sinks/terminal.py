"""Live view and final tables: rich renderables built by pure functions of a Snapshot.

Edge (terminal). Only the supervisor's process renders. On a TTY a `rich.live.Live` refreshed by the
caller (`auto_refresh=False`); otherwise one plain line per interval, readable in CI logs.
"""

from __future__ import annotations

from typing import Any

from rich.columns import Columns
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from harness.core.results import RunResults
from harness.core.stages import target_at
from harness.core.thresholds import gates
from harness.sinks.base import BaseSink, Outcome, Snapshot

OP_ORDER = ("token", "create_ven", "find_ven", "create_resource", "poll_events", "report")  # the lifecycle's order


def _ms(x: float | None) -> str:
    if x is None:
        return "-"
    if x >= 1000:
        return f"{x / 1000:.2f}s"
    if x >= 10:
        return f"{x:.0f}"
    return f"{x:.1f}"


def _ops(results: RunResults) -> list[str]:
    known = [o for o in OP_ORDER if o in results.totals]
    return known + sorted(o for o in results.totals if o not in OP_ORDER)


def operations_table(results: RunResults, *, measured_s: float | None = None, title: str = "Operations") -> Table:
    t = Table(title=title, title_justify="left", expand=False)
    for col, just in (
        ("operation", "left"), ("ok", "right"), ("errors", "right"), ("rate/s", "right"),
        ("resp p50", "right"), ("resp p90", "right"), ("resp p95", "right"), ("resp p99", "right"), ("resp max", "right"),
        ("svc p50", "right"), ("svc p99", "right"), ("lag p99", "right"),
    ):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for op in _ops(results):
        tot = results.totals[op]
        rt, st, lag = tot.response.summary_ms(), tot.service.summary_ms(), tot.lag.summary_ms()
        rate = tot.ok / measured_s if measured_s else results.rate(op, 3)
        t.add_row(
            op, f"{tot.ok:,}", Text(f"{tot.errors:,}", style="red" if tot.errors else ""), f"{rate:,.1f}",
            _ms(rt["p50_ms"]), _ms(rt["p90_ms"]), _ms(rt["p95_ms"]), _ms(rt["p99_ms"]), _ms(rt["max_ms"]), _ms(st["p50_ms"]), _ms(st["p99_ms"]),
            _ms(lag["p99_ms"]),
        )
    t.caption = "latencies in ms; resp = done - intended (no coordinated omission), svc = done - sent, lag = sent - intended"
    return t


def errors_table(results: RunResults) -> Table | None:
    if not results.errors:
        return None
    t = Table(title="Errors by class and operation", title_justify="left")
    for col in ("class", "count", "operation", "example"):
        t.add_column(col, overflow="fold")
    rows = [(cls, op, slot) for cls, e in results.errors.items() for op, slot in e["by_operation"].items()]
    for cls, op, slot in sorted(rows, key=lambda r: (-r[2]["count"], r[0], r[1])):
        t.add_row(cls, f"{slot['count']:,}", op, str(slot["example"])[:90])
    return t


def thresholds_table(doc: dict[str, Any]) -> Table | None:
    """The final table of what judged the run: each threshold or default gate, its result and detail."""
    rows = doc.get("thresholds") or []
    if not rows:
        return None
    default = doc.get("thresholds_source") == "default"
    t = Table(title="Default gates (the profile names no thresholds)" if default else "Thresholds", title_justify="left")
    for col in ("result", "check", "detail"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(Text("pass" if r["passed"] else "FAIL", style="green" if r["passed"] else "bold red"), r["expr"], r["detail"])
    return t


def workers_table(results: RunResults) -> Table:
    t = Table(title="Workers", title_justify="left")
    for col in ("worker", "pid", "VENs", "ready", "status", "cpu %", "rss MB", "loop lag max", "in flight", "backlog"):
        t.add_column(col, justify="right" if col not in ("status",) else "left")
    for w in sorted(results.workers.values(), key=lambda w: w.worker_id):
        h = w.health
        status_style = {"lost": "bold red", "failed": "bold red", "done": "green"}.get(w.status, "")
        t.add_row(
            str(w.worker_id), str(w.pid), f"{w.vens:,}", f"{w.vens_ready:,}", Text(w.status, style=status_style),
            f"{h.cpu_percent:.0f}" if h else "-", f"{h.rss_bytes / 2**20:.0f}" if h else "-",
            f"{h.loop_lag_max_ms:.1f}ms" if h else "-", f"{h.in_flight:,}" if h else "-", f"{h.backlog:,}" if h else "-",
        )
    return t


def vens_due(snap: Snapshot) -> int:
    """VENs the run means to have active now: the fleet, or with stages the ramp's count at this instant."""
    p = snap.profile
    return round(target_at(p.stages, max(0.0, snap.elapsed_s))) if p.stages else p.vens


def fleet_words(snap: Snapshot) -> str:
    """'VENs ready 180/200', and with stages what the ramp asks for now ('stage 50'), which may be below ready."""
    ready = sum(w.vens_ready for w in snap.results.workers.values())
    words = f"VENs ready {ready:,}/{snap.profile.vens:,}"
    return words + (f" stage {vens_due(snap):,}" if snap.profile.stages else "")


def header(snap: Snapshot) -> Text:
    p = snap.profile
    achieved = snap.results.rate("report", 3)
    remaining = max(0.0, p.duration_s - snap.elapsed_s)
    line = (
        f"{snap.phase}  elapsed {snap.elapsed_s:,.0f}s  remaining {remaining:,.0f}s  "
        f"{fleet_words(snap)}  reports/s target {p.target_rate_per_s:,.1f} achieved {achieved:,.1f}  "
        f"target {snap.target}"
    )
    return Text(line, style="bold")


def gates_line(snap: Snapshot) -> Text:
    """What the run will be judged by: the profile's thresholds, or the default gates when it names none."""
    named = snap.profile.thresholds
    which = "thresholds" if named else "default gates (the profile names no thresholds)"
    return Text(f"judged by {which}: " + "; ".join(t.expr for t in gates(named, bool(snap.profile.dr_events))), style="dim")


def provisioning_bar(snap: Snapshot) -> RenderableType | None:
    """While the active fleet is still registering: a bar of VENs ready of those due by now (stages may ramp)."""
    ready = sum(w.vens_ready for w in snap.results.workers.values())
    due = vens_due(snap)
    if ready >= due or snap.phase != "running":
        return None
    bar = ProgressBar(total=due, completed=ready, width=40)
    return Columns([Text("VENs provisioning", style="bold"), bar, Text(f"{ready:,}/{due:,}")])


def faults_line(snap: Snapshot) -> Text | None:
    """The profile's timed faults so far: each one in force (red) or over (recovery measured from its end)."""
    rows = snap.results.faults
    if not rows:
        return None
    words = []
    for f in rows:
        if f["ended_s"] is None:
            words.append(f"#{f['index']} {f['label']} IN FORCE since {f['started_s']:.1f}s")
        else:
            words.append(f"#{f['index']} {f['label']} {f['started_s']:.1f}-{f['ended_s']:.1f}s")
    pending = len(snap.profile.faults) - len(rows)
    style = "bold red" if any(f["ended_s"] is None for f in rows) else "yellow"
    return Text("faults: " + "; ".join(words) + (f"; {pending} to come" if pending else ""), style=style)


def _sec(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}s"


def faults_table(doc: dict[str, Any]) -> Table | None:
    """Each timed fault and how the VTN came back from it (summary.json `faults`)."""
    rows = (doc.get("faults") or {}).get("faults") or []
    if not rows:
        return None
    t = Table(title="Faults and recovery", title_justify="left")
    for col in ("fault", "at", "ended", "rate back", "every VEN back", "recovery", "peak req/s", "peak tokens/s"):
        t.add_column(col, justify="left" if col == "fault" else "right")
    for f in rows:
        every = (_sec(f.get("every_ven_back_after_s")) if f.get("every_ven_back_after_s") is not None
                 else f"{f.get('vens_reported_after', 0):,} VENs")
        t.add_row(f"#{f['index']} {f['label']}", _sec(f["started_s"]), _sec(f["ended_s"]), _sec(f.get("rate_back_after_s")),
                  every, _sec(f.get("recovery_s")) if f.get("recovered") else "[red]not recovered[/]",
                  f"{f.get('peak_requests_per_s', 0):,}", f"{f.get('peak_token_requests_per_s', 0):,}")
    rep = doc["faults"].get("reports") or {}
    t.caption = (f"reports due {rep.get('due', 0):,}, sent {rep.get('sent', 0):,} ({rep.get('late', 0):,} late), "
                 f"lost {rep.get('lost', 0):,}")
    return t


def live_renderable(snap: Snapshot) -> RenderableType:
    parts: list[RenderableType] = [header(snap), gates_line(snap)]
    if (faults := faults_line(snap)) is not None:
        parts.append(faults)
    if (bar := provisioning_bar(snap)) is not None:
        parts.append(bar)
    parts.append(operations_table(snap.results))
    errs = errors_table(snap.results)
    if errs is not None:
        parts.append(errs)
    parts.append(workers_table(snap.results))
    if snap.notes:
        parts.append(Panel(Text("\n".join(snap.notes[-5:]), style="yellow"), title="notes"))
    return Group(*parts)


def plain_line(snap: Snapshot) -> str:
    r = snap.results
    rep = r.totals.get("report")
    p99 = rep.response.summary_ms()["p99_ms"] if rep else None
    errors = sum(t.errors for t in r.totals.values())
    ready = sum(w.vens_ready for w in r.workers.values())
    stage = f" stage={vens_due(snap)}" if snap.profile.stages else ""
    return (
        f"[{snap.elapsed_s:7.1f}s] {snap.phase} vens={ready}/{snap.profile.vens}{stage} "
        f"reports={rep.ok if rep else 0} rate={r.rate('report', 3):.1f}/s (target {snap.profile.target_rate_per_s:.1f}) "
        f"report_p99={_ms(p99)}ms errors={errors}"
        + "".join(f" fault={f['label']}" for f in r.faults if f["ended_s"] is None)
    )


class LiveView(BaseSink):
    """The live view as a sink: rich Live on a TTY (we own refresh timing); plain lines elsewhere."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self._live: Live | None = None
        if self.console.is_terminal:
            self._live = Live(console=self.console, auto_refresh=False, transient=False, redirect_stdout=False)
            self._live.start()

    def preparing(self, step: str) -> None:
        if self._live is not None:
            self._live.update(Group(Spinner("dots", Text(f"setting up: {step}", style="bold"))), refresh=True)
        else:
            self.console.print(f"[setup] {step}", soft_wrap=True, highlight=False, markup=False)

    def snapshot(self, snap: Snapshot) -> None:
        if self._live is not None:
            self._live.update(live_renderable(snap), refresh=True)
        else:
            self.console.print(plain_line(snap), soft_wrap=True, highlight=False)

    def finished(self, outcome: Outcome) -> None:
        self.close()  # the caller prints the final tables below the live region

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def final_report(console: Console, doc: dict[str, Any], results: RunResults, run_dir: Any) -> None:
    console.print(operations_table(results, measured_s=doc.get("measured_s"), title="Summary"))
    errs = errors_table(results)
    if errs is not None:
        console.print(errs)
    console.print(workers_table(results))
    faults_t = faults_table(doc)
    if faults_t is not None:
        console.print(faults_t)
    gates_t = thresholds_table(doc)
    if gates_t is not None:
        console.print(gates_t)
    style = {"pass": "bold green", "fail": "bold red", "invalid": "bold red"}.get(doc["verdict"], "bold yellow")
    reasons = "; ".join(doc.get("reasons") or [])
    console.print(Text(f"verdict: {doc['verdict']}" + (f" ({reasons})" if reasons else ""), style=style))
    console.print(f"results: {run_dir}")
