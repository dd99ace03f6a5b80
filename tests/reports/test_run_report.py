"""A report from every run: a real `harness run` leaves report.html in its folder, findings first, its plots (the DR
fan-out curve too) drawn in headless Chromium; a report that cannot be drawn is a note, never a failed run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.run.session import RunSession
from harness.sinks.base import Outcome
from tests.reports.test_report import CHROMIUM, PROBE, chromium

VENS, REPORTS = 40, 3
PROFILE = f"""name = "every-run"
[fleet]
vens = {VENS}
[behaviour]
interval = "1s"
events = "poll"
poll_interval = "500ms"
[run]
reports_per_ven = {REPORTS}
workers = 2
seed = 1
[[dr_events]]
at = "1s"
level = 2
duration = "10m"
share = 0.5
"""
ORDER = ("sec-verdict", "sec-thresholds", "sec-throughput", "sec-latency-time", "sec-distribution", "sec-operations",
         "sec-errors", "sec-health", "sec-fanout", "sec-run")
FIGURES = ("fig-throughput", "fig-latency-time", "fig-latency-distribution", "fig-health", "fig-fanout")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("every-run")
    (tmp / "p.toml").write_text(PROFILE)
    r = subprocess.run([sys.executable, "-m", "harness", "run", "--profile", str(tmp / "p.toml"), "--out", str(tmp),
                        "--quiet"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    [folder] = (tmp / "runs").iterdir()
    assert f"report: {folder / 'report.html'}" in r.stdout
    return folder


def test_run_writes_a_report_findings_first_and_configuration_last(run_dir: Path) -> None:
    """report.html is in the folder; sections in order (verdict, thresholds, plots, operations, errors, health, DR
    fan-out, configuration); the verdict says why; no raw dict dump of the DR events."""
    doc = json.loads((run_dir / "summary.json").read_text())
    assert doc["operations"]["report"]["ok"] == VENS * REPORTS
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    at = [page.index(f'id="{s}"') for s in ORDER]
    assert at == sorted(at)
    assert re.search(r'<ul class="reasons" id="why"><li>pass: 5 of 5 default gates held</li>', page)  # 4, and with a DR event: never_received == 0
    assert "{'" not in page and "at_s=" not in page and "fanout=" not in page
    [ev] = doc["event_fanout"]["events"]
    assert ev["aware_curve"][-1][1] == ev["aware"] == ev["targeted"] > 0  # every targeted VEN learned of it
    assert f'<tr data-event="{ev["id"]}">' in page and 'id="setting-dr-events"' in page


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
def test_chromium_renders_the_run_reports_plots(run_dir: Path, tmp_path: Path) -> None:
    """Headless Chromium lays out every figure of the run's own report, the fan-out curve included, with paths."""
    probe = tmp_path / "probe.html"
    probe.write_text((run_dir / "report.html").read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"))
    dom = chromium(tmp_path, "--window-size=1280,4000", "--dump-dom", probe.as_uri()).stdout
    m = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert m is not None, dom[-500:]
    boxes = {b["id"]: b for b in json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))["boxes"]}
    assert set(FIGURES) <= set(boxes)
    for fid in FIGURES:
        assert boxes[fid]["w"] > 900 and boxes[fid]["h"] > 150 and boxes[fid]["paths"] > 10, boxes[fid]


def test_a_report_that_cannot_be_drawn_is_a_note_not_a_failed_run(tmp_path: Path) -> None:
    """Drawing fails (here: no summary.json): the outcome keeps its verdict and exit code and says why."""
    outcome = Outcome(exit_code=0, verdict="pass", run_dir=tmp_path, summary={})
    got = RunSession._with_report(outcome)
    assert (got.verdict, got.exit_code, got.report_path) == ("pass", 0, None)
    assert got.report_error is not None and "no summary.json" in got.report_error and "\n" not in got.report_error
