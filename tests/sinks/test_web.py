"""The live web dashboard (harness run --web): served during a real run, read in headless Chromium while the run
goes on (the achieved report count grows between two reads), bounded history, vendored chart library, bad values."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from harness.sinks.webview import MAX_POINTS, Timeline
from tests.reports.test_report import CHROMIUM, chromium

VENS, REPORTS = 30, 15  # a report a second for 15 s: long enough for a few reads
PROFILE = f"""name = "web"
[fleet]
vens = {VENS}
[behaviour]
interval = "1s"
events = "poll"
poll_interval = "1s"
[run]
reports_per_ven = {REPORTS}
workers = 2
seed = 1
[[dr_events]]
at = "2s"
level = 1
duration = "10m"
share = 1.0
"""
DEADLINE_S = 60.0


def read_count(tmp: Path, url: str) -> int | None:
    """The achieved report count as the page shows it, once its script has drawn a snapshot (charts included)."""
    dom = chromium(tmp, "--window-size=1400,1000", "--virtual-time-budget=3000", "--dump-dom", url).stdout
    m = re.search(r'id="reports-ok">([0-9,]+)<', dom)
    count = int(m.group(1).replace(",", "")) if m and "data-updated" in dom else 0
    if count == 0:  # not drawn yet, or no report done yet: nothing to compare
        return None
    assert dom.count("<canvas") >= 6, dom[-1500:]  # rate, errors, a latency chart per operation, lag, CPU
    return count


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
def test_dashboard_count_grows_while_the_run_goes_on(tmp_path: Path) -> None:
    """harness run --web 127.0.0.1:0 prints its URL; the page (read twice in Chromium) shows a growing report count,
    serves uPlot and its licence itself, and the run still counts exactly VENS x REPORTS reports."""
    (tmp_path / "p.toml").write_text(PROFILE)
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", "--profile", str(tmp_path / "p.toml"), "--out",
                             str(tmp_path), "--quiet", "--web", "127.0.0.1:0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # the first line, before the run starts: where the dashboard is
        m = re.fullmatch(r"harness: web dashboard: (http://127\.0\.0\.1:\d+/)\n", line)
        assert m is not None, line
        url = m.group(1)
        deadline = time.monotonic() + DEADLINE_S
        first = None
        while first is None and time.monotonic() < deadline:
            first = read_count(tmp_path, url)
        assert first is not None
        second = first
        while second <= first and time.monotonic() < deadline and proc.poll() is None:
            second = read_count(tmp_path, url) or first
        assert second > first, (first, second)
        with urllib.request.urlopen(url + "static/uPlot.LICENSE", timeout=10) as r:
            assert b"MIT License" in r.read()
        with urllib.request.urlopen(url + "api/snapshot", timeout=10) as r:
            snap = json.loads(r.read())
        assert snap["timeline"]["t"] and {w["worker"] for w in snap["workers"]} == {0, 1}
        page = urllib.request.urlopen(url, timeout=10).read().decode()
        assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", page)  # no CDN: everything from harness
        png = tmp_path / "dashboard.png"
        chromium(tmp_path, "--window-size=1400,2300", "--virtual-time-budget=3000", f"--screenshot={png}", url)
        assert png.stat().st_size > 20_000
        out, rest = proc.communicate(timeout=DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out[-2000:] + rest[-2000:]
    [run_dir] = (tmp_path / "runs").iterdir()
    doc = json.loads((run_dir / "summary.json").read_text())
    assert doc["operations"]["report"]["ok"] == VENS * REPORTS
    assert f"web dashboard: {url}" in doc["run"]["notes"]


@pytest.mark.parametrize("value", ["nope", "70000", "127.0.0.1:", "host:port"])
def test_bad_web_values_are_one_line_exit_2(value: str) -> None:
    """A bad --web value: one line naming the flag and what to give, exit 2, before any run."""
    r = subprocess.run([sys.executable, "-m", "harness", "run", "--vens", "1", "--web", value], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "--web" in r.stderr and "[HOST:]PORT" in r.stderr and "Traceback" not in r.stderr


def test_timeline_stays_bounded_for_a_two_hour_run() -> None:
    """7,200 one-second windows keep at most MAX_POINTS points, the whole span, rates averaged and p99 the worst."""
    tl = Timeline()
    for t in range(7200):
        tl.add(float(t), {"report.ok": 10.0, "report.p99": 100.0 if t == 5000 else 5.0})
    assert len(tl.t) <= MAX_POINTS and tl.t[0] == 0.0 and tl.t[-1] >= 7200 - 2 * tl.step_s
    assert tl.step_s == 8 and set(tl.cols["report.ok"]) == {10.0} and max(v for v in tl.cols["report.p99"] if v) == 100.0


def test_a_busy_web_port_is_one_line_exit_2() -> None:
    """--web on a port already taken: one line naming the address and what to do, exit 2."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "harness", "run", "--vens", "1", "--web", str(port)],
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert f"--web {port}: cannot listen on 127.0.0.1:{port}" in r.stderr and "choose a free port" in r.stderr
