"""The HTML report: built from a real (in-process, FakeVtn) run folder; self-contained; renders in Chromium."""

from __future__ import annotations

import asyncio
import html.parser
import json
import math
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvloop
from click.testing import CliRunner

from harness.core.fleet import FleetSpec, split
from harness.core.messages import Start, WorkerDelta
from harness.core.profile import Profile
from harness.core.results import RunResults, summary
from harness.core.shard import Credentials, ShardSpec
from harness.core.thresholds import evaluate, failure_reasons, to_json
from harness.dialects import Request
from harness.net.base import Reply
from harness.core.exits import ReportError
from harness.reports import run as report
from harness.reports.folder import load_run
from harness.reports.kit import fmt_num, fmt_pct
from harness.reports.run import write_report
from harness.run.worker import Worker
from harness.sinks.resultsdir import write_health, write_histograms, write_json, write_series
from tests.doubles import FakeTransport, FakeVtn

VENS, WORKERS, REPORTS, INTERVAL_S, FAIL_EVERY = 40, 2, 8, 0.5, 9
FIGURES = ("fig-throughput", "fig-latency-time", "fig-latency-distribution", "fig-errors", "fig-health")
SECTIONS = ("sec-verdict", "sec-run", "sec-operations", "sec-throughput", "sec-latency-time", "sec-distribution",
            "sec-errors", "sec-health", "sec-thresholds")


@dataclass
class FlakyVtn(FakeVtn):
    """The fake VTN with a spread of report service times and a 503 for every FAIL_EVERY-th report."""

    n_reports: int = 0

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(11)

    def factory(self, spec: object, limit: int, sources: tuple[str, ...] = ()) -> FakeTransport:
        return FlakyTransport(self)


class FlakyTransport(FakeTransport):
    vtn: FlakyVtn

    async def send(self, req: Request, token: str | None = None) -> Reply:
        if req.method == "POST" and req.path.split("?")[0] == "/reports":
            self.vtn.n_reports += 1
            n = self.vtn.n_reports
            await asyncio.sleep(min(0.25, float(self.vtn.rng.lognormal(math.log(0.012), 0.7))))
            if n % FAIL_EVERY == 0:
                return Reply(503, b'{"title": "Service Unavailable", "status": 503}')
        return await super().send(req, token)


def build_run(run_dir: Path, vens: int = VENS, workers: int = WORKERS, reports: int = REPORTS,
              interval_s: float = INTERVAL_S) -> dict[str, Any]:
    """Run `workers` workers concurrently in one loop against FlakyVtn and write a results folder as `run` does."""
    vtn = FlakyVtn()
    fleet = FleetSpec(vens=vens, sites_per_ven=2)
    out: list[Any] = []

    class Sink:
        def put(self, item: Any) -> None:
            out.append(item)

    pipes, ws = [], []
    t0 = time.time() + 0.1
    for wid, (lo, hi) in enumerate(split(vens, workers)):
        spec = ShardSpec(worker_id=wid, fleet=fleet, ven_start=lo, ven_stop=hi, seed=3, target="http://fake",
                         program_id="p", event_id="e", interval_s=interval_s, duration_s=60.0, reports_per_ven=reports,
                         connection="per-ven", pool_size=10, timeout_s=5.0, credentials=Credentials(), meter_tick_s=0.5)
        recv, send = mp.Pipe(duplex=False)
        send.send(Start(t0))
        pipes += [recv, send]
        ws.append(Worker(spec, recv, Sink(), vtn.factory))

    async def run_all() -> None:
        await asyncio.gather(*(w.run() for w in ws))

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
        r.run(run_all())
    for p in pipes:
        p.close()
    res = RunResults()
    for m in out:
        if isinstance(m, WorkerDelta):
            res.add(m)
    for w in ws:
        state = res.worker(w.spec.worker_id)
        state.vens, state.pid, state.status, state.detail = w.spec.vens, os.getpid(), "done", "count reached"
    profile = Profile(name="report-test", vens=vens, interval_s=interval_s, reports_per_ven=reports, workers=workers,
                      seed=3, thresholds=("report.response_time.p50 < 500ms", "report.error_rate < 0.1%"))  # type: ignore[arg-type]
    measured_s = float(len(res.window_range()))
    run = {
        "name": profile.name, "profile": asdict(profile), "seed": profile.seed,
        "target": "http://ven:s3cr3t@127.0.0.1:8080/openadr3/3.0.1", "embedded_vtn": False,
        "started_at": "2025-01-01T00:00:00Z", "workers": workers, "target_report_rate_per_s": vens / interval_s,
        "versions": {"harness": "0.1.0", "python": sys.version.split()[0], "numpy": np.__version__},
        "machine": {"platform": sys.platform, "cpus": os.cpu_count()}, "notes": ["built by tests/reports/test_report.py"],
    }
    doc = summary(run=run, results=res, measured_s=measured_s, verdict="pass", reasons=[], thresholds=[])
    checks = evaluate(profile.thresholds, doc)
    doc.update(verdict="fail" if failure_reasons(checks) else "pass", reasons=failure_reasons(checks),
               thresholds=to_json(checks))
    write_series(run_dir / "series.csv", res)
    write_histograms(run_dir / "histograms.npz", res)
    write_health(run_dir / "health.csv", res)
    write_json(run_dir / "summary.json", doc)
    return doc


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("run")
    build_run(path)
    return path


@pytest.fixture(scope="module")
def page(run_dir: Path) -> str:
    return write_report(run_dir).read_text(encoding="utf-8")


class Cells(html.parser.HTMLParser):
    """The data-v cells of the operations table, keyed by (operation, latency row)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[tuple[str, str], list[Any]] = {}
        self._row: list[Any] | None = None
        self._in_ops = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self._in_ops = a.get("id") == "operations"
        elif tag == "tr" and self._in_ops and a.get("data-op"):
            self._row = self.rows.setdefault((a["data-op"] or "", a["data-metric"] or ""), [])
        elif tag == "td" and self._row is not None and "data-v" in a:
            self._row.append(json.loads(a["data-v"] or "null"))

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None
        elif tag == "table":
            self._in_ops = False


def test_report_has_every_section_and_one_svg_per_figure(run_dir: Path, page: str) -> None:
    """Every section and figure is present; 5 inline SVGs (no fan-out/stages in this run); written in the folder."""
    assert (run_dir / "report.html").is_file()
    for sid in SECTIONS:
        assert f'id="{sid}"' in page, sid
    for fid in FIGURES:
        assert re.search(rf'<figure id="{fid}"><svg[^>]*>.*?</svg><figcaption>', page, re.S), fid
    assert page.count("<svg") == len(FIGURES)
    assert page.count("<figcaption>") == len(FIGURES)
    assert 'id="sec-fanout"' not in page and 'id="sec-stages"' not in page
    assert ">fail</span>" in page and "threshold failed: report.error_rate &lt; 0.1%" in page


def test_report_is_self_contained_and_keeps_secrets_out(page: str) -> None:
    """No external resource (src/href/url/@import/script/link), no XML namespaces; the target's password is dropped."""
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page, re.I)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page, re.I)
    assert "@import" not in page and "<script" not in page and "<link" not in page and "<img" not in page
    assert "xmlns" not in page and "<?xml" not in page and "<!DOCTYPE svg" not in page
    hrefs = re.findall(r'href="([^"]*)"', page)
    assert hrefs and all(h.startswith("#fig-") for h in hrefs)  # only the SVGs' own glyph/clip references
    assert "s3cr3t" not in page and "http://127.0.0.1:8080/openadr3/3.0.1" in page


def test_ids_are_unique_across_the_inline_svgs(page: str) -> None:
    """Each figure's SVG ids are prefixed with the figure id, so no two elements of the page share an id."""
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    refs = set(re.findall(r'href="#([^"]+)"', page)) | set(re.findall(r"url\(#([^)]+)\)", page))
    assert refs <= set(ids)


def test_operations_table_equals_summary_json(run_dir: Path, page: str) -> None:
    """Every number in the operations table is summary.json's, shown with the report's formatting."""
    doc = json.loads((run_dir / "summary.json").read_text())
    cells = Cells()
    cells.feed(page)
    ops = doc["operations"]
    assert {op for op, _ in cells.rows} == set(ops) == {"report", "token", "create_ven", "create_resource"}
    assert ops["report"]["ok"] + ops["report"]["errors"] == VENS * REPORTS
    assert ops["report"]["errors"] == VENS * REPORTS // FAIL_EVERY
    for op, o in ops.items():
        for i, key in enumerate(("response_time", "service_time", "start_lag")):
            lat = [o[key][k] for k in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms")]
            head = [o["ok"], o["errors"], o["error_rate"], o["rate_per_s"]] if i == 0 else []
            assert cells.rows[(op, key)] == head + lat, (op, key)
    row = re.search(r'<tr class="op-first" data-op="report".*?</tr>', page, re.S)
    assert row is not None
    shown = re.findall(r">([^<>]+)</td>", row.group(0))
    o = ops["report"]
    assert shown[:4] == [fmt_num(o["ok"]), fmt_num(o["errors"]), fmt_pct(o["error_rate"]), fmt_num(o["rate_per_s"])]
    assert shown[5:] == [fmt_num(o["response_time"][k]) for k in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms")]


def test_errors_and_thresholds_tables_show_classes_and_verdicts(run_dir: Path, page: str) -> None:
    """The errors table has a row per operation http_503 happened on, with its own count and example; the
    thresholds table marks pass and fail."""
    doc = json.loads((run_dir / "summary.json").read_text())
    e = doc["errors"]["http_503"]
    rows = re.findall(r'<tr data-class="http_503" data-operation="([a-z_]+)">(.*?)</tr>', page, re.S)
    assert sorted(op for op, _ in rows) == sorted(e["by_operation"])
    for op, row in rows:
        assert f'data-v="{e["by_operation"][op]["count"]}"' in row and "Service Unavailable" in row
    th = re.search(r'<table id="thresholds">.*?</table>', page, re.S)
    assert th is not None and th.group(0).count('class="l pass"') == 1 and th.group(0).count('class="l fail"') == 1


def test_fanout_and_stages_sections_render_from_their_data(run_dir: Path, tmp_path: Path) -> None:
    """event_fanout and stages in summary.json add their sections (stages with a p99-per-stage plot)."""
    for name in ("series.csv", "health.csv", "histograms.npz"):
        shutil.copy(run_dir / name, tmp_path / name)
    doc = json.loads((run_dir / "summary.json").read_text())
    doc["event_fanout"] = {"p50_ms": 410.0, "p90_ms": 900.5, "p99_ms": 1480.0, "p999_ms": 1502.0, "max_ms": 1510.0,
                           "aware": 198, "targeted": 200}
    doc["stages"] = [{"stage": i, "vens": v, "report": {"ok": 10 * v, "p99_ms": 20.0 + v / 10}} for i, v in
                     enumerate((100, 200, 400))]
    write_json(tmp_path / "summary.json", doc)
    page = write_report(tmp_path).read_text()
    assert 'id="sec-fanout"' in page and "198</b> of <b>200</b>" in page and 'data-v="1480.0"' in page
    assert 'id="sec-stages"' in page and '<figure id="fig-stages">' in page and page.count("<svg") == len(FIGURES) + 1
    assert "<th>report.p99_ms</th>" in page


def test_partial_folder_renders_with_notes(tmp_path: Path, run_dir: Path) -> None:
    """A folder with only summary.json (a killed run) still gives a report, saying what was missing."""
    shutil.copy(run_dir / "summary.json", tmp_path / "summary.json")
    page = write_report(tmp_path).read_text()
    assert "<svg" not in page and "series.csv missing" in page and "Not in the folder: series.csv" in page


def test_bad_folders_are_one_line_report_errors(tmp_path: Path) -> None:
    """Missing folder, folder without summary.json, and broken JSON each raise ReportError with one line."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "summary.json").write_text("{not json")
    cases = {"nope": "no such run folder", "empty": "no summary.json", "broken": "not valid JSON"}
    for name, msg in cases.items():
        with pytest.raises(ReportError, match=msg) as err:
            write_report(tmp_path / name)
        assert "\n" not in str(err.value)


def test_missing_matplotlib_names_the_extra(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without matplotlib the error is one line naming `pip install 'harness[report]'`."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ReportError, match=re.escape("pip install 'harness[report]'")):
        report.render_html(load_run(run_dir))


def test_cli_report_prints_the_path_and_exits_2_on_a_bad_folder(run_dir: Path, tmp_path: Path) -> None:
    """`harness report RUN_DIR` prints the report's path; a folder that is not a run is one line and exit 2."""
    from harness.cli import cli

    ok = CliRunner().invoke(cli, ["report", str(run_dir)])
    assert ok.exit_code == 0, ok.output
    assert ok.output.strip() == str(run_dir / "report.html")
    bad = subprocess.run([sys.executable, "-m", "harness", "report", str(tmp_path / "nope")], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "no such run folder" in bad.stderr and bad.stdout == ""


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PROBE = """<script>
window.addEventListener('load', () => {
  const boxes = [...document.querySelectorAll('figure')].map(f => {
    const r = f.querySelector('svg').getBoundingClientRect();
    return {id: f.id, x: r.x, y: r.y + window.scrollY, w: r.width, h: r.height,
            paths: f.querySelectorAll('svg path, svg use').length};
  });
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify({boxes, height: document.documentElement.scrollHeight});
  document.body.appendChild(pre);
});
</script>"""


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--hide-scrollbars", f"--user-data-dir={tmp / 'profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=True)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium); .ci/run installs it")
def test_chromium_renders_every_plot(page: str, tmp_path: Path) -> None:
    """Headless Chromium lays out every figure's SVG with a real size and paints non-white pixels inside each."""
    from matplotlib import image

    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = chromium(tmp_path, "--window-size=1280,4000", "--dump-dom", probe.as_uri()).stdout
    m = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert m is not None, dom[-500:]
    info = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    boxes = {b["id"]: b for b in info["boxes"]}
    assert set(boxes) == set(FIGURES)
    for b in boxes.values():
        assert b["w"] > 900 and b["h"] > 200 and b["paths"] > 50, b
    # Screenshot the same page at full height; every figure's box must hold drawn (non-white) pixels.
    png = tmp_path / "shot.png"
    height = int(info["height"]) + 10
    chromium(tmp_path, f"--window-size=1280,{height}", f"--screenshot={png}", (tmp_path / "probe.html").as_uri())
    img = image.imread(str(png))[:, :, :3]
    assert img.shape[0] >= height - 10 and img.shape[1] == 1280
    for b in boxes.values():
        x0, y0 = int(b["x"]), int(b["y"])
        region = img[y0 : y0 + int(b["h"]), x0 : x0 + int(b["w"])]
        ink = float((region.min(axis=2) < 0.9).mean())
        assert 0.01 < ink < 0.6, (b["id"], ink)
