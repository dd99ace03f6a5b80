"""The OpenADR 3.1.0 API of the embedded VTN under its own base path, sharing the 3.0.1 side's store and tokens.

Edge (aiohttp). Object privacy as the Definition says: a VEN reads its own ven, resources, reports and
subscriptions (others' are 403 by id, absent from lists) and the programs and events that are untargeted or
carry a target business logic granted it, shown with only those targets. Every write notifies webhook
subscribers and, given a broker, publishes on the MQTT topics `topics` names.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable

import orjson
from aiohttp import web

from harness.vtn import auth, fanout, schema31, topics
from harness.vtn.auth import Principal
from harness.vtn.httpapi import JSON, Handler, Problem, json_body, json_response, now, paging, path_id, query_id
from harness.vtn.privacy import TargetIndex, effective, hidden, targets_of, visible
from harness.vtn.schema import VTN_FIELDS, JsonObj
from harness.vtn.store import EVENTS31, PROGRAMS31, REPORTS31, RESOURCES31, SUBSCRIPTIONS31, VENS31, Conflict, Row, Table

if TYPE_CHECKING:
    from harness.vtn.app import Vtn

log = logging.getLogger(__name__)


def _targets_col(obj: JsonObj) -> str:
    targets = obj.get("targets")
    return orjson.dumps(targets).decode() if isinstance(targets, list) and targets else ""


@dataclass(frozen=True)
class Kind:
    """One 3.1.0 object type as the API serves it."""

    table: Table
    object_type: str
    path: str
    id_param: str
    read_scope: str
    write_scope: str
    check: Callable[[object], JsonObj]
    columns: Callable[[JsonObj], dict[str, str]]
    filters: tuple[tuple[str, str], ...]  # (query parameter, column)
    unique: str = ""  # the field a 409 names

    @property
    def targeted(self) -> bool:  # read with read_targets: privacy by targets, not by clientID
        return self.read_scope == auth.READ_TARGETS


PROGRAM = Kind(PROGRAMS31, "PROGRAM", "/programs", "programID", auth.READ_TARGETS, auth.WRITE_PROGRAMS,
               schema31.check_program, lambda o: {"program_name": o["programName"], "targets": _targets_col(o)},
               (), "programName")
EVENT = Kind(EVENTS31, "EVENT", "/events", "eventID", auth.READ_TARGETS, auth.WRITE_EVENTS, schema31.check_event,
             lambda o: {"program_id": o["programID"], "targets": _targets_col(o)}, (("programID", "program_id"),))
VEN = Kind(VENS31, "VEN", "/vens", "venID", auth.READ_VEN_OBJECTS, auth.WRITE_VENS, schema31.check_ven,
           lambda o: {"ven_name": o["venName"], "targets": _targets_col(o)}, (("venName", "ven_name"),), "venName")
RESOURCE = Kind(RESOURCES31, "RESOURCE", "/resources", "resourceID", auth.READ_VEN_OBJECTS, auth.WRITE_VENS,
                schema31.check_resource,
                lambda o: {"ven_id": o["venID"], "resource_name": o["resourceName"], "targets": _targets_col(o)},
                (("venID", "ven_id"), ("resourceName", "resource_name")), "resourceName")
REPORT = Kind(REPORTS31, "REPORT", "/reports", "reportID", auth.READ_VEN_OBJECTS, auth.WRITE_REPORTS,
              schema31.check_report,
              lambda o: {"program_id": o["_programID"], "event_id": o["eventID"], "client_name": o["clientName"]},
              (("programID", "program_id"), ("eventID", "event_id"), ("clientName", "client_name")))
SUBSCRIPTION = Kind(SUBSCRIPTIONS31, "SUBSCRIPTION", "/subscriptions", "subscriptionID", auth.READ_VEN_OBJECTS,
                    auth.WRITE_SUBSCRIPTIONS, schema31.check_subscription,
                    lambda o: {"program_id": o.get("programID") or "", "client_name": o["clientName"]},
                    (("programID", "program_id"), ("clientName", "client_name")))
KINDS = (PROGRAM, EVENT, VEN, RESOURCE, REPORT, SUBSCRIPTION)


class Api31:
    def __init__(self, vtn: Vtn) -> None:
        self.vtn = vtn
        self.base = vtn.config.base_path_31 or ""
        self.index = TargetIndex()

    def add_to(self, app: web.Application) -> None:
        app.cleanup_ctx.append(self.lifecycle)  # after the Vtn's: the store is open
        r, base = app.router, self.base

        async def token(request: web.Request) -> web.Response:
            return await self.vtn.token(request, v31=True)

        r.add_get(base + "/auth/server", self.auth_server, allow_head=False)
        r.add_post(base + "/auth/token", token)
        for kind in KINDS:
            item = f"{base}{kind.path}/{{{kind.id_param}}}"
            r.add_get(base + kind.path, _bind(self.list, kind), allow_head=False)
            r.add_post(base + kind.path, _bind(self.create, kind))
            r.add_get(item, _bind(self.get, kind), allow_head=False)
            r.add_put(item, _bind(self.update, kind))
            r.add_delete(item, _bind(self.delete, kind))
        r.add_get(base + "/notifiers", self.notifiers, allow_head=False)
        t = base + "/notifiers/mqtt/topics"
        for path, scope, base_of, needs in (
            ("/programs", auth.READ_ALL, topics.programs, ""),
            ("/programs/{programID}", auth.READ_ALL, topics.program, "program"),
            ("/programs/{programID}/events", auth.READ_ALL, topics.program_events, "program"),
            ("/events", auth.READ_BL, topics.events, ""),
            ("/reports", auth.READ_BL, topics.reports, ""),
            ("/subscriptions", auth.READ_BL, topics.subscriptions, ""),
            ("/vens", auth.READ_BL, topics.vens, ""),
            ("/resources", auth.READ_BL, topics.resources, ""),
            ("/vens/{venID}", auth.READ_VEN_OBJECTS, topics.ven, "ven"),
            ("/vens/{venID}/events", auth.READ_VEN_OBJECTS, topics.ven_events, "ven"),
            ("/vens/{venID}/programs", auth.READ_VEN_OBJECTS, topics.ven_programs, "ven"),
            ("/vens/{venID}/resources", auth.READ_VEN_OBJECTS, topics.ven_resources, "ven"),
        ):
            r.add_get(t + path, self._topics_handler(scope, base_of, needs), allow_head=False)

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        store = self.vtn.store
        for raw in store.bodies(VENS31):
            v = orjson.loads(raw)
            self.index.put_ven(v["id"], v["clientID"], targets_of(v))
        for raw in store.bodies(RESOURCES31):
            res = orjson.loads(raw)
            self.index.put_resource(res["id"], res["venID"], targets_of(res))
        yield

    # ---- auth ----------------------------------------------------------------------------------------

    async def auth_server(self, request: web.Request) -> web.Response:
        return json_response({"tokenURL": f"{request.url.origin()}{self.base}/auth/token"})

    def principal(self, request: web.Request, scope: str) -> Principal:
        return self.vtn.principal(request, scope)

    # ---- reads ---------------------------------------------------------------------------------------

    def _reading(self, who: Principal, request: web.Request) -> tuple[frozenset[str] | None, list[str] | None]:
        """(targets a VEN reads with or None for BL, the `targets` query or None)."""
        requested = request.query.getall("targets", None)
        if requested is not None and any(not 0 < len(t) <= 128 for t in requested):
            raise Problem(400, "targets must be strings of 1..128 characters")
        if not who.is_ven:
            return None, requested
        return effective(self.index.granted_to_client(who.client_id), requested), requested

    async def list(self, kind: Kind, request: web.Request) -> web.Response:
        who = self.principal(request, kind.read_scope)
        skip, limit = paging(request)
        where = {}
        for param, col in kind.filters:
            value = query_id(request, param) if param.endswith("ID") else request.query.get(param)
            if value is not None:
                where[col] = value
        if kind is EVENT and request.query.get("active", "false").lower() not in ("true", "false"):
            raise Problem(400, f"active must be true or false, got {request.query['active'][:16]!r}")
        if not limit:
            return web.Response(body=b"[]", content_type=JSON)
        reading, requested = self._reading(who, request)
        store = self.vtn.store
        if kind.targeted and reading is not None:
            bodies = store.list(kind.table, where, owner=None, skip=skip, limit=limit, targets=reading,
                                untargeted=requested is None)
            bodies = [_hide(b, reading) for b in bodies]
        else:
            owner = who.client_id if who.is_ven and not kind.targeted else None
            bodies = store.list(kind.table, where, owner=owner, skip=skip, limit=limit,
                                targets=requested if "targets" in kind.table.columns else None)
        return web.Response(body=b"[" + b",".join(bodies) + b"]", content_type=JSON)

    def row(self, kind: Kind, object_id: str, who: Principal, reading: frozenset[str] | None = None) -> Row:
        row = self.vtn.store.get(kind.table, object_id)
        name = f"{kind.object_type.lower()} {object_id}"
        if row is None:
            raise Problem(404, f"{name} not found")
        if who.is_ven:
            if kind.targeted:
                if reading is not None and not visible(targets_of(orjson.loads(row.body)), reading, False):
                    raise Problem(403, f"{name} is not targeted at this client")
            elif row.owner != who.client_id:
                raise Problem(403, f"{name} belongs to another client")
        return row

    async def get(self, kind: Kind, request: web.Request) -> web.Response:
        who = self.principal(request, kind.read_scope)
        reading, _ = self._reading(who, request)
        row = self.row(kind, path_id(request, kind.id_param), who, reading)
        body = _hide(row.body, reading) if kind.targeted and reading is not None else row.body
        return web.Response(body=body, content_type=JSON)

    # ---- writes --------------------------------------------------------------------------------------

    def _prepare(self, kind: Kind, body: JsonObj, who: Principal, old: JsonObj | None) -> tuple[JsonObj, str]:
        """The client's fields as the VTN stores them, and the object's owner (its clientID); checks refs and
        who may write what."""
        store = self.vtn.store
        fields = {k: v for k, v in body.items() if k not in VTN_FIELDS}
        if kind is EVENT and not store.program_exists(body["programID"], PROGRAMS31):
            raise Problem(400, f"programID {body['programID']} does not exist")
        if kind is SUBSCRIPTION and body.get("programID") and not store.program_exists(body["programID"], PROGRAMS31):
            raise Problem(400, f"programID {body['programID']} does not exist")
        if kind is REPORT:
            program = store.event_program(body["eventID"], EVENTS31)
            if program is None:
                raise Problem(400, f"eventID {body['eventID']} does not exist")
            fields["_programID"] = program  # a column only, never stored in the body
        if kind in (PROGRAM, EVENT):
            return fields, who.client_id
        if kind in (REPORT, SUBSCRIPTION):  # the creator's; business logic editing one does not take it over
            client = str(old["clientID"]) if old else who.client_id
            return {**fields, "clientID": client}, client
        by_bl = body["objectType"] in (schema31.BL_VEN, schema31.BL_RESOURCE)
        if by_bl and who.is_ven:
            raise Problem(403, f"objectType {body['objectType']} is for business logic; a VEN sends "
                               f"{schema31.VEN_VEN if kind is VEN else schema31.VEN_RESOURCE}")
        if not by_bl and who.is_ven and fields.get("targets"):
            raise Problem(403, "only business logic may set targets on ven and resource objects")
        if kind is RESOURCE:
            ven_client = self.index.client_of(body["venID"])
            if ven_client is None:
                raise Problem(404, f"venID {body['venID']} not found")
            if who.is_ven and ven_client != who.client_id:
                raise Problem(403, f"ven {body['venID']} belongs to another client")
            client = str(body["clientID"]) if by_bl else ven_client
        else:
            client = str(body["clientID"]) if by_bl else (str(old["clientID"]) if old else who.client_id)
        if not by_bl:
            fields.pop("targets", None)
            fields.pop("clientID", None)
            if old is not None and old.get("targets"):
                fields["targets"] = old["targets"]  # a VEN's own update keeps the targets business logic granted
        return {**fields, "clientID": client}, client

    async def create(self, kind: Kind, request: web.Request) -> web.Response:
        who = self.principal(request, kind.write_scope)
        body = kind.check(await json_body(request))
        fields, owner = self._prepare(kind, body, who, None)
        store = self.vtn.store
        seq, object_id = store.new_id(kind.table)
        stamp = now()
        obj = _object(kind, object_id, stamp, stamp, fields)
        raw = orjson.dumps(obj)
        if kind is REPORT and self.vtn.faults.drops_report():
            return web.Response(status=201, body=raw, content_type=JSON)  # acknowledged, never stored
        try:
            store.insert(kind.table, seq, object_id, owner, stamp, kind.columns({**obj, **fields}), raw)
        except Conflict:
            raise self._conflict(kind, obj) from None
        await self.vtn.commit()
        self._indexed(kind, obj)
        self.notify(kind, "CREATE", obj)
        return web.Response(status=201, body=raw, content_type=JSON)

    async def update(self, kind: Kind, request: web.Request) -> web.Response:
        who = self.principal(request, kind.write_scope)
        row = self.row(kind, path_id(request, kind.id_param), who)
        body = kind.check(await json_body(request))
        old = orjson.loads(row.body)
        fields, owner = self._prepare(kind, body, who, old)
        stamp = now()
        obj = _object(kind, row.id, old["createdDateTime"], stamp, fields)
        raw = orjson.dumps(obj)
        try:
            self.vtn.store.update(kind.table, row.seq, stamp, kind.columns({**obj, **fields}), raw,
                                  owner if owner != row.owner else None)
        except Conflict:
            raise self._conflict(kind, obj) from None
        await self.vtn.commit()
        self._indexed(kind, obj)
        self.notify(kind, "UPDATE", obj)
        return web.Response(body=raw, content_type=JSON)

    async def delete(self, kind: Kind, request: web.Request) -> web.Response:
        who = self.principal(request, kind.write_scope)
        row = self.row(kind, path_id(request, kind.id_param), who)
        self.vtn.store.delete(kind.table, row.seq)
        await self.vtn.commit()
        obj = orjson.loads(row.body)
        self.notify(kind, "DELETE", obj)  # before the index forgets whom it reached
        if kind is VEN:
            self.index.drop_ven(row.id)
        elif kind is RESOURCE:
            self.index.drop_resource(row.id)
        return web.Response(body=row.body, content_type=JSON)

    def _indexed(self, kind: Kind, obj: JsonObj) -> None:
        if kind is VEN:
            self.index.put_ven(obj["id"], obj["clientID"], targets_of(obj))
        elif kind is RESOURCE:
            self.index.put_resource(obj["id"], obj["venID"], targets_of(obj))

    @staticmethod
    def _conflict(kind: Kind, obj: JsonObj) -> Problem:
        scope = " in this VEN" if kind is RESOURCE else ""
        return Problem(409, f"a {kind.object_type.lower()} with {kind.unique} {obj.get(kind.unique)!r} exists{scope}")

    def notify(self, kind: Kind, operation: str, obj: JsonObj) -> None:
        vtn = self.vtn
        snake = vtn.config.notification_case == "snake"  # the reference 3.1 VTN's bodies (VTNS.md)
        subs = (orjson.loads(b) for b in vtn.store.bodies(SUBSCRIPTIONS31))
        for callbacks, body in fanout.webhook_posts(subs, kind.object_type, operation, obj, self.index,
                                                    vtn.config.bl_client_id):
            vtn.notifier.post(callbacks, fanout.snake_case(body) if snake else body)
        if vtn.publisher is not None:
            messages = fanout.mqtt_messages(kind.object_type, operation, obj, self.index)
            vtn.publisher.publish(fanout.snake_messages(messages) if snake else messages)

    # ---- notifiers -----------------------------------------------------------------------------------

    async def notifiers(self, request: web.Request) -> web.Response:
        self.principal(request, auth.READ_ALL)
        body: dict[str, Any] = {"WEBHOOK": True}
        config = self.vtn.config
        if config.mqtt_url:
            body["MQTT"] = {"URIS": list(config.mqtt_uris or (config.mqtt_url,)),
                            "serialization": "JSON", "authentication": {"method": "ANONYMOUS"}}
        return json_response(body)

    def _topics_handler(self, scope: str, base_of: Callable[..., str], needs: str) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            who = self.principal(request, scope)
            if self.vtn.publisher is None:
                raise Problem(404, "this VTN has no MQTT notifier (see GET /notifiers)")
            if not needs:
                return json_response({"topics": topics.listing(base_of())})
            if needs == "program":
                program_id = path_id(request, "programID")
                if not self.vtn.store.program_exists(program_id, PROGRAMS31):
                    raise Problem(404, f"program {program_id} not found")
                return json_response({"topics": topics.listing(base_of(program_id), create=base_of is not topics.program)})
            ven_id = path_id(request, "venID")
            client = self.index.client_of(ven_id)
            if client is None:
                raise Problem(404, f"ven {ven_id} not found")
            if who.is_ven and client != who.client_id:
                raise Problem(403, f"ven {ven_id} belongs to another client")
            return json_response({"topics": topics.listing(base_of(ven_id), create=base_of is not topics.ven)})

        return handler


def _object(kind: Kind, object_id: str, created: str, modified: str, fields: JsonObj) -> JsonObj:
    """The stored object: VTN-provisioned fields first, then the client's (column-only `_` keys left out)."""
    obj: JsonObj = {"id": object_id, "createdDateTime": created, "modificationDateTime": modified,
                    "objectType": kind.object_type}
    obj.update((k, v) for k, v in fields.items() if not k.startswith("_"))
    return obj


def _hide(raw: bytes, reading: frozenset[str]) -> bytes:
    if b'"targets":[' not in raw:
        return raw  # untargeted: nothing to hide, no parse
    return orjson.dumps(hidden(orjson.loads(raw), reading))


def _bind(method: Callable[[Kind, web.Request], Awaitable[web.Response]], kind: Kind) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return await method(kind, request)

    return handler
