"""A shard's VENs: reports at each granularity carry energy deltas, per-VEN tokens, and protocol deviations counted."""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from harness.core.fleet import LOAD_KINDS, FleetShard, FleetSpec, build_shard
from harness.core.profile import Profile
from harness.core.target import TargetSettings
from harness.dialects import Request
from harness.net.base import Reply
from harness.run.session import RunSession
from tests import odd_server
from tests.doubles import FakeVtn
from tests.snake_server import SnakeServer
from tests.run.test_worker import merged, run_worker, spec


def _load_names(shard: FleetShard) -> list[str]:
    """The name harness gives each load of the shard, in load order."""
    names = []
    for s in range(shard.n_sites):
        first = int(shard.load_offsets[s])
        for k in range(first, int(shard.load_offsets[s + 1])):
            names.append(f"{shard.site_name(s)}-{LOAD_KINDS[int(shard.load_kind[k])]}-{k - first}")
    return names


def _usage(report: dict[str, Any]) -> float:
    [res] = report["resources"]
    return float(next(p["values"][0] for p in res["intervals"][0]["payloads"] if p["type"] == "USAGE"))


@pytest.mark.parametrize("granularity", ["resource", "load"])
def test_reports_carry_energy_deltas_that_add_up_to_the_meter(granularity: str) -> None:
    """3 intervals at resource or load granularity: one POST per resource/load per interval, and the USAGE values
    of each resource/load add up to its metered energy at the last report (deltas, never cumulative energy)."""
    vtn = FakeVtn()
    s = spec(fleet=FleetSpec(vens=4, sites_per_ven=2), ven_stop=4, reports_per_ven=3,
             target_settings=TargetSettings(granularity=granularity))
    out, w = run_worker(s, vtn)
    shard = build_shard(s.fleet, s.seed, 0, 4)
    if granularity == "load":
        names, last = _load_names(shard), w.vens.feed.load_last_energy_kwh
        key = lambda r: r["reportName"]  # noqa: E731 - the load's name
    else:
        names, last = [shard.site_name(i) for i in range(shard.n_sites)], w.vens.feed.site_last_energy_kwh
        key = lambda r: r["resources"][0]["resourceName"]  # noqa: E731
    assert vtn.accepted["POST /reports"] == 3 * len(names) == merged(out).ok("report")
    per_name: dict[str, list[float]] = defaultdict(list)
    for r in vtn.reports:
        per_name[key(r)].append(_usage(r))
    assert sorted(per_name) == sorted(names) and {len(v) for v in per_name.values()} == {3}
    for i, name in enumerate(names):
        assert sum(per_name[name]) == pytest.approx(float(last[i]), abs=4e-6), name
    assert float(last.sum()) > 0.0


class TokenVtn:
    """A snake-case VTN double: POST /vens gives the VEN its own token `<name>/1`; reports with a `/1` token are
    refused once (401), and looking the VEN up again gives `<name>/2`."""

    def __init__(self) -> None:
        self.report_tokens: Counter[str] = Counter()
        self.resource_tokens: list[str | None] = []

    def factory(self, spec: object, limit: int, sources: tuple[str, ...] = ()) -> TokenVtn:
        return self

    async def send(self, req: Request, token: str | None = None) -> Reply:
        url = urlsplit(req.path)
        if url.path == "/auth/token":
            return Reply(200, b'{"access_token": "cc", "token_type": "Bearer"}')
        if req.method == "POST" and url.path == "/vens":
            name = req.json["ven_name"]
            return Reply(201, orjson.dumps({"id": name, "ven_name": name, "auth_token": f"{name}/1"}))
        if req.method == "GET" and url.path == "/vens":
            name = parse_qs(url.query)["ven_name"][0]
            return Reply(200, orjson.dumps([{"id": name, "ven_name": name, "auth_token": f"{name}/2"}]))
        if url.path.endswith("/resources"):
            self.resource_tokens.append(token)
            return Reply(201, b'{"id": "r"}')
        assert url.path == "/reports" and token is not None
        if token.endswith("/1"):
            return Reply(401, b'{"error": "unauthorized", "message": "token revoked"}')
        self.report_tokens[token] += 1
        return Reply(201, b'{"id": "x"}')

    async def close(self) -> None:
        pass


def test_per_ven_tokens_are_used_and_a_401_looks_the_ven_up_again() -> None:
    """Snake dialect: resources and reports go with each VEN's own token; its 401 is answered by looking the VEN
    up again (not by a client-credentials token), and every load is then reported with the new token."""
    vtn = TokenVtn()
    s = spec(fleet=FleetSpec(vens=3, sites_per_ven=1), ven_stop=3, reports_per_ven=2, dialect="snake-case-example")
    out, _ = run_worker(s, vtn)
    res = merged(out)
    shard = build_shard(s.fleet, s.seed, 0, 3)
    loads = [int(shard.load_offsets[i + 1] - shard.load_offsets[i]) for i in range(3)]
    assert sorted(vtn.resource_tokens) == [f"{shard.ven_name(i)}/1" for i in range(3)]  # type: ignore[type-var]
    assert vtn.report_tokens == {f"{shard.ven_name(i)}/2": 2 * loads[i] for i in range(3)}
    assert res.counters["ven_token_refresh_on_401"] == 3 and "token_refresh_on_401" not in res.counters
    assert (res.ok("report"), res.totals["report"].errors) == (2 * sum(loads), 3)
    assert (res.ok("token"), res.ok("find_ven")) == (6, 3)
    assert res.errors["http_401"]["count"] == 3
    assert res.errors["http_401"]["example"].endswith("-> 401: unauthorized: token revoked")
    assert res.deviations == {}


def _stored_reports(run_dir: Path) -> int:
    db = sqlite3.connect(run_dir / "vtn.sqlite")
    try:
        (n,) = db.execute("SELECT count(*) FROM reports").fetchone()
    finally:
        db.close()
    return int(n)


def test_granularity_sets_the_reports_stored_per_interval(tmp_path: Path) -> None:
    """Embedded VTN, 5 VENs x 2 sites x 2 intervals: "ven" stores 10 reports, "resource" exactly twice as many,
    "load" one per load per interval; the harness counts exactly what was stored."""
    fleet = FleetSpec(vens=5, sites_per_ven=2)
    n_loads = build_shard(fleet, 7, 0, 5).n_loads
    stored = {}
    for g in ("ven", "resource", "load"):
        p = Profile(name=f"g-{g}", vens=5, sites_per_ven=2, interval_s=0.4, reports_per_ven=2, workers=1, seed=7,
                    max_loop_lag_ms=5000, target_settings=TargetSettings(granularity=g))
        outcome = RunSession(p, tmp_path / g).run()
        assert (outcome.exit_code, outcome.summary["errors"]) == (0, {})
        stored[g] = _stored_reports(outcome.run_dir)
        assert outcome.summary["operations"]["report"]["ok"] == stored[g]
    assert stored == {"ven": 10, "resource": 20, "load": 2 * n_loads}


def test_protocol_deviations_are_counted_with_an_example_and_the_run_completes(tmp_path: Path) -> None:
    """A VTN with odd timestamps, integer ids, string token fields and string problem.status: summary.json lists
    each deviation kind with its exact count and an example; the run completes."""
    with SnakeServer(odd_server.make_app) as s:
        p = Profile(name="odd", target=s.url, program_name=odd_server.PROGRAM, vens=4, interval_s=0.4,
                    reports_per_ven=2, workers=1, seed=5, max_loop_lag_ms=5000)
        outcome = RunSession(p, tmp_path).run()
        with urllib.request.urlopen(s.url + "/_test/stats", timeout=5) as resp:
            stored = json.loads(resp.read())["reports"]
    doc = json.loads((outcome.run_dir / "summary.json").read_text())
    # One VEN's reports refused: the default gates fail the run (its deviations are still all counted).
    assert (outcome.exit_code, outcome.verdict) == (1, "fail")
    assert doc["thresholds_source"] == "default"
    assert doc["reasons"] == ["default gate failed: errors.rate <= 1% (10% is not <= 1%)",
                              "default gate failed: report.achieved_fraction >= 99% (75% is not >= 99%)"]
    assert doc["operations"]["report"]["ok"] == stored == 6  # 3 VENs x 2; the first VEN is refused
    assert doc["errors"]["http_503"]["count"] == 2
    assert doc["errors"]["http_503"]["example"].endswith("-> 503: busy")
    devs = doc["deviations"]
    assert {k: v["count"] for k, v in devs.items()} == {
        "id_not_string": 7,  # 4 created VENs; the operator's program id, event id and event programID
        "missing_field": 1,  # the event's modificationDateTime
        "problem_status_string": 2,
        "time_without_date": 1,  # the event's createdDateTime "10:04:29"
        "timestamp_not_rfc3339": 1,  # the event's start "2026-11-28 10:04:29"
        "token_expires_in_string": 5,  # 4 VENs and the operator
        "token_scope_array": 5,
    }
    assert devs["time_without_date"]["example"] == "event created: '10:04:29'"
    assert devs["timestamp_not_rfc3339"]["example"] == "event start: '2026-11-28 10:04:29'"
    assert devs["problem_status_string"]["example"].startswith("problem.status: ")
    assert doc["counters"]["deviation:token_scope_array"] == 5


class DiscoveryVtn:
    """A 3.1.0 double: GET /auth/server names an absolute tokenURL; records where each request went."""

    def __init__(self) -> None:
        self.paths: Counter[str] = Counter()

    def factory(self, spec: object, limit: int, sources: tuple[str, ...] = ()) -> DiscoveryVtn:
        return self

    async def send(self, req: Request, token: str | None = None) -> Reply:
        self.paths[f"{req.method} {req.path.split('?')[0]}"] += 1
        if req.path == "/auth/server":
            return Reply(200, b'{"tokenURL": "https://idp.example/oauth2/token"}')
        if req.path == "https://idp.example/oauth2/token":
            return Reply(200, b'{"access_token": "t", "token_type": "Bearer", "expires_in": 3600}')
        return Reply(201, b'{"id": "x"}')

    async def close(self) -> None:
        pass


def test_310_discovers_the_token_url_once_per_worker() -> None:
    """openadr-3.1.0: one GET /auth/server per worker, then every VEN asks the discovered tokenURL for its token."""
    vtn = DiscoveryVtn()
    out, _ = run_worker(spec(fleet=FleetSpec(vens=4), ven_stop=4, reports_per_ven=1, dialect="openadr-3.1.0"), vtn)
    res = merged(out)
    assert vtn.paths == {"GET /auth/server": 1, "POST https://idp.example/oauth2/token": 4, "POST /vens": 4,
                         "POST /resources": 4, "POST /reports": 4}
    assert (res.ok("auth_server"), res.ok("token"), res.ok("report")) == (1, 4, 4)
