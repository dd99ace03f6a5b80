"""Demand response end to end: the operator fires an event mid-run; every targeted VEN learns of it (poll or
webhook), fan-out is measured, and the following reports carry exactly the shed the meter model gives."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from harness.core.targeting import targeted
from harness.core.fleet import FleetSpec, build_shard
from harness.core.profile import DrEvent, Profile
from harness.core.stages import Stage
from harness.dialects import get
from harness.dialects.lenient import parse_duration, parse_time
from harness.meter import Meter, simple_level_shed
from harness.reports.run import write_report
from harness.run.session import RunSession

VENS, SEED, LEVEL, SHARE = 40, 21, 2, 0.5


@pytest.mark.parametrize("mode", ["poll", "webhook"])
def test_dr_event_reaches_every_targeted_ven_and_reports_show_the_shed(tmp_path: Path, mode: str) -> None:
    """A SIMPLE level-2 event for half the fleet: exact aware count, fan-out figures, shed values as modelled."""
    p = Profile(
        name=f"dr-{mode}", vens=VENS, sites_per_ven=1, mix=(("household", 1.0),), interval_s=0.5, reports_per_ven=14,
        workers=2, seed=SEED, time_scale=60.0, meter_tick_s=15.0, events=mode, poll_interval_s=0.5,
        dr_events=(DrEvent(at_s=2.0, level=LEVEL, duration_s=60.0, notice_s=1.5, share=SHARE),), max_loop_lag_ms=5000,
    )
    outcome = RunSession(p, tmp_path).run()
    doc = outcome.summary
    assert outcome.exit_code == 0, doc["reasons"]
    expect = targeted(SEED, 0, np.arange(VENS, dtype=np.int64), SHARE)
    fan = doc["event_fanout"]
    assert fan["targeted"] == int(expect.sum()) == fan["aware"]
    ev = fan["events"][0]
    assert ev["aware"] == ev["targeted"] and ev["all_aware_after_s"] is not None
    assert ev["shed_reported"] == ev["targeted"]
    assert 0 < fan["p50_ms"] <= fan["max_ms"] < 1500 + 1000  # within the notice plus one poll
    if mode == "poll":
        assert doc["operations"]["poll_events"]["ok"] > 0
    else:
        assert doc["operations"]["subscribe"]["ok"] == VENS
        assert doc["counters"]["notifications"] >= ev["targeted"]
        assert doc["operations"]["poll_events"]["ok"] == VENS  # each VEN's read of current events after subscribing
    # Created 2 s in, after every VEN subscribed in the first interval: each learned it its mode's own way.
    way = "poll" if mode == "poll" else "notification"
    assert ev["learned_by"] == fan["learned_by"] == {way: ev["targeted"]}

    # Rebuild the meter model from the seed and check every report's DEMAND against it.
    db = sqlite3.connect(outcome.run_dir / "vtn.sqlite")
    (body,) = db.execute("SELECT body FROM events WHERE id = ?", (ev["id"],)).fetchone()
    dialect = get("openadr-3.0.1")
    [event] = dialect.parse_events([json.loads(body)])
    assert (event.id, event.signal.payload_type, event.signal.level) == (ev["id"], "SIMPLE", LEVEL)
    assert len(set(event.targets)) == len(event.targets) == ev["targeted"]
    sim_start = doc["run"]["sim_start_epoch_s"]
    shard = build_shard(FleetSpec(vens=VENS, sites_per_ven=1, mix=(("household", 1.0),)), SEED, 0, VENS)
    base, dr = Meter(shard, SEED, sim_start, 15.0), Meter(shard, SEED, sim_start, 15.0)
    assert event.start_epoch_s is not None and event.duration_s is not None
    dr.apply_dr(np.flatnonzero(expect).astype(np.int64), event.start_epoch_s, event.start_epoch_s + event.duration_s,
                shed_fraction=simple_level_shed(LEVEL))
    readings = []
    for client, rbody in db.execute("SELECT client_name, body FROM reports"):
        r = json.loads(rbody)["resources"][0]
        start, duration = parse_time(r["intervalPeriod"]["start"]), parse_duration(r["intervalPeriod"]["duration"])
        assert start is not None and duration is not None
        demand = next(pl["values"][0] for pl in r["intervals"][0]["payloads"] if pl["type"] == "DEMAND")
        readings.append((start + duration, int(client.rsplit("-", 1)[1]), demand))
    readings.sort()
    shed_seen = 0
    by_tick: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for now_sim, ven, demand in readings:
        x = (now_sim - sim_start) / 15.0
        matched = False
        for tick in {math.floor(x + 1e-6), math.floor(x - 1e-6)}:  # a report built on a tick boundary
            if tick not in by_tick:
                for m in (base, dr):
                    m.advance_to(sim_start + tick * 15.0)
                by_tick[tick] = (base.site_sum(base.power_kw), dr.site_sum(dr.power_kw))
            b, d = by_tick[tick]
            want = d[ven] if expect[ven] else b[ven]
            if abs(demand - round(float(want), 4)) <= 1e-4:
                matched = True
                shed_seen += int(expect[ven] and abs(b[ven] - d[ven]) > 1e-3)
        assert matched, (ven, now_sim, demand)
    assert shed_seen > 0  # the event really took load off in what was reported
    assert dialect.deviations.peek() == {} and doc["deviations"] == {}


@pytest.mark.parametrize("unsubscribe", [False, True])
def test_webhook_vens_unsubscribe_at_the_end_when_asked(tmp_path: Path, unsubscribe: bool) -> None:
    """Webhook mode keeps one subscription per VEN, or deletes each one at the clean stop when asked."""
    p = Profile(name="unsub", vens=10, interval_s=0.5, reports_per_ven=2, workers=1, seed=3, events="webhook",
                unsubscribe=unsubscribe, max_loop_lag_ms=5000)
    outcome = RunSession(p, tmp_path).run()
    doc = outcome.summary
    assert doc["operations"]["subscribe"]["ok"] == 10 and doc["errors"] == {}
    db = sqlite3.connect(outcome.run_dir / "vtn.sqlite")
    (left,) = db.execute("SELECT count(*) FROM subscriptions").fetchone()
    if unsubscribe:
        assert doc["operations"]["unsubscribe"]["ok"] == 10 and left == 0
    else:
        assert "unsubscribe" not in doc["operations"] and left == 10


def test_an_event_created_before_the_webhook_vens_subscribe_reaches_every_targeted_one(tmp_path: Path) -> None:
    """No VEN online for the first 2 s (stages), a DR event for half the fleet created at 0 s: no notification
    can tell them, yet every targeted VEN learns of it, each by its read of current events after subscribing
    (learned_by startup_read = aware = targeted, from the seed); the report says how they learned."""
    vens, share = 24, 0.5
    p = Profile(
        name="dr-before", vens=vens, interval_s=0.5, workers=2, seed=SEED, events="webhook",
        stages=(Stage(2.0, 0), Stage(0.5, vens), Stage(1.5, vens)),
        dr_events=(DrEvent(at_s=0.0, level=LEVEL, duration_s=600.0, notice_s=1.0, share=share),), max_loop_lag_ms=5000,
    )
    outcome = RunSession(p, tmp_path).run()
    doc = outcome.summary
    assert outcome.exit_code == 0, doc["reasons"]
    expect = int(targeted(SEED, 0, np.arange(vens, dtype=np.int64), share).sum())
    fan = doc["event_fanout"]
    [ev] = fan["events"]
    assert 0 < expect < vens and ev["targeted"] == expect == ev["aware"] == fan["aware"]
    assert ev["learned_by"] == fan["learned_by"] == {"startup_read": expect}
    assert doc["operations"]["subscribe"]["ok"] == vens == doc["operations"]["poll_events"]["ok"]
    assert doc["counters"].get("notifications", 0) == 0  # nothing was created after they subscribed
    db = sqlite3.connect(outcome.run_dir / "vtn.sqlite")
    (created,) = db.execute("SELECT created FROM events WHERE id = ?", (ev["id"],)).fetchone()
    (first_sub,) = db.execute("SELECT min(created) FROM subscriptions").fetchone()
    assert created < first_sub  # RFC 3339 UTC stamps of one format order as text
    page = write_report(outcome.run_dir).read_text()
    assert f'<span data-way="startup_read"><b>{expect}</b> by startup read</span>' in page
