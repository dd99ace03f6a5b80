"""A DR event the operator could not create fails the run: its DR check never happened."""

from __future__ import annotations

import time
from pathlib import Path

from harness.core.exits import EXIT_FAIL
from harness.core.profile import Profile
from harness.core.results import RunResults
from harness.run.outcome import RunFacts, conclude

ERROR = "create DR event 'p-dr-0': HTTP 400 b'{\"detail\":\"targets must be strings\"}'"


def facts(fired: list[dict[str, object]]) -> RunFacts:
    now = time.time()
    return RunFacts(now, now, 10.0, "http://vtn", "p", "e", fired=fired)


def test_a_dr_event_that_was_not_created_fails_the_verdict_in_one_line(tmp_path: Path) -> None:
    row = {"id": None, "at_s": 2.0, "level": 2, "targeted": 0, "created_epoch_s": 0.0, "start_epoch_s": 0.0}
    ok = conclude(Profile(vens=1), RunResults(), facts([]), tmp_path, signals=(), default_gates=False)
    bad = conclude(Profile(vens=1), RunResults(), facts([{**row, "error": ERROR}]), tmp_path, signals=(),
                   default_gates=False)
    assert (ok.verdict, ok.exit_code) == ("pass", 0)  # the baseline: the same run without the failed event passes
    assert (bad.verdict, bad.exit_code) == ("fail", EXIT_FAIL)
    assert bad.summary["reasons"] == [f"DR check: DR event 0 (at 2s) not created: {ERROR}"]


def test_with_dr_events_the_default_gates_fail_a_run_where_a_targeted_ven_never_learned_of_its_event(
        tmp_path: Path) -> None:
    """No thresholds named and a DR event that reached 0 of its 5 targeted VENs: the default gates include
    `event_fanout.never_received == 0`, which fails, naming the count; a run without DR events has no such gate."""
    from harness.core.profile import DrEvent

    row = {"id": "ev", "at_s": 1.0, "level": 2, "targeted": 5, "created_epoch_s": 0.0, "start_epoch_s": 0.0}
    dr = Profile(vens=5, events="poll", dr_events=(DrEvent(at_s=1.0),))
    with_dr = conclude(dr, RunResults(), facts([row]), tmp_path, signals=())
    without = conclude(Profile(vens=5), RunResults(), facts([]), tmp_path, signals=())
    gate = "default gate failed: event_fanout.never_received == 0 (5 is not == 0)"
    assert with_dr.verdict == "fail" and gate in with_dr.summary["reasons"], with_dr.summary["reasons"]
    assert not [r for r in without.summary["reasons"] if "never_received" in r]
    assert [t["expr"] for t in with_dr.summary["thresholds"]][-1] == "event_fanout.never_received == 0"
