"""Subscriptions and webhook notifications of the embedded VTN."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import replace
from types import SimpleNamespace
from typing import Any, AsyncIterator

import orjson
from aiohttp import web

from harness.vtn import VtnConfig
from harness.vtn.notifier import matching_callbacks


class Receiver:
    """A webhook endpoint on 127.0.0.1:0 recording what it receives; `hang` makes it never answer."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[dict[str, str], Any]] = asyncio.Queue()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.hang = False
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        self.entered.set()
        if self.hang:
            await self.release.wait()
        await self.received.put((dict(request.headers), body))
        return web.Response(text="ok")


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/cb", rec.handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        rec.url = f"http://127.0.0.1:{runner.addresses[0][1]}/cb"
        yield rec
    finally:
        rec.release.set()
        await runner.cleanup()


def subscription(program_id: str, url: str, operations: list[str], objects: list[str] | None = None,
                 token: str | None = "cb-token-123") -> dict[str, Any]:
    op: dict[str, Any] = {"objects": objects or ["EVENT"], "operations": operations, "callbackUrl": url}
    if token is not None:
        op["bearerToken"] = token
    return {"clientName": "a", "programID": program_id, "objectOperations": [op]}


async def test_event_create_delivers_exactly_one_notification(config: VtnConfig, kit: SimpleNamespace) -> None:
    """A subscription to EVENT/CREATE gets one POST with the event and the subscription's bearer token."""
    async with receiver() as rec, kit.vtn_server(config) as c:
        bl, ven = await c.token(), await c.token("ven-a")
        program = (await c.call("POST", "/programs", bl, json=kit.program_body())).body
        sub = await c.call("POST", "/subscriptions", ven, json=subscription(program["id"], rec.url, ["CREATE"]))
        assert sub.status == 201
        event = await c.call("POST", "/events", bl, json=kit.event_body(program["id"]))
        assert event.status == 201
        headers, body = await asyncio.wait_for(rec.received.get(), 5)
        assert headers["Authorization"] == "Bearer cb-token-123"
        assert body["objectType"] == "EVENT" and body["operation"] == "POST"
        assert body["object"] == event.body
        kit.assert_valid("notification", body)

        async def settled() -> bool:
            n = (await c.stats())["notifications"]
            return bool(n["pending"] == 0 and n["delivered"] == 1)

        await kit.wait_for(settled, what="one delivered notification")
        assert rec.received.empty()
        assert (await c.stats())["notifications"] == {"delivered": 1, "failed": 0, "pending": 0}


async def test_both_operation_vocabularies_and_filters(config: VtnConfig, kit: SimpleNamespace) -> None:
    """PUT/UPDATE and DELETE match by either vocabulary; non-matching objects and operations are not sent."""
    async with receiver() as rec, kit.vtn_server(config) as c:
        bl, ven = await c.token(), await c.token("ven-a")
        program = (await c.call("POST", "/programs", bl, json=kit.program_body())).body
        pid = program["id"]
        await c.call("POST", "/subscriptions", ven, json=subscription(pid, rec.url, ["UPDATE"], token=None))
        await c.call("POST", "/subscriptions", ven, json=subscription(pid, rec.url, ["DELETE"], objects=["PROGRAM"]))
        event = (await c.call("POST", "/events", bl, json=kit.event_body(pid))).body  # CREATE: nobody subscribed
        await c.call("PUT", f"/events/{event['id']}", bl, json={**kit.event_body(pid), "eventName": "changed"})
        headers, body = await asyncio.wait_for(rec.received.get(), 5)
        assert "Authorization" not in headers
        assert (body["operation"], body["object"]["eventName"]) == ("PUT", "changed")
        await c.call("DELETE", f"/programs/{pid}", bl)
        _, body = await asyncio.wait_for(rec.received.get(), 5)
        assert (body["objectType"], body["operation"], body["object"]["id"]) == ("PROGRAM", "DELETE", pid)

        async def settled() -> bool:
            n = (await c.stats())["notifications"]
            return bool(n["pending"] == 0 and n["delivered"] == 2)

        await kit.wait_for(settled, what="two delivered notifications")
        assert rec.received.empty()


async def test_dead_or_hanging_callbacks_do_not_block_the_event_post(config: VtnConfig, kit: SimpleNamespace) -> None:
    """A callback that never answers and one that refuses connections fail in the background; POST /events is 201."""
    async with receiver() as rec, kit.vtn_server(replace(config, notify_timeout_s=0.5)) as c:
        rec.hang = True
        bl, ven = await c.token(), await c.token("ven-a")
        program = (await c.call("POST", "/programs", bl, json=kit.program_body())).body
        await c.call("POST", "/subscriptions", ven, json=subscription(program["id"], rec.url, ["POST"]))
        await c.call("POST", "/subscriptions", ven, json=subscription(program["id"], "http://127.0.0.1:1/cb", ["POST"]))
        event = await c.call("POST", "/events", bl, json=kit.event_body(program["id"]))
        assert event.status == 201
        # the hanging callback is still being held while the event POST has already been answered
        await asyncio.wait_for(rec.entered.wait(), 5)
        assert not rec.release.is_set()

        async def both_failed() -> bool:
            n = (await c.stats())["notifications"]
            return bool(n["failed"] == 2 and n["pending"] == 0)

        await kit.wait_for(both_failed, what="both notifications to fail")
        assert (await c.stats())["notifications"]["delivered"] == 0


def test_matching_callbacks_reads_both_vocabularies() -> None:
    """Subscriptions match on object type and operation, in HTTP or CRUD words, case-insensitively."""
    subs = [
        {"objectOperations": [{"objects": ["event"], "operations": ["create"], "callbackUrl": "u1", "bearerToken": "t"}]},
        {"objectOperations": [{"objects": ["PROGRAM", "EVENT"], "operations": ["POST", "PUT"], "callbackUrl": "u2"}]},
        {"objectOperations": [{"objects": ["REPORT"], "operations": ["POST"], "callbackUrl": "u3"}]},
        {"objectOperations": None},
    ]
    assert matching_callbacks(subs, "EVENT", "POST") == [("u1", "t"), ("u2", None)]
    assert matching_callbacks(subs, "EVENT", "PUT") == [("u2", None)]
    assert matching_callbacks(subs, "EVENT", "DELETE") == []
