"""Plots of harness's reports: matplotlib figures as inline SVG (no fonts or files), and the run report's plots.

Edge (matplotlib, imported inside functions on the Agg backend, so importing this module is cheap and works
without it; a missing matplotlib is a one-line ReportError naming the extra to install).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from harness.core.exits import ReportError
from harness.core.histogram import MID_NS, Histogram
from harness.reports.folder import OP_COLOURS, FloatArray, RunData, nans
from harness.reports.kit import esc

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

INSTALL_HINT = "pip install 'harness[report]'"
_RC: dict[str, Any] = {
    "font.size": 9.0,
    "font.family": "DejaVu Sans",
    "axes.titlesize": 10.0,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.labelsize": 9.0,
    "axes.edgecolor": "#9ca3af",
    "axes.labelcolor": "#374151",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#e5e7eb",
    "grid.linewidth": 0.6,
    "xtick.color": "#4b5563",
    "ytick.color": "#4b5563",
    "legend.frameon": False,
    "legend.fontsize": 8.5,
    "lines.linewidth": 1.5,
    "svg.fonttype": "path",  # glyphs as paths: no font files, identical everywhere
    "svg.hashsalt": "harness-report",  # stable ids: the same run gives the same file
    "figure.facecolor": "white",
}
FIG_WIDTH_IN = 10.0


def require_matplotlib() -> Any:
    """matplotlib on the Agg backend, or a ReportError naming the extra to install."""
    try:
        import matplotlib
    except ImportError:
        raise ReportError(f"the HTML report needs matplotlib: {INSTALL_HINT}") from None
    matplotlib.use("Agg")
    return matplotlib


@contextmanager
def plot_style() -> Iterator[None]:
    """The reports' matplotlib settings, for the figures drawn inside."""
    matplotlib = require_matplotlib()
    with matplotlib.rc_context(cast(Any, _RC)):
        yield


def figure(height_in: float, nrows: int = 1, *, sharex: bool = True) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(FIG_WIDTH_IN, height_in), layout="constrained")
    axes = fig.subplots(nrows, 1, sharex=sharex, squeeze=False)[:, 0]
    return fig, list(axes)


def svg(fig: Figure, fig_id: str, label: str) -> str:
    """The figure as inline SVG: no XML prolog, no namespaces/metadata URLs, ids prefixed to be page-unique."""
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buf.getvalue().decode("utf-8")
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    text = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", text)
    text = re.sub(r'\s+version="1\.1"', "", text)
    ids = set(re.findall(r'\bid="([^"]+)"', text))
    text = re.sub(
        r'(\bid="|href="#|url\(#)([^")]+)',
        lambda m: f"{m.group(1)}{fig_id}-{m.group(2)}" if m.group(2) in ids else m.group(0),
        text,
    )
    return text.replace("<svg", f'<svg role="img" aria-label="{esc(label)}"', 1).strip()


def log_y(ax: Axes) -> None:
    """Log latency axis labelled in plain numbers (1, 2, 5, 10, 20 ...), which planners read faster than 10^n."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def latency_y(ax: Axes, values: list[float]) -> None:
    """A log latency axis when the values span more than 30x, else linear from 0."""
    if values and max(values) / max(min(values), 1e-6) > 30:
        log_y(ax)
    else:
        ax.set_ylim(bottom=0)


def legend(ax: Axes, **kw: Any) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, **kw)


def legend_right(ax: Axes) -> None:
    """The legend outside the axes, top right (constrained layout makes room for it)."""
    legend(ax, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def time_axis(ax: Axes, data: RunData, *, label: bool = True) -> None:
    """Seconds since t0 on x (whole seconds: a window is one second), the warm-up shaded."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("time since start (s)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if data.seconds.size:
        ax.set_xlim(float(data.seconds[0]) - 0.5, float(data.seconds[-1]) + 0.5)
    warm = data.warmup_s
    if warm > 0:
        ax.axvspan(float(data.seconds[0]) - 0.5 if data.seconds.size else -0.5, warm - 0.5, color="#eceef1", zorder=0,
                   linewidth=0, label="warm-up (excluded)" if label else None)
    for i, f in enumerate((data.summary.get("faults") or {}).get("faults", [])):  # each timed fault a red band
        end = f["ended_s"] if f["ended_s"] is not None else f["started_s"]
        ax.axvspan(f["started_s"], max(end, f["started_s"] + 0.5), color="#f4c7c3", zorder=0, linewidth=0,
                   label="fault" if label and i == 0 else None)


def plot_throughput(data: RunData) -> str:
    fig, (ax,) = figure(3.3)
    for op in data.operations:
        cols = data.series.get(op)
        if cols is None:
            continue
        ax.plot(data.seconds, cols["ok"], color=data.colour(op), label=f"{op} ok/s", drawstyle="steps-mid")
        if np.nansum(cols["errors"]) > 0:
            ax.plot(data.seconds, cols["errors"], color=data.colour(op), linestyle=":", linewidth=1.3,
                    label=f"{op} errors/s", drawstyle="steps-mid")
    target = data.summary.get("run", {}).get("target_report_rate_per_s")
    if isinstance(target, (int, float)) and target > 0 and data.main_operation in data.series:
        ax.axhline(target, color="#111827", linestyle="--", linewidth=0.9, label=f"target {data.main_operation} rate")
    time_axis(ax, data)
    ax.set_ylabel("completions per second")
    ax.set_ylim(bottom=0)
    legend_right(ax)
    return svg(fig, "fig-throughput", "throughput over time")


def plot_fault(data: RunData, f: dict[str, Any]) -> str:
    """One fault zoomed: the main operation's ok/s and errors/s (top) and its response p50/p99 (bottom), from a few
    seconds before the fault to a few after its recovery, the fault a red band and its recovery instant a line."""
    op = data.main_operation
    cols = data.series.get(op, {})
    interval = float((data.summary.get("run", {}).get("profile") or {}).get("interval_s") or 1.0)
    pad = max(5.0, 2 * interval)
    end = f["ended_s"] if f["ended_s"] is not None else f["started_s"]
    back = end + f["recovery_s"] if f.get("recovery_s") is not None else None
    last = float(data.seconds[-1]) if data.seconds.size else end
    first = float(data.seconds[0]) if data.seconds.size else 0.0
    lo, hi = max(first - 0.5, f["started_s"] - pad), min(last + 0.5, (back if back is not None else last) + pad)
    fig, (top, bottom) = figure(4.2, 2)
    sel = (data.seconds >= lo) & (data.seconds <= hi)
    x = data.seconds[sel]
    c = data.colour(op)
    if "ok" in cols:
        top.plot(x, cols["ok"][sel], color=c, label=f"{op} ok/s", drawstyle="steps-mid")
        if np.nansum(cols["errors"][sel]) > 0:
            top.plot(x, cols["errors"][sel], color=c, linestyle=":", linewidth=1.3, label=f"{op} errors/s",
                     drawstyle="steps-mid")
    target = data.summary.get("run", {}).get("target_report_rate_per_s")
    if isinstance(target, (int, float)) and target > 0:
        top.axhline(target, color="#111827", linestyle="--", linewidth=0.9, label="target rate")
    top.set_ylabel("per second")
    top.set_ylim(bottom=0)
    values: list[float] = []
    for key, width, label in (("response_p99_ms", 1.7, "response p99"), ("response_p50_ms", 0.9, "response p50")):
        if key in cols:
            y = cols[key][sel]
            bottom.plot(x, y, color=c, linewidth=width, label=label)
            values += [float(v) for v in y if np.isfinite(v) and v > 0]
    latency_y(bottom, values)
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("time since start (s)")
    for ax in (top, bottom):
        ax.axvspan(f["started_s"], max(end, f["started_s"] + 0.5), color="#f4c7c3", zorder=0, linewidth=0,
                   label="fault" if ax is top else None)
        if back is not None:
            ax.axvline(back, color="#15803d", linewidth=1.2, label="recovered" if ax is top else None)
        ax.set_xlim(lo, hi)
    legend_right(top)
    legend_right(bottom)
    return svg(fig, f"fig-fault-{f['index']}", f"fault {f['index']} and its recovery")


def plot_latency_time(data: RunData) -> str:
    from matplotlib.lines import Line2D

    fig, (ax,) = figure(3.6)
    values: list[float] = []
    op_handles = []
    for op in data.operations:
        cols = data.series.get(op)
        if cols is None or not np.isfinite(cols.get("response_p99_ms", nans(0))).any():
            continue
        c = data.colour(op)
        ax.plot(data.seconds, cols["response_p50_ms"], color=c, linewidth=0.9, alpha=0.75)
        ax.plot(data.seconds, cols["response_p99_ms"], color=c, linewidth=1.7)
        if "service_p99_ms" in cols:
            ax.plot(data.seconds, cols["service_p99_ms"], color=c, linewidth=1.1, linestyle="--")
        values += [float(v) for v in cols["response_p99_ms"] if np.isfinite(v) and v > 0]
        values += [float(v) for v in cols["response_p50_ms"] if np.isfinite(v) and v > 0]
        op_handles.append(Line2D([], [], color=c, linewidth=2.5, label=op))
    latency_y(ax, values)
    time_axis(ax, data)
    ax.set_ylabel("latency (ms)")
    style = [Line2D([], [], color="#374151", linewidth=1.7, label="response p99"),
             Line2D([], [], color="#374151", linewidth=0.9, alpha=0.75, label="response p50"),
             Line2D([], [], color="#374151", linewidth=1.1, linestyle="--", label="service p99")]
    if op_handles:
        # One legend (operations, a gap, then line styles): constrained layout makes room for it.
        gap = Line2D([], [], color="none", label=" ")
        ax.legend(handles=[*op_handles, gap, *style], loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return svg(fig, "fig-latency-time", "latency percentiles over time")


def spectrum(h: Histogram, points: int = 300) -> tuple[FloatArray, FloatArray]:
    """Percentile spectrum of a histogram: x = 1/(1-q) (1 → p0, 100 → p99), y = latency in ms at q."""
    total = h.total
    if total == 0:
        return np.zeros(0), np.zeros(0)
    # Beyond 1/(1-q) = total every rank is the last one: the line runs on flat at the max to the next decade.
    x = np.logspace(0.0, max(1, math.ceil(math.log10(total))), points)
    q = 1.0 - 1.0 / x
    ranks = np.maximum(1, np.ceil(q * total)).astype(np.int64)
    idx = np.searchsorted(np.cumsum(h.counts), ranks)
    y = np.clip(MID_NS[np.minimum(idx, MID_NS.size - 1)], h.min_ns, h.max_ns) / 1e6
    return x, y


def plot_distribution(data: RunData, op: str) -> str:
    from matplotlib.ticker import FixedLocator, NullLocator

    fig, (ax,) = figure(3.4)
    c = data.colour(op)
    hists = data.totals.get(op, {})
    top = 10.0
    ys: list[float] = []
    for metric, style, label in (("response_time", "-", "response time"), ("service_time", "--", "service time")):
        h = hists.get(metric)
        if h is None or h.total == 0:
            continue
        x, y = spectrum(h)
        ax.plot(x, y, color=c, linestyle=style, linewidth=1.8 if style == "-" else 1.3, label=f"{op} {label}")
        top = max(top, float(x[-1]))
        ys += [float(v) for v in y if v > 0]
    ax.set_xscale("log")
    decades = max(1, math.ceil(math.log10(top)))
    ticks = [10.0**k for k in range(decades + 1)]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([_pct_label(k) for k in range(decades + 1)])
    ax.set_xlim(1.0, 10.0**decades)
    latency_y(ax, ys)
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms)")
    legend(ax, loc="upper left")
    return svg(fig, "fig-latency-distribution", f"latency distribution of {op}")


def _pct_label(decade: int) -> str:
    if decade == 0:
        return "0%"
    return f"{100 - 100 / 10**decade:.{max(0, decade - 2)}f}%"


def plot_errors(data: RunData) -> str:
    fig, (ax, ax2) = figure(4.2, 2)
    bottom = np.zeros(data.seconds.size)
    for op in data.operations:
        cols = data.series.get(op)
        if cols is None or np.nansum(cols["errors"]) == 0:
            continue
        err = np.nan_to_num(cols["errors"])
        ax.bar(data.seconds, err, bottom=bottom, width=0.85, color=data.colour(op), label=op, linewidth=0)
        bottom += err
        done = np.nan_to_num(cols["ok"]) + err
        with np.errstate(invalid="ignore", divide="ignore"):
            pct = np.where(done > 0, 100.0 * err / np.where(done > 0, done, 1.0), np.nan)
        ax2.plot(data.seconds, pct, color=data.colour(op), marker="o", markersize=2.5, label=op)
    ax.set_ylabel("errors per second")
    ax2.set_ylabel("failed (% of completed)")
    top = max((float(np.nanmax(line.get_ydata())) for line in ax2.get_lines()
               if np.isfinite(np.asarray(line.get_ydata(), dtype=float)).any()), default=0.0)
    ax2.set_ylim(0, max(5.0, min(105.0, top * 1.25)))
    time_axis(ax, data)
    time_axis(ax2, data, label=False)
    ax.set_xlabel("")
    legend_right(ax)
    return svg(fig, "fig-errors", "errors over time")


def plot_health(data: RunData) -> str:
    panels = [("loop_lag_max_ms", "loop lag max (ms)", "max_loop_lag_ms"),
              ("cpu_percent", "CPU (%)", "max_cpu_percent"),
              ("rss_mb", "RSS (MiB)", None)]
    fig, axes = figure(5.2, len(panels))
    profile = data.summary.get("run", {}).get("profile", {}) or {}
    n = len(data.health)
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    for i, (wid, cols) in enumerate(sorted(data.health.items())):
        colour = cmap(0.1 + 0.75 * i / max(1, n - 1)) if n > 1 else "#374151"
        t = cols.get("t_s", np.arange(len(next(iter(cols.values())))))
        for ax, (col, _, _) in zip(axes, panels):
            if col in cols:
                ax.plot(t, cols[col], color=colour, linewidth=1.2, label=f"worker {wid}", drawstyle="steps-mid")
    for ax, (_, label, limit_key) in zip(axes, panels):
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        limit = profile.get(limit_key) if limit_key else None
        # A limit far above the data would flatten it; draw it only when the data come near.
        if isinstance(limit, (int, float)) and 0 < limit <= 2 * ax.get_ylim()[1]:
            ax.axhline(limit, color="#b91c1c", linestyle="--", linewidth=0.9, label="limit")
            ax.set_ylim(top=max(ax.get_ylim()[1], limit * 1.1))
    for i, ax in enumerate(axes):
        time_axis(ax, data, label=False)
        if i < len(axes) - 1:
            ax.set_xlabel("")
    axes[-1].set_xlabel("time since start (s; one sample per worker delta)")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        ncol = 1 if n <= 8 else 2
        axes[0].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 1.0), ncol=ncol)
    return svg(fig, "fig-health", "generator health over time")


def plot_stages(rows: list[dict[str, Any]], x_key: str | None, y_keys: list[str]) -> str:
    fig, (ax,) = figure(3.2)
    x = np.array([float(r[x_key]) if x_key else i + 1.0 for i, r in enumerate(rows)])
    for k, key in enumerate(y_keys):
        y = np.array([float(r[key]) if isinstance(r.get(key), (int, float)) else math.nan for r in rows])
        ax.plot(x, y, marker="o", color=OP_COLOURS[k % len(OP_COLOURS)], label=key)
    ax.set_xlabel(x_key or "stage")
    ax.set_ylabel("latency (ms)")
    ax.set_ylim(bottom=0)
    legend_right(ax)
    return svg(fig, "fig-stages", "latency per stage")
