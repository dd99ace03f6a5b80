"""The capacity report: `capacity.json` (plan, per-step figures, the answer) and `capacity.html` (self-contained,
matplotlib SVG curves against VENs), in the capacity folder.

Edge (files, matplotlib). Built from the reports' HTML kit and plot helpers, like the run report; without
matplotlib, capacity.json is still written and the HTML is skipped with a note.
"""

from __future__ import annotations

import math
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness import __version__
from harness.core.capacity import StepFigures
from harness.core.knee import CapacityOutcome
from harness.core.profile import Profile
from harness.core.thresholds import format_value
from harness.core.exits import ReportError
from harness.reports.folder import OP_COLOURS
from harness.reports.kit import VERDICT_COLOURS, badge, cards, esc, fmt_num, fmt_pct, kv, page, safe_url, td
from harness.reports.plots import figure, latency_y, legend_right, plot_style, svg
from harness.sinks.resultsdir import write_bytes_atomic, write_json

JSON_NAME, HTML_NAME = "capacity.json", "capacity.html"
PCT_STYLE = (("p50", 0.9, "-"), ("p90", 1.2, "-"), ("p99", 2.0, "-"), ("max", 0.9, ":"))
KNEE_COLOUR, BREACH_COLOUR, SLO_COLOUR = "#7c3aed", "#b91c1c", "#111827"


def capacity_doc(outcome: CapacityOutcome, profile: Profile, *, started_epoch: float, embedded: bool) -> dict[str, Any]:
    return {
        "capacity": {
            "name": profile.name,
            "description": profile.description,
            "target": safe_url(outcome.target),
            "embedded_vtn": embedded,
            "vtn_faults": dict(profile.vtn_faults) if embedded else {},
            "started_at": _iso(started_epoch),
            "ended_at": _iso(time.time()),
            "versions": {"harness": __version__, "python": platform.python_version()},
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        },
        "plan": outcome.plan.to_json(),
        "answer": outcome.result.answer,
        "result": outcome.result.to_json(),
        "steps": [s.to_json() for s in outcome.steps],
    }


def write_capacity(outcome: CapacityOutcome, profile: Profile, *, started_epoch: float, embedded: bool) -> Path | None:
    """capacity.json always; capacity.html when matplotlib is installed (returns its path, else None)."""
    doc = capacity_doc(outcome, profile, started_epoch=started_epoch, embedded=embedded)
    write_json(outcome.out_dir / JSON_NAME, doc)
    try:
        html_page = render_capacity_html(doc)
    except ReportError:
        return None
    path = outcome.out_dir / HTML_NAME
    write_bytes_atomic(path, html_page.encode("utf-8"))
    return path


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


# ---- plots: everything against VENs -------------------------------------------------------------------------
def _col(steps: list[dict[str, Any]], *path: str) -> np.ndarray[Any, np.dtype[np.float64]]:
    out = []
    for s in steps:
        v: Any = s
        for k in path:
            v = v.get(k) if isinstance(v, dict) else None
        out.append(float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan)
    return np.array(out, dtype=np.float64)


def _marks(ax: Any, result: dict[str, Any]) -> None:
    """The knee (a band from the last flat step to the first super-linear one) and the first breach."""
    knee = result.get("knee")
    if knee:
        ax.axvspan(knee["vens"], knee["next_vens"], color=KNEE_COLOUR, alpha=0.08, linewidth=0)
        ax.axvline(knee["vens"], color=KNEE_COLOUR, linestyle="-.", linewidth=1.1, label=f"knee ({knee['vens']:,} VENs)")
    breach = result.get("first_breach")
    if breach:
        ax.axvline(breach["vens"], color=BREACH_COLOUR, linestyle=":", linewidth=1.1, label=f"SLO breach ({breach['vens']:,} VENs)")


def _slo_lines(ax: Any, doc: dict[str, Any], unit: str, scale: float = 1.0) -> None:
    slo = (doc["steps"][0]["slo"] if doc["steps"] else [])
    for r in slo:
        if r["unit"] != unit:
            continue
        limit = _limit_of(doc, r["expr"])
        if limit is not None:
            ax.axhline(limit * scale, color=SLO_COLOUR, linestyle="--", linewidth=0.9, label=f"SLO {r['expr']}")


def _limit_of(doc: dict[str, Any], expr: str) -> float | None:
    from harness.core.thresholds import parse

    try:
        return parse(expr).limit
    except ValueError:
        return None


def _against_vens(fig: Any, ax: Any, doc: dict[str, Any], ylabel: str, fig_id: str, label: str) -> str:
    """A curve against the fleet size, finished: the knee and breach marks, labels, legend, as SVG."""
    _marks(ax, doc["result"])
    ax.set_xlabel("VENs")
    ax.set_ylabel(ylabel)
    legend_right(ax)
    return svg(fig, fig_id, label)


def _plot_latency(doc: dict[str, Any]) -> str:
    steps = doc["steps"]
    fig, (ax,) = figure(3.8)
    x = _col(steps, "vens")
    values: list[float] = []
    for name, width, style in PCT_STYLE:
        y = _col(steps, "response_time", f"{name}_ms")
        ax.plot(x, y, marker="o", markersize=3.5, linewidth=width, linestyle=style, color=OP_COLOURS[0],
                alpha=1.0 if name == "p99" else 0.75, label=f"response {name}")
        values += [float(v) for v in y if np.isfinite(v) and v > 0]
    y = _col(steps, "service_time", "p99_ms")
    ax.plot(x, y, marker="s", markersize=3, linewidth=1.1, linestyle="--", color=OP_COLOURS[1], label="service p99")
    values += [float(v) for v in y if np.isfinite(v) and v > 0]
    _slo_lines(ax, doc, "ms")
    latency_y(ax, values)
    return _against_vens(fig, ax, doc, "report latency (ms)", "fig-cap-latency", "report latency percentiles against VENs")


def _plot_errors(doc: dict[str, Any]) -> str:
    steps = doc["steps"]
    fig, (ax,) = figure(2.8)
    x = _col(steps, "vens")
    y = 100.0 * _col(steps, "error_rate")
    ax.plot(x, y, marker="o", markersize=3.5, color=OP_COLOURS[5], label="failed operations")
    _slo_lines(ax, doc, "fraction", 100.0)
    top = float(np.nanmax(y)) if np.isfinite(y).any() else 0.0
    ax.set_ylim(0, max(2.0, top * 1.25))
    return _against_vens(fig, ax, doc, "error rate (%)", "fig-cap-errors", "error rate against VENs")


def _plot_rate(doc: dict[str, Any]) -> str:
    steps = doc["steps"]
    fig, (ax,) = figure(3.0)
    x = _col(steps, "vens")
    ax.plot(x, _col(steps, "offered_rate_per_s"), color="#6b7280", linestyle="--", marker="o", markersize=3, label="offered")
    ax.plot(x, _col(steps, "achieved_rate_per_s"), color=OP_COLOURS[2], marker="o", markersize=3.5, label="achieved (ok)")
    ax.set_ylim(bottom=0)
    return _against_vens(fig, ax, doc, "reports per second", "fig-cap-rate", "achieved against offered report rate")


# ---- HTML --------------------------------------------------------------------------------------------------------
def _header(doc: dict[str, Any]) -> str:
    cap, plan, res = doc["capacity"], doc["plan"], doc["result"]
    stop = res["stop"]
    verdict, colour = _verdict(stop, res["largest_vens_within_slo"])
    knee = res.get("knee")
    breach = res.get("first_breach")
    kpis = [
        (fmt_num(res["largest_vens_within_slo"]), f"largest fleet within SLO (VENs, at {fmt_num(plan['interval_s'])} s)"),
        ("—" if not knee else f"{knee['vens']:,}–{knee['next_vens']:,}", "knee (VENs: last flat step – first super-linear)"),
        ("—" if not breach else f"{breach['vens']:,}", "first SLO breach (VENs)"),
        (fmt_num(len(doc["steps"])), "steps run"),
    ]
    limited = ('<p class="fail">The generator became the limit before the target did: the last step was invalid. '
               "Add workers or machines and search again.</p>" if res["generator_limited"] else "")
    sub = (f"{esc(cap['name'])} · start {plan['start_vens']:,} VENs, step {esc(plan['step'])}, max {plan['max_vens']:,} · "
           f"a report every {fmt_num(plan['interval_s'])} s · hold {fmt_num(plan['hold_s'])} s per step · "
           f"started {esc(cap['started_at'])}")
    return (
        f'<header id="sec-answer"><h1>Capacity: {esc(cap["name"])} '
        f'{badge(verdict, colour)}</h1>'
        f'<p class="sub">{sub}</p><p id="stop">The search stopped: <b>{esc(stop)}</b>.</p><p>Target: <code>{esc(cap["target"])}</code>'
        f'{" (embedded VTN" + (", faults " + esc(", ".join(f"{k}={v}" for k, v in cap["vtn_faults"].items())) if cap["vtn_faults"] else "") + ")" if cap["embedded_vtn"] else ""}</p>'
        f'<p id="answer"><b>{esc(doc["answer"])}</b></p>{limited}{cards(kpis)}</header>'
    )


def _verdict(stop: str, largest: Any) -> tuple[str, str]:
    """The badge: what the search concluded, coloured as a run's verdict (a breach found is the answer, not a pass
    or a failure, so the stop reason is said beside it, never on a green badge)."""
    if stop == "interrupted":
        return "interrupted", VERDICT_COLOURS["interrupted"]
    if stop == "generator limit":
        return "generator limit", VERDICT_COLOURS["invalid"]
    if largest is None:
        return "no fleet within SLO", VERDICT_COLOURS["fail"]
    return "answered", VERDICT_COLOURS["pass"]


def _definitions(doc: dict[str, Any]) -> str:
    plan = doc["plan"]
    return (
        '<p class="explain">A <b>step</b> runs the fleet against the same target: warm-up '
        f"({fmt_num(plan['warmup_s'])} s, excluded: the first interval provisions the VENs), then it holds until the "
        f"median report response time of its last {fmt_num(plan['hold_s'])} s is steady (second half within "
        f"{fmt_pct(plan['stability'])} or 5 ms of the first), at most {fmt_num(plan['settle_s'])} s longer. The figures "
        "and the SLO are judged over those last hold seconds. The search stops at the first SLO breach, when a "
        "step's run is invalid (the generator was the limit), or at max. The <b>knee</b> is the last step before the "
        "report p99 response time grows super-linearly: elasticity ln(p99ᵢ/p99ᵢ₋₁)/ln(nᵢ/nᵢ₋₁) above "
        f"{fmt_num(plan['knee_elasticity'])} and p99 above twice the lowest so far.</p>"
    )


def _steps_table(doc: dict[str, Any]) -> str:
    head = ('<tr><th>step</th><th>VENs</th><th>offered/s</th><th>achieved/s</th><th>p50</th><th>p90</th><th>p99</th>'
            '<th>max</th><th>service p99</th><th>error rate</th><th class="l">hold</th><th class="l">run</th>'
            '<th class="l">SLO</th><th class="l">folder</th></tr>')
    rows = []
    for s in doc["steps"]:
        rt, st = s["response_time"], s["service_time"]
        within = s["within_slo"]
        slo = "; ".join(("✓ " if r["passed"] else "✗ ") + r["expr"] + ("" if r["passed"] else f" ({r['detail']})")
                        for r in s["slo"])
        rows.append(
            f'<tr data-vens="{s["vens"]}">{td(s["step"])}{td(s["vens"])}{td(s["offered_rate_per_s"])}'
            f'{td(s["achieved_rate_per_s"])}{td(rt.get("p50_ms"))}{td(rt.get("p90_ms"))}{td(rt.get("p99_ms"))}'
            f'{td(rt.get("max_ms"))}{td(st.get("p99_ms"))}{td(s["error_rate"], fmt_pct(s["error_rate"]))}'
            f'<td class="l">{esc(s["trend"])}</td><td class="l">{esc(s["verdict"])}</td>'
            f'<td class="l {"pass" if within else "fail"}">{esc(slo)}</td>'
            f'<td class="l"><code>{esc(Path(s["run_dir"]).name)}</code></td></tr>'
        )
    return (f'<section id="sec-steps"><h2>Steps</h2><p class="note">Latencies in ms, of successful reports, over each '
            f'step\'s hold.</p><table id="steps"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table></section>')


def render_capacity_html(doc: dict[str, Any]) -> str:
    """The whole page as a string (no I/O)."""
    figures = ""
    with plot_style():
        if doc["steps"]:
            figures = (
                '<section id="sec-curves"><h2>Curves</h2>'
                f'<figure id="fig-cap-latency">{_plot_latency(doc)}<figcaption>Report response time percentiles '
                "(done − intended) and service p99 (done − sent) against the fleet; dashed black: latency SLOs; "
                "purple: the knee band; red dotted: the first SLO breach.</figcaption></figure>"
                f'<figure id="fig-cap-errors">{_plot_errors(doc)}<figcaption>Failed operations as a share of completed '
                "ones in each hold.</figcaption></figure>"
                f'<figure id="fig-cap-rate">{_plot_rate(doc)}<figcaption>Reports completed per second against reports '
                "offered (VENs / interval): where achieved falls below offered, the target no longer keeps up."
                "</figcaption></figure></section>"
            )
    plan = [(k.replace("_", " "), ", ".join(v) if isinstance(v, list) and all(isinstance(x, str) for x in v)
             else (", ".join(f"{x:,}" for x in v) if isinstance(v, list) else v)) for k, v in doc["plan"].items()]
    body = (_header(doc) + _definitions(doc) + figures + _steps_table(doc)
            + f'<section id="sec-plan"><h2>Plan</h2>{kv(plan)}</section>')
    footer = ("(capacity.json beside this page; each step's run folder holds its summary.json, series.csv and "
              "histograms).")
    return page(f"harness capacity: {doc['capacity']['name']}", body, footer)


# ---- terminal --------------------------------------------------------------------------------------------------
def step_line(s: StepFigures) -> str:
    """One plain line per finished step, for the terminal while the search runs."""
    p99 = s.response_ms.get("p99")
    slo = "within SLO" if s.verdict == "pass" and s.slo_passed else (
        f"run {s.verdict}" if s.verdict != "pass" else "SLO breached: " + "; ".join(r.expr for r in s.broken))
    return (f"step {s.index}: {s.vens:,} VENs  achieved {s.achieved_rate_per_s:,.1f}/{s.offered_rate_per_s:,.1f} reports/s  "
            f"p99 {'—' if p99 is None else format_value(p99, 'ms')}  errors {s.error_rate * 100:.3g}%  hold {s.trend}  {slo}")


def steps_table(outcome: CapacityOutcome) -> Any:
    """A rich Table of the steps (rich is imported here: the JSON/HTML writers do not need it)."""
    from rich.table import Table

    table = Table(title=f"capacity: {outcome.plan.interval_s:g} s interval, SLO {' and '.join(t.expr for t in outcome.plan.slo)}",
                  title_justify="left")
    for col in ("step", "VENs", "offered/s", "achieved/s", "p50", "p90", "p99", "max", "errors", "hold", "SLO"):
        table.add_column(col, justify="left" if col in ("hold", "SLO") else "right")
    knee = outcome.result.knee
    for s in outcome.steps:
        ms = [("—" if s.response_ms.get(k) is None else format_value(float(s.response_ms[k] or 0.0), "ms"))
              for k in ("p50", "p90", "p99", "max")]
        ok = s.verdict == "pass" and s.slo_passed
        verdict = "pass" if ok else (s.verdict if s.verdict != "pass" else "breach")
        mark = "  ◆ knee" if knee is not None and s.vens == knee.vens else ""
        table.add_row(str(s.index), f"{s.vens:,}", f"{s.offered_rate_per_s:,.1f}", f"{s.achieved_rate_per_s:,.1f}", *ms,
                      f"{s.error_rate * 100:.3g}%", s.trend, verdict + mark, style="" if ok else "red")
    return table
