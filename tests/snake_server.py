"""A small VTN that speaks the `snake-case-example` dialect, for tests: in-loop (`make_app`) or in a spawned
process (`SnakeServer`, for end-to-end runs whose workers are other processes).

snake_case fields; `POST /vens` returns `{id, ven_name, auth_token}`; resources and reports need that VEN's own
token; one flat report per load reading; errors are `{"error", "message"}` (this VTN's native shape).
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from aiohttp import web

SECRETS = ("bl-secret", "ven-secret")  # the harness's default client secrets
REPORT_FIELDS = {
    "client_name": str, "program_id": str, "event_id": str, "resource_name": str, "load_name": str,
    "load_type": str, "report_type": str, "reading_type": str, "start": str, "duration": str,
    "energy_kwh": (int, float), "power_kw": (int, float),
}


@dataclass
class Store:
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    provisioning_tokens: set[str] = field(default_factory=set)
    vens: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> ven
    ven_by_token: dict[str, str] = field(default_factory=dict)  # auth_token -> ven id
    resources: list[dict[str, Any]] = field(default_factory=list)
    programs: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    report_tokens: list[str] = field(default_factory=list)  # the bearer each report came with

    def new_id(self) -> str:
        return str(next(self.ids))


STORE_KEY = web.AppKey("store", Store)
VEN_ID = web.RequestKey("ven_id", str)  # the VEN whose own token authorised the request ("" for provisioning)
TOKEN = web.RequestKey("token", str)


def _err(status: int, error: str, message: str) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status)


def _bearer(request: web.Request) -> str | None:
    h = request.headers.get("Authorization", "")
    return h[7:] if h.startswith("Bearer ") else None


def _paged(request: web.Request, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    skip, limit = int(request.query.get("skip", 0)), min(int(request.query.get("limit", 50)), 50)
    return items[skip: skip + limit]


async def _json(request: web.Request) -> dict[str, Any] | None:
    try:
        doc = await request.json()
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


@web.middleware
async def _auth(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.path in ("/auth/token", "/_test/stats"):
        return await handler(request)
    store = request.app[STORE_KEY]
    token = _bearer(request)
    if token is None or (token not in store.provisioning_tokens and token not in store.ven_by_token):
        return _err(401, "unauthorized", "missing or unknown bearer token")
    request[VEN_ID] = store.ven_by_token.get(token, "")
    request[TOKEN] = token
    return await handler(request)


async def token(request: web.Request) -> web.Response:
    form = await request.post()
    if form.get("grant_type") != "client_credentials" or form.get("client_secret") not in SECRETS:
        return _err(401, "invalid_client", "bad client credentials")
    tok = secrets.token_hex(8)
    request.app[STORE_KEY].provisioning_tokens.add(tok)
    return web.json_response({"access_token": tok, "token_type": "Bearer"})  # never expires


async def create_ven(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    if request[VEN_ID]:
        return _err(403, "forbidden", "a VEN token cannot create VENs")
    doc = await _json(request)
    if doc is None or not isinstance(doc.get("ven_name"), str) or not doc["ven_name"]:
        return _err(400, "bad_request", "ven_name is required")
    if any(v["ven_name"] == doc["ven_name"] for v in store.vens.values()):
        return _err(409, "conflict", f"ven_name {doc['ven_name']} exists")
    ven = {"id": store.new_id(), "ven_name": doc["ven_name"], "auth_token": secrets.token_hex(12)}
    store.vens[ven["id"]] = ven
    store.ven_by_token[ven["auth_token"]] = ven["id"]
    return web.json_response(ven, status=201)


async def find_vens(request: web.Request) -> web.Response:
    name = request.query.get("ven_name")
    vens = [v for v in request.app[STORE_KEY].vens.values() if name is None or v["ven_name"] == name]
    return web.json_response(_paged(request, vens))


async def create_resource(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    ven_id = request.match_info["ven_id"]
    if request[VEN_ID] != ven_id:
        return _err(403, "forbidden", "only the VEN itself may add its resources")
    doc = await _json(request)
    if doc is None or not isinstance(doc.get("resource_name"), str):
        return _err(400, "bad_request", "resource_name is required")
    if any(r["ven_id"] == ven_id and r["resource_name"] == doc["resource_name"] for r in store.resources):
        return _err(409, "conflict", "resource exists")
    res = {"id": store.new_id(), "ven_id": ven_id, "resource_name": doc["resource_name"]}
    store.resources.append(res)
    return web.json_response(res, status=201)


async def create_program(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    doc = await _json(request)
    if doc is None or not isinstance(doc.get("program_name"), str):
        return _err(400, "bad_request", "program_name is required")
    prog = {"id": store.new_id(), "program_name": doc["program_name"], "created_at": "2026-11-28 10:04:29"}
    store.programs.append(prog)
    return web.json_response(prog, status=201)


async def find_programs(request: web.Request) -> web.Response:
    return web.json_response(_paged(request, request.app[STORE_KEY].programs))


async def create_event(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    doc = await _json(request)
    if doc is None or not any(p["id"] == doc.get("program_id") for p in store.programs):
        return _err(400, "bad_request", "program_id must name a program")
    ev = {**doc, "id": store.new_id(), "created_at": "10:04:29"}  # this VTN's odd timestamps
    store.events.append(ev)
    return web.json_response(ev, status=201)


async def find_events(request: web.Request) -> web.Response:
    pid = request.query.get("program_id")
    evs = [e for e in request.app[STORE_KEY].events if pid is None or e["program_id"] == pid]
    return web.json_response(_paged(request, evs))


async def create_report(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    doc = await _json(request)
    if doc is None:
        return _err(400, "bad_request", "a JSON object is required")
    bad = [k for k, t in REPORT_FIELDS.items() if not isinstance(doc.get(k), t)]
    if bad:
        return _err(400, "bad_request", f"missing or mistyped: {', '.join(bad)}")
    ven_id = request[VEN_ID]
    if not ven_id or store.vens[ven_id]["ven_name"] != doc["client_name"]:
        return _err(403, "forbidden", "reports need the reporting VEN's own auth_token")
    if not any(e["id"] == doc["event_id"] and e["program_id"] == doc["program_id"] for e in store.events):
        return _err(400, "bad_request", "unknown program_id/event_id")
    rep = {**doc, "id": store.new_id()}
    store.reports.append(rep)
    store.report_tokens.append(request[TOKEN])
    return web.json_response({"id": rep["id"]}, status=201)


async def stats(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    return web.json_response({
        "vens": len(store.vens), "resources": len(store.resources), "reports": len(store.reports),
        "report_keys": [[r["client_name"], r["load_name"]] for r in store.reports],
    })


def make_app() -> web.Application:
    app = web.Application(middlewares=[_auth])
    app[STORE_KEY] = Store()
    app.router.add_post("/auth/token", token)
    app.router.add_post("/vens", create_ven)
    app.router.add_get("/vens", find_vens)
    app.router.add_post("/vens/{ven_id}/resources", create_resource)
    app.router.add_post("/programs", create_program)
    app.router.add_get("/programs", find_programs)
    app.router.add_post("/events", create_event)
    app.router.add_get("/events", find_events)
    app.router.add_post("/reports", create_report)
    app.router.add_get("/_test/stats", stats)
    return app


async def serve(app: web.Application) -> tuple[web.AppRunner, int]:
    """Start `app` on 127.0.0.1, a free port; the caller cleans the runner up in the same loop."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, port


def _child(conn: Connection, factory: Callable[[], web.Application]) -> None:
    async def main() -> None:
        runner, port = await serve(factory())
        stop = asyncio.Event()
        asyncio.get_running_loop().add_reader(conn.fileno(), stop.set)
        conn.send(port)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


class SnakeServer:
    """The snake VTN (or the app another module-level factory makes) in a spawned process:
    `with SnakeServer() as s: use(s.url)`."""

    def __init__(self, factory: Callable[[], web.Application] = make_app) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_child, args=(child, factory), daemon=True)
        self._child = child
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> SnakeServer:
        self._process.start()
        self._child.close()
        if not self._conn.poll(20):
            self._process.kill()
            raise RuntimeError("snake server did not start within 20 s")
        self.port = self._conn.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.send("stop")
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._conn.close()
