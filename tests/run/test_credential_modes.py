"""Every VEN credential mode end to end: the embedded VTN issues credentials that way, 50 VENs x 3 reports each."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.core.fleet import FleetSpec
from harness.core.profile import Profile
from harness.run.session import RunSession

VENS, REPORTS, WORKERS = 50, 3, 2
NAMES = [FleetSpec(vens=VENS).ven_name(i) for i in range(VENS)]


def _file(tmp_path: Path, column: str) -> str:
    path = tmp_path / "vens.csv"
    if column == "secret":
        rows = ["venName,clientID,secret", *(f"{n},client-{i:03d},secret-{i:03d}" for i, n in enumerate(NAMES))]
    else:
        rows = ["venName,token", *(f"{n},token-{i:03d}" for i, n in enumerate(NAMES))]
    path.write_text("\n".join(rows) + "\n")
    return str(path)


# mode: (profile changes, token operations the run counts, the owner(s) of the VTN's VENs)
MODES: dict[str, tuple[dict[str, Any], int, set[str] | None]] = {
    "per-ven": ({}, VENS, {f"ven-{n}" for n in NAMES}),
    "shared": ({"ven_client_id": "ven_client"}, VENS, {"ven_client"}),
    "shared-token": ({"ven_client_id": "ven_client", "shared_token": True}, WORKERS, {"ven_client"}),
    "file-secrets": ({"ven_credentials": "secret"}, VENS, {f"client-{i:03d}" for i in range(VENS)}),
    "file-tokens": ({"ven_credentials": "token"}, 0, set(NAMES)),
    "token-env": ({"ven_token_env": "HARNESS_TEST_VEN_TOKEN"}, 0, {"ven-preissued"}),
    "discover": ({"token_url": "discover"}, VENS, {f"ven-{n}" for n in NAMES}),
}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_each_credential_mode_stores_every_report(mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In each mode: exactly 150 reports stored in the VTN's SQLite, 150 ok, no errors, VENs kept apart by name."""
    changes, tokens, owners = MODES[mode]
    changes = dict(changes)
    if "ven_credentials" in changes:
        changes["ven_credentials"] = _file(tmp_path, changes["ven_credentials"])
    monkeypatch.delenv("HARNESS_TEST_VEN_TOKEN", raising=False)  # the embedded VTN's default token applies
    p = Profile(name=mode, vens=VENS, interval_s=0.5, reports_per_ven=REPORTS, workers=WORKERS, seed=5,
                max_loop_lag_ms=5000, **changes)
    outcome = RunSession(p, tmp_path).run()
    doc = outcome.summary
    assert (outcome.exit_code, outcome.verdict) == (0, "pass"), doc.get("reasons")
    ops = doc["operations"]
    assert ops["report"]["ok"] == VENS * REPORTS and ops["report"]["errors"] == 0
    assert ops["create_ven"]["ok"] == VENS
    assert ops.get("token", {}).get("ok", 0) == tokens
    assert doc["errors"] == {}
    if mode == "discover":
        assert ops["auth_server"]["ok"] == WORKERS
    db = sqlite3.connect(outcome.run_dir / "vtn.sqlite")
    assert db.execute("SELECT count(*) FROM reports").fetchone() == (VENS * REPORTS,)
    assert {o for (o,) in db.execute("SELECT DISTINCT owner FROM vens")} == owners
    # However the VTN sees them, harness keys every VEN by its own name: 3 reports under each of 50 names.
    per_ven = dict(db.execute("SELECT client_name, count(*) FROM reports GROUP BY client_name"))
    assert per_ven == {n: REPORTS for n in NAMES}
    summary = (outcome.run_dir / "summary.json").read_text()
    assert "secret-0" not in summary and "token-0" not in summary and "ven-token" not in summary


def _serve(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """`harness vtn --port 0 ARGS` in its own process; (the process, the URL it serves at)."""
    vtn = subprocess.Popen([sys.executable, "-m", "harness", "vtn", "--port", "0", "--db", ":memory:", *args],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert vtn.stderr is not None
    line = vtn.stderr.readline()
    while "serving" not in line:
        assert line, "the VTN exited before serving"
        line = vtn.stderr.readline()
    match = re.search(r"at (http://\S+)", line)
    assert match is not None
    return vtn, match.group(1)


@pytest.mark.parametrize("how", ["shared", "file"])
def test_harness_vtn_issues_credentials_each_way_and_secrets_stay_secret(how: str, tmp_path: Path) -> None:
    """`harness vtn --shared-ven-client ID` / `--ven-credentials FILE`, and a run against it (--target) in the same
    mode: 10 VENs x 2 reports all ok; no secret appears on stdout, stderr or in any file of the results folder."""
    secrets = ["bl-Sekr1t-OTTER", "ven-Sekr1t-BADGER", *(f"file-Sekr1t-{i:02d}-HERON" for i in range(10))]
    env = dict(os.environ, HARNESS_BL_SECRET=secrets[0], HARNESS_VEN_SECRET=secrets[1])
    names = [FleetSpec(vens=10).ven_name(i) for i in range(10)]
    (tmp_path / "vens.csv").write_text("venName,clientID,secret\n" + "".join(
        f"{n},pre-{i},{secrets[2 + i]}\n" for i, n in enumerate(names)))
    vtn_args = ["--shared-ven-client", "ven_client"] if how == "shared" else ["--ven-credentials", str(tmp_path / "vens.csv")]
    key = 'ven_client_id = "ven_client"' if how == "shared" else f'ven_credentials = "{tmp_path / "vens.csv"}"'
    vtn, url = _serve(vtn_args, env)
    try:
        (tmp_path / "p.toml").write_text(f'name = "{how}"\n[target]\nurl = "{url}"\n{key}\n[fleet]\nvens = 10\n'
                                         '[behaviour]\ninterval = "300ms"\n[run]\nreports_per_ven = 2\nworkers = 1\n'
                                         '[generator]\nmax_loop_lag = "5s"\n')
        run = subprocess.run([sys.executable, "-m", "harness", "run", "--profile", str(tmp_path / "p.toml"), "--quiet",
                              "--out", str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
        assert run.returncode == 0, run.stderr
    finally:
        vtn.send_signal(signal.SIGINT)
        vtn.communicate(timeout=30)
    run_dir = next(tmp_path.glob("runs/*"))
    doc = json.loads((run_dir / "summary.json").read_text())
    assert doc["operations"]["report"]["ok"] == 20 and doc["operations"]["token"]["ok"] == 10 and doc["errors"] == {}
    shown = run.stdout + run.stderr + "".join(f.read_text(errors="replace") for f in run_dir.iterdir() if f.is_file())
    assert not [s for s in secrets if s in shown]


def test_a_credentials_file_without_a_row_for_a_ven_is_one_line_exit_2(tmp_path: Path) -> None:
    """The first VEN of the fleet the file does not list is named, before anything starts (exit 2)."""
    (tmp_path / "vens.csv").write_text("venName,clientID,secret\nharness-ven-0000000,c0,Sekr1t-0\n")
    (tmp_path / "p.toml").write_text('[target]\nven_credentials = "vens.csv"\n[fleet]\nvens = 3\n')
    r = subprocess.run([sys.executable, "-m", "harness", "run", "--profile", "p.toml", "--quiet"], capture_output=True,
                       text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    # The file is named as found: beside the profile (a relative path resolves against the profile's folder).
    assert r.stderr.strip().startswith(f"harness: error: profile: target.ven_credentials: file {tmp_path / 'vens.csv'} "
                                       "has no row for VEN harness-ven-0000001 ")
    assert len(r.stderr.strip().splitlines()) == 1 and "Sekr1t" not in r.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("mode", ["shared", "file-tokens"])
def test_openadr_31_discovers_its_token_url_and_logs_in_each_way(mode: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Dialect openadr-3.1.0 against the embedded VTN's 3.1.0 API: GET /auth/server once per worker, then VENs log
    in with the shared client or the file's pre-issued tokens: 20 VENs x 2 reports, all stored, all ok."""
    from harness.vtn import EmbeddedVtn, VtnConfig

    names = [FleetSpec(vens=20).ven_name(i) for i in range(20)]
    monkeypatch.setenv("HARNESS_BL_SECRET", "bl-secret")
    monkeypatch.setenv("HARNESS_VEN_SECRET", "ven-secret")
    if mode == "shared":
        vtn_auth: dict[str, Any] = {"ven_client_id": "ven_client"}
        changes: dict[str, Any] = {"ven_client_id": "ven_client"}
    else:
        (tmp_path / "vens.csv").write_text("venName,token\n" + "".join(f"{n},tok-{i}\n" for i, n in enumerate(names)))
        from harness.run.credentials import read_logins

        vtn_auth = {"ven_logins": read_logins(str(tmp_path / "vens.csv"), "test")}
        changes = {"ven_credentials": str(tmp_path / "vens.csv")}
    with EmbeddedVtn(VtnConfig(db_path=str(tmp_path / "vtn.sqlite"), **vtn_auth)) as vtn:
        root = vtn.url.rsplit("/openadr3/", 1)[0]
        p = Profile(name=f"v31-{mode}", target=f"{root}/openadr3/3.1.0", dialect="openadr-3.1.0", vens=20,
                    interval_s=0.5, reports_per_ven=2, workers=2, seed=8, max_loop_lag_ms=5000, **changes)
        outcome = RunSession(p, tmp_path).run()
    ops = outcome.summary["operations"]
    assert (outcome.exit_code, ops["report"]["ok"], ops["auth_server"]["ok"]) == (0, 40, 2), outcome.summary["reasons"]
    assert ops.get("token", {}).get("ok", 0) == (20 if mode == "shared" else 0)
    db = sqlite3.connect(tmp_path / "vtn.sqlite")
    assert db.execute("SELECT count(*) FROM reports31").fetchone() == (40,)  # the 3.1.0 API's own tables
