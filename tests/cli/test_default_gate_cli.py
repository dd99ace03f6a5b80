"""A user's first run on a VTN that fails 10 % of requests: `harness run` with no thresholds exits 1 and says which
default gate failed, end to end (the CLI in a subprocess, the embedded VTN injecting 503s from the profile)."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

PROFILE = """
name = "e503-cli"
[fleet]
vens = 30
[behaviour]
interval = "0.4s"
[run]
reports_per_ven = 4
workers = 2
seed = 4
[generator]
max_loop_lag = "5s"
[vtn.faults]
errors = "503:0.1"
seed = "3"
"""


def test_injected_503s_with_no_thresholds_exit_1_naming_the_default_errors_gate(tmp_path: Path) -> None:
    """10 % injected 503s, a profile without thresholds: exit 1; stdout's verdict line, summary.json's reasons and
    junit.xml name `errors.rate <= 1%` as a default gate with the rate of the run's own counts; reports ok = stored."""
    (tmp_path / "e503.toml").write_text(PROFILE, encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "harness", "run", "--profile", "e503.toml", "--quiet"],
                       check=False, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 1, (r.stdout[-2000:], r.stderr[-2000:])
    verdict = next(ln for ln in r.stdout.splitlines() if ln.startswith("verdict: "))
    assert verdict.startswith("verdict: fail (default gate failed: errors.rate <= 1% ("), verdict
    [run_dir] = (tmp_path / "runs").iterdir()
    doc = json.loads((run_dir / "summary.json").read_text())
    assert doc["thresholds_source"] == "default" and doc["verdict"] == "fail"
    assert doc["reasons"][0].startswith("default gate failed: errors.rate <= 1% (")
    ops = doc["operations"].values()
    errors, total = sum(o["errors"] for o in ops), sum(o["ok"] + o["errors"] for o in ops)
    assert doc["reasons"][0] == f"default gate failed: errors.rate <= 1% ({100 * errors / total:.4g}% is not <= 1%)"
    junit = (run_dir / "junit.xml").read_text()
    case = re.search(r'<testcase classname="harness\.e503-cli\.default_gates" name="errors\.rate &lt;= 1%"[^>]*>\s*'
                     r'<failure type="threshold" message="([^"]+)"', junit)
    assert case is not None and case.group(1) == f"{100 * errors / total:.4g}% is not &lt;= 1%", junit
    # The count harness failed on reports is the count the VTN never stored: stored + http_503 = reports due.
    stored = sqlite3.connect(run_dir / "vtn.sqlite").execute("SELECT count(*) FROM reports").fetchone()[0]
    assert doc["operations"]["report"]["ok"] == stored
