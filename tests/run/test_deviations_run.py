"""Deviations are counted, never silently absorbed: a real run (worker processes, webhooks) against a VTN double
whose every deviation is of one kind, so each count is exact; summary.json and report.html list each with one example."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from harness.core.profile import Profile
from harness.reports.run import write_report
from harness.run.session import RunSession
from tests import odd_server
from tests.snake_server import SnakeServer

VENS = 4


def test_each_deviation_kind_is_counted_exactly_with_an_example_in_summary_and_report(tmp_path: Path) -> None:
    """Double-encoded bodies and notifications, scope arrays, a time without a date, tokens without expires_in,
    objects without createdDateTime: exact counts from what the double sent, one example each, the run passes."""
    with SnakeServer(odd_server.make_webhook_app) as s:
        p = Profile(name="deviant", target=s.url, program_name=odd_server.PROGRAM, vens=VENS, interval_s=0.4,
                    reports_per_ven=2, workers=1, seed=5, events="webhook", max_loop_lag_ms=5000)
        outcome = RunSession(p, tmp_path).run()
        with urllib.request.urlopen(s.url + "/_test/stats", timeout=5) as resp:
            sent = json.loads(resp.read())
    doc = outcome.summary
    assert (outcome.exit_code, doc["errors"]) == (0, {}), doc["reasons"]
    assert sent == {"reports": 2 * VENS, "notifications": VENS} and doc["counters"]["notifications"] == VENS
    devs = doc["deviations"]
    assert {k: v["count"] for k, v in devs.items()} == {
        "double_encoded_json": VENS,  # each VEN's POST /vens reply (harness reads no resource reply's body)
        "double_encoded_notification": VENS,  # the one notification each subscription got
        "token_scope_array": VENS + 1,  # every token: the VENs' and the operator's
        "token_without_expires_in": VENS + 1,
        "time_without_date": VENS + 1,  # the event's createdDateTime, read by the operator and each VEN's startup read
        "missing_created_date_time": 1,  # the program, read once by the operator
    }
    assert devs["double_encoded_notification"]["example"].startswith("notification: '{\"objectType\": \"EVENT\"")
    assert devs["time_without_date"]["example"] == "event created: '10:04:29'"
    assert devs["missing_created_date_time"]["example"] == "program 1"
    assert devs["token_without_expires_in"]["example"] == "token: ['access_token', 'scope', 'token_type']"
    page = write_report(outcome.run_dir).read_text()
    for kind, d in devs.items():
        assert f'<tr data-kind="{kind}"><td class="l"><b>{kind}</b></td><td data-v="{d["count"]}">{d["count"]}</td>' in page, kind
