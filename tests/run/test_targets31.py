"""3.1.0 DR targeting as business logic does it: the operator gives the targeted VENs' records a target string
and aims the event at it; the embedded 3.1.0 VTN (which rejects 3.0.1-style targets with 400) shows the event
only to those VENs."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from harness.dialects import get
from harness.run.operator import Operator
from harness.vtn import EmbeddedVtn, VtnConfig


def call(url: str, token: str | None, method: str = "GET", body: Any = None, form: dict[str, str] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if form is not None:
        from urllib.parse import urlencode
        data, headers = urlencode(form).encode(), {"Content-Type": "application/x-www-form-urlencoded"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_operator_targets_the_seeded_vens_by_their_records(tmp_path: Path) -> None:
    config = VtnConfig(db_path=str(tmp_path / "vtn.sqlite"))
    with EmbeddedVtn(config) as vtn:
        base = vtn.url.removesuffix(config.base_path) + str(config.base_path_31)
        tokens = {}
        for name in ("v0", "v1", "v2", "v3"):
            tokens[name] = call(base + "/auth/token", None, "POST", form={
                "grant_type": "client_credentials", "client_id": f"ven-{name}", "client_secret": "ven-secret"})["access_token"]
            call(base + "/vens", tokens[name], "POST", {"objectType": "VEN_VEN_REQUEST", "venName": name})
        op = Operator(base, get("openadr-3.1.0"), "bl", "bl-secret")
        op.discover_token_url()
        program = op.ensure_program("p31")
        event_id = op.create_dr_event(program, "p31-dr-0", time.time() + 60, 600, 2, ["v0", "v2"])
        seen = {n: [e["id"] for e in call(base + "/events", t)] for n, t in tokens.items()}
        assert seen == {"v0": [event_id], "v1": [], "v2": [event_id], "v3": []}
        ev = call(base + f"/events/{event_id}", tokens["v0"])
        assert ev["targets"] == ["p31-dr-0"]
