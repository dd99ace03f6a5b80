"""Every VEN credential mode end to end: the embedded VTN issues credentials that way, 50 VENs x 3 reports each."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from harness.core.fleet import FleetSpec
from harness.core.profile import Profile
from harness.run.supervisor import Supervisor

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
    outcome = Supervisor(p, tmp_path).run()
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
