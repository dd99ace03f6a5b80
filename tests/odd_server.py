"""A small OpenADR 3.0.1 VTN that deviates the way real ones do, for tests: `scope` as an array, `expires_in` as
a string, integer ids, timestamps such as "10:04:29" and "2026-11-28 10:04:29", no modificationDateTime, and
error bodies whose `problem.status` is a string. Run it with `SnakeServer(make_app)` (a spawned process).

It starts with the program `odd-program` and its telemetry event; reports from the first VEN (`...-ven-0000000`)
are refused (503) so that error bodies are read; every other report is counted.
"""

from __future__ import annotations

import itertools
from typing import Any

from aiohttp import web

PROGRAM = "odd-program"
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


def make_app() -> web.Application:
    app = web.Application()
    app[STATE] = {"ids": itertools.count(100), "reports": 0}
    app.router.add_post("/auth/token", token)
    app.router.add_get("/programs", programs)
    app.router.add_get("/events", events)
    app.router.add_post("/vens", created)
    app.router.add_post("/vens/{ven_id}/resources", created)
    app.router.add_post("/reports", report)
    app.router.add_get("/_test/stats", stats)
    return app


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
