"""The run report's DR fan-out section: how many targeted VENs learned of each event, how, and how fast, with the
curve of the share of targeted VENs aware over time (from summary.json's event_fanout.events[].aware_curve).

Edge (strings, matplotlib inside the plot function).
"""

from __future__ import annotations

from typing import Any

from harness.reports.folder import OP_COLOURS
from harness.reports.kit import PCT_KEYS, esc, figure_html, fmt_num, fmt_pct, td
from harness.reports.plots import figure, legend_right, svg

EVENT_COLUMNS = ("event", "at (s)", "level", "targeted", "aware", "learned by", "p50", "p90", "p99", "max",
                 "all aware after (s)", "shed reported", "shed report p50", "shed report p99")


def section_fanout(fan: Any) -> str:
    """The section, or "" when the run fired no DR event."""
    if not isinstance(fan, dict) or not fan:
        return ""
    aware, targeted = fan.get("aware"), fan.get("targeted")
    share = ""
    if isinstance(aware, (int, float)) and isinstance(targeted, (int, float)) and targeted:
        share = (f"<p><b>{fmt_num(aware)}</b> of <b>{fmt_num(targeted)}</b> targeted VENs became aware of the "
                 f"event{'s' if len(fan.get('events') or []) > 1 else ''} ({fmt_pct(aware / targeted)}).</p>")
    learned = fan.get("learned_by")
    if isinstance(learned, dict) and learned:
        share += ('<p id="learned-by">How they learned: ' + ", ".join(
            f'<span data-way="{esc(way)}"><b>{fmt_num(n)}</b> by {esc(str(way).replace("_", " "))}</span>'
            for way, n in learned.items()) + ".</p>")
    events = [e for e in fan.get("events") or [] if isinstance(e, dict)]
    curves = [e for e in events if e.get("aware_curve") and e.get("targeted")]
    fig = ""
    if curves:
        fig = figure_html(plot_aware_curve(curves), "fig-fanout",
                          "Share of each event's targeted VENs aware of it against the time since the operator "
                          "created it; a curve that stops below 100 % means some VENs never learned of it.")
    return (f'<section id="sec-fanout"><h2>DR event fan-out</h2><p>How long after a demand-response event was '
            f"created the targeted VENs knew of it (by their poll, a notification, or the read of current events "
            f"after subscribing: startup read).</p>{share}{_totals_table(fan)}{fig}{_events_table(events)}</section>")


def _totals_table(fan: dict[str, Any]) -> str:
    pcts = [(label, fan[k]) for k, label in PCT_KEYS if k in fan]
    if not pcts:
        return ""
    return ('<table id="fanout"><thead><tr><th class="l">from event created to VEN aware (ms)</th>'
            + "".join(f"<th>{label}</th>" for label, _ in pcts)
            + ("<th>mean</th>" if "mean_ms" in fan else "") + '</tr></thead><tbody><tr><td class="l">fan-out</td>'
            + "".join(td(v) for _, v in pcts) + (td(fan["mean_ms"]) if "mean_ms" in fan else "")
            + "</tr></tbody></table>")


def _events_table(events: list[dict[str, Any]]) -> str:
    if not events:
        return ""
    rows = []
    for e in events:
        fo, shed = e.get("fanout") or {}, e.get("shed_report_delay") or {}
        ways = ", ".join(f"{fmt_num(n)} {esc(str(w).replace('_', ' '))}" for w, n in (e.get("learned_by") or {}).items())
        cells = [td(e.get(k)) for k in ("at_s", "level", "targeted", "aware")]
        cells.append(f'<td class="l">{ways or "—"}</td>')
        cells += [td(fo.get(k)) for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")]
        cells += [td(e.get("all_aware_after_s")), td(e.get("shed_reported")), td(shed.get("p50_ms")), td(shed.get("p99_ms"))]
        rows.append(f'<tr data-event="{esc(e.get("id", ""))}"><td class="l">{esc(e.get("id", ""))}</td>{"".join(cells)}</tr>')
    head = "".join(f'<th class="l">{c}</th>' if c in ("event", "learned by") else f"<th>{c}</th>" for c in EVENT_COLUMNS)
    return ('<h3>Each event</h3><p class="explain">Latencies in ms: from the event created to each VEN aware; '
            "shed report: from the event's start to the VEN's first report of its shed load.</p>"
            f'<table id="fanout-events"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>')


def plot_aware_curve(events: list[dict[str, Any]]) -> str:
    fig, (ax,) = figure(3.0)
    for k, e in enumerate(events):
        pts = [(0.0, 0.0)] + [(float(t), 100.0 * float(n) / float(e["targeted"])) for t, n in e["aware_curve"]]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], drawstyle="steps-post", color=OP_COLOURS[k % len(OP_COLOURS)],
                label=f"{e.get('id', k)} ({fmt_num(e.get('targeted'))} targeted)")
    ax.axhline(100.0, color="#9ca3af", linestyle="--", linewidth=0.8)
    ax.set_xlabel("time since the event was created (s)")
    ax.set_ylabel("targeted VENs aware (%)")
    ax.set_ylim(0, 105)
    ax.set_xlim(left=0)
    legend_right(ax)
    return svg(fig, "fig-fanout", "share of targeted VENs aware over time")
