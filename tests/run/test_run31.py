"""A 3.1.0 run against the embedded VTN: its 3.1.0 base path and an MQTT broker of its own, started and stopped by
the run; exact totals."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest

from harness.core.profile import Profile, ProfileError
from harness.run.session import RunSession


def test_20_vens_x_3_reports_on_the_embedded_31_vtn_exact(tmp_path: Path) -> None:
    """20 VENs x 3 reports polling events in 3.1.0: the VTN's 3.1.0 tables hold exactly 60 reports and 20 VENs,
    the run counts exactly 60 ok, passes, and leaves no broker behind."""
    p = Profile(name="v31", vens=20, interval_s=0.5, reports_per_ven=3, workers=1, seed=3, max_loop_lag_ms=5000,
                dialect="openadr-3.1.0", events="poll", poll_interval_s=0.5)
    session = RunSession(p, tmp_path)
    outcome = session.run()
    doc = outcome.summary
    assert (outcome.exit_code, outcome.verdict) == (0, "pass"), doc.get("verdict_reasons")
    ops = doc["operations"]
    assert (ops["report"]["ok"], ops["report"]["errors"]) == (60, 0)
    assert (ops["token"]["ok"], ops["create_ven"]["ok"], ops["auth_server"]["ok"]) == (20, 20, 1)
    assert ops["poll_events"]["ok"] > 0 and doc["errors"] == {}
    assert "/openadr3/3.1.0" in doc["run"]["target"]
    db = sqlite3.connect(outcome.run_dir / "vtn.sqlite")
    assert db.execute("SELECT count(*) FROM reports31").fetchone() == (60,)
    assert db.execute("SELECT count(*) FROM vens31").fetchone() == (20,)
    assert db.execute("SELECT count(*) FROM reports").fetchone() == (0,)
    assert not [c for c in psutil.Process().children(recursive=True) if "mosquitto" in c.name() or "broker" in " ".join(c.cmdline())]


def test_mqtt_events_need_the_31_dialect() -> None:
    """behaviour.events = "mqtt" with a 3.0.1 dialect is a one-line profile error naming both keys."""
    with pytest.raises(ProfileError, match=r'^profile: behaviour.events = "mqtt" needs target.dialect = "openadr-3.1.0", got \'openadr-3.0.1\'$'):
        Profile(events="mqtt")
    with pytest.raises(ProfileError, match=r"^profile: behaviour.mqtt_qos must be 0 or 1, got 2$"):
        Profile(events="mqtt", dialect="openadr-3.1.0", mqtt_qos=2)
