"""Auth, scopes, VEN-scoped ownership and request validation of the embedded VTN."""

from __future__ import annotations

import base64
from types import SimpleNamespace
from typing import Any

import pytest

from harness.vtn import VtnConfig


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_missing_malformed_unknown_and_expired_tokens_are_401(config: VtnConfig, kit: SimpleNamespace) -> None:
    """No header, a non-Bearer header, an unknown token and an expired token each get 401 with a problem body."""
    clock = FakeClock()
    async with kit.vtn_server(VtnConfig(db_path=config.db_path, token_ttl_s=60), clock=clock) as c:
        cases: list[dict[str, str]] = [{}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"},
                                       {"Authorization": "Bearer not-a-token"}]
        for headers in cases:
            r = await c.call("GET", "/programs", headers=headers)
            assert r.status == 401, headers
            assert r.body["status"] == 401 and r.body["title"] == "Unauthorized"
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
        token = await c.token("ven-a")
        assert (await c.call("GET", "/programs", token)).status == 200
        clock.now += 59.9
        assert (await c.call("GET", "/programs", token)).status == 200
        clock.now += 0.1
        expired = await c.call("GET", "/programs", token)
        assert expired.status == 401 and expired.body["detail"] == "expired token"


async def test_token_endpoint_errors_and_scopes(config: VtnConfig, kit: SimpleNamespace) -> None:
    """Bad secrets and unknown clients → 400 invalid_client (401 with Basic); scope requests narrow the grant."""
    async with kit.vtn_server(config) as c:
        async def tok(**form: str) -> Any:
            return await c.call("POST", "/auth/token", data=form)

        ok = await tok(grant_type="client_credentials", client_id="ven-x.1", client_secret="ven-secret")
        assert ok.status == 200
        assert ok.body["token_type"] == "Bearer" and ok.body["expires_in"] == 3600
        assert ok.body["scope"] == "read_all write_reports write_subscriptions write_vens"
        bl = await tok(grant_type="client_credentials", client_id="bl", client_secret="bl-secret")
        assert bl.body["scope"] == "read_all write_programs write_events write_subscriptions write_vens"
        assert (await tok(grant_type="client_credentials", client_id="bl", client_secret="ven-secret")).body == {
            "error": "invalid_client", "error_description": "unknown client or wrong secret"}
        for form in ({"client_id": "ven-a", "client_secret": "wrong"}, {"client_id": "nobody", "client_secret": "ven-secret"},
                     {"client_id": "ven-", "client_secret": "ven-secret"}):
            r = await tok(grant_type="client_credentials", **form)
            assert (r.status, r.body["error"]) == (400, "invalid_client"), form
        assert (await tok(grant_type="password", client_id="bl", client_secret="bl-secret")).body["error"] == "unsupported_grant_type"
        assert (await tok(client_id="bl", client_secret="bl-secret")).body["error"] == "invalid_request"
        assert (await tok(grant_type="client_credentials", client_id="bl")).body["error"] == "invalid_request"
        narrow = await tok(grant_type="client_credentials", client_id="ven-a", client_secret="ven-secret", scope="read_all openid")
        assert narrow.body["scope"] == "read_all"
        denied = await c.call("POST", "/vens", narrow.body["access_token"], json={"venName": "a"})
        assert denied.status == 403 and denied.body["detail"] == "token lacks scope write_vens"
        bad_scope = await tok(grant_type="client_credentials", client_id="ven-a", client_secret="ven-secret", scope="write_programs")
        assert (bad_scope.status, bad_scope.body["error"]) == (400, "invalid_scope")
        basic = base64.b64encode(b"ven-a:wrong").decode()
        r = await c.call("POST", "/auth/token", data={"grant_type": "client_credentials"},
                         headers={"Authorization": f"Basic {basic}"})
        assert (r.status, r.body["error"]) == (401, "invalid_client")
        good = base64.b64encode(b"ven-a:ven-secret").decode()
        r = await c.call("POST", "/auth/token", data={"grant_type": "client_credentials"},
                         headers={"Authorization": f"Basic {good}"})
        assert r.status == 200
        js = await c.call("POST", "/auth/token", json={"grant_type": "client_credentials", "client_id": "bl",
                                                       "client_secret": "bl-secret"})
        assert js.status == 200


async def test_ven_cannot_write_programs_or_events_and_bl_cannot_post_reports(config: VtnConfig, kit: SimpleNamespace) -> None:
    """Missing scopes are 403: a VEN writing programs/events, the BL posting reports."""
    async with kit.vtn_server(config) as c:
        program_id, event_id = await kit.program_and_event(c)
        ven = await c.token("ven-a")
        bl = await c.token()
        for method, path, body in (("POST", "/programs", kit.program_body("x")),
                                   ("PUT", f"/programs/{program_id}", kit.program_body("x")),
                                   ("DELETE", f"/programs/{program_id}", None),
                                   ("POST", "/events", kit.event_body(program_id)),
                                   ("PUT", f"/events/{event_id}", kit.event_body(program_id)),
                                   ("DELETE", f"/events/{event_id}", None)):
            r = await c.call(method, path, ven, json=body)
            assert r.status == 403, (method, path)
            assert r.body["status"] == 403
        assert (await c.call("GET", f"/programs/{program_id}", ven)).status == 200
        r = await c.call("POST", "/reports", bl, json=kit.report_body(program_id, event_id))
        assert r.status == 403 and r.body["detail"] == "token lacks scope write_reports"


async def test_ven_isolation(config: VtnConfig, kit: SimpleNamespace) -> None:
    """VEN B cannot read or change VEN A's ven, resources, reports or subscriptions (403); lists show own only."""
    async with kit.vtn_server(config) as c:
        program_id, event_id = await kit.program_and_event(c)
        a, b, bl = await c.token("ven-a"), await c.token("ven-b"), await c.token()
        ven_a = (await c.call("POST", "/vens", a, json={"venName": "a"})).body
        ven_b = (await c.call("POST", "/vens", b, json={"venName": "b"})).body
        res_a = (await c.call("POST", f"/vens/{ven_a['id']}/resources", a, json={"resourceName": "r"})).body
        rep_a = (await c.call("POST", "/reports", a, json=kit.report_body(program_id, event_id, "a"))).body
        sub_a = (await c.call("POST", "/subscriptions", a, json={
            "clientName": "a", "programID": program_id,
            "objectOperations": [{"objects": ["EVENT"], "operations": ["POST"], "callbackUrl": "http://127.0.0.1:9/"}]})).body
        forbidden = [
            ("GET", f"/vens/{ven_a['id']}", None), ("PUT", f"/vens/{ven_a['id']}", {"venName": "a2"}),
            ("DELETE", f"/vens/{ven_a['id']}", None),
            ("GET", f"/vens/{ven_a['id']}/resources", None),
            ("POST", f"/vens/{ven_a['id']}/resources", {"resourceName": "evil"}),
            ("GET", f"/vens/{ven_a['id']}/resources/{res_a['id']}", None),
            ("PUT", f"/vens/{ven_a['id']}/resources/{res_a['id']}", {"resourceName": "evil"}),
            ("DELETE", f"/vens/{ven_a['id']}/resources/{res_a['id']}", None),
            ("GET", f"/reports/{rep_a['id']}", None), ("PUT", f"/reports/{rep_a['id']}", kit.report_body(program_id, event_id)),
            ("DELETE", f"/reports/{rep_a['id']}", None),
            ("GET", f"/subscriptions/{sub_a['id']}", None), ("DELETE", f"/subscriptions/{sub_a['id']}", None),
        ]
        for method, path, body in forbidden:
            r = await c.call(method, path, b, json=body)
            assert r.status == 403, (method, path, r.status)
            assert r.body["status"] == 403
        assert [v["id"] for v in (await c.call("GET", "/vens", b)).body] == [ven_b["id"]]
        assert (await c.call("GET", "/vens?venName=a", b)).body == []
        assert (await c.call("GET", "/reports", b)).body == []
        assert (await c.call("GET", "/subscriptions", b)).body == []
        # the owner and the BL still see everything
        assert (await c.call("GET", f"/vens/{ven_a['id']}", a)).body == ven_a
        assert len((await c.call("GET", "/vens", bl)).body) == 2
        assert (await c.call("GET", f"/reports/{rep_a['id']}", bl)).body == rep_a
        assert (await c.call("GET", f"/vens/{ven_a['id']}/resources/{res_a['id']}", bl)).body == res_a
        # nothing was changed by B's attempts
        assert (await c.stats())["objects"] == {"programs": 1, "events": 1, "vens": 2, "resources": 1, "reports": 1,
                                                "subscriptions": 1}
        # a resource id under the wrong VEN is not found there
        assert (await c.call("GET", f"/vens/{ven_b['id']}/resources/{res_a['id']}", b)).status == 404


BAD_REPORTS: list[tuple[str, Any, str]] = [
    ("not json", b"{not json", "request body is not valid JSON"),
    ("empty", b"", "request body is empty; expected a JSON object"),
    ("array", b"[]", "body: expected a JSON object, got array"),
    ("missing eventID", {"programID": "prg-1", "clientName": "a", "resources": []}, "eventID: required field is missing"),
    ("programID type", {"programID": 5, "eventID": "evt-1", "clientName": "a", "resources": []}, "programID: expected an object id"),
    ("clientName empty", {"programID": "prg-1", "eventID": "evt-1", "clientName": "", "resources": []}, "clientName: length must be 1..128, got 0"),
    ("resources not array", {"programID": "prg-1", "eventID": "evt-1", "clientName": "a", "resources": {}}, "resources: expected an array, got object"),
    ("resource without name", {"programID": "prg-1", "eventID": "evt-1", "clientName": "a", "resources": [{"intervals": []}]}, "resources[0].resourceName: required field is missing"),
    ("interval id string", {"programID": "prg-1", "eventID": "evt-1", "clientName": "a", "resources": [
        {"resourceName": "r", "intervals": [{"id": "0", "payloads": []}]}]}, "resources[0].intervals[0].id: expected an integer, got '0'"),
    ("interval id bool", {"programID": "prg-1", "eventID": "evt-1", "clientName": "a", "resources": [
        {"resourceName": "r", "intervals": [{"id": True, "payloads": []}]}]}, "resources[0].intervals[0].id: expected an integer, got True"),
    ("values not array", {"programID": "prg-1", "eventID": "evt-1", "clientName": "a", "resources": [
        {"resourceName": "r", "intervals": [{"id": 0, "payloads": [{"type": "USAGE", "values": 1.5}]}]}]},
     "resources[0].intervals[0].payloads[0].values: expected an array, got 1.5"),
    ("payload without type", {"programID": "prg-1", "eventID": "evt-1", "clientName": "a", "resources": [
        {"resourceName": "r", "intervals": [{"id": 0, "payloads": [{"values": [1]}]}]}]},
     "resources[0].intervals[0].payloads[0].type: required field is missing"),
    ("bad start", {"programID": "prg-1", "eventID": "evt-1", "clientName": "a", "resources": [
        {"resourceName": "r", "intervalPeriod": {"start": "10:04:29"}, "intervals": []}]},
     "resources[0].intervalPeriod.start: expected an RFC 3339 date-time with a zone, got '10:04:29'"),
    ("bad duration", {"programID": "prg-1", "eventID": "evt-1", "clientName": "a", "resources": [
        {"resourceName": "r", "intervalPeriod": {"start": "2026-01-01T00:00:00Z", "duration": "15m"}, "intervals": []}]},
     "resources[0].intervalPeriod.duration: expected an ISO 8601 duration (PT15M), got '15m'"),
]


@pytest.mark.parametrize("body,detail", [(b, d) for _, b, d in BAD_REPORTS], ids=[n for n, _, _ in BAD_REPORTS])
async def test_invalid_report_bodies_are_400_problems(config: VtnConfig, kit: SimpleNamespace, body: Any, detail: str) -> None:
    """Each malformed report body is a 400 whose problem detail names the field; nothing is stored."""
    async with kit.vtn_server(config) as c:
        ven = await c.token("ven-a")
        if isinstance(body, bytes):
            r = await c.call("POST", "/reports", ven, raw=body)
        else:
            r = await c.call("POST", "/reports", ven, json=body)
        assert r.status == 400
        assert r.headers["Content-Type"].startswith("application/json")
        assert r.body["status"] == 400 and r.body["title"] == "Bad Request"
        assert r.body["detail"].startswith(detail), r.body["detail"]
        assert (await c.stats())["reports_stored"] == 0


async def test_other_invalid_bodies_and_references(config: VtnConfig, kit: SimpleNamespace) -> None:
    """Bad programs, events, vens, resources and subscriptions are 400; unknown program/event refs are 400."""
    async with kit.vtn_server(config) as c:
        program_id, event_id = await kit.program_and_event(c)
        bl, ven = await c.token(), await c.token("ven-a")
        cases = [
            ("/programs", bl, {"programLongName": "x"}, "programName: required field is missing"),
            ("/programs", bl, {"programName": "x" * 129}, "programName: length must be 1..128, got 129"),
            ("/programs", bl, {"programName": "p", "bindingEvents": "yes"}, "bindingEvents: expected a boolean"),
            ("/events", bl, {"programID": program_id}, "intervals: required field is missing"),
            ("/events", bl, {"programID": program_id, "priority": -1, "intervals": []}, "priority: must be 0.."),
            ("/events", bl, {"programID": "prg-999", "intervals": []}, "programID prg-999 does not exist"),
            ("/vens", ven, {"venName": 7}, "venName: expected a string, got 7"),
            ("/vens", ven, {"venName": "v", "attributes": [{"type": "X"}]}, "attributes[0].values: required field is missing"),
            ("/subscriptions", ven, {"clientName": "a", "programID": program_id, "objectOperations": [
                {"objects": ["EVENT"], "operations": ["POST"]}]}, "objectOperations[0].callbackUrl: required field is missing"),
            ("/subscriptions", ven, {"clientName": "a", "programID": program_id, "objectOperations": [
                {"objects": ["EVENT"], "operations": ["POST"], "callbackUrl": "not a url"}]},
             "objectOperations[0].callbackUrl: expected an absolute URI"),
            ("/reports", ven, kit.report_body("prg-999", event_id), "programID prg-999 does not exist"),
            ("/reports", ven, kit.report_body(program_id, "evt-999"), "eventID evt-999 does not exist"),
        ]
        for path, token, body, detail in cases:
            r = await c.call("POST", path, token, json=body)
            assert r.status == 400, (path, body, r.body)
            assert r.body["detail"].startswith(detail), r.body["detail"]
        v = (await c.call("POST", "/vens", ven, json={"venName": "v"})).body
        r = await c.call("POST", f"/vens/{v['id']}/resources", ven, json={"resourceName": ""})
        assert r.status == 400 and r.body["detail"] == "resourceName: length must be 1..128, got 0"
        # unknown object types and private strings are accepted; an operation must be one of the known seven
        ok = await c.call("POST", "/subscriptions", ven, json={"clientName": "a", "programID": program_id, "objectOperations": [
            {"objects": ["EVENT", "MY_PRIVATE_OBJECT"], "operations": ["GET", "create"], "callbackUrl": "https://x.example/cb"}]})
        assert ok.status == 201
        foo = await c.call("POST", "/subscriptions", ven, json={"clientName": "a", "programID": program_id, "objectOperations": [
            {"objects": ["EVENT"], "operations": ["FOO"], "callbackUrl": "https://x.example/cb"}]})
        assert foo.status == 400 and foo.body["detail"].startswith("objectOperations[0].operations[0]: expected one of")
        odd = kit.report_body(program_id, event_id)
        odd["resources"][0]["intervals"][0]["payloads"][0]["type"] = "X_PRIVATE_TYPE"
        odd["resources"][0]["intervals"][0]["payloads"][0]["values"] = [1, 2.5, "s", True, {"x": 1.0, "y": 2.0}]
        assert (await c.call("POST", "/reports", ven, json=odd)).status == 201


@pytest.mark.parametrize("query,detail", [
    ("limit=51", "limit must be 0..50, got 51"),
    ("limit=-1", "limit must be 0..50, got -1"),
    ("skip=-1", "skip must be 0..2147483647, got -1"),
    ("skip=99999999999999999999", "skip must be 0..2147483647, got 99999999999999999999"),
    ("limit=ten", "limit must be an integer, got 'ten'"),
    ("skip=1.5", "skip must be an integer, got '1.5'"),
])
async def test_bad_paging_is_400(config: VtnConfig, kit: SimpleNamespace, query: str, detail: str) -> None:
    """skip < 0, limit outside 0..50 and non-integers are 400 with a problem naming the parameter."""
    async with kit.vtn_server(config) as c:
        ven = await c.token("ven-a")
        for path in ("/programs", "/events", "/vens", "/reports", "/subscriptions"):
            r = await c.call("GET", f"{path}?{query}", ven)
            assert (r.status, r.body["detail"]) == (400, detail), path


async def test_unknown_routes_methods_and_ids(config: VtnConfig, kit: SimpleNamespace) -> None:
    """Unknown paths are 404, wrong methods 405, malformed ids 400 — all with problem bodies."""
    async with kit.vtn_server(config) as c:
        bl = await c.token()
        nf = await c.call("GET", "/nothing", bl)
        assert (nf.status, nf.body["status"]) == (404, 404)
        na = await c.call("PATCH", "/programs", bl)
        assert (na.status, na.body["status"]) == (405, 405)
        bad = await c.call("GET", "/programs/a.b", bl)
        assert bad.status == 400 and bad.body["detail"].startswith("programID must be")
        missing = await c.call("GET", "/programs/prg-77", bl)
        assert (missing.status, missing.body["detail"]) == (404, "program prg-77 not found")
        assert (await c.call("GET", "/programs/prg-01", bl)).status == 404


async def test_credential_modes_over_http(config: VtnConfig, kit: SimpleNamespace) -> None:
    """Shared VEN client, pre-issued tokens and GET /auth/server, through the real token endpoint and routes."""
    from dataclasses import replace

    from harness.core.credentials import VenLogin

    async with kit.vtn_server(replace(config, ven_client_id="ven_client", ven_client_secret="999")) as c:
        r = await c.call("GET", "/auth/server")
        assert r.status == 200 and r.body == {"tokenURL": f"{c.base}/auth/token"}
        shared = await c.token("ven_client", "999")
        form = {"grant_type": "client_credentials", "client_id": "ven-a", "client_secret": "999"}
        assert (await c.call("POST", "/auth/token", data=form)).status == 400
        assert (await c.call("POST", "/vens", shared, json={"venName": "v1"})).status == 201
    logins = (VenLogin("v1", token="pre-1"), VenLogin("v2", "id-2", "s2"))
    async with kit.vtn_server(replace(config, db_path=":memory:", ven_logins=logins)) as c:
        assert (await c.call("POST", "/vens", "pre-1", json={"venName": "v1"})).status == 201
        assert (await c.call("POST", "/vens", "pre-2", json={"venName": "v1"})).status == 401
        own = await c.token("id-2", "s2")
        assert (await c.call("GET", "/vens", own)).body == []  # v1 belongs to the token's VEN, not to id-2
