"""Abort fast when the target refuses first contact: every one of the first tokens or VEN creations the same 4xx."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.core.messages import Health, WorkerDelta
from harness.core.recorder import Recorder
from harness.core.refusal import first_contact_refusal
from harness.core.results import RunResults

H = Health(0.0, 0.0, 0.0, 0, 0, 0, 0)


def _results(*outcomes: tuple[str, str | None, int]) -> RunResults:
    """(operation, failure class or None for ok, how many) merged into run results, in one window."""
    r = Recorder()
    for op, cls, n in outcomes:
        for i in range(n):
            if cls is None:
                r.ok(op, 0.0, 0.0, 0.01)
            else:
                r.fail(op, cls, f"ven-{i}: POST /auth/token -> 400: invalid_client: unknown client or wrong secret")
    ops, errors = r.flush()
    results = RunResults()
    results.add(WorkerDelta(0, 0, ops, errors, H, 1, 0))
    return results


def test_the_same_4xx_on_every_first_token_is_a_refusal() -> None:
    """Ten tokens, all HTTP 400, none ok: refused, with the status, the count and the VTN's detail."""
    refusal = first_contact_refusal(_results(("token", "http_400", 10)), vens=1000)
    assert refusal is not None and (refusal.operation, refusal.status, refusal.failures) == ("token", 400, 10)
    assert "HTTP 400" in refusal.message() and "invalid_client: unknown client or wrong secret" in refusal.message()
    assert "target.ven_secret_env" in refusal.message()


@pytest.mark.parametrize(("outcomes", "vens"), [
    ((("token", "http_400", 9),), 1000),  # not yet ten
    ((("token", "http_400", 10), ("token", None, 1)), 1000),  # one got in: the credentials work
    ((("token", "http_400", 6), ("token", "http_401", 4)), 1000),  # not the same status
    ((("token", "http_503", 10),), 1000),  # 5xx: the VTN may recover
    ((("token", "http_429", 10),), 1000),  # throttled, not refused
    ((("token", "read_timeout", 10),), 1000),
    ((("report", "http_400", 50),), 1000),  # not first contact
])
def test_what_is_not_a_refusal(outcomes: tuple[tuple[str, str | None, int], ...], vens: int) -> None:
    """Too few failures, any success, mixed or transient classes, or a later operation: the run goes on."""
    assert first_contact_refusal(_results(*outcomes), vens=vens) is None


def test_a_small_fleet_and_vens_that_may_not_create_themselves() -> None:
    """Three VENs need three refusals; every VEN creation 403 names the provisioning credential as the way out."""
    refusal = first_contact_refusal(_results(("token", None, 3), ("create_ven", "http_403", 3)), vens=3)
    assert refusal is not None and (refusal.operation, refusal.status) == ("create_ven", 403)
    assert "target.provisioning_client_id" in refusal.message()


def test_a_wrong_ven_secret_aborts_within_seconds_with_exit_4(tmp_path: Path) -> None:
    """Wrong HARNESS_VEN_SECRET, no thresholds, a 5-minute run: it ends (deadline 10 s on the subprocess) with
    exit 4, verdict fail, and one line on stderr carrying the VTN's status and detail."""
    env = dict(os.environ, HARNESS_VEN_SECRET="not-the-secret")
    r = subprocess.run([sys.executable, "-m", "harness", "run", "--vens", "20", "--interval", "1s", "--duration", "5m",
                        "--workers", "1", "--quiet", "--max-loop-lag", "5s"], capture_output=True, text=True,
                       timeout=10, cwd=tmp_path, env=env)
    assert r.returncode == 4, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("harness: error: run aborted: every one of the first ")
    assert "token requests failed with HTTP 400" in last and "invalid_client" in last and "not-the-secret" not in last
    doc = json.loads(next(tmp_path.glob("runs/*/summary.json")).read_text())
    assert doc["verdict"] == "fail" and doc["aborted"]["status"] == 400 and doc["aborted"]["operation"] == "token"
    assert doc["reasons"][0] == doc["aborted"]["reason"]
    assert doc["operations"]["token"]["ok"] == 0 and doc["operations"].get("report", {}).get("ok", 0) == 0
    # CI sees why: junit.xml's first case is the refusal, with the VTN's status (and no secret).
    junit = next(tmp_path.glob("runs/*/junit.xml")).read_text()
    root = ET.fromstring(junit)
    first = next(root.iter("testcase"))
    failure = first.find("failure")
    assert (first.attrib["name"], first.attrib["classname"].rsplit(".", 1)[1]) == ("first contact", "run")
    assert failure is not None and failure.attrib["type"] == "aborted" and failure.attrib["message"] == last[len("harness: error: "):]
    assert "operation: token\nstatus: 400\n" in (failure.text or "") and "not-the-secret" not in junit


def test_a_refused_pre_issued_token_aborts_on_ven_creation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ven_token_env holding a token the VTN never issued: every VEN creation is 401 (no token to refresh), the
    run stops with exit 4 naming create_ven, HTTP 401 and the token settings."""
    from harness.core.profile import Profile
    from harness.run.session import RunSession

    monkeypatch.setenv("HARNESS_TEST_WRONG_TOKEN", "never-issued")
    p = Profile(name="t401", vens=12, interval_s=1.0, duration_s=300.0, workers=1, max_loop_lag_ms=5000,
                ven_token_env="HARNESS_TEST_WRONG_TOKEN")
    outcome = RunSession(p, tmp_path).run()
    assert (outcome.exit_code, outcome.verdict) == (4, "fail")
    aborted = outcome.summary["aborted"]
    assert (aborted["operation"], aborted["status"]) == ("create_ven", 401) and "ven_token_env" in aborted["reason"]
    assert outcome.summary["counters"]["preissued_token_refused"] >= 10
    assert "never-issued" not in json.dumps(outcome.summary)
