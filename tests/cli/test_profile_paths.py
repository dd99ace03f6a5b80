"""Files a profile names are found beside the profile, wherever `harness run` is started from."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from harness.cli.options import anchored, load_profile
from harness.core.fleet import FleetSpec
from harness.core.profile import from_toml
from tests.run.test_replay_run import _csv

VENS = 6
NAMES = [FleetSpec(vens=VENS).ven_name(i) for i in range(VENS)]


def test_relative_files_resolve_against_the_profile_folder_not_the_cwd(tmp_path: Path) -> None:
    """`harness run --profile conf/p.toml` from another folder: ven_credentials and fleet.replay are read from
    conf/; every VEN logs in with its file's client id and reports the replayed power; 6 x 2 stored and ok."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "vens.csv").write_text("venName,clientID,secret\n" + "".join(
        f"{n},client-{i},secret-{i}\n" for i, n in enumerate(NAMES)))
    _csv(conf / "loads.csv")
    (conf / "p.toml").write_text(f'name = "paths"\n[target]\nven_credentials = "vens.csv"\n[fleet]\nvens = {VENS}\n'
                                 'replay = "loads.csv"\n[behaviour]\ninterval = "0.4s"\n[run]\nreports_per_ven = 2\n'
                                 'workers = 1\n[generator]\nmax_loop_lag = "5s"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = subprocess.run([sys.executable, "-m", "harness", "run", "--profile", "../conf/p.toml", "--quiet"],
                       check=False, capture_output=True, text=True, timeout=120, cwd=elsewhere)
    assert r.returncode == 0, (r.stdout[-1500:], r.stderr[-1500:])
    [run_dir] = (elsewhere / "runs").iterdir()
    doc = json.loads((run_dir / "summary.json").read_text())
    assert doc["operations"]["report"]["ok"] == 2 * VENS and doc["errors"] == {}
    db = sqlite3.connect(run_dir / "vtn.sqlite")
    owners = {o for (o,) in db.execute("SELECT owner FROM vens")}
    assert owners == {f"client-{i}" for i in range(VENS)}
    (stored,) = db.execute("SELECT count(*) FROM reports").fetchone()
    assert stored == 2 * VENS
    start = json.loads(db.execute("SELECT body FROM reports").fetchone()[0])["resources"][0]["intervalPeriod"]["start"]
    assert start.startswith("2025-01-13T00:")  # simulated time is the replay file's


def test_absolute_paths_and_profiles_without_files_stay_as_they_are(tmp_path: Path) -> None:
    """An absolute path is kept; a profile naming no files is unchanged; load_profile anchors at the file's folder."""
    p = from_toml('[target]\nven_credentials = "/etc/vens.csv"\n[target.tls]\nca_bundle = "ca.pem"\n')
    a = anchored(p, tmp_path)
    assert (a.ven_credentials, a.target_settings.ca_bundle) == ("/etc/vens.csv", str(tmp_path / "ca.pem"))
    assert anchored(from_toml(""), tmp_path) == from_toml("")
    (tmp_path / "q.toml").write_text('[fleet.replay]\nfile = "data/x.csv"\n')
    replay = load_profile(str(tmp_path / "q.toml")).replay
    assert replay is not None and replay.file == str(tmp_path / "data" / "x.csv")
