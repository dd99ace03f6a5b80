"""Delivery audit end to end: real embedded VTN, real workers; the VTN's SQLite and its own drop count are the truth."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.core.delivery import RunLedger, parse_key
from harness.core.exits import EXIT_FAIL, EXIT_PASS
from harness.core.profile import Profile
from harness.run.audit import AuditError, AuditSettings, read_back, read_ledger
from harness.run.session import RunSession
from harness.vtn import EmbeddedVtn, VtnConfig, parse_faults
from tests.run.test_reliability import OnFirstReports, control


def _profile(target: str | None, **kw: Any) -> Profile:
    base: dict[str, Any] = dict(name="audit", target=target, vens=20, interval_s=0.5, reports_per_ven=8, workers=2,
                                seed=5, max_loop_lag_ms=5000, timeout_s=2.0, drain_s=2.0,
                                thresholds=("report.ok >= 1",))  # only the audit judges these runs
    return Profile(**{**base, **kw})


def _stored_ids(db: Path, tag: str) -> list[tuple[str, int, int]]:
    """Every stored report's id, read straight from the VTN's SQLite (all of them this run's)."""
    con = sqlite3.connect(db)
    try:
        names = [json.loads(body)["reportName"] for (body,) in con.execute("SELECT body FROM reports")]
    finally:
        con.close()
    ids = [parse_key(n) for n in names]
    assert all(i is not None and i[0] == tag for i in ids), names[:3]
    return [i for i in ids if i is not None]


def test_stall_past_the_timeout_the_audit_finds_every_stored_unacknowledged_report(tmp_path: Path) -> None:
    """A 2 s stall with a 0.5 s timeout: every report that timed out was stored anyway; the audit finds each of
    them (unacknowledged_stored = the run's read_timeouts) and its counts add up to the VTN's SQLite exactly."""
    db = tmp_path / "vtn.sqlite"
    with EmbeddedVtn(VtnConfig(db_path=str(db))) as vtn:
        backend = OnFirstReports(lambda: control(vtn, "stall", {"duration_s": 2.0}))
        session = RunSession(_profile(vtn.url, timeout_s=0.5), tmp_path, backend=backend,
                             audit=AuditSettings(rate_per_s=1000.0))
        outcome = session.run()
    doc = outcome.summary
    audit, rep = doc["audit"], doc["operations"]["report"]
    stored = _stored_ids(db, doc["run"]["report_tag"])
    assert rep["errors"] > 0 and set(doc["errors"]) == {"read_timeout"}
    assert audit["sent"] == rep["ok"] + rep["errors"] == 20 * 8
    assert audit["unacknowledged_stored"] == rep["errors"] == audit["unacknowledged_stored_by_class"]["read_timeout"]
    assert audit["acknowledged_stored"] == rep["ok"]
    assert audit["acknowledged_stored"] + audit["unacknowledged_stored"] + audit["extra_copies"] == len(stored)
    assert (audit["acknowledged_missing"], audit["unacknowledged_missing"], audit["unexpected"]) == (0, 0, 0)
    assert audit["passed"] is True and (outcome.exit_code, outcome.verdict) == (EXIT_PASS, "pass")
    junit = (outcome.run_dir / "junit.xml").read_text()
    assert 'name="delivery audit"' in junit and "<failure" not in junit


def test_drop_after_ack_is_found_as_acknowledged_but_missing_and_fails_the_run(tmp_path: Path) -> None:
    """drop_after_ack=0.05: the audit's acknowledged-but-missing count equals the VTN's own drop count, the run
    fails (exit 1) naming the audit, junit.xml has the failed audit case; SQLite holds exactly the rest."""
    db = tmp_path / "vtn.sqlite"
    faults = parse_faults({"drop_after_ack": "0.05", "seed": 4})
    with EmbeddedVtn(VtnConfig(db_path=str(db), faults=faults)) as vtn:
        outcome = RunSession(_profile(vtn.url, vens=40, reports_per_ven=6), tmp_path,
                             audit=AuditSettings(rate_per_s=1000.0)).run()
        dropped = control(vtn, "stats")["faults"]["dropped_after_ack"]
    doc = outcome.summary
    audit = doc["audit"]
    assert dropped > 0
    assert audit["acknowledged_missing"] == dropped
    assert audit["sent"] == doc["operations"]["report"]["ok"] == 40 * 6
    assert audit["acknowledged_stored"] == len(_stored_ids(db, doc["run"]["report_tag"])) == 40 * 6 - dropped
    assert (outcome.exit_code, outcome.verdict) == (EXIT_FAIL, "fail")
    assert doc["reasons"][-1].startswith(f"delivery audit: {dropped:,} of 240 reports acknowledged by the VTN are not stored")
    on_disk = json.loads((outcome.run_dir / "summary.json").read_text())
    assert on_disk["audit"] == audit and on_disk["verdict"] == "fail"
    junit = (outcome.run_dir / "junit.xml").read_text()
    assert 'classname="harness.audit.audit" name="delivery audit"' in junit and 'type="audit"' in junit


def test_harness_audit_rereads_an_embedded_run_from_its_own_sqlite(tmp_path: Path) -> None:
    """`harness run` on the embedded VTN with drops, then `harness audit RUN_DIR` later: the VTN is started again on
    the run's vtn.sqlite, the audit finds the dropped reports (exit 1), and a second audit resumes from its saved
    progress (no page read again) with the same figures."""
    profile = tmp_path / "drops.toml"
    profile.write_text('name = "drops"\nthresholds = ["report.ok >= 1"]\n[fleet]\nvens = 10\n[behaviour]\n'
                       'interval = "500ms"\n[run]\nreports_per_ven = 5\nworkers = 1\nseed = 2\n'
                       '[vtn.faults]\ndrop_after_ack = "0.1"\nseed = "9"\n')
    run = subprocess.run([sys.executable, "-m", "harness", "run", "--profile", str(profile), "--quiet", "--out",
                          str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == EXIT_PASS, run.stderr  # no audit yet: nothing says a report was lost
    [run_dir] = list((tmp_path / "runs").iterdir())
    ledger = read_ledger(run_dir)
    assert ledger.n_sent == 50
    audit = subprocess.run([sys.executable, "-m", "harness", "audit", str(run_dir), "--rate", "500"],
                           capture_output=True, text=True, timeout=120)
    assert audit.returncode == EXIT_FAIL, audit.stderr
    doc = json.loads((run_dir / "summary.json").read_text())
    lost = doc["audit"]["acknowledged_missing"]
    stored = len(_stored_ids(run_dir / "vtn.sqlite", doc["run"]["report_tag"]))
    assert lost > 0 and lost + stored == 50 and doc["verdict"] == "fail"
    assert f"acknowledged_missing {lost:,}" in audit.stdout
    progress = json.loads((run_dir / "audit" / "progress.json").read_text())
    assert progress["done"] and progress["pages"] == 1  # fewer than 50 stored: one page holds them all
    again = subprocess.run([sys.executable, "-m", "harness", "audit", str(run_dir)], capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == EXIT_FAIL
    assert json.loads((run_dir / "summary.json").read_text())["audit"]["acknowledged_missing"] == lost
    assert json.loads((run_dir / "audit" / "progress.json").read_text())["pages"] == 1  # nothing read again


class FlakyPages:
    """A test double of the VTN's report listing: `n` tagged reports, failing once after `fail_after` pages."""

    def __init__(self, n: int, tag: str, fail_after: int | None) -> None:
        self.items = [{"reportName": f"r #h:{tag}:{i // 10}:{i % 10}"} for i in range(n)]
        self.fail_after = fail_after
        self.pages_read = 0

    def page(self, skip: int, limit: int) -> list[dict[str, Any]]:
        if self.fail_after is not None and self.pages_read == self.fail_after:
            self.fail_after = None
            raise AuditError("connection reset while paging")
        self.pages_read += 1
        return self.items[skip : skip + limit]


def test_read_back_resumes_from_its_checkpoint_and_keeps_to_its_rate(tmp_path: Path) -> None:
    """2,000 reports at 50 a page, checkpoints every 5 pages, the reader fails on page 23: the second call resumes at
    the last checkpoint (page 20) and ends with every id exactly once; requests are spaced 1/rate apart."""
    now = [0.0]
    waits: list[float] = []

    def sleep(s: float) -> None:
        waits.append(s)
        now[0] += s

    pages = FlakyPages(2000, "beef0001", fail_after=23)
    settings = AuditSettings(rate_per_s=10.0, checkpoint_pages=5)
    with pytest.raises(AuditError):
        read_back(tmp_path, pages, "beef0001", settings, clock=lambda: now[0], sleep=sleep)
    saved = json.loads((tmp_path / "audit" / "progress.json").read_text())
    assert (saved["pages"], saved["skip"], saved["done"]) == (20, 1000, False)
    found, progress = read_back(tmp_path, pages, "beef0001", settings, clock=lambda: now[0], sleep=sleep)
    assert len(found) == 2000 and len(np.unique(found)) == 2000
    assert (progress["pages"], progress["resumed"], progress["done"]) == (41, 1, True)
    assert pages.pages_read == 23 + 21  # pages 21-23 read twice (after the checkpoint), never more
    assert waits and all(w == pytest.approx(0.1) for w in waits)


def test_a_folder_without_a_ledger_is_a_one_line_usage_error(tmp_path: Path) -> None:
    """No reports_sent.npz: AuditError with exit code 2 naming the file."""
    with pytest.raises(AuditError) as err:
        read_ledger(tmp_path)
    assert err.value.exit_code == 2 and "reports_sent.npz" in str(err.value)
    assert isinstance(RunLedger.merge([], 0).sent, np.ndarray)
