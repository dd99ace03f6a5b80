"""Errors are credited to the operation they happened on: a run against a VTN injecting 503s on every route."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from harness.core.profile import Profile
from harness.run.session import RunSession


def test_injected_503s_are_counted_under_each_operation_as_the_vtn_sent_them(tmp_path: Path) -> None:
    """10 % injected 503s: per operation, harness's http_503 count equals the 503s the VTN answered on that route
    (POST /vens, /vens/{id}/resources, /reports); errors.http_503.by_operation adds up to its count."""
    from harness.vtn import EmbeddedVtn, VtnConfig, parse_faults

    with EmbeddedVtn(VtnConfig(db_path=str(tmp_path / "vtn.sqlite"), faults=parse_faults({"errors": "503:0.1", "seed": "3"}))) as vtn:
        p = Profile(name="e503", target=vtn.url, vens=60, interval_s=0.4, reports_per_ven=4, workers=2, seed=4,
                    max_loop_lag_ms=5000)
        doc = RunSession(p, tmp_path, embedded_target=True).run().summary
        parts = urlsplit(vtn.url)
        with urllib.request.urlopen(f"{parts.scheme}://{parts.netloc}/_harness/stats", timeout=10) as r:
            stats = json.loads(r.read())
    sent = {route: by_status.get("503", 0) for route, by_status in stats["requests"].items()}
    e = doc["errors"]["http_503"]
    by_op = {op: slot["count"] for op, slot in e["by_operation"].items()}
    assert sum(by_op.values()) == e["count"] and e["operation"] == max(by_op, key=lambda op: by_op[op])
    for op, route in (("create_ven", "POST /vens"), ("create_resource", "POST /vens/{venID}/resources"),
                      ("report", "POST /reports")):
        assert by_op.get(op, 0) == sent.get(route, 0), (op, by_op, sent)
        assert doc["operations"][op]["errors_by_class"].get("http_503", 0) == sent.get(route, 0)
    assert by_op["report"] > 0 and by_op["create_ven"] > 0  # both happened: the case a new user found mis-credited
