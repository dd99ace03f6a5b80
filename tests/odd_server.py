"""A small OpenADR 3.0.1 VTN that deviates the way real ones do, for tests: `scope` as an array, `expires_in` as
a string, integer ids, timestamps such as "10:04:29" and "2026-11-28 10:04:29", no modificationDateTime, and
error bodies whose `problem.status` is a string. Run it with `SnakeServer(make_app)` (a spawned process).

It starts with the program `odd-program` and its telemetry event; reports from the first VEN (`...-ven-0000000`)
are refused (503) so that error bodies are read; every other report is counted.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import ClientSession, web

PROGRAM = "odd-program"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STATE = web.AppKey("state", dict)


async def token(request: web.Request) -> web.Response:
    return web.json_response({"access_token": "tok", "token_type": "Bearer", "expires_in": "3600", "scope": ["read_all"]})


async def programs(request: web.Request) -> web.Response:
    return web.json_response([{"id": 1, "programName": PROGRAM, "createdDateTime": "2026-11-28 10:04:29"}])


async def events(request: web.Request) -> web.Response:
    return web.json_response([{
        "id": 2, "programID": 1, "eventName": f"{PROGRAM}-telemetry", "createdDateTime": "10:04:29",
        "intervalPeriod": {"start": "2026-11-28 10:04:29", "duration": "PT24H"},
        "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [0]}]}],
    }])


async def created(request: web.Request) -> web.Response:
    state: dict[str, Any] = request.app[STATE]
    return web.json_response({"id": next(state["ids"])}, status=201)


async def report(request: web.Request) -> web.Response:
    state: dict[str, Any] = request.app[STATE]
    doc = await request.json()
    if str(doc.get("clientName", "")).endswith("-ven-0000000"):
        return web.json_response({"status": "503", "title": "busy"}, status=503)
    state["reports"] += 1
    return web.json_response({"id": next(state["ids"])}, status=201)


async def stats(request: web.Request) -> web.Response:
    return web.json_response({"reports": request.app[STATE]["reports"]})


def _odd_app(routes: dict[str, Handler]) -> web.Application:
    """An app of `"METHOD /path": handler` routes, with the id counter and report count they share."""
    app = web.Application()
    app[STATE] = {"ids": itertools.count(100), "reports": 0}
    for route, handler in routes.items():
        method, path = route.split(" ", 1)
        app.router.add_route(method, path, handler)
    return app


def make_app() -> web.Application:
    return _odd_app({"POST /auth/token": token, "GET /programs": programs, "GET /events": events,
                     "POST /vens": created, "POST /vens/{ven_id}/resources": created, "POST /reports": report,
                     "GET /_test/stats": stats})


# ---- a 3.1.0 VTN whose token endpoint is elsewhere (found through GET /auth/server) -------------------------
TOKENS = web.AppKey("tokens", list)


async def auth_server(request: web.Request) -> web.Response:
    return web.json_response({"tokenURL": str(request.url.with_path("/idp/oauth2/token").with_query(None))})


async def idp_token(request: web.Request) -> web.Response:
    form = await request.post()
    request.app[TOKENS].append(str(form.get("client_id")))
    return web.json_response({"access_token": "idp", "token_type": "Bearer", "expires_in": 3600})


async def programs_310(request: web.Request) -> web.Response:
    if request.headers.get("Authorization") != "Bearer idp":
        return web.json_response({"status": 401, "title": "Unauthorized"}, status=401)
    return web.json_response([{"id": "p-1", "programName": PROGRAM}])


async def token_stats(request: web.Request) -> web.Response:
    return web.json_response({"token_clients": request.app[TOKENS]})


def make_discovery_app() -> web.Application:
    """`/openadr3/auth/server` names `/idp/oauth2/token` (outside the base path); programs need its token."""
    app = web.Application()
    app[TOKENS] = []
    app.router.add_get("/openadr3/auth/server", auth_server)
    app.router.add_post("/idp/oauth2/token", idp_token)
    app.router.add_get("/openadr3/programs", programs_310)
    app.router.add_get("/_test/stats", token_stats)
    return app


# ---- a VTN with webhooks whose deviations are each of one kind, for exact counts --------------------------------
SENT = web.AppKey("sent", dict)
GOOD_EVENT = {"id": "e-7", "programID": "1", "eventName": "notified", "createdDateTime": "2026-11-28T10:04:29Z",
              "modificationDateTime": "2026-11-28T10:04:29Z",
              "intervalPeriod": {"start": "2026-11-28T10:04:29Z", "duration": "PT1H"},
              "intervals": [{"id": 0, "payloads": [{"type": "PRICE", "values": [0.2]}]}]}


def _twice(doc: Any, status: int = 200) -> web.Response:
    """A body that is a JSON string holding the JSON document (encoded twice)."""
    return web.Response(text=json.dumps(json.dumps(doc)), status=status, content_type="application/json")


async def token_no_expiry(request: web.Request) -> web.Response:
    return web.json_response({"access_token": "tok", "token_type": "Bearer", "scope": ["read_all"]})


async def programs_no_created(request: web.Request) -> web.Response:
    return web.json_response([{"id": "1", "programName": PROGRAM}])


async def events_time_only(request: web.Request) -> web.Response:
    return web.json_response([{
        "id": "2", "programID": "1", "eventName": f"{PROGRAM}-telemetry", "createdDateTime": "10:04:29",
        "modificationDateTime": "2026-11-28T10:04:29Z", "intervalPeriod": {"start": "2026-11-28T10:04:29Z", "duration": "PT24H"},
        "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [0]}]}],
    }])


async def created_twice(request: web.Request) -> web.Response:
    return _twice({"id": str(next(request.app[STATE]["ids"]))}, 201)


async def report_ok(request: web.Request) -> web.Response:
    state: dict[str, Any] = request.app[STATE]
    state["reports"] += 1
    return web.json_response({"id": str(next(state["ids"]))}, status=201)


async def subscribe_and_notify(request: web.Request) -> web.Response:
    """Store nothing; answer 201 and send one notification, encoded twice, to the subscription's callback."""
    doc = await request.json()
    op = doc["objectOperations"][0]
    body = json.dumps(json.dumps({"objectType": "EVENT", "operation": "POST", "object": GOOD_EVENT}))
    async with ClientSession() as s, s.post(op["callbackUrl"], data=body, headers={
            "Authorization": f"Bearer {op['bearerToken']}", "Content-Type": "application/json"}) as r:
        request.app[SENT]["notifications"] += int(r.status == 200)
    return web.json_response({"id": str(next(request.app[STATE]["ids"]))}, status=201)


async def webhook_stats(request: web.Request) -> web.Response:
    return web.json_response({"reports": request.app[STATE]["reports"], **request.app[SENT]})


def make_webhook_app() -> web.Application:
    """Every deviation of one kind only: no expires_in and scope arrays (tokens), no createdDateTime (programs),
    a time without a date (the event's createdDateTime), created ids encoded twice, notifications encoded twice."""
    app = _odd_app({"POST /auth/token": token_no_expiry, "GET /programs": programs_no_created,
                    "GET /events": events_time_only, "POST /vens": created_twice,
                    "POST /vens/{ven_id}/resources": created_twice, "POST /subscriptions": subscribe_and_notify,
                    "POST /reports": report_ok, "GET /_test/stats": webhook_stats})
    app[SENT] = {"notifications": 0}
    return app
