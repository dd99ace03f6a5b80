"""VENs on MQTT through a real broker (Mosquitto, started and stopped by the run): one DR event to a seeded share
of the fleet reaches exactly the VENs it targets, each by its notification, and nothing else is delivered."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.core.badday import Backoff, TimedFault
from harness.core.profile import DrEvent, Profile
from harness.core.targeting import targeted
from harness.run.session import RunSession

pytestmark = pytest.mark.usefixtures("needs_mosquitto")

VENS, SEED, SHARE = 200, 5, 0.5


@pytest.mark.parametrize("mqtt_connection", ["per-ven", "pooled"])
def test_200_vens_on_mqtt_one_dr_event_to_a_seeded_half_arrive_exactly(tmp_path: Path, mqtt_connection: str) -> None:
    """200 VENs in 2 workers, QoS 1: the event targets the VENs the seed picks; every one of them is aware by its
    own notification, none never-received, none received by a VEN it did not target, and the VENs received
    exactly what the VTN published to the VENs' event topics. Pooled: 8 MQTT connections (4 per worker) carry the
    200 VENs' subscriptions, and each message reaches the one VEN whose topic it came on."""
    expected = int(targeted(SEED, 0, np.arange(VENS, dtype=np.int64), SHARE).sum())
    assert 0 < expected < VENS
    p = Profile(name="mqtt", vens=VENS, interval_s=1.0, reports_per_ven=5, workers=2, seed=SEED,
                max_loop_lag_ms=5000, dialect="openadr-3.1.0", events="mqtt", mqtt_qos=1,
                mqtt_connection=mqtt_connection, pool_size=8,
                dr_events=(DrEvent(at_s=1.0, level=2, duration_s=60.0, share=SHARE),))
    outcome = RunSession(p, tmp_path).run()
    doc = outcome.summary
    assert (outcome.exit_code, outcome.verdict) == (0, "pass"), doc.get("verdict_reasons")
    assert doc["operations"]["report"]["ok"] == VENS * 5
    fan = doc["event_fanout"]
    (event,) = fan["events"]
    assert (event["targeted"], event["aware"], event["never_received"]) == (expected, expected, 0)
    assert event["learned_by"] == {"notification": expected}
    n = doc["notifications"]
    assert n["channel"] == "mqtt"
    assert (n["received"], n["untargeted"], n["not_understood"], n["late"]) == (expected, 0, 0, 0)
    assert n["vtn_published_ven_events"] == expected
    assert not [k for k in doc["errors"] if k.startswith("mqtt")], doc["errors"]


@pytest.mark.parametrize(("qos", "pooled", "case"), [(1, False, "camel"), (0, False, "camel"), (1, True, "camel"),
                                                    (1, False, "snake")])
def test_broker_stopped_mid_run_every_ven_reconnects_and_qos1_delivers_what_it_missed(tmp_path: Path, qos: int,
                                                                                     pooled: bool, case: str) -> None:
    """The broker is down from 2 s to 4 s; the DR event (to every VEN) is created at 2.5 s, while it is down. The
    VTN's publisher reconnects within 0.25 s of the broker's return and publishes; the VENs (fixed 1.5 s back-off)
    are still away. Every VEN reconnects to its persistent session. QoS 1: the broker kept the notification for
    each: all 100 received afterwards, counted late, not lost. QoS 0: the broker kept nothing: 100 never
    received — said, not hidden. Either way the VTN published exactly 100 to the VENs' topics. Snake-case
    notifications (unusable: each VEN reads the event by id) are judged late all the same."""
    vens = 100
    p = Profile(name="broker-outage", vens=vens, interval_s=1.0, reports_per_ven=8, workers=2, seed=SEED,
                max_loop_lag_ms=5000, dialect="openadr-3.1.0", events="mqtt", mqtt_qos=qos,
                dr_events=(DrEvent(at_s=2.5, level=2, duration_s=60.0, share=1.0),),
                faults=(TimedFault("broker_outage", at_s=2.0, duration_s=2.0),),
                reconnect=Backoff("fixed", base_s=1.5), mqtt_connection="pooled" if pooled else "per-ven", pool_size=8,
                vtn_notification_case=case)
    outcome = RunSession(p, tmp_path).run()
    doc = outcome.summary
    (event,) = doc["event_fanout"]["events"]
    got = vens if qos == 1 else 0
    connections = 8 if pooled else vens  # pooled: 4 shared connections in each of the 2 workers
    assert (event["targeted"], event["aware"], event["never_received"]) == (vens, got, vens - got), event
    how = "notification" if case == "camel" else "read_by_id"
    assert event["learned_by"] == ({how: vens} if qos == 1 else {})
    n = doc["notifications"]
    assert (n["received"], n["late"], n["untargeted"], n["reconnects"]) == (got, got, 0, connections), n
    assert n["vtn_published_ven_events"] == vens
    assert doc["errors"]["mqtt_disconnect"]["count"] == connections
    assert doc["operations"]["report"]["ok"] == vens * 8
    (fault,) = doc["faults"]["faults"]
    assert fault["kind"] == "broker_outage" and fault["ended_s"] is not None and doc["faults"]["reports"]["lost"] == 0


def test_snake_case_notifications_are_read_by_id_and_only_then_make_vens_aware(tmp_path: Path) -> None:
    """The embedded VTN sends notifications as the reference 3.1 VTN does (snake_case keys: no program, no
    interval period a 3.1.0 VEN can read). Each targeted VEN reads the event by id (GET /events/{id}) and is aware
    by that read, not by the notification: 60 read_event ok, 60 learned by read_by_id."""
    vens = 60
    p = Profile(name="snake-notes", vens=vens, interval_s=1.0, reports_per_ven=4, workers=2, seed=SEED,
                max_loop_lag_ms=5000, dialect="openadr-3.1.0", events="mqtt",
                dr_events=(DrEvent(at_s=1.0, level=2, duration_s=60.0, share=1.0),),
                vtn_notification_case="snake")
    outcome = RunSession(p, tmp_path).run()
    doc = outcome.summary
    assert (outcome.exit_code, outcome.verdict) == (0, "pass"), doc.get("reasons")
    (event,) = doc["event_fanout"]["events"]
    assert (event["targeted"], event["aware"], event["never_received"]) == (vens, vens, 0), event
    assert event["learned_by"] == {"read_by_id": vens}
    n = doc["notifications"]
    assert (n["received"], n["unusable"], n["not_understood"]) == (vens, vens, 0), n
    assert (doc["operations"]["read_event"]["ok"], doc["operations"]["read_event"]["errors"]) == (vens, 0)
