"""Ground truth: inject known latency and a known stall in the embedded VTN; harness must report them."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import numpy as np

from harness.core.histogram import MID_NS
from harness.core.profile import Profile
from harness.run.session import RunSession
from harness.sinks.resultsdir import read_histograms
from harness.vtn import EmbeddedVtn, VtnConfig, parse_faults


def _set_faults(vtn: EmbeddedVtn, faults: dict[str, str]) -> None:
    base = vtn.url.split("/openadr3")[0]
    req = urllib.request.Request(f"{base}/_harness/faults", data=json.dumps(faults).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200


def test_fixed_50ms_delay_shows_in_service_time_p50(tmp_path: Path) -> None:
    """With 50 ms added, report service p50 is 50 ms plus the loopback overhead measured first: never below
    50 ms, and off by at most 2 % or by the base run's own p50-to-p90 spread, whichever is larger (0.2 % on a
    quiet box here; with two CPU hogs and the suite beside it an idle VTN wakes a few ms late, which a raw
    aiohttp client sees too, and the base run's spread shows how late)."""
    with EmbeddedVtn(VtnConfig(db_path=str(tmp_path / "vtn.sqlite"))) as vtn:
        p = Profile(name="base", target=vtn.url, vens=50, interval_s=0.5, reports_per_ven=6, workers=1, seed=4,
                    max_loop_lag_ms=5000)
        base = RunSession(p, tmp_path).run().summary["operations"]["report"]
        _set_faults(vtn, {"latency": "50ms"})
        slow = RunSession(p, tmp_path).run().summary["operations"]["report"]
    assert base["ok"] == slow["ok"] == 300
    expected_ms = 50.0 + base["service_time"]["p50_ms"]
    measured = slow["service_time"]["p50_ms"]
    spread_ms = base["service_time"]["p90_ms"] - base["service_time"]["p50_ms"]
    assert measured >= 50.0, slow["service_time"]
    assert abs(measured - expected_ms) <= max(0.02 * expected_ms, spread_ms), (base["service_time"],
                                                                                slow["service_time"])


def test_a_2s_stall_shows_in_response_time_not_in_service_time(tmp_path: Path) -> None:
    """A 2 s stall at 200 reports/s: response max ~2 s and p99 ~2 s minus 1 % of the reports' worth of schedule,
    while service p99 (the closed-model view) stays small: only one in-flight report per VEN saw the stall."""
    vens, interval_s, reports, stall_s = 10, 0.05, 240, 2.0
    rate = vens / interval_s  # 200 reports/s offered
    total = vens * reports  # 2400
    faults = parse_faults({"stalls": f"6s:{stall_s:g}s"})  # well inside the ~12 s of steady reporting
    with EmbeddedVtn(VtnConfig(db_path=str(tmp_path / "vtn.sqlite"), faults=faults)) as vtn:
        p = Profile(name="stall", target=vtn.url, vens=vens, interval_s=interval_s, reports_per_ven=reports,
                    workers=1, seed=5, duration_s=60, max_loop_lag_ms=5000)
        outcome = RunSession(p, tmp_path).run()
    r = outcome.summary["operations"]["report"]
    assert r["ok"] == total and r["errors"] == 0
    resp, svc = r["response_time"], r["service_time"]
    # Reports intended during the stall wait for its end: response = stall end - intended, up to the whole stall.
    assert 0.95 * stall_s * 1000 <= resp["max_ms"] <= 1.15 * stall_s * 1000
    # The 1 % largest (24 of 2400) were intended in the stall's first 24/rate seconds.
    expected_p99_ms = (stall_s - (0.01 * total) / rate) * 1000
    assert abs(resp["p99_ms"] - expected_p99_ms) <= 150, (resp, expected_p99_ms)
    # Only the one report each VEN had in flight (10 of 2400 = 0.4 %) has a long service time.
    assert svc["max_ms"] >= 0.9 * (stall_s - interval_s) * 1000
    assert svc["p99_ms"] < 0.1 * resp["p99_ms"]
    # From the saved histogram: every report intended in the stall's first second waited > 1 s (rate x 1 s of
    # them); at most those intended during the whole stall can have (rate x 2 s), draining the queue after it.
    hist = read_histograms(outcome.run_dir / "histograms.npz")["report"]["response_time"]
    late = int(hist.counts[MID_NS > 1e9].sum())
    assert 0.9 * rate <= late <= rate * stall_s, late
    assert np.isclose(hist.total, total)
