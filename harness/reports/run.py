"""The HTML report of a run folder: one self-contained page (inline CSS, inline SVG plots) that needs no network.

Edge (files, matplotlib). matplotlib is imported inside functions, on the Agg backend, so importing this module is
cheap and works without it; a missing matplotlib is a one-line `ReportError` naming the extra to install.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt
import orjson

from harness import __version__
from harness.core.exits import ReportError as ReportError  # raised here, importable from here
from harness.core.histogram import MID_NS, Histogram
from harness.core.results import METRIC_KEYS
from harness.core.thresholds import format_value
from harness.sinks.resultsdir import read_histograms, write_bytes_atomic

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

REPORT_NAME = "report.html"
INSTALL_HINT = "pip install 'harness[report]'"
FloatArray = npt.NDArray[np.float64]

# Okabe-Ito based: distinguishable for colour-blind readers and in greyscale print; the main operation is blue.
OP_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#8C6D31", "#7F7F7F", "#393B79")
VERDICT_COLOURS = {"pass": "#15803d", "fail": "#b91c1c", "invalid": "#c2410c", "interrupted": "#6b7280",
                   "running": "#1d4ed8"}
LATENCY_LABELS = {"response_time": "response", "service_time": "service", "start_lag": "start lag"}
PCT_KEYS = (("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99"), ("p999_ms", "p99.9"), ("max_ms", "max"))
_SECRET_KEY = re.compile(r"secret|password|passwd|api_?key|private_?key|(^|_)token$", re.I)


# ---- loading the run folder -------------------------------------------------------------------------------------
@dataclass
class RunData:
    """What a run folder holds, as arrays: series per operation on a dense second axis, health per worker."""

    run_dir: Path
    summary: dict[str, Any]
    seconds: FloatArray = field(default_factory=lambda: np.zeros(0))
    series: dict[str, dict[str, FloatArray]] = field(default_factory=dict)
    health: dict[int, dict[str, FloatArray]] = field(default_factory=dict)
    totals: dict[str, dict[str, Histogram]] = field(default_factory=dict)  # op -> response_time|service_time|start_lag
    missing: list[str] = field(default_factory=list)

    @property
    def operations(self) -> list[str]:
        """Operations in display order: the main one first, then by name."""
        names = set(self.summary.get("operations", {})) | set(self.series)
        main = self.main_operation
        return sorted(names, key=lambda op: (op != main, op))

    @property
    def main_operation(self) -> str:
        ops: dict[str, Any] = self.summary.get("operations", {})
        if "report" in ops or "report" in self.series:
            return "report"
        return max(ops, key=lambda op: ops[op].get("ok", 0), default="report")

    def colour(self, op: str) -> str:
        ops = self.operations
        return OP_COLOURS[ops.index(op) % len(OP_COLOURS)] if op in ops else "#7F7F7F"


def load_run(run_dir: Path) -> RunData:
    """Read a run folder; only summary.json is required (a killed run may have nothing else)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: no such run folder")
    path = run_dir / "summary.json"
    if not path.is_file():
        raise ReportError(f"{run_dir}: not a run folder (no summary.json)")
    try:
        doc = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ReportError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise ReportError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("operations"), dict):
        raise ReportError(f"{path}: not a harness summary (no \"operations\" object)")
    data = RunData(run_dir, doc)
    _load_series(data, run_dir / "series.csv")
    _load_health(data, run_dir / "health.csv")
    _load_histograms(data, run_dir / "histograms.npz")
    return data


def _read_csv(path: Path, data: RunData) -> list[dict[str, str]] | None:
    if not path.is_file():
        data.missing.append(path.name)
        return None
    try:
        with path.open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ReportError(f"{path}: cannot read: {exc}") from None


def _num(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _load_series(data: RunData, path: Path) -> None:
    rows = _read_csv(path, data)
    if not rows:
        return
    try:
        ts = [int(r["t_s"]) for r in rows]
    except (KeyError, ValueError) as exc:
        raise ReportError(f"{path}: bad t_s column: {exc}") from None
    lo, hi = min(ts), max(ts)
    data.seconds = np.arange(lo, hi + 1, dtype=np.float64)
    columns = [c for c in rows[0] if c not in ("t_s", "operation")]
    for t, r in zip(ts, rows):
        op = r.get("operation", "")
        cols = data.series.get(op)
        if cols is None:
            cols = data.series[op] = {
                c: (np.zeros if c in ("ok", "errors") else _nans)(data.seconds.size) for c in columns
            }
        for c in columns:
            cols[c][t - lo] = _num(r.get(c))


def _nans(n: int) -> FloatArray:
    return np.full(n, math.nan)


def _load_health(data: RunData, path: Path) -> None:
    rows = _read_csv(path, data)
    if not rows:
        return
    by_worker: dict[int, list[dict[str, str]]] = {}
    for r in rows:
        try:
            by_worker.setdefault(int(r["worker"]), []).append(r)
        except (KeyError, ValueError) as exc:
            raise ReportError(f"{path}: bad worker column: {exc}") from None
    for wid, wrows in sorted(by_worker.items()):
        data.health[wid] = {c: np.array([_num(r.get(c)) for r in wrows]) for c in wrows[0] if c != "worker"}


def _load_histograms(data: RunData, path: Path) -> None:
    if not path.is_file():
        data.missing.append(path.name)
        return
    try:
        data.totals = read_histograms(path)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ReportError(f"{path}: unreadable: {exc}") from None


# ---- formatting ------------------------------------------------------------------------------------------------
def fmt_num(x: Any) -> str:
    """Numbers for tables: three significant figures or so, thousands separated; '—' for missing."""
    if x is None or isinstance(x, bool) or not isinstance(x, (int, float)) or math.isnan(x):
        return "—" if not isinstance(x, (str, bool)) else html.escape(str(x))
    if isinstance(x, int):
        return f"{x:,}"
    a = abs(x)
    if a >= 100:
        return f"{x:,.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}" if a >= 0.001 or a == 0 else f"{x:.2g}"


def fmt_pct(ratio: float | None) -> str:
    if ratio is None:
        return "—"
    return f"{100 * ratio:.3g} %" if ratio else "0 %"


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _td(value: Any, text: str | None = None, cls: str = "") -> str:
    """A numeric cell carrying the exact value it shows (data-v), so readers and tests can check it."""
    c = f' class="{cls}"' if cls else ""
    return f"<td{c} data-v=\"{_e(json.dumps(value))}\">{text if text is not None else fmt_num(value)}</td>"


def _swatch(colour: str) -> str:
    return f'<span class="swatch" style="background:{colour}"></span>'


def _safe_url(url: str) -> str:
    """A URL without user:password@ (secrets never reach the report)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _setting(key: str, value: Any) -> str:
    if _SECRET_KEY.search(key) and not key.endswith(("_env", "_id")) and value not in (None, ""):
        return "•••"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_setting(str(k), v)}" for k, v in value.items()) or "—"
    if isinstance(value, (list, tuple)):
        items = [str(v["expr"]) if isinstance(v, dict) and "expr" in v
                 else _setting(key, v) if isinstance(v, dict)
                 else " ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v) for v in value]
        return ", ".join(items) or "—"
    if isinstance(value, str) and "://" in value:
        return _safe_url(value)
    return "—" if value is None else str(value)


# ---- plots -------------------------------------------------------------------------------------------------------
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


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ReportError(f"the HTML report needs matplotlib: {INSTALL_HINT}") from None
    matplotlib.use("Agg")
    return matplotlib


def _figure(height_in: float, nrows: int = 1, *, sharex: bool = True) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(FIG_WIDTH_IN, height_in), layout="constrained")
    axes = fig.subplots(nrows, 1, sharex=sharex, squeeze=False)[:, 0]
    return fig, list(axes)


def _svg(fig: Figure, fig_id: str, label: str) -> str:
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
    return text.replace("<svg", f'<svg role="img" aria-label="{_e(label)}"', 1).strip()


def _warmup_s(data: RunData) -> float:
    return float((data.summary.get("warmup") or {}).get("seconds") or 0.0)


def _time_axis(ax: Axes, data: RunData, *, label: bool = True) -> None:
    """Seconds since t0 on x (whole seconds: a window is one second), the warm-up shaded."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("time since start (s)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if data.seconds.size:
        ax.set_xlim(float(data.seconds[0]) - 0.5, float(data.seconds[-1]) + 0.5)
    warm = _warmup_s(data)
    if warm > 0:
        ax.axvspan(float(data.seconds[0]) - 0.5 if data.seconds.size else -0.5, warm - 0.5, color="#eceef1", zorder=0,
                   linewidth=0, label="warm-up (excluded)" if label else None)


def _log_y(ax: Axes) -> None:
    """Log latency axis labelled in plain numbers (1, 2, 5, 10, 20 ...), which planners read faster than 10^n."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _legend(ax: Axes, **kw: Any) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, **kw)


def _plot_throughput(data: RunData) -> str:
    fig, (ax,) = _figure(3.3)
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
    _time_axis(ax, data)
    ax.set_ylabel("completions per second")
    ax.set_ylim(bottom=0)
    _legend(ax, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _svg(fig, "fig-throughput", "throughput over time")


def _plot_latency_time(data: RunData) -> str:
    from matplotlib.lines import Line2D

    fig, (ax,) = _figure(3.6)
    values: list[float] = []
    op_handles = []
    for op in data.operations:
        cols = data.series.get(op)
        if cols is None or not np.isfinite(cols.get("response_p99_ms", _nans(0))).any():
            continue
        c = data.colour(op)
        ax.plot(data.seconds, cols["response_p50_ms"], color=c, linewidth=0.9, alpha=0.75)
        ax.plot(data.seconds, cols["response_p99_ms"], color=c, linewidth=1.7)
        if "service_p99_ms" in cols:
            ax.plot(data.seconds, cols["service_p99_ms"], color=c, linewidth=1.1, linestyle="--")
        values += [float(v) for v in cols["response_p99_ms"] if np.isfinite(v) and v > 0]
        values += [float(v) for v in cols["response_p50_ms"] if np.isfinite(v) and v > 0]
        op_handles.append(Line2D([], [], color=c, linewidth=2.5, label=op))
    if values and max(values) / max(min(values), 1e-6) > 30:
        _log_y(ax)
    else:
        ax.set_ylim(bottom=0)
    _time_axis(ax, data)
    ax.set_ylabel("latency (ms)")
    style = [Line2D([], [], color="#374151", linewidth=1.7, label="response p99"),
             Line2D([], [], color="#374151", linewidth=0.9, alpha=0.75, label="response p50"),
             Line2D([], [], color="#374151", linewidth=1.1, linestyle="--", label="service p99")]
    if op_handles:
        # One legend (operations, a gap, then line styles): constrained layout makes room for it.
        gap = Line2D([], [], color="none", label=" ")
        ax.legend(handles=[*op_handles, gap, *style], loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _svg(fig, "fig-latency-time", "latency percentiles over time")


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


def _plot_distribution(data: RunData, op: str) -> str:
    from matplotlib.ticker import FixedLocator, NullLocator

    fig, (ax,) = _figure(3.4)
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
    if ys and max(ys) / max(min(ys), 1e-6) > 30:
        _log_y(ax)
    else:
        ax.set_ylim(bottom=0)
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms)")
    _legend(ax, loc="upper left")
    return _svg(fig, "fig-latency-distribution", f"latency distribution of {op}")


def _pct_label(decade: int) -> str:
    if decade == 0:
        return "0%"
    return f"{100 - 100 / 10**decade:.{max(0, decade - 2)}f}%"


def _plot_errors(data: RunData) -> str:
    fig, (ax, ax2) = _figure(4.2, 2)
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
    _time_axis(ax, data)
    _time_axis(ax2, data, label=False)
    ax.set_xlabel("")
    _legend(ax, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _svg(fig, "fig-errors", "errors over time")


def _plot_health(data: RunData) -> str:
    panels = [("loop_lag_max_ms", "loop lag max (ms)", "max_loop_lag_ms"),
              ("cpu_percent", "CPU (%)", "max_cpu_percent"),
              ("rss_mb", "RSS (MiB)", None)]
    fig, axes = _figure(5.2, len(panels))
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
        _time_axis(ax, data, label=False)
        if i < len(axes) - 1:
            ax.set_xlabel("")
    axes[-1].set_xlabel("time since start (s; one sample per worker delta)")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        ncol = 1 if n <= 8 else 2
        axes[0].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 1.0), ncol=ncol)
    return _svg(fig, "fig-health", "generator health over time")


def _plot_stages(rows: list[dict[str, Any]], x_key: str | None, y_keys: list[str]) -> str:
    fig, (ax,) = _figure(3.2)
    x = np.array([float(r[x_key]) if x_key else i + 1.0 for i, r in enumerate(rows)])
    for k, key in enumerate(y_keys):
        y = np.array([float(r[key]) if isinstance(r.get(key), (int, float)) else math.nan for r in rows])
        ax.plot(x, y, marker="o", color=OP_COLOURS[k % len(OP_COLOURS)], label=key)
    ax.set_xlabel(x_key or "stage")
    ax.set_ylabel("latency (ms)")
    ax.set_ylim(bottom=0)
    _legend(ax, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _svg(fig, "fig-stages", "latency per stage")


# ---- HTML --------------------------------------------------------------------------------------------------------
CSS = """
:root{--fg:#1f2937;--muted:#6b7280;--line:#e5e7eb;--head:#f3f4f6}
*{box-sizing:border-box}
body{margin:0;background:#eef0f3;color:var(--fg);
 font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans","Liberation Sans",Arial,sans-serif}
main{max-width:1100px;margin:0 auto;padding:26px 32px 36px;background:#fff}
h1{font-size:23px;margin:0 0 6px;font-weight:700}
h2{font-size:17px;margin:30px 0 10px;padding-bottom:4px;border-bottom:2px solid var(--line)}
h3{font-size:14px;margin:16px 0 6px}
p{margin:6px 0}
.sub{color:var(--muted);margin:0 0 10px}
.verdict{display:inline-block;padding:3px 14px;border-radius:999px;font-weight:700;letter-spacing:.05em;
 text-transform:uppercase;color:#fff;font-size:14px;vertical-align:middle;margin-left:10px}
.reasons{margin:8px 0 0;padding-left:20px}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:10px;margin:16px 0 4px}
.kpi{border:1px solid var(--line);border-radius:8px;padding:8px 12px}
.kpi .v{font-size:20px;font-weight:700;font-variant-numeric:tabular-nums}
.kpi .k{font-size:12px;color:var(--muted)}
table{border-collapse:collapse;width:100%;font-size:12.5px;font-variant-numeric:tabular-nums;margin:6px 0}
th,td{padding:3px 8px;border-bottom:1px solid var(--line);text-align:right;vertical-align:top;white-space:nowrap}
td.l,td.ex{white-space:normal}
th{background:var(--head);font-weight:600;white-space:nowrap}
th.l,td.l{text-align:left}
tr.op-first td{border-top:1px solid #d1d5db}
td.ex{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,monospace;font-size:11.5px;text-align:left;
 word-break:break-all;color:#374151}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:4px 32px}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:1px 14px;margin:0;font-size:13px}
dl.kv dt{color:var(--muted)}
dl.kv dd{margin:0;word-break:break-word}
dl.settings{grid-template-columns:max-content 1fr max-content 1fr;font-size:12px}
figure{margin:10px 0 18px;break-inside:avoid}
figure svg{display:block;width:100%;height:auto}
figcaption{font-size:12.5px;color:var(--muted);margin-top:2px}
.pass{color:#15803d;font-weight:700}.fail{color:#b91c1c;font-weight:700}
.note{color:var(--muted);font-style:italic}
.explain{font-size:12.5px;color:#374151;background:#f9fafb;border-left:3px solid #0072B2;padding:6px 10px;margin:8px 0}
footer{margin-top:30px;color:var(--muted);font-size:11.5px;border-top:1px solid var(--line);padding-top:8px}
@media print{
 body{background:#fff;font-size:12px} main{max-width:none;padding:0}
 h2{break-after:avoid} figure,table,.kpis{break-inside:avoid}
 @page{size:A4;margin:12mm}
}
"""


def render_html(data: RunData) -> str:
    """The whole page as a string (no I/O)."""
    _matplotlib()
    import matplotlib

    with matplotlib.rc_context(cast(Any, _RC)):
        sections = [
            _section_header(data),
            _section_manifest(data),
            _section_operations(data),
            _section_throughput(data),
            _section_latency_time(data),
            _section_distribution(data),
            _section_errors(data),
            _section_health(data),
            _section_thresholds(data),
            _section_fanout(data),
            _section_stages(data),
        ]
    s = data.summary
    title = f"harness report: {s.get('run', {}).get('name', data.run_dir.name)}"
    missing = (f" Not in the folder: {', '.join(data.missing)}." if data.missing else "")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(x for x in sections if x)
        + f"\n<footer>Generated by harness {_e(__version__)} from the run folder <code>{_e(data.run_dir.name)}</code>"
        f" (summary.json, series.csv, health.csv, histograms.npz).{_e(missing)} This page is self-contained: "
        "it needs no network to view or print.</footer>\n</main>\n</body>\n</html>\n"
    )


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
    reasons = s.get("reasons") or []
    reason_html = ("<ul class=\"reasons\">" + "".join(f"<li>{_e(r)}</li>" for r in reasons) + "</ul>") if reasons else ""
    main = data.main_operation
    op = s.get("operations", {}).get(main, {})
    done = sum(o.get("ok", 0) + o.get("errors", 0) for o in s.get("operations", {}).values())
    errs = sum(o.get("errors", 0) for o in s.get("operations", {}).values())
    kpis = [
        (fmt_num(op.get("rate_per_s")) + _target_suffix(run), f"{main} rate (ok/s, achieved / target)"),
        (_ms(op.get("response_time", {}).get("p99_ms")), f"{main} p99 response time"),
        (_ms(op.get("service_time", {}).get("p99_ms")), f"{main} p99 service time"),
        (fmt_pct(errs / done if done else None), "failed operations (all)"),
        (fmt_num(op.get("ok")), f"{main} ok"),
    ]
    cards = "".join(f'<div class="kpi"><div class="v">{v}</div><div class="k">{_e(k)}</div></div>' for v, k in kpis)
    return (
        f'<header id="sec-verdict"><h1>{_e(run.get("name", data.run_dir.name))} '
        f'<span class="verdict" style="background:{colour}">{_e(verdict)}</span></h1>'
        f'<p class="sub">{_e(" · ".join(bits))}</p>'
        f'<p>Target: <code>{_e(_safe_url(str(run.get("target", "—"))))}</code></p>'
        f"{reason_html}<div class=\"kpis\">{cards}</div></header>"
    )


def _target_suffix(run: dict[str, Any]) -> str:
    t = run.get("target_report_rate_per_s")
    return f' <span class="k">/ {fmt_num(t)}</span>' if isinstance(t, (int, float)) else ""


def _ms(v: Any) -> str:
    return "—" if v is None else f"{fmt_num(v)} ms"


def _kv(items: list[tuple[str, Any]], cls: str = "kv") -> str:
    return f'<dl class="{cls}">' + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items) + "</dl>"


def _section_manifest(data: RunData) -> str:
    run = data.summary.get("run", {})
    general = [(k.replace("_", " "), _setting(k, run[k])) for k in
               ("name", "target", "embedded_vtn", "seed", "workers", "target_report_rate_per_s", "started_at", "t0",
                "ended_at", "program_id", "event_id") if k in run]
    general.append(("measured", f"{fmt_num(data.summary.get('measured_s'))} s"))
    warm = data.summary.get("warmup", {}) or {}
    if warm.get("seconds"):
        general.append(("warm-up", f"first {fmt_num(warm['seconds'])} s excluded from the totals"))
    versions = [(k, _setting(k, v)) for k, v in (run.get("versions") or {}).items()]
    machine = [(k, _setting(k, v)) for k, v in (run.get("machine") or {}).items()]
    known = {"name", "target", "embedded_vtn", "seed", "workers", "target_report_rate_per_s", "started_at", "t0",
             "ended_at", "program_id", "event_id", "versions", "machine", "notes", "profile"}
    general += [(k.replace("_", " "), _setting(k, v)) for k, v in run.items() if k not in known]
    prof = run.get("profile") or {}
    settings = [(k, _setting(k, v)) for k, v in prof.items()]
    half = (len(settings) + 1) // 2
    pairs = [x for a, b in zip(settings[:half], settings[half:] + [("", "")]) for x in (a, b)]
    notes = run.get("notes") or []
    notes_html = ("<h3>Notes</h3><ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>") if notes else ""
    return (
        '<section id="sec-run"><h2>Run</h2><div class="cols">'
        f"<div><h3>Run</h3>{_kv(general)}</div>"
        f"<div><h3>Versions</h3>{_kv(versions)}<h3>Machine</h3>{_kv(machine)}</div></div>"
        + (f'<h3>Profile settings</h3>{_kv(pairs, "kv settings")}' if settings else "")
        + notes_html + "</section>"
    )


def _section_operations(data: RunData) -> str:
    ops = data.summary.get("operations", {})
    head = ('<tr><th class="l">operation</th><th>ok</th><th>errors</th><th>error rate</th><th>ok/s</th>'
            '<th class="l">latency (ms)</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th>'
            "<th>mean</th></tr>")
    rows = []
    for op in data.operations:
        o = ops.get(op)
        if o is None:
            continue
        for i, key in enumerate(METRIC_KEYS.values()):
            lat = o.get(key) or {}
            cells = "".join(_td(lat.get(k)) for k, _ in PCT_KEYS) + _td(lat.get("mean_ms"))
            if i == 0:
                lead = (f'<td class="l" rowspan="3">{_swatch(data.colour(op))}<b>{_e(op)}</b></td>'
                        + _td(o.get("ok")) + _td(o.get("errors"))
                        + _td(o.get("error_rate"), fmt_pct(o.get("error_rate")))
                        + _td(o.get("rate_per_s")))
                rows.append(f'<tr class="op-first" data-op="{_e(op)}" data-metric="{key}">{lead}'
                            f'<td class="l">{LATENCY_LABELS[key]}</td>{cells}</tr>')
            else:
                rows.append(f'<tr data-op="{_e(op)}" data-metric="{key}"><td class="l" colspan="4"></td>'
                            f'<td class="l">{LATENCY_LABELS[key]}</td>{cells}</tr>')
    return (
        '<section id="sec-operations"><h2>Operations</h2>'
        '<p class="explain"><b>response</b> = done − intended (what a VEN on its schedule experiences, free of '
        "coordinated omission); <b>service</b> = done − sent (the VTN's time per request); <b>start lag</b> = "
        "sent − intended (how late harness or a VEN's queue started the request). Latencies are of successful "
        "operations; ok/s is over the measured time.</p>"
        f'<table id="operations"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>{_warmup_note(data)}</section>'
    )


def _warmup_note(data: RunData) -> str:
    warm = data.summary.get("warmup") or {}
    ops = warm.get("operations") or {}
    if not ops:
        return ""
    done = ", ".join(f"{_e(op)} {fmt_num(o.get('ok', 0))} ok / {fmt_num(o.get('errors', 0))} failed"
                     for op, o in ops.items())
    return (f'<p class="note">In the {fmt_num(warm.get("seconds"))} s warm-up, not counted above: {done} '
            "(summary.json \"warmup\").</p>")


def _figure_html(svg: str, fig_id: str, caption: str, data: RunData | None = None) -> str:
    if data is not None and _warmup_s(data) > 0:
        caption += f" Grey band: the {fmt_num(_warmup_s(data))} s warm-up, excluded from the totals."
    return f'<figure id="{fig_id}">{svg}<figcaption>{caption}</figcaption></figure>'


NO_SERIES = '<p class="note">No per-second series in this run folder (series.csv missing or empty).</p>'


def _section_throughput(data: RunData) -> str:
    body = (_figure_html(_plot_throughput(data), "fig-throughput",
                         "Completed operations per second by operation (solid: ok, dotted: failed); dashed black: the "
                         "profile's target report rate. Time is when operations completed.", data)
            if data.series else NO_SERIES)
    return f'<section id="sec-throughput"><h2>Throughput over time</h2>{body}</section>'


def _section_latency_time(data: RunData) -> str:
    body = (_figure_html(_plot_latency_time(data), "fig-latency-time",
                         "Per-second latency by operation: response time p99 (thick) and p50 (thin), service time p99 "
                         "(dashed). A gap between response and service p99 means requests started late.", data)
            if data.series else NO_SERIES)
    return f'<section id="sec-latency-time"><h2>Latency over time</h2>{body}</section>'


def _section_distribution(data: RunData) -> str:
    op = data.main_operation
    hists = data.totals.get(op, {})
    if not any(h.total for h in hists.values()):
        body = f'<p class="note">No latency histograms for {_e(op)} in this run folder.</p>'
    else:
        n = hists["response_time"].total if "response_time" in hists else 0
        body = _figure_html(_plot_distribution(data, op), "fig-latency-distribution",
                            f"Percentile spectrum of <b>{_e(op)}</b> over the whole measured run ({n:,} successful "
                            "operations, from the exact histograms): response time (solid) against service time "
                            "(dashed). Each step to the right is ten times rarer; the flat end is the maximum.")
    return f'<section id="sec-distribution"><h2>Latency distribution</h2>{body}</section>'


def _section_errors(data: RunData) -> str:
    errors: dict[str, Any] = data.summary.get("errors") or {}
    total = sum(int(e.get("count", 0)) for e in errors.values())
    has_series_errors = any(np.nansum(c["errors"]) > 0 for c in data.series.values())
    parts = ['<section id="sec-errors"><h2>Errors</h2>']
    if has_series_errors:
        parts.append(_figure_html(_plot_errors(data), "fig-errors",
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
            f'<tr data-class="{_e(cls)}" data-operation="{_e(op)}"><td class="l"><b>{_e(cls)}</b></td>'
            f'<td class="l">{_e(op)}</td>{_td(e.get("count"))}'
            f'{_td(e.get("count", 0) / total if total else None, fmt_pct(e.get("count", 0) / total if total else None))}'
            f'<td class="ex">{_e(_clip(str(e.get("example", "")), 400))}</td></tr>'
            for cls, op, e in sorted(per_op, key=lambda r: (-int(r[2].get("count", 0)), r[0], r[1]))
        )
        parts.append('<table id="errors"><thead><tr><th class="l">class</th><th class="l">operation</th>'
                     '<th>count</th><th>share</th><th class="l">example</th></tr></thead>'
                     f"<tbody>{rows}</tbody></table>")
    parts.append("</section>")
    return "".join(parts)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _section_health(data: RunData) -> str:
    parts = ['<section id="sec-health"><h2>Generator health</h2>']
    if data.health:
        prof = data.summary.get("run", {}).get("profile", {}) or {}
        limits = "; ".join(f"{label} {fmt_num(prof[k])}" for k, label in
                           (("max_loop_lag_ms", "loop lag limit (ms)"), ("max_cpu_percent", "CPU limit (%)"))
                           if isinstance(prof.get(k), (int, float)))
        parts.append(_figure_html(_plot_health(data), "fig-health",
                                  "Each worker process's event-loop lag (how late its timers fired), CPU and resident "
                                  "memory; dashed red: a limit, drawn when the data come near it"
                                  f"{' (' + _e(limits) + ')' if limits else ''}. A worker over its limits for long makes "
                                  "the run invalid: harness, not the target, was the bottleneck.", data))
    else:
        parts.append('<p class="note">No health samples in this run folder (health.csv missing or empty).</p>')
    workers = data.summary.get("workers") or []
    if workers:
        rows = "".join(
            f'<tr><td class="l">{_e(w.get("worker"))}</td>{_td(w.get("pid"), str(w.get("pid", "")))}{_td(w.get("vens"))}'
            f'<td class="l">{_e(w.get("status", ""))}</td>{_td(w.get("ok"))}{_td(w.get("errors"))}'
            f'{_td(w.get("loop_lag_max_ms"))}{_td(w.get("cpu_percent_max"))}'
            f'{_td(w.get("rss_max_bytes"), fmt_num((w.get("rss_max_bytes") or 0) / 2**20))}'
            f'<td class="l">{_e(_clip((w.get("detail") or "").strip().splitlines()[-1] if (w.get("detail") or "").strip() else "", 120))}</td></tr>'
            for w in workers
        )
        parts.append('<table id="workers"><thead><tr><th class="l">worker</th><th>pid</th><th>VENs</th>'
                     '<th class="l">status</th><th>ok</th><th>errors</th><th>loop lag max (ms)</th><th>CPU max (%)</th>'
                     f'<th>RSS max (MiB)</th><th class="l">detail</th></tr></thead><tbody>{rows}</tbody></table>')
    parts.append("</section>")
    return "".join(parts)


def _pass_cell(key: str, value: Any) -> str | None:
    """A pass/fail badge for the cells that say whether a threshold held."""
    if isinstance(value, bool) and key in ("passed", "pass", "ok", "held"):
        return f'<td class="l {"pass" if value else "fail"}">{"pass" if value else "fail"}</td>'
    if isinstance(value, str) and key in ("status", "result", "verdict") and value.lower() in ("pass", "fail", "passed", "failed"):
        ok = value.lower().startswith("pass")
        return f'<td class="l {"pass" if ok else "fail"}">{"pass" if ok else "fail"}</td>'
    return None


def _generic_table(rows: list[dict[str, Any]], table_id: str) -> str:
    """A table of records whose shape harness may extend: the union of keys, nested objects flattened one level."""
    flat = [_flatten(r) for r in rows]
    keys: list[str] = []
    for r in flat:
        keys += [k for k in r if k not in keys]
    head = "".join(f'<th class="l">{_e(k)}</th>' if _is_text_col(flat, k) else f"<th>{_e(k)}</th>" for k in keys)
    body = []
    for r in flat:
        cells = []
        for k in keys:
            v = r.get(k)
            badge = _pass_cell(k, v)
            if badge is not None:
                cells.append(badge)
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                cells.append(_td(v))
            else:
                cells.append(f'<td class="l">{_e(_setting(k, v))}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _flatten(r: Any) -> dict[str, Any]:
    if not isinstance(r, dict):
        return {"value": r}
    out: dict[str, Any] = {}
    for k, v in r.items():
        if isinstance(v, dict) and all(not isinstance(x, (dict, list)) for x in v.values()):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            out[str(k)] = v
    return out


def _is_text_col(rows: list[dict[str, Any]], key: str) -> bool:
    return not all(isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)
                   for r in rows if r.get(key) is not None)


def _section_thresholds(data: RunData) -> str:
    th = [t for t in data.summary.get("thresholds") or [] if isinstance(t, dict)]
    if not th:
        return ""
    if not all("expr" in t and "passed" in t for t in th):
        return f'<section id="sec-thresholds"><h2>Thresholds</h2>{_generic_table(th, "thresholds")}</section>'
    rows = []
    for t in th:
        unit = str(t.get("unit", "ms"))
        value, limit = t.get("value"), t.get("limit")
        shown = "no data" if not isinstance(value, (int, float)) else format_value(float(value), unit)
        limit_text = "—" if not isinstance(limit, (int, float)) else f"{_e(t.get('comparator', ''))} {format_value(float(limit), unit)}"
        abort = " (aborts the run)" if t.get("abort_on_fail") else ""
        rows.append(f"<tr>{_pass_cell('passed', bool(t['passed']))}<td class=\"l\"><code>{_e(t['expr'])}</code>{abort}</td>"
                    f"{_td(value, _e(shown))}{_td(limit, limit_text)}<td class=\"l\">{_e(t.get('detail', ''))}</td></tr>")
    n_fail = sum(not t["passed"] for t in th)
    head = (f"<p>{len(th) - n_fail} of {len(th)} thresholds held.</p>"
            '<table id="thresholds"><thead><tr><th class="l">result</th><th class="l">threshold</th><th>value</th>'
            '<th>limit</th><th class="l">detail</th></tr></thead>')
    return f'<section id="sec-thresholds"><h2>Thresholds</h2>{head}<tbody>{"".join(rows)}</tbody></table></section>'


def _section_fanout(data: RunData) -> str:
    fan = data.summary.get("event_fanout")
    if not isinstance(fan, dict) or not fan:
        return ""
    pcts = [(label, fan[k]) for k, label in PCT_KEYS if k in fan]
    other = [(k, v) for k, v in fan.items() if k not in dict(PCT_KEYS) and k != "mean_ms"]
    table = ""
    if pcts:
        table = ('<table id="fanout"><thead><tr><th class="l">from event created to VEN aware (ms)</th>'
                 + "".join(f"<th>{label}</th>" for label, _ in pcts)
                 + ("<th>mean</th>" if "mean_ms" in fan else "") + '</tr></thead><tbody><tr><td class="l">fan-out</td>'
                 + "".join(_td(v) for _, v in pcts) + (_td(fan["mean_ms"]) if "mean_ms" in fan else "")
                 + "</tr></tbody></table>")
    aware, targeted = fan.get("aware"), fan.get("targeted")
    share = ""
    if isinstance(aware, (int, float)) and isinstance(targeted, (int, float)) and targeted:
        share = f"<p><b>{fmt_num(aware)}</b> of <b>{fmt_num(targeted)}</b> targeted VENs became aware of the event ({fmt_pct(aware / targeted)}).</p>"
    rest = _kv([(k, _setting(k, v)) for k, v in other if k not in ("aware", "targeted")])
    return (f'<section id="sec-fanout"><h2>DR event fan-out</h2><p>How long after a demand-response event was created '
            f"the targeted VENs knew of it (by polling or notification).</p>{share}{table}{rest}</section>")


def _section_stages(data: RunData) -> str:
    stages = data.summary.get("stages")
    if not isinstance(stages, list) or not stages:
        return ""
    flat = [_flatten(s) for s in stages]
    x_key = next((k for k in ("vens", "target_vens", "rate_per_s") if all(isinstance(r.get(k), (int, float)) for r in flat)), None)
    y_keys = [k for k in dict.fromkeys(k for r in flat for k in r) if "p99" in k and k.endswith("_ms")
              and any(isinstance(r.get(k), (int, float)) for r in flat)][:6]
    fig = ""
    if y_keys and len(flat) > 1:
        fig = _figure_html(_plot_stages(flat, x_key, y_keys), "fig-stages",
                           f"p99 latencies per stage against {_e(x_key or 'the stage number')}.")
    return f'<section id="sec-stages"><h2>Stages</h2>{fig}{_generic_table(stages, "stages")}</section>'


def write_report(run_dir: Path) -> Path:
    """Write RUN_DIR/report.html (atomically) from the run folder's files; returns its path."""
    run_dir = Path(run_dir)
    _matplotlib()
    page = render_html(load_run(run_dir))
    path = run_dir / REPORT_NAME
    try:
        write_bytes_atomic(path, page.encode("utf-8"))
    except OSError as exc:
        raise ReportError(f"{path}: cannot write: {exc.strerror or exc}") from None
    return path
