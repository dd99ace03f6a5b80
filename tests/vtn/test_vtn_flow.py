"""The VEN lifecycle against the embedded VTN, end to end over real sockets and a real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from types import SimpleNamespace

from harness.vtn import VtnConfig


async def test_full_ven_flow_stores_exactly_n_reports(config: VtnConfig, kit: SimpleNamespace) -> None:
    """token → VEN (409 on duplicate, found by name) → resources → BL program+event → N reports, N stored."""
    n = 25
    async with kit.vtn_server(config) as c:
        ven = await c.token("ven-home-1")
        r = await c.call("POST", "/vens", ven, json={"venName": "home-1"})
        assert r.status == 201
        ven_id = r.body["id"]
        assert r.body["objectType"] == "VEN" and r.body["venName"] == "home-1"
        dup = await c.call("POST", "/vens", ven, json={"venName": "home-1"})
        assert dup.status == 409 and dup.body["status"] == 409
        found = await c.call("GET", "/vens?venName=home-1", ven)
        assert found.status == 200 and [v["id"] for v in found.body] == [ven_id]
        for name in ("site-1", "site-2"):
            res = await c.call("POST", f"/vens/{ven_id}/resources", ven, json={"resourceName": name})
            assert res.status == 201 and res.body["venID"] == ven_id
        dup_res = await c.call("POST", f"/vens/{ven_id}/resources", ven, json={"resourceName": "site-1"})
        assert dup_res.status == 409
        listed = await c.call("GET", f"/vens/{ven_id}/resources?resourceName=site-2", ven)
        assert [x["resourceName"] for x in listed.body] == ["site-2"]

        program_id, event_id = await kit.program_and_event(c)
        events = await c.call("GET", f"/events?programID={program_id}", ven)
        assert [e["id"] for e in events.body] == [event_id]
        ids = set()
        for _ in range(n):
            rep = await c.call("POST", "/reports", ven, json=kit.report_body(program_id, event_id, "home-1"))
            assert rep.status == 201
            ids.add(rep.body["id"])
        assert len(ids) == n
        stats = await c.stats()
        assert stats["reports_stored"] == n
        assert stats["vens"] == 1 and stats["resources"] == 2
        assert stats["requests"]["POST /reports"] == {"201": n}
    with sqlite3.connect(config.db_path) as db:
        rows = db.execute("SELECT owner, program_id, event_id, client_name FROM reports").fetchall()
    assert rows == [("ven-home-1", program_id, event_id, "home-1")] * n


async def test_paging_walks_all_objects(config: VtnConfig, kit: SimpleNamespace) -> None:
    """skip/limit pages through 120 reports in order, 50 at a time at most."""
    async with kit.vtn_server(config) as c:
        program_id, event_id = await kit.program_and_event(c)
        ven = await c.token("ven-a")
        for _ in range(120):
            assert (await c.call("POST", "/reports", ven, json=kit.report_body(program_id, event_id, n_intervals=1))).status == 201
        seen: list[str] = []
        while True:
            page = await c.call("GET", f"/reports?skip={len(seen)}&limit=50", ven)
            assert page.status == 200 and len(page.body) <= 50
            if not page.body:
                break
            seen += [r["id"] for r in page.body]
        assert len(seen) == 120 and len(set(seen)) == 120
        default = await c.call("GET", "/reports", ven)
        assert len(default.body) == 50
        zero = await c.call("GET", "/reports?limit=0", ven)
        assert zero.status == 200 and zero.body == []


async def test_update_and_delete(config: VtnConfig, kit: SimpleNamespace) -> None:
    """PUT keeps id and createdDateTime, ignores client-sent VTN fields; DELETE returns the object, then 404."""
    async with kit.vtn_server(config) as c:
        bl = await c.token()
        p = await c.call("POST", "/programs", bl, json={**kit.program_body(), "id": "evil", "objectType": "VEN",
                                                         "createdDateTime": "2000-01-01T00:00:00Z"})
        assert p.status == 201 and p.body["id"] != "evil" and p.body["objectType"] == "PROGRAM"
        pid = p.body["id"]
        u = await c.call("PUT", f"/programs/{pid}", bl, json={"programName": "renamed", "id": "x"})
        assert u.status == 200
        assert u.body["id"] == pid and u.body["programName"] == "renamed"
        assert u.body["createdDateTime"] == p.body["createdDateTime"]
        assert "programLongName" not in u.body
        kit.assert_valid("program", u.body)
        g = await c.call("GET", f"/programs/{pid}", bl)
        assert g.body == u.body
        other = await c.call("POST", "/programs", bl, json=kit.program_body("other"))
        clash = await c.call("PUT", f"/programs/{other.body['id']}", bl, json={"programName": "renamed"})
        assert clash.status == 409
        d = await c.call("DELETE", f"/programs/{pid}", bl)
        assert d.status == 200 and d.body == u.body
        assert (await c.call("GET", f"/programs/{pid}", bl)).status == 404
        assert (await c.call("DELETE", f"/programs/{pid}", bl)).status == 404


async def test_ven_delete_removes_its_resources(config: VtnConfig, kit: SimpleNamespace) -> None:
    """Deleting a VEN deletes its resources; its name can then be registered again."""
    async with kit.vtn_server(config) as c:
        ven = await c.token("ven-a")
        v = await c.call("POST", "/vens", ven, json={"venName": "a"})
        await c.call("POST", f"/vens/{v.body['id']}/resources", ven, json={"resourceName": "r"})
        assert (await c.stats())["resources"] == 1
        assert (await c.call("DELETE", f"/vens/{v.body['id']}", ven)).status == 200
        assert (await c.stats())["resources"] == 0
        again = await c.call("POST", "/vens", ven, json={"venName": "a"})
        assert again.status == 201 and again.body["id"] != v.body["id"]


async def test_restart_keeps_data_and_ids_stay_unique(config: VtnConfig, kit: SimpleNamespace) -> None:
    """A new server on the same file serves the same objects; new ids never collide with old ones (even deleted)."""
    async with kit.vtn_server(config) as c:
        program_id, event_id = await kit.program_and_event(c)
        ven = await c.token("ven-a")
        v = await c.call("POST", "/vens", ven, json={"venName": "a"})
        reports = [(await c.call("POST", "/reports", ven, json=kit.report_body(program_id, event_id))).body for _ in range(3)]
        last = await c.call("DELETE", f"/reports/{reports[-1]['id']}", ven)
        assert last.status == 200
    async with kit.vtn_server(replace(config)) as c2:
        ven = await c2.token("ven-a")
        assert (await c2.call("GET", f"/vens/{v.body['id']}", ven)).body == v.body
        assert (await c2.call("GET", f"/reports/{reports[0]['id']}", ven)).body == reports[0]
        assert (await c2.call("GET", f"/events?programID={program_id}", ven)).body[0]["id"] == event_id
        new = await c2.call("POST", "/reports", ven, json=kit.report_body(program_id, event_id))
        assert new.status == 201
        assert new.body["id"] not in {r["id"] for r in reports}
        dup = await c2.call("POST", "/vens", ven, json={"venName": "a"})
        assert dup.status == 409
        assert (await c2.stats())["reports_stored"] == 3


async def test_responses_validate_against_openapi(config: VtnConfig, kit: SimpleNamespace) -> None:
    """Every object and list the VTN returns, plus problems and tokens, validate against the 3.0.1 schemas."""
    async with kit.vtn_server(config) as c:
        tok = await c.call("POST", "/auth/token", data={"grant_type": "client_credentials", "client_id": "ven-a",
                                                        "client_secret": "ven-secret"})
        kit.assert_valid("clientCredentialResponse", tok.body)
        ven = tok.body["access_token"]
        bl = await c.token()
        p = await c.call("POST", "/programs", bl, json=kit.program_body())
        kit.assert_valid("program", p.body)
        e = await c.call("POST", "/events", bl, json=kit.event_body(p.body["id"]))
        kit.assert_valid("event", e.body)
        v = await c.call("POST", "/vens", ven, json={"venName": "a", "attributes": [{"type": "LOCATION", "values": ["x"]}]})
        kit.assert_valid("ven", v.body)
        res = await c.call("POST", f"/vens/{v.body['id']}/resources", ven, json={"resourceName": "r"})
        kit.assert_valid("resource", res.body)
        rep = await c.call("POST", "/reports", ven, json=kit.report_body(p.body["id"], e.body["id"]))
        kit.assert_valid("report", rep.body)
        sub = await c.call("POST", "/subscriptions", ven, json={
            "clientName": "a", "programID": p.body["id"],
            "objectOperations": [{"objects": ["EVENT"], "operations": ["CREATE"], "callbackUrl": "http://127.0.0.1:9/cb"}]})
        kit.assert_valid("subscription", sub.body)
        for path, name in (("/programs", "program[]"), ("/events", "event[]"), ("/vens", "ven[]"),
                           (f"/vens/{v.body['id']}/resources", "resource[]"), ("/reports", "report[]"),
                           ("/subscriptions", "subscription[]")):
            lst = await c.call("GET", path, ven)
            assert lst.status == 200 and len(lst.body) == 1
            kit.assert_valid(name, lst.body)
        bad = await c.call("POST", "/reports", ven, json={"programID": "x"})
        assert bad.status == 400
        kit.assert_valid("problem", bad.body)
        kit.assert_valid("problem", (await c.call("GET", "/programs")).body)
        bad_secret = await c.call("POST", "/auth/token", data={"grant_type": "client_credentials", "client_id": "bl",
                                                               "client_secret": "nope"})
        assert bad_secret.status == 400
        kit.assert_valid("authError", bad_secret.body)


async def test_empty_base_path_serves_at_root(config: VtnConfig, kit: SimpleNamespace) -> None:
    """With base_path '' the API answers at the root, and the stats name routes without a prefix."""
    async with kit.vtn_server(replace(config, base_path="")) as c:
        assert c.base == c.root
        ven = await c.token("ven-x")
        assert (await c.call("GET", c.root + "/programs", ven)).status == 200
        assert (await c.call("GET", c.root + "/openadr3/3.0.1/programs", ven)).status == 404
        assert (await c.stats())["requests"]["GET /programs"] == {"200": 1}


async def test_concurrent_vens_store_exactly_what_was_accepted(config: VtnConfig, kit: SimpleNamespace) -> None:
    """20 VENs posting 3 reports each, all at once: exactly 60 201s and exactly 60 rows, 3 per owner."""
    async with kit.vtn_server(config) as c:
        program_id, event_id = await kit.program_and_event(c)
        tokens = [await c.token(f"ven-{i}") for i in range(20)]
        replies = await asyncio.gather(*(
            c.call("POST", "/reports", tok, json=kit.report_body(program_id, event_id, f"v{i}"))
            for i, tok in enumerate(tokens) for _ in range(3)))
        assert [r.status for r in replies] == [201] * 60
        stats = await c.stats()
        assert stats["reports_stored"] == 60 and stats["requests"]["POST /reports"] == {"201": 60}
        own = await c.call("GET", "/reports?limit=50", tokens[7])
        assert len(own.body) == 3 and {r["clientName"] for r in own.body} == {"v7"}
    with sqlite3.connect(config.db_path) as db:
        per_owner = db.execute("SELECT owner, count(*) FROM reports GROUP BY owner").fetchall()
    assert sorted(per_owner) == sorted((f"ven-{i}", 3) for i in range(20))
