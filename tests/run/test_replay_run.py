"""CSV meter replay reached from a profile: `fleet.replay = "file.csv"` drives the loads a real run reports."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from harness.core.fleet import LOAD_KINDS, FleetSpec, build_shard
from harness.core.profile import ProfileError, from_toml
from harness.run.session import RunSession

START = "2025-01-13T00:00:00+00:00"


def _csv(path: Path, kw: float = 1.0) -> None:
    """Every load kind at a flat `kw` for two hours."""
    rows = [",".join(["timestamp", *LOAD_KINDS])]
    rows += [",".join([f"2025-01-13T0{h}:00:00Z", *[str(kw)] * len(LOAD_KINDS)]) for h in range(3)]
    path.write_text("\n".join(rows) + "\n")


def test_a_replayed_fleet_reports_the_file_s_power(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every load replayed at 1 kW: each report's DEMAND is its site's number of loads in kW, its interval lies in
    the file's time (simulated time starts at its first sample), and the VTN stored all 5 x 3 reports."""
    monkeypatch.chdir(tmp_path)
    _csv(tmp_path / "loads.csv")
    p = from_toml('[fleet]\nvens = 5\nreplay = "loads.csv"\n[behaviour]\ninterval = "500ms"\ntime_scale = 60\n'
                  'meter_tick = "5s"\n[run]\nreports_per_ven = 3\nworkers = 1\nseed = 3\n[generator]\nmax_loop_lag = "5s"\n')
    doc = RunSession(p, tmp_path).run().summary
    assert doc["operations"]["report"]["ok"] == 15
    shard = build_shard(FleetSpec(vens=5), 3, 0, 5)
    loads_per_ven = {shard.ven_name(v): int(shard.load_offsets[shard.site_offsets[v + 1]] - shard.load_offsets[shard.site_offsets[v]])
                     for v in range(5)}
    db = sqlite3.connect(next(tmp_path.glob("runs/*/vtn.sqlite")))
    bodies = [json.loads(b) for (b,) in db.execute("SELECT body FROM reports")]
    assert len(bodies) == 15
    for body in bodies:
        (res,) = body["resources"]
        assert res["intervalPeriod"]["start"].startswith("2025-01-13T00:")
        demand = {p["type"]: p["values"][0] for p in res["intervals"][0]["payloads"]}["DEMAND"]
        assert demand == pytest.approx(loads_per_ven[body["clientName"]], abs=1e-3)


@pytest.mark.parametrize(("text", "message"), [
    ('[fleet]\nreplay = "nowhere.csv"', "profile: fleet.replay: file nowhere.csv not found"),
    ('[fleet]\nreplay = 3', "profile: fleet.replay must be a CSV file name or a table"),
    ('[fleet.replay]\nby_kind = { base = "house" }', "profile: fleet.replay.file is required"),
    ('[fleet.replay]\nfile = "loads.csv"\nby_kind = { fridge = "house" }', "profile: fleet.replay.by_kind key must be one of"),
    ('[fleet.replay]\nfile = "loads.csv"\nalign = "later"', "profile: fleet.replay.align must be one of file, now"),
    ('[fleet.replay]\nfile = "loads.csv"\nby_kind = { base = "barn" }', "by_kind['base'] names no curve in the CSV"),
    ('[fleet.replay]\nfile = "odd.csv"', "profile: fleet.replay: odd.csv has no curve named after a load kind"),
    ('[fleet.replay]\nfile = "bad.csv"', "profile: fleet.replay: bad.csv row 3 column 'base': expected a number"),
])
def test_replay_mistakes_are_one_line_before_anything_starts(text: str, message: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing file, a bad cell, a mapping naming no curve: one ProfileError naming fleet.replay, nothing run."""
    monkeypatch.chdir(tmp_path)
    _csv(tmp_path / "loads.csv")
    (tmp_path / "odd.csv").write_text("t,house\n0,1\n")
    (tmp_path / "bad.csv").write_text("t,base\n0,1\n1,x\n")
    with pytest.raises(ProfileError) as err:
        RunSession(from_toml(text), tmp_path).run()
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "runs").exists()


def test_dr_events_and_the_summary_keep_to_the_replay_s_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fleet.replay moves simulated time to the file's first sample: summary.json's sim_start_epoch_s says so, and a
    DR event is created on that clock (its start inside the replayed day), so every targeted VEN learns of it and
    reports the shed (shed_reported = aware = targeted)."""
    from harness.core.profile import DrEvent, Profile
    from harness.core.replay import ReplaySpec

    monkeypatch.chdir(tmp_path)
    _csv(tmp_path / "loads.csv")
    p = Profile(name="replay-dr", vens=8, interval_s=0.5, reports_per_ven=10, workers=1, seed=2, time_scale=60.0,
                events="poll", poll_interval_s=0.5, replay=ReplaySpec("loads.csv"), max_loop_lag_ms=5000,
                dr_events=(DrEvent(at_s=1.0, level=2, duration_s=600.0, notice_s=0.5, share=1.0),))
    outcome = RunSession(p, tmp_path).run()
    doc = outcome.summary
    first_sample = 1736726400.0  # 2025-01-13T00:00:00Z
    assert doc["run"]["sim_start_epoch_s"] == first_sample
    [ev] = doc["event_fanout"]["events"]
    assert ev["targeted"] == ev["aware"] == ev["shed_reported"] == 8, ev
    db = sqlite3.connect(outcome.run_dir / "vtn.sqlite")
    (body,) = db.execute("SELECT body FROM events WHERE id = ?", (ev["id"],)).fetchone()
    start = json.loads(body)["intervalPeriod"]["start"]
    assert start.startswith("2025-01-13T00:0"), start  # ~1.5 wall s x 60 after the first sample
