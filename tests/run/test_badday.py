"""Bad days: timed faults on the embedded VTN, VENs that back off and buffer, and recovery measured (loopback)."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

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
        ('[[faults]]\nkind = "outage"\nat = "1s"\nduration = "2s"\nwhen = 1', "unknown key 'faults[0].when'"),
        ('[behaviour.reconnect]\nbackoff = "linear"', "behaviour.reconnect.backoff must be one of"),
        ('[behaviour.reconnect]\nbuffer = -1', "behaviour.reconnect.buffer"),
        ('[target]\nurl = "http://127.0.0.1:1"\n[[faults]]\nkind = "restart"\nat = "1s"',
         'needs the embedded VTN (no target.url): against another target harness can only do what it does itself '
         '(kind = "drop_connections")'),
        ('[[faults]]\nkind = "broker_outage"\nat = "1s"\nduration = "2s"',
         'faults[0].kind broker_outage needs behaviour.events = "mqtt"'),
    ]:
        with pytest.raises(ProfileError) as e:
            from_toml(text)
        assert part in str(e.value) and "\n" not in str(e.value)


def test_drop_connections_is_the_fault_an_external_target_allows() -> None:
    p = from_toml('[target]\nurl = "http://127.0.0.1:1"\n[[faults]]\nkind = "drop_connections"\nat = "1s"')
    assert [(f.kind, f.at_s, f.duration_s) for f in p.faults] == [("drop_connections", 1.0, 0.0)]


def test_drop_connections_on_an_external_target_reconnects_every_ven_once(tmp_path: Path) -> None:
    """A VTN harness did not start (an EmbeddedVtn given as target.url): at 2.5 s every VEN's connection is closed.
    Each VEN opened one connection before and opens exactly one after; every report is acknowledged; every VEN
    reports again after the drop, and the report, the live line and the final table show the fault."""
    from rich.console import Console

    from harness.reports.run import write_report
    from harness.sinks.base import Snapshot
    from harness.sinks.terminal import faults_line, faults_table
    from harness.vtn import EmbeddedVtn, VtnConfig

    vens = 60
    with EmbeddedVtn(VtnConfig(db_path=str(tmp_path / "vtn.sqlite"))) as vtn:
        p = Profile(name="drop", target=vtn.url, vens=vens, interval_s=1.0, reports_per_ven=6, workers=2, seed=8,
                    max_loop_lag_ms=5000, max_cpu_percent=100, faults=(TimedFault("drop_connections", at_s=2.5),))
        outcome = RunSession(p, tmp_path).run()
    doc = outcome.summary
    c = doc["counters"]
    assert doc["operations"]["report"]["ok"] == vens * 6 and doc["operations"]["report"]["errors"] == 0
    assert c["connections_dropped"] == vens  # per-VEN mode: one transport per VEN, each dropped once
    assert c["connections_opened"] == 2 * vens, c  # one before the drop and one after, per VEN
    row = doc["faults"]["faults"][0]
    assert row["kind"] == "drop_connections" and row["vens_reported_after"] == vens and row["recovered"]
    assert row["every_ven_back_after_s"] is not None and row["every_ven_back_after_s"] <= p.interval_s + 1
    html = write_report(outcome.run_dir).read_text()
    assert 'id="sec-faults"' in html and 'id="fig-fault-0"' in html and "drop_connections" in html
    console = Console(width=200, record=True)
    console.print(faults_table(doc))
    text = console.export_text()
    assert "Faults and recovery" in text and "#0 drop_connections" in text
    live = faults_line(Snapshot(p, outcome.results, 3.0, "running", vtn.url))
    assert live is not None and "#0 drop_connections 2." in live.plain


def test_full_jitter_is_seeded_and_bounded() -> None:
    b = Backoff("exponential", 1.0, 8.0, "full")
    vens = np.arange(1000, dtype=np.int64)
    d4 = b.delays(7, vens, np.full(1000, 4, dtype=np.int64))
    assert np.array_equal(d4, b.delays(7, vens, np.full(1000, 4, dtype=np.int64)))  # same seed, same draws
    assert d4.max() <= 8.0 and d4.min() >= 0.1 and 3.0 < d4.mean() < 5.0  # uniform(0, min(8, 2^3))
    assert Backoff("none").delay(7, 1, 9) == 0.1 and Backoff("fixed", 2.0).delay(7, 1, 9) == 2.0


def _restart_profile(vens: int, buffer: int, backoff: Backoff | None = None) -> Profile:
    return Profile(
        name="restart", vens=vens, interval_s=4.0, duration_s=20.0, workers=2, seed=5, max_loop_lag_ms=5000,
        max_cpu_percent=100, drain_s=8.0, reconnect=backoff or Backoff("exponential", 0.5, 2.0, "full", buffer),
        faults=(TimedFault("restart", at_s=6.0, duration_s=4.0),),
        thresholds=("recovery.p100 < 60s", "recovery.lost == 0"),
    )


def test_restart_buffered_reports_are_sent_late_and_counted_exactly(tmp_path: Path) -> None:
    p = _restart_profile(500, buffer=8)
    outcome = RunSession(p, tmp_path).run()
    doc = outcome.summary
    f = doc["faults"]
    reports = f["reports"]
    assert reports["sent"] + reports["lost"] == reports["due"]
    assert reports["lost"] == 0 and reports["late"] > 0
    assert f["faults"][0]["kind"] == "restart" and f["faults"][0]["recovered"]
    assert f["faults"][0]["vens_reported_after"] == 500  # every VEN reported again after the restart
    # Within the back-off's bound: every first try after the restart is at most one cap away, then one interval
    # of reports at the target rate.
    assert f["recovery"]["p100_s"] is not None and f["recovery"]["p100_s"] <= p.reconnect.max_delay_s() + p.interval_s
    row = f["faults"][0]  # recovery is the later of "rate back" and "every VEN back", each within the bound
    assert row["every_ven_back_after_s"] is not None and row["every_ven_back_after_s"] <= p.reconnect.max_delay_s() + 1
    assert row["recovery_s"] == max(row["rate_back_after_s"], row["every_ven_back_after_s"])
    # The buffered reports queued behind the outage are sent: the backlog is empty again within the same bound.
    assert row["backlog_drained_after_s"] is not None and row["backlog_drained_after_s"] <= p.reconnect.max_delay_s() + p.interval_s
    assert row["peak_outstanding"] > 0
    assert outcome.verdict in ("pass", "fail")
    series = (outcome.run_dir / "series.csv").read_text()
    assert ",fault:restart," in series  # the fault is a band in the time series
    assert outcome.summary["counters"]["token_refresh_on_401"] >= 1  # the restart took the tokens with it


def test_token_storm_every_ven_reauthenticates_once_and_loses_nothing(tmp_path: Path) -> None:
    p = Profile(name="storm", vens=60, interval_s=2.0, duration_s=10.0, workers=2, seed=9, max_loop_lag_ms=5000,
                max_cpu_percent=100, reconnect=Backoff("exponential", 0.5, 2.0, "full", 4),
                faults=(TimedFault("token_expiry", at_s=4.0),))
    doc = RunSession(p, tmp_path).run().summary
    assert doc["counters"]["token_refresh_on_401"] == 60  # each VEN's next request after the instant: 401, once
    assert doc["operations"]["token"]["ok"] == 60 + 60  # the first token and one new one per VEN
    f = doc["faults"]
    assert f["reports"]["lost"] == 0 and f["reports"]["sent"] == f["reports"]["due"]
    assert f["faults"][0]["vens_reported_after"] == 60 and f["faults"][0]["peak_token_requests_per_s"] >= 1


def _summary_of(p: Profile, out: Path) -> dict[str, Any]:
    return RunSession(p, out).run().summary


def _first_tries_after(p: Profile, start_s: float, end_s: float) -> np.ndarray:
    """From the seed alone: when each VEN first tries again after the VTN is back (its failures instant)."""
    from harness.core.schedule import phases

    ph = phases(p.seed, 0, p.vens, p.interval_s)
    out = np.empty(p.vens)
    for v in range(p.vens):
        t = ph[v] + np.ceil((start_s - ph[v]) / p.interval_s) * p.interval_s  # its first report in the outage
        k = 0
        while t < end_s:
            k += 1
            t += p.reconnect.delay(p.seed, v, k)
        out[v] = t
    return out


def test_thundering_herd_no_jitter_peaks_at_least_3x_full_jitter(tmp_path: Path) -> None:
    from dataclasses import replace

    from harness.cli.options import load_profile

    shipped = Path(__file__).resolve().parents[2] / "profiles"
    herd, spread = (replace(load_profile(str(shipped / f"{name}.toml")), workers=2, max_loop_lag_ms=5000,
                            max_cpu_percent=100) for name in ("thundering-herd", "thundering-herd-jitter"))
    # The two 65 s runs side by side, each in a process of its own (a run's signal handlers are its main thread's).
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        docs = list(pool.map(_summary_of, (herd, spread), (tmp_path / herd.name, tmp_path / spread.name), timeout=240))
    f0, f1 = (d["faults"]["faults"][0] for d in docs)
    # What the seed says: with full jitter the first tries after the restart spread over seconds.
    tries = _first_tries_after(spread, f1["started_s"], f1["ended_s"])
    per_s = np.bincount(np.floor(tries - f1["ended_s"]).astype(int).clip(0))
    assert herd.vens / (per_s.max() + herd.vens / herd.interval_s) >= 3  # the setup can show the effect
    assert f0["peak_ok_per_s"] >= 3 * f1["peak_ok_per_s"], (f0, f1)
    for d in docs:
        assert d["faults"]["reports"]["sent"] + d["faults"]["reports"]["lost"] == d["faults"]["reports"]["due"]


def test_error_burst_stall_and_slowdown_each_happen_in_their_band(tmp_path: Path) -> None:
    p = Profile(name="kinds", vens=40, interval_s=1.0, duration_s=16.0, workers=2, seed=4, max_loop_lag_ms=5000,
                max_cpu_percent=100, drain_s=6.0, reconnect=Backoff("exponential", 0.2, 1.0, "full", 6),
                faults=(TimedFault("errors", at_s=3.0, duration_s=2.0, status=503),
                        TimedFault("outage", at_s=7.0, duration_s=2.0, mode="stall"),
                        TimedFault("slowdown", at_s=11.0, duration_s=2.0, latency="300ms")))
    outcome = RunSession(p, tmp_path).run()
    doc, results = outcome.summary, outcome.results
    rows = doc["faults"]["faults"]
    assert [r["label"] for r in rows] == ["errors(503:1)", "outage(stall)", "slowdown(300ms)"]
    burst = rows[0]
    errors_at = [w for w, win in results.windows.items() if win.get("report") and win["report"].errors]
    assert doc["errors"]["http_503"]["count"] > 0
    assert errors_at and min(errors_at) >= int(burst["started_s"]) and max(errors_at) <= burst["ended_s"] + 1
    # Every report slower than 250 ms (from its intended time) completed in a band or just after (sent late).
    slow = [w for w, win in results.windows.items() if "report" in win and win["report"].hist("response").max_ns > 250e6]
    assert slow and all(any(r["started_s"] - 1 <= w <= r["ended_s"] + 2 for r in rows) for w in slow), slow
    for r in rows[1:]:  # the stall and the slowdown each made answers slow
        assert any(r["started_s"] <= w <= r["ended_s"] + 1 for w in slow), (r, slow)
    assert doc["faults"]["reports"]["sent"] + doc["faults"]["reports"]["lost"] == doc["faults"]["reports"]["due"]
    assert all(r["recovered"] for r in rows)


def test_event_stampede_every_notified_ven_rereads_the_events_once(tmp_path: Path) -> None:
    from harness.core.profile import DrEvent

    p = Profile(name="stampede", vens=30, interval_s=1.0, reports_per_ven=8, workers=2, seed=2, events="webhook",
                reread_s=0.5, max_loop_lag_ms=5000, max_cpu_percent=100,
                dr_events=(DrEvent(at_s=2.0, level=2, duration_s=600.0),))
    doc = RunSession(p, tmp_path).run().summary
    assert doc["event_fanout"]["aware"] == 30
    assert doc["counters"]["reread_after_notification"] == 30
    # One read of the current events after subscribing, one re-read after the notification, per VEN.
    assert doc["operations"]["poll_events"]["ok"] == 30 + 30


def test_reread_needs_webhook_events() -> None:
    with pytest.raises(ProfileError, match="reread_after_notification needs behaviour.events"):
        from_toml('[behaviour]\nreread_after_notification = "1s"')


def test_compare_reads_each_faults_peaks_and_recovery() -> None:
    from harness.core.compare import RunData, compare

    def run(peak: int, recovery: float) -> RunData:
        fault = {"index": 0, "label": "restart", "peak_ok_per_s": peak, "peak_token_requests_per_s": peak // 2,
                 "recovery_s": recovery}
        return RunData({"operations": {}, "faults": {"faults": [fault]}}, {})

    rows = {r.quantity: r for r in compare(run(313, 0.6), run(48, 15.7)) if r.op == "fault:0 restart"}
    assert rows["peak_ok_per_s"].mark == "improvement" and rows["peak_ok_per_s"].new == 48
    assert rows["recovery"].mark == "regression" and rows["recovery"].new == 15700.0
