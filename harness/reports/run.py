"""The HTML report of a run folder: one self-contained page (inline CSS, inline SVG plots) that needs no network.

Edge (files, matplotlib). The page's sections, from the folder's reader (folder.py), the HTML kit (kit.py) and
the plots (plots.py); importing this module is cheap and works without matplotlib.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.exits import ReportError
from harness.core.results import METRIC_KEYS
from harness.core.thresholds import format_value
from harness.reports.config import section_configuration
from harness.reports.fanout import section_fanout
from harness.reports.folder import RunData, load_run
from harness.reports.kit import (
    PCT_KEYS, VERDICT_COLOURS, badge, cards, clip, esc, figure_html, flatten, fmt_ms, fmt_num, fmt_pct, generic_table,
    page, pass_cell, safe_url, swatch, table, td,
)
from harness.reports.plots import (
    plot_distribution, plot_errors, plot_fault, plot_health, plot_latency_time, plot_stages, plot_throughput, plot_style,
    require_matplotlib,
)
from harness.sinks.resultsdir import write_bytes_atomic

REPORT_NAME = "report.html"
LATENCY_LABELS = {"response_time": "response", "service_time": "service", "start_lag": "start lag"}


def render_html(data: RunData) -> str:
    """The whole page as a string (no I/O)."""
    with plot_style():
        sections = [
            # Findings first (the verdict and why, headline figures, thresholds, plots), then the detail, and the
            # configuration last.
            _section_header(data),
            _section_thresholds(data),
            _section_throughput(data),
            _section_latency_time(data),
            _section_distribution(data),
            _section_stages(data),
            _section_faults(data),
            _section_operations(data),
            _section_errors(data),
            _section_deviations(data),
            _section_health(data),
            section_fanout(data.summary.get("event_fanout")),
            section_configuration(data.summary),
        ]
    title = f"harness report: {data.summary.get('run', {}).get('name', data.run_dir.name)}"
    missing = (f" Not in the folder: {', '.join(data.missing)}." if data.missing else "")
    footer = (f"from the run folder <code>{esc(data.run_dir.name)}</code> (summary.json, series.csv, health.csv, "
              f"histograms.npz).{esc(missing)}")
    return page(title, "\n".join(x for x in sections if x), footer)


def _section_header(data: RunData) -> str:
    s = data.summary
    run = s.get("run", {})
    prof = run.get("profile", {}) or {}
    verdict = str(s.get("verdict", "unknown"))
    colour = VERDICT_COLOURS.get(verdict, "#6b7280")
    bits = []
    if prof.get("vens") is not None:
        bits.append(f"{prof['vens']:,} VENs")
    if prof.get("interval_s") is not None:
        bits.append(f"a report every {fmt_num(prof['interval_s'])} s")
    if s.get("measured_s") is not None:
        bits.append(f"{fmt_num(s['measured_s'])} s measured")
    if run.get("workers") is not None:
        bits.append(f"{run['workers']} workers")
    if run.get("started_at"):
        bits.append(f"started {run['started_at']}")
    reason_html = _why(s, verdict)
    main = data.main_operation
    op = s.get("operations", {}).get(main, {})
    done = sum(o.get("ok", 0) + o.get("errors", 0) for o in s.get("operations", {}).values())
    errs = sum(o.get("errors", 0) for o in s.get("operations", {}).values())
    kpis = [
        (fmt_num(op.get("rate_per_s")) + _target_suffix(run), f"{main} rate (ok/s, achieved / target)"),
        (fmt_ms(op.get("response_time", {}).get("p99_ms")), f"{main} p99 response time"),
        (fmt_ms(op.get("service_time", {}).get("p99_ms")), f"{main} p99 service time"),
        (fmt_pct(errs / done if done else None), "failed operations (all)"),
        (fmt_num(op.get("ok")), f"{main} ok"),
    ]
    return (
        f'<header id="sec-verdict"><h1>{esc(run.get("name", data.run_dir.name))} {badge(verdict, colour)}</h1>'
        f'<p class="sub">{esc(" · ".join(bits))}</p>'
        f'<p>Target: <code>{esc(safe_url(str(run.get("target", "—"))))}</code></p>'
        f"{reason_html}{cards(kpis)}</header>"
    )


def _why(s: dict[str, Any], verdict: str) -> str:
    """Why the run got its verdict: the reasons it did not pass, or the checks that held."""
    reasons = [str(r) for r in s.get("reasons") or []]
    if not reasons:
        th = [t for t in s.get("thresholds") or [] if isinstance(t, dict)]
        held = sum(bool(t.get("passed")) for t in th)
        which = "default gates" if s.get("thresholds_source") == "default" else "thresholds"
        reasons = [f"{verdict}: {held} of {len(th)} {which} held" if th else f"{verdict}: no thresholds were judged"]
    return '<ul class="reasons" id="why">' + "".join(f"<li>{esc(r)}</li>" for r in reasons) + "</ul>"


def _target_suffix(run: dict[str, Any]) -> str:
    t = run.get("target_report_rate_per_s")
    return f' <span class="k">/ {fmt_num(t)}</span>' if isinstance(t, (int, float)) else ""


def _section_operations(data: RunData) -> str:
    ops = data.summary.get("operations", {})
    head = ('<th class="l">operation</th><th>ok</th><th>errors</th><th>error rate</th><th>ok/s</th>'
            '<th class="l">latency (ms)</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>mean</th>')
    rows = []
    for op in data.operations:
        o = ops.get(op)
        if o is None:
            continue
        for i, key in enumerate(METRIC_KEYS.values()):
            lat = o.get(key) or {}
            cells = "".join(td(lat.get(k)) for k, _ in PCT_KEYS) + td(lat.get("mean_ms"))
            if i == 0:
                lead = (f'<td class="l" rowspan="3">{swatch(data.colour(op))}<b>{esc(op)}</b></td>'
                        + td(o.get("ok")) + td(o.get("errors"))
                        + td(o.get("error_rate"), fmt_pct(o.get("error_rate")))
                        + td(o.get("rate_per_s")))
                rows.append(f'<tr class="op-first" data-op="{esc(op)}" data-metric="{key}">{lead}'
                            f'<td class="l">{LATENCY_LABELS[key]}</td>{cells}</tr>')
            else:
                rows.append(f'<tr data-op="{esc(op)}" data-metric="{key}"><td class="l" colspan="4"></td>'
                            f'<td class="l">{LATENCY_LABELS[key]}</td>{cells}</tr>')
    return (
        '<section id="sec-operations"><h2>Operations</h2>'
        '<p class="explain"><b>response</b> = done − intended (what a VEN on its schedule experiences, free of '
        "coordinated omission); <b>service</b> = done − sent (the VTN's time per request); <b>start lag</b> = "
        "sent − intended (how late harness or a VEN's queue started the request). Latencies are of successful "
        "operations; ok/s is over the measured time.</p>"
        f'{table("operations", head, "".join(rows))}{_warmup_note(data)}</section>'
    )


def _warmup_note(data: RunData) -> str:
    warm = data.summary.get("warmup") or {}
    ops = warm.get("operations") or {}
    if not ops:
        return ""
    done = ", ".join(f"{esc(op)} {fmt_num(o.get('ok', 0))} ok / {fmt_num(o.get('errors', 0))} failed"
                     for op, o in ops.items())
    return (f'<p class="note">In the {fmt_num(warm.get("seconds"))} s warm-up, not counted above: {done} '
            "(summary.json \"warmup\").</p>")


def _figure_html(svg: str, fig_id: str, caption: str, data: RunData | None = None) -> str:
    if data is not None and data.warmup_s > 0:
        caption += f" Grey band: the {fmt_num(data.warmup_s)} s warm-up, excluded from the totals."
    return figure_html(svg, fig_id, caption)


NO_SERIES = '<p class="note">No per-second series in this run folder (series.csv missing or empty).</p>'


def _series_section(data: RunData, name: str, title: str, plot: Callable[[RunData], str], caption: str) -> str:
    """A section of one plot of the per-second series (a note when the folder has none)."""
    body = _figure_html(plot(data), f"fig-{name}", caption, data) if data.series else NO_SERIES
    return f'<section id="sec-{name}"><h2>{title}</h2>{body}</section>'


def _section_throughput(data: RunData) -> str:
    return _series_section(data, "throughput", "Throughput over time", plot_throughput,
                           "Completed operations per second by operation (solid: ok, dotted: failed); dashed black: "
                           "the profile's target report rate. Time is when operations completed.")


def _section_latency_time(data: RunData) -> str:
    return _series_section(data, "latency-time", "Latency over time", plot_latency_time,
                           "Per-second latency by operation: response time p99 (thick) and p50 (thin), service time "
                           "p99 (dashed). A gap between response and service p99 means requests started late.")


def _section_distribution(data: RunData) -> str:
    op = data.main_operation
    hists = data.totals.get(op, {})
    if not any(h.total for h in hists.values()):
        body = f'<p class="note">No latency histograms for {esc(op)} in this run folder.</p>'
    else:
        n = hists["response_time"].total if "response_time" in hists else 0
        body = _figure_html(plot_distribution(data, op), "fig-latency-distribution",
                            f"Percentile spectrum of <b>{esc(op)}</b> over the whole measured run ({n:,} successful "
                            "operations, from the exact histograms): response time (solid) against service time "
                            "(dashed). Each step to the right is ten times rarer; the flat end is the maximum.")
    return f'<section id="sec-distribution"><h2>Latency distribution</h2>{body}</section>'


def _section_errors(data: RunData) -> str:
    errors: dict[str, Any] = data.summary.get("errors") or {}
    total = sum(int(e.get("count", 0)) for e in errors.values())
    has_series_errors = any(np.nansum(c["errors"]) > 0 for c in data.series.values())
    parts = ['<section id="sec-errors"><h2>Errors</h2>']
    if has_series_errors:
        parts.append(_figure_html(plot_errors(data), "fig-errors",
                                  "Failed operations per second, stacked by operation (top), and the share of each "
                                  "operation's completions that failed (bottom).", data))
    if not errors:
        parts.append('<p>No errors: every operation succeeded.</p>')
    else:
        # One row per (class, operation): a class spread over operations is credited to each (older summaries
        # without by_operation give one row per class).
        per_op = [(cls, op, slot) for cls, e in errors.items()
                  for op, slot in (e.get("by_operation") or {e.get("operation", ""): e}).items()]
        rows = "".join(
            f'<tr data-class="{esc(cls)}" data-operation="{esc(op)}"><td class="l"><b>{esc(cls)}</b></td>'
            f'<td class="l">{esc(op)}</td>{td(e.get("count"))}'
            f'{td(e.get("count", 0) / total if total else None, fmt_pct(e.get("count", 0) / total if total else None))}'
            f'<td class="ex">{esc(clip(str(e.get("example", "")), 400))}</td></tr>'
            for cls, op, e in sorted(per_op, key=lambda r: (-int(r[2].get("count", 0)), r[0], r[1]))
        )
        parts.append(table("errors", '<th class="l">class</th><th class="l">operation</th><th>count</th><th>share</th>'
                           '<th class="l">example</th>', rows))
    parts.append("</section>")
    return "".join(parts)


def _section_health(data: RunData) -> str:
    parts = ['<section id="sec-health"><h2>Generator health</h2>']
    if data.health:
        prof = data.summary.get("run", {}).get("profile", {}) or {}
        limits = "; ".join(f"{label} {fmt_num(prof[k])}" for k, label in
                           (("max_loop_lag_ms", "loop lag limit (ms)"), ("max_cpu_percent", "CPU limit (%)"))
                           if isinstance(prof.get(k), (int, float)))
        parts.append(_figure_html(plot_health(data), "fig-health",
                                  "Each worker process's event-loop lag (how late its timers fired), CPU and resident "
                                  "memory; dashed red: a limit, drawn when the data come near it"
                                  f"{' (' + esc(limits) + ')' if limits else ''}. A worker over its limits for long makes "
                                  "the run invalid: harness, not the target, was the bottleneck.", data))
    else:
        parts.append('<p class="note">No health samples in this run folder (health.csv missing or empty).</p>')
    workers = data.summary.get("workers") or []
    if workers:
        rows = "".join(
            f'<tr><td class="l">{esc(w.get("worker"))}</td>{td(w.get("pid"), str(w.get("pid", "")))}{td(w.get("vens"))}'
            f'<td class="l">{esc(w.get("status", ""))}</td>{td(w.get("ok"))}{td(w.get("errors"))}'
            f'{td(w.get("loop_lag_max_ms"))}{td(w.get("cpu_percent_max"))}'
            f'{td(w.get("rss_max_bytes"), fmt_num((w.get("rss_max_bytes") or 0) / 2**20))}'
            f'<td class="l">{esc(clip((w.get("detail") or "").strip().splitlines()[-1] if (w.get("detail") or "").strip() else "", 120))}</td></tr>'
            for w in workers
        )
        parts.append(table("workers", '<th class="l">worker</th><th>pid</th><th>VENs</th><th class="l">status</th>'
                           '<th>ok</th><th>errors</th><th>loop lag max (ms)</th><th>CPU max (%)</th>'
                           '<th>RSS max (MiB)</th><th class="l">detail</th>', rows))
    parts.append("</section>")
    return "".join(parts)


def _section_thresholds(data: RunData) -> str:
    th = [t for t in data.summary.get("thresholds") or [] if isinstance(t, dict)]
    if not th:
        return ""
    if not all("expr" in t and "passed" in t for t in th):
        return f'<section id="sec-thresholds"><h2>Thresholds</h2>{generic_table(th, "thresholds")}</section>'
    rows = []
    for t in th:
        unit = str(t.get("unit", "ms"))
        value, limit = t.get("value"), t.get("limit")
        shown = "no data" if not isinstance(value, (int, float)) else format_value(float(value), unit)
        limit_text = "—" if not isinstance(limit, (int, float)) else f"{esc(t.get('comparator', ''))} {format_value(float(limit), unit)}"
        abort = " (aborts the run)" if t.get("abort_on_fail") else ""
        rows.append(f"<tr>{pass_cell('passed', bool(t['passed']))}<td class=\"l\"><code>{esc(t['expr'])}</code>{abort}</td>"
                    f"{td(value, esc(shown))}{td(limit, limit_text)}<td class=\"l\">{esc(t.get('detail', ''))}</td></tr>")
    n_fail = sum(not t["passed"] for t in th)
    noun = "default gates" if data.summary.get("thresholds_source") == "default" else "thresholds"
    checks = table("thresholds", '<th class="l">result</th><th class="l">threshold</th><th>value</th><th>limit</th>'
                 '<th class="l">detail</th>', "".join(rows))
    title = ("Thresholds: default gates (the profile names none)" if data.summary.get("thresholds_source") == "default"
             else "Thresholds")
    return (f'<section id="sec-thresholds"><h2>{title}</h2><p>{len(th) - n_fail} of {len(th)} {noun} held.</p>'
            f"{checks}</section>")


def _section_deviations(data: RunData) -> str:
    """What the VTN sent that the spec does not allow and harness tolerated: each kind, its count, one example."""
    devs = data.summary.get("deviations")
    if not isinstance(devs, dict) or not devs:
        return ""
    rows = "".join(
        f'<tr data-kind="{esc(kind)}"><td class="l"><b>{esc(kind)}</b></td>{td(d.get("count"))}'
        f'<td class="ex">{esc(clip(str(d.get("example", "")), 400))}</td></tr>'
        for kind, d in sorted(devs.items(), key=lambda kv: (-int(kv[1].get("count", 0)), kv[0])))
    return ('<section id="sec-deviations"><h2>Protocol deviations</h2><p>Replies and notifications that deviate '
            "from the OpenADR spec, tolerated (never a failed operation) and counted: each kind with one example.</p>"
            + table("deviations", '<th class="l">kind</th><th>count</th><th class="l">example</th>', rows) + "</section>")


def _section_stages(data: RunData) -> str:
    stages = data.summary.get("stages")
    if not isinstance(stages, list) or not stages:
        return ""
    flat = [flatten(s) for s in stages]
    x_key = next((k for k in ("vens", "target_vens", "rate_per_s") if all(isinstance(r.get(k), (int, float)) for r in flat)), None)
    y_keys = [k for k in dict.fromkeys(k for r in flat for k in r) if "p99" in k and k.endswith("_ms")
              and any(isinstance(r.get(k), (int, float)) for r in flat)][:6]
    fig = ""
    if y_keys and len(flat) > 1:
        fig = _figure_html(plot_stages(flat, x_key, y_keys), "fig-stages",
                           f"p99 latencies per stage against {esc(x_key or 'the stage number')}.")
    return f'<section id="sec-stages"><h2>Stages</h2>{fig}{generic_table(stages, "stages")}</section>'


FAULT_COLUMNS = ("index", "label", "started_s", "ended_s", "rate_back_after_s", "every_ven_back_after_s",
                 "vens_reported_after", "recovered", "recovery_s", "peak_ok_per_s", "peak_requests_per_s",
                 "peak_token_requests_per_s", "peak_outstanding", "backlog_drained_after_s", "requests_during")


def _section_faults(data: RunData) -> str:
    """The profile's timed faults: how the VTN came back from each (summary.json `faults`), and each one zoomed."""
    doc = data.summary.get("faults")
    rows = doc.get("faults") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or not rows:
        return ""
    rep = doc.get("reports") or {}
    intro = (f"<p>Reports due {fmt_num(rep.get('due', 0))}, sent {fmt_num(rep.get('sent', 0))} "
             f"({fmt_num(rep.get('late', 0))} of them late), lost {fmt_num(rep.get('lost', 0))}. Recovered: the report "
             "rate is back within 5 % of the target and every VEN has had a report acknowledged after the fault's end; "
             "recovery_s is the later of the two, from the end.</p>")
    table = generic_table([{k: r.get(k) for k in FAULT_COLUMNS} for r in rows], "faults")
    figs = "".join(
        _figure_html(plot_fault(data, r), f"fig-fault-{r['index']}",
                     f"Fault {r['index']} ({esc(r['label'])}) zoomed: {esc(data.main_operation)} ok/s and errors/s "
                     "against the target rate (top), response p99 and p50 (bottom); red band: the fault; green line: "
                     "recovered.")
        for r in rows) if data.series else NO_SERIES
    return f'<section id="sec-faults"><h2>Faults and recovery</h2>{intro}{table}{figs}</section>'


def write_report(run_dir: Path) -> Path:
    """Write RUN_DIR/report.html (atomically) from the run folder's files; returns its path."""
    run_dir = Path(run_dir)
    require_matplotlib()
    html = render_html(load_run(run_dir))
    path = run_dir / REPORT_NAME
    try:
        write_bytes_atomic(path, html.encode("utf-8"))
    except OSError as exc:
        raise ReportError(f"{path}: cannot write: {exc.strerror or exc}") from None
    return path
