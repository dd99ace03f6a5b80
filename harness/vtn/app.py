"""The embedded VTN as an aiohttp application: shared state, the OpenADR 3.0.1 routes, and the wiring of it all.

Everything loop-bound (store, notifier session, MQTT publisher) is created in the app's startup inside the
serving loop and closed in its cleanup. The 3.1.0 routes (`v31`) share this state. Bad client input is a 4xx
with a `problem` body, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping

import orjson
from aiohttp import web

from harness.vtn import auth, schema
from harness.vtn.auth import OAuthError, Principal, TokenStore
from harness.vtn.config import VtnConfig
from harness.vtn.control import Control
from harness.vtn.httpapi import JSON, Handler, Problem, json_body, now, paging, path_id
from harness.vtn.middleware import FaultState, Middlewares
from harness.vtn.notifier import Notifier, matching_callbacks
from harness.vtn.publisher import Publisher
from harness.vtn.schema import VTN_FIELDS, JsonObj
from harness.vtn.store import EVENTS, PROGRAMS, REPORTS, RESOURCES, SUBSCRIPTIONS, VENS, Conflict, Row, Store, Table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Kind:
    """One OpenADR object type as the API serves it."""

    table: Table
    object_type: str
    id_param: str
    write_scope: str
    check: Callable[[object], JsonObj]
    columns: Callable[[JsonObj], dict[str, str]]
    owned: bool  # a VEN principal sees only the ones it owns
    notify: bool  # create/update/delete notifies subscribers
    filters: tuple[tuple[str, str], ...]  # (query parameter, column)


PROGRAM = Kind(PROGRAMS, "PROGRAM", "programID", auth.WRITE_PROGRAMS, schema.check_program,
               lambda b: {"program_name": b["programName"]}, owned=False, notify=True, filters=())
EVENT = Kind(EVENTS, "EVENT", "eventID", auth.WRITE_EVENTS, schema.check_event,
             lambda b: {"program_id": b["programID"]}, owned=False, notify=True,
             filters=(("programID", "program_id"),))
VEN = Kind(VENS, "VEN", "venID", auth.WRITE_VENS, schema.check_ven,
           lambda b: {"ven_name": b["venName"]}, owned=True, notify=False, filters=(("venName", "ven_name"),))
RESOURCE = Kind(RESOURCES, "RESOURCE", "resourceID", auth.WRITE_VENS, schema.check_resource,
                lambda b: {"ven_id": b["venID"], "resource_name": b["resourceName"]}, owned=True, notify=False,
                filters=(("resourceName", "resource_name"),))
REPORT = Kind(REPORTS, "REPORT", "reportID", auth.WRITE_REPORTS, schema.check_report,
              lambda b: {"program_id": b["programID"], "event_id": b["eventID"], "client_name": b["clientName"]},
              owned=True, notify=False,
              filters=(("programID", "program_id"), ("eventID", "event_id"), ("clientName", "client_name")))
SUBSCRIPTION = Kind(SUBSCRIPTIONS, "SUBSCRIPTION", "subscriptionID", auth.WRITE_SUBSCRIPTIONS,
                    schema.check_subscription,
                    lambda b: {"program_id": b["programID"], "client_name": b["clientName"]}, owned=True,
                    notify=False, filters=(("programID", "program_id"), ("clientName", "client_name")))

UNIQUE_FIELD = {PROGRAMS.name: "programName", VENS.name: "venName", RESOURCES.name: "resourceName"}


class Vtn:
    """State and handlers of one VTN application."""

    def __init__(self, config: VtnConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.tokens = TokenStore(config.token_ttl_s, clock, auth.preissued(config))
        self.mw = Middlewares(config.faults, config.base_path)
        self._store: Store | None = None
        self._notifier: Notifier | None = None
        self.publisher: Publisher | None = None  # MQTT notifications (3.1.0), when the VTN is given a broker

    @property
    def faults(self) -> FaultState:
        return self.mw.faults

    @property
    def store(self) -> Store:
        assert self._store is not None, "the VTN app is not started"
        return self._store

    @property
    def notifier(self) -> Notifier:
        assert self._notifier is not None, "the VTN app is not started"
        return self._notifier

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        self.mw.started_at = time.monotonic()
        self._store = Store(
            self.config.db_path,
            commit_interval_s=self.config.commit_interval_s,
            commit_max_writes=self.config.commit_max_writes,
        )
        self._notifier = Notifier(
            timeout_s=self.config.notify_timeout_s, max_connections=self.config.notify_max_connections
        )
        try:
            if self.config.mqtt_url:
                self.publisher = await Publisher.connect(
                    self.config.mqtt_url, qos=self.config.mqtt_qos, timeout_s=self.config.mqtt_connect_timeout_s)
            yield
        finally:
            if self.publisher is not None:
                await self.publisher.close()
            await self._notifier.close()
            self._store.close()

    # ---- auth ----------------------------------------------------------------------------------------

    def principal(self, request: web.Request, scope: str) -> Principal:
        header = request.headers.get("Authorization")
        if header is None:
            raise Problem(401, "missing bearer token", {"WWW-Authenticate": "Bearer"})
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            raise Problem(401, "malformed Authorization header; expected 'Bearer <token>'",
                          {"WWW-Authenticate": 'Bearer error="invalid_request"'})
        who, reason = self.tokens.lookup(value)
        if who is None:
            raise Problem(401, f"{reason} token", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if scope not in who.scopes:
            raise Problem(403, f"token lacks scope {scope}")
        return who

    async def token(self, request: web.Request, v31: bool = False) -> web.Response:
        try:
            who, granted = await self._authorize_client(request, v31)
        except OAuthError as exc:
            headers = {"WWW-Authenticate": 'Basic realm="vtn"'} if exc.status == 401 else None
            body = orjson.dumps({"error": exc.error, "error_description": exc.description})
            return web.Response(status=exc.status, body=body, content_type=JSON, headers=headers)
        token = self.tokens.issue(Principal(who.client_id, granted, who.is_ven))
        body = orjson.dumps({
            "access_token": token.value,
            "token_type": "Bearer",
            "expires_in": int(self.tokens.ttl_s),
            "scope": auth.format_scopes(granted),
        })
        return web.Response(body=body, content_type=JSON, headers={"Cache-Control": "no-store"})

    async def auth_server(self, request: web.Request) -> web.Response:
        """OpenADR 3.1's token-URL discovery, served on 3.0.1 too, so `token_url = "discover"` works against it."""
        url = f"{request.scheme}://{request.host}{self.config.base_path}/auth/token"
        return web.Response(body=orjson.dumps({"tokenURL": url}), content_type=JSON)

    async def _authorize_client(self, request: web.Request, v31: bool) -> tuple[Principal, frozenset[str]]:
        form: Mapping[str, Any]
        if request.content_type == JSON:
            try:
                data = orjson.loads(await request.read())
            except orjson.JSONDecodeError:
                raise OAuthError(400, "invalid_request", "body is not valid JSON") from None
            if not isinstance(data, dict):
                raise OAuthError(400, "invalid_request", "body must be a form or a JSON object")
            form = data
        else:
            try:
                form = await request.post()
            except ValueError as exc:  # a multipart body without its boundary, a bad charset, ...
                raise OAuthError(400, "invalid_request", f"body is not a valid form: {str(exc)[:120]}") from None
        client_id, secret = form.get("client_id"), form.get("client_secret")
        basic = request.headers.get("Authorization", "")
        used_basic = basic[:6].lower() == "basic "
        if used_basic:
            try:
                client_id, _, secret = base64.b64decode(basic[6:].strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise OAuthError(401, "invalid_client", "malformed Basic credentials") from None
        grant = form.get("grant_type")
        if not grant:
            raise OAuthError(400, "invalid_request", "grant_type is required")
        if grant != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type", "only grant_type=client_credentials is supported")
        if not isinstance(client_id, str) or not client_id or not isinstance(secret, str) or not secret:
            raise OAuthError(400, "invalid_request", "client_id and client_secret are required")
        who = auth.client_principal(self.config, client_id, secret)
        if who is None:
            raise OAuthError(401 if used_basic else 400, "invalid_client", "unknown client or wrong secret")
        if v31:
            who = auth.scopes_31(who)
        scope = form.get("scope")
        return who, auth.grant_scopes(who.scopes, scope if isinstance(scope, str) else None)

    # ---- helpers -------------------------------------------------------------------------------------

    def row(self, kind: Kind, object_id: str, who: Principal) -> Row:
        row = self.store.get(kind.table, object_id)
        if row is None:
            raise Problem(404, f"{kind.object_type.lower()} {object_id} not found")
        if kind.owned and not who.may_access(row.owner):
            raise Problem(403, f"{kind.object_type.lower()} {object_id} belongs to another client")
        return row

    def ven_row(self, request: web.Request, who: Principal) -> Row:
        return self.row(VEN, path_id(request, "venID"), who)

    def check_refs(self, kind: Kind, body: JsonObj) -> None:
        if kind is EVENT and not self.store.program_exists(body["programID"]):
            raise Problem(400, f"programID {body['programID']} does not exist")
        if kind is REPORT:
            if not self.store.program_exists(body["programID"]):
                raise Problem(400, f"programID {body['programID']} does not exist")
            program = self.store.event_program(body["eventID"])
            if program is None:
                raise Problem(400, f"eventID {body['eventID']} does not exist")
            if program != body["programID"]:
                raise Problem(400, f"eventID {body['eventID']} is not an event of program {body['programID']}")

    async def commit(self) -> None:
        try:
            await self.store.sync()
        except Exception:
            log.exception("commit failed")
            raise Problem(500, "the store could not commit the write") from None

    def publish(self, kind: Kind, operation: str, obj: Any) -> None:
        if not kind.notify:
            return
        subs = (orjson.loads(b) for b in self.store.bodies(SUBSCRIPTIONS))
        self.notifier.publish(matching_callbacks(subs, kind.object_type, operation), kind.object_type, operation, obj)

    # ---- generic handlers ----------------------------------------------------------------------------

    async def list(self, kind: Kind, request: web.Request) -> web.Response:
        who = self.principal(request, auth.READ_ALL)
        skip, limit = paging(request)
        where = {col: request.query[param] for param, col in kind.filters if param in request.query}
        if kind is RESOURCE:
            where["ven_id"] = self.ven_row(request, who).id
            owner = None
        else:
            owner = who.client_id if kind.owned and who.is_ven else None
        bodies = self.store.list(kind.table, where, owner=owner, skip=skip, limit=limit) if limit else []
        return web.Response(body=b"[" + b",".join(bodies) + b"]", content_type=JSON)

    async def create(self, kind: Kind, request: web.Request) -> web.Response:
        who = self.principal(request, kind.write_scope)
        owner = who.client_id
        ven = self.ven_row(request, who) if kind is RESOURCE else None
        body = kind.check(await json_body(request))
        if ven is not None:
            owner = ven.owner  # a resource belongs to whoever owns its VEN
            body = {**body, "venID": ven.id}
        self.check_refs(kind, body)
        seq, object_id = self.store.new_id(kind.table)
        stamp = now()
        obj = _object(kind, object_id, stamp, stamp, body)
        raw = orjson.dumps(obj)
        if kind is REPORT and self.faults.drops_report():
            return web.Response(status=201, body=raw, content_type=JSON)  # acknowledged, never stored
        try:
            self.store.insert(kind.table, seq, object_id, owner, stamp, kind.columns(obj), raw)
        except Conflict:
            raise _conflict(kind, obj) from None
        await self.commit()
        self.publish(kind, "POST", obj)
        return web.Response(status=201, body=raw, content_type=JSON)

    async def get(self, kind: Kind, request: web.Request) -> web.Response:
        who = self.principal(request, auth.READ_ALL)
        row = self.owned_row(kind, request, who)
        return web.Response(body=row.body, content_type=JSON)

    def owned_row(self, kind: Kind, request: web.Request, who: Principal) -> Row:
        if kind is RESOURCE:  # access follows the VEN in the path; the resource must be one of its own
            ven = self.ven_row(request, who)
            resource_id = path_id(request, kind.id_param)
            row = self.store.get(kind.table, resource_id)
            if row is None or orjson.loads(row.body).get("venID") != ven.id:
                raise Problem(404, f"resource {resource_id} not found under ven {ven.id}")
            return row
        return self.row(kind, path_id(request, kind.id_param), who)

    async def update(self, kind: Kind, request: web.Request) -> web.Response:
        who = self.principal(request, kind.write_scope)
        row = self.owned_row(kind, request, who)
        body = kind.check(await json_body(request))
        old = orjson.loads(row.body)
        if kind is RESOURCE:
            body = {**body, "venID": old["venID"]}
        self.check_refs(kind, body)
        stamp = now()
        obj = _object(kind, row.id, old["createdDateTime"], stamp, body)
        raw = orjson.dumps(obj)
        try:
            self.store.update(kind.table, row.seq, stamp, kind.columns(obj), raw)
        except Conflict:
            raise _conflict(kind, obj) from None
        await self.commit()
        self.publish(kind, "PUT", obj)
        return web.Response(body=raw, content_type=JSON)

    async def delete(self, kind: Kind, request: web.Request) -> web.Response:
        who = self.principal(request, kind.write_scope)
        row = self.owned_row(kind, request, who)
        self.store.delete(kind.table, row.seq)
        await self.commit()
        if kind.notify:
            self.publish(kind, "DELETE", orjson.loads(row.body))
        return web.Response(body=row.body, content_type=JSON)

VTN_KEY = web.AppKey("harness.vtn", Vtn)


def _object(kind: Kind, object_id: str, created: str, modified: str, body: JsonObj) -> JsonObj:
    """The stored object: VTN-provisioned fields first, then the client's fields minus its copies of them."""
    obj: JsonObj = {"id": object_id, "createdDateTime": created, "modificationDateTime": modified,
                    "objectType": kind.object_type}
    for k, v in body.items():
        if k not in VTN_FIELDS:
            obj[k] = v
    return obj


def _conflict(kind: Kind, obj: JsonObj) -> Problem:
    field = UNIQUE_FIELD.get(kind.table.name, "name")
    scope = " in this VEN" if kind is RESOURCE else ""
    return Problem(409, f"a {kind.object_type.lower()} with {field} {obj.get(field)!r} exists{scope}")


async def _wake_injected_waits(app: web.Application) -> None:
    # on_shutdown runs after the sites stop listening and before aiohttp waits for in-flight handlers.
    app[VTN_KEY].mw.wake()


def make_app(config: VtnConfig, *, clock: Callable[[], float] = time.monotonic) -> web.Application:
    """The VTN application; its store and notifier open on startup and close on cleanup. `clock` times
    token expiry (tests pass a fake one)."""
    vtn = Vtn(config, clock)
    mw = vtn.mw
    app = web.Application(
        middlewares=[mw.count_requests, mw.inject_faults, mw.problems], client_max_size=8 * 1024 * 1024
    )
    app[VTN_KEY] = vtn
    app.cleanup_ctx.append(vtn.lifecycle)
    app.on_shutdown.append(_wake_injected_waits)
    base = config.base_path
    r = app.router
    r.add_post(base + "/auth/token", vtn.token)
    r.add_get(base + "/auth/server", vtn.auth_server, allow_head=False)

    def bind(method: Callable[[Kind, web.Request], Awaitable[web.Response]], kind: Kind) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            return await method(kind, request)

        return handler

    for kind, path in ((PROGRAM, "/programs"), (EVENT, "/events"), (VEN, "/vens"),
                       (RESOURCE, "/vens/{venID}/resources"), (REPORT, "/reports"),
                       (SUBSCRIPTION, "/subscriptions")):
        r.add_get(base + path, bind(vtn.list, kind), allow_head=False)
        r.add_post(base + path, bind(vtn.create, kind))
        item = f"{base}{path}/{{{kind.id_param}}}"
        r.add_get(item, bind(vtn.get, kind), allow_head=False)
        r.add_put(item, bind(vtn.update, kind))
        r.add_delete(item, bind(vtn.delete, kind))
    Control(vtn).add_routes(r)
    if config.base_path_31 is not None:
        from harness.vtn.v31 import Api31

        Api31(vtn).add_to(app)
    return app

