"""Bad days: timed faults on the embedded VTN, VENs that back off and buffer, and recovery measured (loopback)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.core.badday import Backoff, TimedFault
from harness.core.profile import Profile, ProfileError, from_toml
from harness.run.session import RunSession


def test_fault_specs_are_one_line_errors() -> None:
    for text, part in [
        ('[[faults]]\nkind = "melt"\nat = "1s"', "faults[0].kind must be one of"),
        ('[[faults]]\nkind = "outage"', "faults[0].at is required"),
        ('[[faults]]\nkind = "outage"\nat = "1s"', "faults[0].duration must be > 0"),
        ('[[faults]]\nkind = "outage"\nat = "1s"\nduration = "2s"\nmode = "x"', "faults[0].mode must be one of"),
        ('[[faults]]\nkind = "errors"\nat = "1s"\nduration = "2s"\nstatus = 200', "faults[0].status"),
        ('[[faults]]\nkind = "outage"\nat = "1s"\nduration = "2s"\nwhen = 1', "unknown key faults[0].when"),
        ('[behaviour.reconnect]\nbackoff = "linear"', "behaviour.reconnect.backoff must be one of"),
        ('[behaviour.reconnect]\nbuffer = -1', "behaviour.reconnect.buffer"),
        ('[target]\nurl = "http://127.0.0.1:1"\n[[faults]]\nkind = "restart"\nat = "1s"', "needs the embedded VTN"),
    ]:
        with pytest.raises(ProfileError) as e:
            from_toml(text)
        assert part in str(e.value) and "\n" not in str(e.value)


def test_full_jitter_is_seeded_and_bounded() -> None:
    b = Backoff("exponential", 1.0, 8.0, "full")
    vens = np.arange(1000, dtype=np.int64)
    d4 = b.delays(7, vens, np.full(1000, 4, dtype=np.int64))
    assert np.array_equal(d4, b.delays(7, vens, np.full(1000, 4, dtype=np.int64)))  # same seed, same draws
    assert d4.max() <= 8.0 and d4.min() >= 0.1 and 3.0 < d4.mean() < 5.0  # uniform(0, min(8, 2^3))
    assert Backoff("none").delay(7, 1, 9) == 0.1 and Backoff("fixed", 2.0).delay(7, 1, 9) == 2.0


def _restart_profile(vens: int, buffer: int, backoff: Backoff | None = None) -> Profile:
    return Profile(
        name="restart", vens=vens, interval_s=2.0, duration_s=14.0, workers=2, seed=5, max_loop_lag_ms=5000,
        max_cpu_percent=100, drain_s=8.0, reconnect=backoff or Backoff("exponential", 0.5, 2.0, "full", buffer),
        faults=(TimedFault("restart", at_s=4.0, duration_s=2.0),),
        thresholds=("recovery.p100 < 60s", "recovery.lost == 0"),
    )


def test_restart_buffered_reports_are_sent_late_and_counted_exactly(tmp_path: Path) -> None:
    outcome = RunSession(_restart_profile(100, buffer=8), tmp_path).run()
    doc = outcome.summary
    f = doc["faults"]
    reports = f["reports"]
    assert reports["sent"] + reports["lost"] == reports["due"]
    assert reports["lost"] == 0 and reports["late"] > 0
    assert f["faults"][0]["kind"] == "restart" and f["faults"][0]["recovered"]
    assert f["recovery"]["p100_s"] is not None and f["recovery"]["p100_s"] <= 2.0 + 2.0 + 8.0
    assert outcome.verdict in ("pass", "fail")
    series = (outcome.run_dir / "series.csv").read_text()
    assert ",fault:restart," in series  # the fault is a band in the time series
    assert outcome.summary["counters"]["token_refresh_on_401"] >= 1  # the restart took the tokens with it
