"""Stages: the active fleet ramps up, holds and ramps down; which VENs are active is decided by rank."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

import numpy as np

from harness.core.profile import Profile, ProfileError, from_toml
from harness.core.stages import Stage, bounds, ranks, target_at
from harness.run.session import RunSession


def test_target_is_piecewise_linear() -> None:
    """Up 0 -> 40 over 4 s, hold, down to 10: the target at each instant."""
    st = (Stage(4, 40), Stage(2, 40), Stage(2, 10))
    assert [target_at(st, t) for t in (0, 1, 4, 5, 6, 7, 8, 100)] == [0, 10, 40, 40, 40, 25, 10, 10]
    assert bounds(st) == [(0, 4, 40), (4, 6, 40), (6, 8, 10)]


def test_ranks_are_a_permutation_and_shard_independent() -> None:
    """Ranks cover 0..N-1 once, and a shard's ranks are the same slice of the whole fleet's."""
    whole = ranks(9, 1000, 0, 1000)
    assert sorted(whole.tolist()) == list(range(1000))
    assert np.array_equal(np.concatenate([ranks(9, 1000, 0, 300), ranks(9, 1000, 300, 1000)]), whole)


def test_stages_in_a_profile_set_length_and_fleet() -> None:
    """[[stages]] set the run's duration and fleet size; bad stages are named errors."""
    p = from_toml("[[stages]]\nduration='10s'\nvens=50\n[[stages]]\nduration='5s'\nvens=5\n")
    assert (p.duration_s, p.vens) == (15.0, 50)
    for text, msg in [
        ("[[stages]]\nduration='0s'\nvens=5", "stages[0].duration must be > 0"),
        ("[[stages]]\nvens=5", "stages[0] needs exactly duration and vens"),
        ("[run]\nreports_per_ven=2\n[[stages]]\nduration='1s'\nvens=5", "cannot be combined"),
    ]:
        try:
            from_toml(text)
        except ProfileError as e:
            assert msg in str(e)
        else:
            raise AssertionError(text)


def test_ramp_up_hold_down_activates_exactly_the_ranked_vens(tmp_path: Path) -> None:
    """0 -> 40 VENs, hold, down to 10: 40 VENs exist; in the final hold only the 10 lowest-ranked report."""
    seed, interval = 13, 0.5
    stages = (Stage(3, 40), Stage(3, 40), Stage(2, 10), Stage(3, 10))
    p = Profile(name="stages", stages=stages, interval_s=interval, workers=2, seed=seed, max_loop_lag_ms=5000)
    outcome = RunSession(p, tmp_path).run()
    doc = outcome.summary
    assert outcome.exit_code == 0, doc["reasons"]
    rows = doc["stages"]
    assert [r["target_vens"] for r in rows] == [40, 40, 10, 10]
    # In the holds, the achieved report rate is the held fleet's rate (within one interval of edge effects).
    assert abs(rows[1]["rate_per_s"] - 40 / interval) <= 40 / interval * 0.2
    assert abs(rows[3]["rate_per_s"] - 10 / interval) <= 10 / interval * 0.25
    assert doc["operations"]["report"]["errors"] == 0

    db = sqlite3.connect(outcome.run_dir / "vtn.sqlite")
    assert db.execute("SELECT count(*) FROM vens").fetchone() == (40,)
    t0 = doc["run"]["t0_epoch_s"]
    final_start = 3 + 3 + 2
    late = {
        name for name, created in db.execute("SELECT client_name, created FROM reports")
        if datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp() - t0 > final_start + 1.0
    }
    expect = {f"harness-ven-{i:07d}" for i in np.flatnonzero(ranks(seed, 40, 0, 40) < 10)}
    assert late == expect
