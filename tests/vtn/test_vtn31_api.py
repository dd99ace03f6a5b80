"""The embedded VTN's OpenADR 3.1.0 API: discovery, the object flow, object privacy and targeting, body checks.

Every response of the 3.1.0 client (`c.v31()`) is validated against the 3.1.0 document as it arrives.
"""

from __future__ import annotations

from types import SimpleNamespace

from harness.vtn import VtnConfig

async def test_auth_server_names_the_token_endpoint(config: VtnConfig, kit: SimpleNamespace) -> None:
    """GET /auth/server (no auth) names the 3.1.0 token endpoint; its tokens carry the 3.1.0 read scopes."""
    async with kit.vtn_server(config) as s:
        c = s.v31()
        r = await c.call("GET", "/auth/server")
        assert r.status == 200 and r.body == {"tokenURL": f"{c.base}/auth/token"}
        form = {"grant_type": "client_credentials", "client_id": "ven-a", "client_secret": "ven-secret"}
        t = await c.call("POST", r.body["tokenURL"], data=form)
        assert t.status == 200
        kit.assert_valid("clientCredentialResponse", t.body, "3.1.0")
        assert t.body["scope"] == "read_all read_targets read_ven_objects write_reports write_subscriptions write_vens"
        bl = await c.call("POST", "/auth/token", data={**form, "client_id": "bl", "client_secret": "bl-secret"})
        assert bl.body["scope"] == ("read_all read_targets read_ven_objects read_bl write_programs write_events "
                                    "write_subscriptions write_vens")
        assert (await c.call("POST", "/auth/token", data={**form, "client_secret": "x"})).status == 400


async def test_notifiers_without_a_broker_offer_webhooks_only(config: VtnConfig, kit: SimpleNamespace) -> None:
    """A VTN started without a broker answers /notifiers with WEBHOOK only, and its topic endpoints with 404."""
    async with kit.vtn_server(config) as s:
        c = s.v31()
        ven = await c.token("ven-a")
        r = await c.call("GET", "/notifiers", ven)
        assert r.status == 200 and r.body == {"WEBHOOK": True}
        assert (await c.call("GET", "/notifiers/mqtt/topics/programs", ven)).status == 404
        assert (await c.call("GET", "/notifiers")).status == 401


async def test_whole_flow_stamps_client_ids(config: VtnConfig, kit: SimpleNamespace) -> None:
    """Program, event, ven, resource, report and subscription round trips: clientID stamped from the token,
    the report's program found through its event, updates and deletes answered with the object."""
    async with kit.vtn_server(config) as s:
        c = s.v31()
        bl = await c.token()
        ven, ven_id = await kit.ven31(c, "ven-a")
        p = await c.call("POST", "/programs", bl, json={"programName": "p1", "payloadDescriptors": [kit.SIMPLE31]})
        assert p.status == 201 and p.body["objectType"] == "PROGRAM"
        pid = p.body["id"]
        e = await c.call("POST", "/events", bl, json=kit.event31(pid))
        assert e.status == 201
        res = await c.call("POST", "/resources", ven, json={"objectType": "VEN_RESOURCE_REQUEST", "resourceName": "site-1",
                                                           "venID": ven_id})
        assert res.status == 201 and res.body["clientID"] == "ven-a" and res.body["venID"] == ven_id
        rep = await c.call("POST", "/reports", ven, json=kit.report31(e.body["id"], "name-ven-a"))
        assert rep.status == 201 and rep.body["clientID"] == "ven-a" and "programID" not in rep.body
        sub = await c.call("POST", "/subscriptions", ven, json={"clientName": "name-ven-a", "objectOperations": [
            {"objects": ["EVENT"], "operations": ["CREATE"], "callbackUrl": "http://127.0.0.1:9/cb"}]})
        assert sub.status == 201 and sub.body["clientID"] == "ven-a"
        assert [r["id"] for r in (await c.call("GET", f"/reports?programID={pid}", bl)).body] == [rep.body["id"]]
        assert (await c.call("GET", "/reports?programID=prg-999", bl)).body == []
        assert [r["id"] for r in (await c.call("GET", f"/resources?venID={ven_id}", ven)).body] == [res.body["id"]]
        assert len((await c.call("GET", f"/events?programID={pid}", ven)).body) == 1
        upd = await c.call("PUT", f"/vens/{ven_id}", ven, json={"objectType": "VEN_VEN_REQUEST", "venName": "renamed"})
        assert upd.status == 200 and upd.body["venName"] == "renamed" and upd.body["clientID"] == "ven-a"
        assert (await c.call("DELETE", f"/programs/{pid}", bl)).body["id"] == pid
        assert (await c.call("GET", f"/programs/{pid}", bl)).status == 404
        deleted = await c.call("DELETE", f"/vens/{ven_id}", ven)
        assert deleted.status == 200
        assert (await c.call("GET", "/resources", bl)).body == []  # a ven's resources go with it
        stats = await s.stats()
        assert stats["objects_31"] == {"programs": 0, "events": 1, "vens": 0, "resources": 0, "reports": 1,
                                       "subscriptions": 1}
        assert stats["requests"]["POST /openadr3/3.1.0/reports"] == {"201": 1}
        assert stats["reports_stored"] == 1


async def test_a_ven_cannot_read_or_change_another_vens_objects(config: VtnConfig, kit: SimpleNamespace) -> None:
    """ven, resources, reports and subscriptions of another client: 403 by id, absent from lists; BL sees all."""
    async with kit.vtn_server(config) as s:
        c = s.v31()
        bl = await c.token()
        a, a_ven = await kit.ven31(c, "ven-a")
        b, b_ven = await kit.ven31(c, "ven-b")
        pid = (await c.call("POST", "/programs", bl, json={"programName": "p1"})).body["id"]
        eid = (await c.call("POST", "/events", bl, json=kit.event31(pid))).body["id"]
        res = (await c.call("POST", "/resources", a, json={"objectType": "VEN_RESOURCE_REQUEST", "resourceName": "r",
                                                          "venID": a_ven})).body
        rep = (await c.call("POST", "/reports", a, json=kit.report31(eid, "a"))).body
        sub = (await c.call("POST", "/subscriptions", a, json={"clientName": "a", "objectOperations": [
            {"objects": ["EVENT"], "operations": ["CREATE"], "callbackUrl": "http://127.0.0.1:9/cb"}]})).body
        for path in (f"/vens/{a_ven}", f"/resources/{res['id']}", f"/reports/{rep['id']}", f"/subscriptions/{sub['id']}"):
            for method in ("GET", "DELETE"):
                r = await c.call(method, path, b)
                assert r.status == 403 and "another client" in r.body["detail"], (method, path)
            assert (await c.call("GET", path, a)).status == 200
            assert (await c.call("GET", path, bl)).status == 200
        for path, mine in (("/vens", b_ven), ("/resources", None), ("/reports", None), ("/subscriptions", None)):
            assert [o["id"] for o in (await c.call("GET", path, b)).body] == ([mine] if mine else [])
        assert len((await c.call("GET", "/vens", bl)).body) == 2
        steal = await c.call("POST", "/resources", b, json={"objectType": "VEN_RESOURCE_REQUEST", "resourceName": "x",
                                                           "venID": a_ven})
        assert steal.status == 403
        as_bl = await c.call("POST", "/vens", b, json={"objectType": "BL_VEN_REQUEST", "clientID": "ven-b", "venName": "z"})
        assert as_bl.status == 403 and "business logic" in as_bl.body["detail"]
        self_target = await c.call("PUT", f"/vens/{b_ven}", b, json={"objectType": "VEN_VEN_REQUEST", "venName": "b",
                                                                    "targets": ["vip"]})
        assert self_target.status == 403
        assert (await c.call("POST", "/events", b, json=kit.event31(pid))).status == 403  # no write_events scope
        assert (await c.call("GET", "/notifiers/mqtt/topics/vens", b)).status == 403  # read_bl


async def test_targets_granted_to_a_ven_decide_what_it_reads(config: VtnConfig, kit: SimpleNamespace) -> None:
    """A VEN reads untargeted events and those carrying a target granted to its ven or resource records, with
    only its own targets shown; a targets query narrows; BL reads everything with every target."""
    async with kit.vtn_server(config) as s:
        c = s.v31()
        bl = await c.token()
        a, a_ven = await kit.ven31(c, "ven-a")
        b, b_ven = await kit.ven31(c, "ven-b")
        await kit.grant31(c, bl, a_ven, "ven-a", ["g1"])
        r = await c.call("POST", "/resources", bl, json={"objectType": "BL_RESOURCE_REQUEST", "clientID": "ven-b",
                                                        "resourceName": "r", "venID": b_ven, "targets": ["res-b"]})
        assert r.status == 201 and r.body["targets"] == ["res-b"]
        pid = (await c.call("POST", "/programs", bl, json={"programName": "p1"})).body["id"]
        ids = {}
        for name, targets in (("open", None), ("g1", ["g1"]), ("g1-secret", ["secret", "g1"]), ("res-b", ["res-b"]),
                              ("other", ["g2"])):
            ids[name] = (await c.call("POST", "/events", bl, json=kit.event31(pid, targets, name))).body["id"]

        async def seen(token: str, query: str = "") -> dict[str, Any]:
            return {e["eventName"]: e.get("targets") for e in (await c.call("GET", f"/events{query}", token)).body}

        assert await seen(a) == {"open": None, "g1": ["g1"], "g1-secret": ["g1"]}
        assert await seen(b) == {"open": None, "res-b": ["res-b"]}
        assert await seen(a, "?targets=g1") == {"g1": ["g1"], "g1-secret": ["g1"]}
        assert await seen(a, "?targets=secret") == {}  # asking for a target not granted grants nothing
        assert len(await seen(bl)) == 5
        assert await seen(bl, "?targets=secret") == {"g1-secret": ["secret", "g1"]}
        hidden = await c.call("GET", f"/events/{ids['g1-secret']}", a)
        assert hidden.status == 200 and hidden.body["targets"] == ["g1"]
        denied = await c.call("GET", f"/events/{ids['other']}", a)
        assert denied.status == 403 and denied.body["detail"] == f"event {ids['other']} is not targeted at this client"
        a_self = (await c.call("GET", f"/vens/{a_ven}", a)).body
        assert a_self["targets"] == ["g1"]  # a VEN sees its own record's targets (no hiding there)
        keep = await c.call("PUT", f"/vens/{a_ven}", a, json={"objectType": "VEN_VEN_REQUEST", "venName": "a2"})
        assert keep.body["targets"] == ["g1"]  # its own update keeps what BL granted
        await kit.grant31(c, bl, a_ven, "ven-a", [])
        assert await seen(a) == {"open": None}


async def test_grants_survive_a_restart(config: VtnConfig, kit: SimpleNamespace) -> None:
    """The target index is rebuilt from the store: after a restart a VEN still reads its targeted event."""
    async with kit.vtn_server(config) as s:
        c = s.v31()
        bl = await c.token()
        _, a_ven = await kit.ven31(c, "ven-a")
        await kit.grant31(c, bl, a_ven, "ven-a", ["g1"])
        pid = (await c.call("POST", "/programs", bl, json={"programName": "p1"})).body["id"]
        await c.call("POST", "/events", bl, json=kit.event31(pid, ["g1"]))
    async with kit.vtn_server(config) as s:
        c = s.v31()
        events = (await c.call("GET", "/events", await c.token("ven-a"))).body
        assert [e["targets"] for e in events] == [["g1"]]


async def test_bad_bodies_are_400_naming_the_field(config: VtnConfig, kit: SimpleNamespace) -> None:
    """3.0.1-style targets, a ven without its request objectType, an unknown event: one-line 400 problems."""
    async with kit.vtn_server(config) as s:
        c = s.v31()
        bl = await c.token()
        ven = await c.token("ven-a")
        pid = (await c.call("POST", "/programs", bl, json={"programName": "p1"})).body["id"]
        cases = [
            ("/events", bl, {**kit.event31(pid), "targets": [{"type": "VEN_NAME", "values": ["a"]}]},
             "targets[0]: expected a string, got object"),
            ("/vens", ven, {"venName": "x"}, "objectType: required field is missing"),
            ("/vens", ven, {"objectType": "VEN", "venName": "x"},
             "objectType: expected 'VEN_VEN_REQUEST' or 'BL_VEN_REQUEST', got 'VEN'"),
            ("/reports", ven, kit.report31("evt-999", "a"), "eventID evt-999 does not exist"),
            ("/events", bl, {**kit.event31(pid), "payloadDescriptors": [{"payloadType": "SIMPLE"}]},
             "payloadDescriptors[0].objectType: required field is missing"),
            ("/programs", bl, {"programName": "p1"}, "a program with programName 'p1' exists"),
        ]
        for path, token, body, detail in cases:
            r = await c.call("POST", path, token, json=body)
            assert r.status in (400, 409) and r.body["detail"] == detail, (path, r.body)
        assert (await c.call("GET", "/events?limit=51", ven)).status == 400
        assert (await c.call("GET", "/events?programID=bad id", ven)).status == 400


async def test_webhooks_reach_a_ven_only_for_what_it_may_read(config: VtnConfig, kit: SimpleNamespace) -> None:
    """A VEN's 3.1.0 subscription is POSTed the notification of an event it may read (its targets hidden), not of
    one targeted elsewhere; the body is the camelCase 3.1.0 notification."""
    import asyncio

    from aiohttp import web

    received: asyncio.Queue[Any] = asyncio.Queue()

    async def callback(request: web.Request) -> web.Response:
        await received.put(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/cb", callback)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/cb"
    try:
        async with kit.vtn_server(config) as s:
            c = s.v31()
            bl = await c.token()
            ven, ven_id = await kit.ven31(c, "ven-a")
            await kit.grant31(c, bl, ven_id, "ven-a", ["g1"])
            pid = (await c.call("POST", "/programs", bl, json={"programName": "p1"})).body["id"]
            sub = await c.call("POST", "/subscriptions", ven, json={"clientName": "a", "programID": pid, "objectOperations": [
                {"objects": ["EVENT"], "operations": ["CREATE"], "callbackUrl": url}]})
            assert sub.status == 201
            await c.call("POST", "/events", bl, json=kit.event31(pid, ["g2"], "elsewhere"))
            await c.call("POST", "/events", bl, json=kit.event31(pid, ["g1", "secret"], "mine"))
            note = await asyncio.wait_for(received.get(), 10)
            kit.assert_valid("notification", note, "3.1.0")
            assert (note["operation"], note["object"]["eventName"], note["targets"]) == ("CREATE", "mine", ["g1"])

            async def settled() -> bool:
                n = (await s.stats())["notifications"]
                return bool(n["pending"] == 0 and n["delivered"] == 1)

            await kit.wait_for(settled, 5, "one delivered notification")
            assert received.empty()
    finally:
        await runner.cleanup()
