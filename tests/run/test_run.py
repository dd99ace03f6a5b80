"""End to end: real worker processes, the real embedded VTN on 127.0.0.1, real SQLite; exact totals."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.core.profile import Profile
from harness.run.session import RunSession

LOOP_BUGS = ("Event loop is closed", "Unclosed client session", "Unclosed connector", "Task was destroyed but it is pending")


def test_200_vens_x_3_reports_on_2_workers_exact(tmp_path: Path) -> None:
    """200 VENs x 3 reports: the VTN stores exactly 600, summary counts exactly 600 ok and 0 errors, all joined."""
    # Generator health is not the subject here: a loaded CI box must not turn this exact check invalid.
    p = Profile(name="exact", vens=200, sites_per_ven=2, interval_s=0.5, reports_per_ven=3, workers=2, seed=11, max_loop_lag_ms=5000)
    outcome = RunSession(p, tmp_path).run()
    doc = outcome.summary
    assert (outcome.exit_code, outcome.verdict) == (0, "pass")
    ops = doc["operations"]
    assert ops["report"]["ok"] == 600 and ops["report"]["errors"] == 0
    assert (ops["token"]["ok"], ops["create_ven"]["ok"], ops["create_resource"]["ok"]) == (200, 200, 400)
    assert doc["errors"] == {}
    # Each report went once, as a flight of the report lane or (when the meter was behind the clock, a handful) by a
    # coroutine; with one connection of its own kept open since provisioning, a VEN's reports mostly fly.
    flights, awaited = doc["counters"]["report_flights"], doc["counters"].get("report_awaited", 0)
    assert flights + awaited == 600 and flights >= 500
    assert [w["status"] for w in doc["workers"]] == ["done", "done"]
    assert sum(w["vens"] for w in doc["workers"]) == 200
    assert json.loads((outcome.run_dir / "summary.json").read_text())["operations"]["report"]["ok"] == 600

    db = sqlite3.connect(outcome.run_dir / "vtn.sqlite")
    assert db.execute("SELECT count(*) FROM reports").fetchone() == (600,)
    assert db.execute("SELECT count(*) FROM vens").fetchone() == (200,)
    # Every report names a VEN that exists, and only resources of that VEN.
    vens = dict(db.execute("SELECT ven_name, id FROM vens"))
    resources = {(v, r) for v, r in db.execute("SELECT ven_id, resource_name FROM resources")}
    per_ven: dict[str, int] = {}
    for client_name, body in db.execute("SELECT client_name, body FROM reports"):
        assert client_name in vens
        names = [r["resourceName"] for r in json.loads(body)["resources"]]
        assert len(names) == 2 and all((vens[client_name], n) in resources for n in names)
        per_ven[client_name] = per_ven.get(client_name, 0) + 1
    assert set(per_ven.values()) == {3} and len(per_ven) == 200
    # The per-second series adds up to the totals.
    rows = (outcome.run_dir / "series.csv").read_text().splitlines()
    assert sum(int(r.split(",")[2]) for r in rows[1:] if r.split(",")[1] == "report") == 600


def test_second_run_against_the_same_vtn_reuses_vens(tmp_path: Path) -> None:
    """Provisioning is idempotent: a second run finds its VENs (409 -> lookup) and still reports exactly."""
    from harness.vtn import EmbeddedVtn, VtnConfig

    with EmbeddedVtn(VtnConfig(db_path=str(tmp_path / "vtn.sqlite"))) as vtn:
        p = Profile(name="again", target=vtn.url, vens=30, interval_s=0.5, reports_per_ven=2, workers=1, seed=2, max_loop_lag_ms=5000)
        first = RunSession(p, tmp_path).run().summary
        second = RunSession(p, tmp_path).run().summary
    assert first["operations"]["report"]["ok"] == second["operations"]["report"]["ok"] == 60
    assert second["counters"]["ven_existing"] == 30
    db = sqlite3.connect(tmp_path / "vtn.sqlite")
    assert db.execute("SELECT count(*) FROM vens").fetchone() == (30,)
    assert db.execute("SELECT count(*) FROM reports").fetchone() == (120,)


def _harness(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONWARNINGS="error::ResourceWarning,default")
    return subprocess.Popen(
        [sys.executable, "-m", "harness", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def test_many_short_cycles_leave_no_loop_or_session_bugs(tmp_path: Path) -> None:
    """30 report cycles per VEN at 100 ms: no 'Event loop is closed', unclosed session or destroyed task."""
    proc = _harness("run", "--vens", "40", "--interval", "100ms", "--reports-per-ven", "30", "--workers", "2", "--quiet", "--max-loop-lag", "5s", cwd=tmp_path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    for bug in LOOP_BUGS:
        assert bug not in err and bug not in out
    doc = json.loads(next(tmp_path.glob("runs/*/summary.json")).read_text())
    assert doc["operations"]["report"]["ok"] == 1200


def test_sigint_ends_the_run_within_5s_with_a_summary(tmp_path: Path) -> None:
    """Ctrl-C mid-run: exit 130 within 5 s, summary.json says interrupted and keeps what was measured."""
    proc = _harness("run", "--vens", "100", "--interval", "500ms", "--duration", "120s", "--workers", "2", cwd=tmp_path)
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    for line in proc.stdout:  # plain lines (not a TTY), one a second
        if "reports=" in line and " reports=0 " not in line:
            break
        assert time.monotonic() < deadline, "no reports within 60 s"
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    took = time.monotonic() - sent
    assert proc.returncode == 130, err
    assert took < 5.0
    doc = json.loads(next(tmp_path.glob("runs/*/summary.json")).read_text())
    assert doc["verdict"] == "interrupted" and doc["operations"]["report"]["ok"] > 0
    assert "Traceback" not in err


def test_sigint_during_a_slow_set_up_ends_it_at_once(tmp_path: Path) -> None:
    """A VTN answering every call in 3 s: set-up says its steps as it goes; Ctrl-C while it logs in ends the run
    with exit 130 and one line naming the step — the program it was about to create never is (0 in the store)."""
    (tmp_path / "slow.toml").write_text('name = "slow"\n[fleet]\nvens = 20\n[run]\nduration = "30s"\n'
                                        '[vtn.faults]\nlatency = "3s"\n')
    proc = _harness("run", "--profile", str(tmp_path / "slow.toml"), cwd=tmp_path)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line.rstrip("\n"))
        if line.startswith("[setup] logging in to "):
            break
    assert seen[0] == "[setup] starting the embedded VTN", seen
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert len(err.splitlines()) == 1, err
    (message,) = err.splitlines()
    assert message.startswith("harness: error: interrupted by SIGINT while logging in to ")
    assert message.endswith("; nothing was measured")
    db = sqlite3.connect(next(tmp_path.glob("runs/*/vtn.sqlite")))
    assert db.execute("SELECT count(*) FROM programs").fetchone() == (0,)


def test_privileged_provisioning_credential_creates_vens_and_vens_report_with_their_own(tmp_path: Path) -> None:
    """With a provisioning credential, the VTN's VENs belong to it (one token per shard) and reports still flow."""
    p = Profile(name="prov", vens=10, interval_s=0.5, reports_per_ven=2, workers=2, seed=6, max_loop_lag_ms=5000,
                provisioning_client_id="bl")
    doc = RunSession(p, tmp_path).run().summary
    ops = doc["operations"]
    assert (ops["provisioning_token"]["ok"], ops["create_ven"]["ok"], ops["report"]["ok"]) == (2, 10, 20)
    assert doc["errors"] == {}
    db = sqlite3.connect(next(tmp_path.glob("runs/*/vtn.sqlite")))
    assert db.execute("SELECT DISTINCT owner FROM vens").fetchall() == [("bl",)]
    assert db.execute("SELECT count(*) FROM reports").fetchone() == (20,)
