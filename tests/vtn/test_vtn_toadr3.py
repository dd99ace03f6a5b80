"""A third-party OpenADR 3 client (toadr3, from PyPI) runs its VEN flow against the embedded VTN over real HTTP."""

from __future__ import annotations

from types import SimpleNamespace

import aiohttp
import toadr3
from toadr3.models import ObjectOperation, ObjectType, OperationType, Report, Subscription

from harness.vtn import VtnConfig

VEN = "ven-toadr3"


async def test_toadr3_ven_flow(config: VtnConfig, kit: SimpleNamespace) -> None:
    """toadr3: token (it needs expires_in), programs, events, a report, and GET/POST/PUT subscriptions, end to end."""
    async with kit.vtn_server(config) as c:
        bl = await c.token()
        program = await c.call("POST", "/programs", bl, json=kit.program_body("toadr3-program"))
        event_body = kit.event_body(program.body["id"])
        event_body["targets"] = [{"type": "RESOURCE_NAME", "values": ["site-1"]}]
        event_body["reportDescriptors"] = [{"payloadType": "USAGE", "readingType": "DIRECT_READ", "units": "KWH"}]
        event = await c.call("POST", "/events", bl, json=event_body)
        assert (program.status, event.status) == (201, 201), (program.body, event.body)

        async with aiohttp.ClientSession() as session:
            token = await toadr3.acquire_access_token(
                session, f"{c.base}/auth/token", "client_credentials",
                {"scope": "read_all write_reports write_subscriptions"}, VEN, config.ven_client_secret)
            assert not token.is_expired()
            programs = await toadr3.get_programs(session, c.base, token)
            assert [p.id for p in programs] == [program.body["id"]]
            events = await toadr3.get_events(session, c.base, token, program_id=program.body["id"])
            assert [e.id for e in events] == [event.body["id"]]

            report = Report.create_report(events[0], VEN, "USAGE", [1.25], report_name="toadr3-usage")
            stored = await toadr3.post_report(session, c.base, token, report)
            assert stored.id and stored.client_name == VEN and stored.created_date_time is not None
            assert [r.id for r in await toadr3.get_reports(session, c.base, token, client_name=VEN)] == [stored.id]

            op = ObjectOperation(objects=[ObjectType.EVENT], operations=[OperationType.GET, OperationType.POST],
                                 callback_url="http://127.0.0.1:9/toadr3")
            sub = await toadr3.post_subscription(
                session, c.base, token, Subscription(client_name=VEN, program_id=program.body["id"], object_operations=[op]))
            assert sub.id and sub.object_operations[0].operations == [OperationType.GET, OperationType.POST]
            sub.object_operations[0].operations.append(OperationType.PUT)
            assert sub.id is not None
            updated = await toadr3.put_subscription_by_id(session, c.base, token, sub.id, sub)
            assert updated.object_operations[0].operations == [OperationType.GET, OperationType.POST, OperationType.PUT]
            assert [s.id for s in await toadr3.get_subscriptions(session, c.base, token, client_name=VEN)] == [sub.id]
            await toadr3.delete_subscription_by_id(session, c.base, token, sub.id)
            assert await toadr3.get_subscriptions(session, c.base, token, client_name=VEN) == []

        stats = await c.stats()
        assert (stats["reports_stored"], stats["objects"]["subscriptions"]) == (1, 0)


async def test_what_real_clients_send_in_optional_fields(config: VtnConfig, kit: SimpleNamespace) -> None:
    """openadr3-client's `"randomizeStart": null` is taken as absent (201, stored without it); `"FOO"` as a
    subscription operation is a 400 problem naming the field."""
    async with kit.vtn_server(config) as c:
        program_id, _ = await kit.program_and_event(c)
        bl = await c.token()
        body = kit.event_body(program_id)
        body["intervalPeriod"]["randomizeStart"] = None
        r = await c.call("POST", "/events", bl, json=body)
        assert r.status == 201 and r.body["intervalPeriod"] == {"start": "2026-01-01T10:00:00Z", "duration": "PT1H"}
        ven = await c.token(VEN)
        r = await c.call("POST", "/subscriptions", ven, json={"clientName": VEN, "programID": program_id, "objectOperations": [
            {"objects": ["EVENT"], "operations": ["FOO"], "callbackUrl": "http://127.0.0.1:9/cb"}]})
        assert r.status == 400 and r.body["detail"].startswith("objectOperations[0].operations[0]: expected one of")
