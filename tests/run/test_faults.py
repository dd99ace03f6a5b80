"""Reliability: a worker killed mid-run, a supervisor killed mid-run, an unreachable target, a dying target."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from harness.core.messages import WorkerDelta
from harness.core.profile import Profile
from harness.run.backend import LocalBackend
from harness.run.operator import TargetUnreachable
from harness.core.exits import EXIT_INVALID
from harness.run.session import RunSession


class KillingBackend(LocalBackend):
    """Kills worker 0 with SIGKILL as soon as it has reported its first successful report."""

    def __init__(self) -> None:
        super().__init__()
        self.killed_at: float | None = None
        self.killed_pid = 0

    def get(self, timeout_s: float) -> Any:
        msg = super().get(timeout_s)
        if (self.killed_at is None and isinstance(msg, WorkerDelta) and msg.worker_id == 0
                and "report" in msg.ops and msg.ops["report"].ok > 0):
            self.killed_pid = self.pids()[0]
            self.kill(0)
            self.killed_at = time.time()
        return msg


def test_sigkilled_worker_is_reported_with_its_vens_and_the_others_finish(tmp_path: Path) -> None:
    """SIGKILL one of 2 workers: noticed within 2 s, recorded with its VENs, run invalid (exit 3), other worker done."""
    backend = KillingBackend()
    p = Profile(name="kill", vens=40, interval_s=0.5, reports_per_ven=8, workers=2, seed=3, max_loop_lag_ms=5000)
    outcome = RunSession(p, tmp_path, backend=backend).run()
    assert backend.killed_at is not None
    doc = outcome.summary
    w0, w1 = doc["workers"]
    assert (outcome.exit_code, outcome.verdict) == (EXIT_INVALID, "invalid")
    assert w0["status"] == "lost" and "VENs 0..19 (20 VENs)" in w0["detail"] and "-9" in w0["detail"]
    assert w0["ended_at_epoch_s"] - backend.killed_at < 2.0
    assert w1["status"] == "done" and w1["ok"] > 0
    assert any("worker 0 lost" in r for r in doc["reasons"])
    # Worker 1's VENs all reported in full; worker 0's count is what it shipped before dying.
    assert doc["operations"]["report"]["ok"] >= 20 * 8
    assert not psutil.pid_exists(backend.killed_pid) or psutil.Process(backend.killed_pid).status() == psutil.STATUS_ZOMBIE


def test_unreachable_target_fails_fast_before_any_worker_starts(tmp_path: Path) -> None:
    """A target that refuses connections: TargetUnreachable after the retry window; no worker was started."""
    backend = LocalBackend()
    p = Profile(name="gone", target="http://127.0.0.1:9/openadr3/3.0.1", vens=5, reports_per_ven=1, interval_s=1)
    sup = RunSession(p, tmp_path, backend=backend, reachable_window_s=1.0)
    started = time.monotonic()
    with pytest.raises(TargetUnreachable, match="unreachable after 1s"):
        sup.run()
    assert time.monotonic() - started < 5
    assert backend.pids() == {}


def test_unreachable_target_cli_exit_code_4(tmp_path: Path) -> None:
    """From the command line: one line naming the target, exit 4."""
    r = subprocess.run([sys.executable, "-m", "harness", "run", "--target", "http://127.0.0.1:9/openadr3/3.0.1",
                        "--vens", "5", "--quiet"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 4
    assert r.stderr.startswith("harness: error: target http://127.0.0.1:9/openadr3/3.0.1 unreachable")
    assert len(r.stderr.strip().splitlines()) == 1


def test_killed_supervisor_leaves_no_orphans(tmp_path: Path) -> None:
    """SIGKILL the supervisor mid-run: its workers and the embedded VTN exit by themselves (pipe EOF)."""
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", "--vens", "40", "--interval", "500ms",
                             "--duration", "120s", "--workers", "2"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    try:
        deadline = time.monotonic() + 60
        for line in proc.stdout:
            if "reports=" in line and " reports=0 " not in line:
                break
            assert time.monotonic() < deadline
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 3  # 2 workers + the embedded VTN (+ the resource tracker)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
    gone, alive = psutil.wait_procs(children, timeout=15)
    assert alive == [], [p.pid for p in alive]
    # The last partial summary is readable (written atomically every few seconds).
    summaries = list(tmp_path.glob("runs/*/summary.json"))
    assert summaries == [] or json.loads(summaries[0].read_text())["verdict"] == "running"
