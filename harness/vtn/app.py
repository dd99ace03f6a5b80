"""The embedded VTN as an aiohttp application: OpenADR 3.0.1 routes, auth, ownership, faults, control endpoints.

Everything (store, token table, notifier session) is created in the app's startup inside the serving loop
and closed in its cleanup. Bad client input is a 4xx with a `problem` body, never a 500.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import random
import socket
import struct
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping

import orjson
from aiohttp import web

from harness.vtn import auth, schema
from harness.vtn.auth import OAuthError, Principal, TokenStore
from harness.vtn.config import VtnConfig
from harness.vtn.faults import Faults, draw, parse_faults, stall_end_s
from harness.vtn.notifier import Notifier, matching_callbacks
from harness.vtn.schema import VTN_FIELDS, InvalidBody, JsonObj
from harness.vtn.store import EVENTS, PROGRAMS, REPORTS, RESOURCES, SUBSCRIPTIONS, VENS, Conflict, Row, Store, Table

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/_harness/"
JSON = "application/json"
MAX_LIMIT = 50
INT32_MAX = 2**31 - 1  # skip and limit are int32 in the spec
_LOOPBACK = ("127.", "::1", "::ffff:127.")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _ResetResponse(web.Response):
    """Returned after an injected reset; never sent, since the connection is gone."""


class _DisconnectedResponse(web.Response):
    """Returned when the client went away mid-request (its body cut short): not an error of ours, never sent."""


class Problem(Exception):
    """An HTTP error answered with a `problem` body {type, title, status, detail}."""

    def __init__(self, status: int, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status, detail)
        self.status = status
        self.detail = detail
        self.headers = headers


def problem_response(status: int, detail: str, headers: Mapping[str, str] | None = None) -> web.Response:
    title = _reason(status)
    body = orjson.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
    return web.Response(status=status, body=body, content_type=JSON, headers=headers)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


_last_now: tuple[int, str] = (-1, "")


def _now() -> str:
    """RFC 3339 UTC with milliseconds; formatted once per millisecond however many objects are stamped."""
    global _last_now
    ms = time.time_ns() // 1_000_000
    if ms != _last_now[0]:
        dt = datetime.fromtimestamp(ms / 1000, timezone.utc)
        _last_now = (ms, f"{dt:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z")
    return _last_now[1]


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


class FaultState:
    """The live fault settings, their rng and counters; replaced wholesale by POST /_harness/faults."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.rng = random.Random(faults.seed)
        self.semaphore: asyncio.Semaphore | None = None
        self.stall_until = 0.0  # time.monotonic(); set by POST /_harness/stall
        self.injected: dict[int, int] = defaultdict(int)
        self.resets = 0
        self.stalled = 0
        self.queued = 0
        self.dropped = 0  # reports acknowledged (201) and then not stored: drop_after_ack
        self.set(faults)

    def set(self, faults: Faults) -> None:
        self.faults = faults
        self.rng = random.Random(faults.seed)
        self.drop_rng = faults.drop_rng()
        self.semaphore = asyncio.Semaphore(faults.max_concurrency) if faults.max_concurrency else None

    def drops_report(self) -> bool:
        """drop_after_ack: this report is acknowledged and not stored (counted)."""
        if self.faults.drop_after_ack <= 0.0 or self.drop_rng.random() >= self.faults.drop_after_ack:
            return False
        self.dropped += 1
        return True


class Vtn:
    """State and handlers of one VTN application."""

    def __init__(self, config: VtnConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.tokens = TokenStore(config.token_ttl_s, clock, auth.preissued(config))
        self.faults = FaultState(config.faults)
        self.requests: dict[str, dict[int | str, int]] = defaultdict(lambda: defaultdict(int))
        self._store: Store | None = None
        self._notifier: Notifier | None = None
        self._started_at = 0.0
        self.client_disconnects = 0

    @property
    def store(self) -> Store:
        assert self._store is not None, "the VTN app is not started"
        return self._store

    @property
    def notifier(self) -> Notifier:
        assert self._notifier is not None, "the VTN app is not started"
        return self._notifier

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        self._started_at = time.monotonic()
        self._store = Store(
            self.config.db_path,
            commit_interval_s=self.config.commit_interval_s,
            commit_max_writes=self.config.commit_max_writes,
        )
        self._notifier = Notifier(
            timeout_s=self.config.notify_timeout_s, max_connections=self.config.notify_max_connections
        )
        try:
            yield
        finally:
            await self._notifier.close()
            self._store.close()

    # ---- middlewares ---------------------------------------------------------------------------------

    @web.middleware
    async def count_requests(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        resource = request.match_info.route.resource
        template = resource.canonical if resource is not None else "unmatched"
        base = self.config.base_path
        if base and template.startswith(base):
            template = template[len(base):] or "/"
        status: int | str = response.status
        if isinstance(response, _ResetResponse):
            status = "reset"
        elif isinstance(response, _DisconnectedResponse):
            status = "client_disconnected"
        self.requests[f"{request.method} {template}"][status] += 1
        return response

    @web.middleware
    async def inject_faults(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        fs = self.faults
        f = fs.faults
        if request.path.startswith(CONTROL_PREFIX) or (not f.is_active and fs.stall_until == 0.0):
            return await handler(request)
        fate = draw(f, fs.rng)
        if fate.delay_s > 0:
            await _delay(fate.delay_s)
        if fate.reset:
            fs.resets += 1
            _abort(request)
            return _ResetResponse(status=204)
        if fate.status:
            fs.injected[fate.status] += 1
            headers = None
            if fate.status == 429:
                headers = {"Retry-After": str(max(0, int(-(-f.retry_after_s // 1))))}
            response: web.StreamResponse = problem_response(fate.status, "injected fault", headers)
        elif fs.semaphore is not None:
            if fs.semaphore.locked():
                fs.queued += 1
            async with fs.semaphore:
                if f.service_time:
                    await _delay(f.service_time.sample(fs.rng))
                response = await handler(request)
        else:
            if f.service_time:
                await _delay(f.service_time.sample(fs.rng))
            response = await handler(request)
        await self._hold_while_stalled()
        return response

    async def _hold_while_stalled(self) -> None:
        # time.monotonic, not loop.time (whole milliseconds on uvloop): a held response never leaves early.
        held = False
        while True:
            now = time.monotonic()
            end = self.faults.stall_until
            scheduled = stall_end_s(self.faults.faults.stalls, now - self._started_at)
            if scheduled is not None:
                end = max(end, self._started_at + scheduled)
            if end <= now:
                if self.faults.stall_until and self.faults.stall_until <= now:
                    self.faults.stall_until = 0.0  # back to the fast path
                break
            if not held:
                self.faults.stalled += 1
                held = True
            await asyncio.sleep(end - now)

    @web.middleware
    async def problems(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except Problem as exc:
            return problem_response(exc.status, exc.detail, exc.headers)
        except InvalidBody as exc:
            return problem_response(400, str(exc))
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
            return problem_response(exc.status, exc.reason, headers)
        except asyncio.CancelledError:
            raise
        except ConnectionError:
            # The client dropped the connection mid-request (e.g. its timeout fired while sending the body):
            # counted in stats, no traceback, nothing to answer.
            self.client_disconnects += 1
            return _DisconnectedResponse(status=499)
        except Exception:
            log.exception("internal error on %s %s", request.method, request.path)
            return problem_response(500, "internal error")

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

    async def token(self, request: web.Request) -> web.Response:
        try:
            who, granted = await self._authorize_client(request)
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

    async def _authorize_client(self, request: web.Request) -> tuple[Principal, frozenset[str]]:
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
        scope = form.get("scope")
        return who, auth.grant_scopes(who.scopes, scope if isinstance(scope, str) else None)

    # ---- helpers -------------------------------------------------------------------------------------

    @staticmethod
    def paging(request: web.Request) -> tuple[int, int]:
        q = request.query
        return _int_param(q, "skip", 0, 0, INT32_MAX), _int_param(q, "limit", MAX_LIMIT, 0, MAX_LIMIT)

    @staticmethod
    async def json_body(request: web.Request) -> object:
        raw = await request.read()
        if not raw.strip():
            raise Problem(400, "request body is empty; expected a JSON object")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise Problem(400, f"request body is not valid JSON: {exc}") from None

    @staticmethod
    def path_id(request: web.Request, name: str) -> str:
        value = request.match_info[name]
        if not schema.OBJECT_ID.match(value):
            raise Problem(400, f"{name} must be 1..128 of [a-zA-Z0-9_-], got {value[:64]!r}")
        return value

    def row(self, kind: Kind, object_id: str, who: Principal) -> Row:
        row = self.store.get(kind.table, object_id)
        if row is None:
            raise Problem(404, f"{kind.object_type.lower()} {object_id} not found")
        if kind.owned and not who.may_access(row.owner):
            raise Problem(403, f"{kind.object_type.lower()} {object_id} belongs to another client")
        return row

    def ven_row(self, request: web.Request, who: Principal) -> Row:
        return self.row(VEN, self.path_id(request, "venID"), who)

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
        skip, limit = self.paging(request)
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
        body = kind.check(await self.json_body(request))
        if ven is not None:
            owner = ven.owner  # a resource belongs to whoever owns its VEN
            body = {**body, "venID": ven.id}
        self.check_refs(kind, body)
        seq, object_id = self.store.new_id(kind.table)
        now = _now()
        obj = _object(kind, object_id, now, now, body)
        raw = orjson.dumps(obj)
        if kind is REPORT and self.faults.drops_report():
            return web.Response(status=201, body=raw, content_type=JSON)  # acknowledged, never stored
        try:
            self.store.insert(kind.table, seq, object_id, owner, now, kind.columns(obj), raw)
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
            resource_id = self.path_id(request, kind.id_param)
            row = self.store.get(kind.table, resource_id)
            if row is None or orjson.loads(row.body).get("venID") != ven.id:
                raise Problem(404, f"resource {resource_id} not found under ven {ven.id}")
            return row
        return self.row(kind, self.path_id(request, kind.id_param), who)

    async def update(self, kind: Kind, request: web.Request) -> web.Response:
        who = self.principal(request, kind.write_scope)
        row = self.owned_row(kind, request, who)
        body = kind.check(await self.json_body(request))
        old = orjson.loads(row.body)
        if kind is RESOURCE:
            body = {**body, "venID": old["venID"]}
        self.check_refs(kind, body)
        now = _now()
        obj = _object(kind, row.id, old["createdDateTime"], now, body)
        raw = orjson.dumps(obj)
        try:
            self.store.update(kind.table, row.seq, now, kind.columns(obj), raw)
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

    # ---- control endpoints (no auth, loopback only, never faulted) ----------------------------------

    def _control(self, request: web.Request) -> None:
        remote = request.remote or ""
        if not remote.startswith(_LOOPBACK):
            raise Problem(403, "control endpoints answer loopback clients only")

    async def stats(self, request: web.Request) -> web.Response:
        self._control(request)
        fs = self.faults
        counts = {t.name: self.store.count(t) for t in (PROGRAMS, EVENTS, VENS, RESOURCES, REPORTS, SUBSCRIPTIONS)}
        now = time.monotonic()
        body = {
            "uptime_s": round(now - self._started_at, 3),
            "requests": {k: {str(s): n for s, n in v.items()} for k, v in sorted(self.requests.items())},
            "requests_total": sum(sum(v.values()) for v in self.requests.values()),
            "objects": counts,
            "reports_stored": counts["reports"],
            "vens": counts["vens"],
            "resources": counts["resources"],
            "notifications": {"delivered": self.notifier.delivered, "failed": self.notifier.failed,
                              "pending": self.notifier.pending},
            "faults": {
                "config": fs.faults.describe(),
                "injected": {str(s): n for s, n in sorted(fs.injected.items())},
                "resets": fs.resets,
                "stalled_responses": fs.stalled,
                "queued": fs.queued,
                "dropped_after_ack": fs.dropped,
                "stall_remaining_s": round(max(0.0, fs.stall_until - now), 3),
            },
            "store": {"commits": self.store.commits, "committed_writes": self.store.committed_writes},
            "tokens_live": len(self.tokens),
            "client_disconnects": self.client_disconnects,
        }
        return web.Response(body=orjson.dumps(body), content_type=JSON)

    async def get_faults(self, request: web.Request) -> web.Response:
        self._control(request)
        return web.Response(body=orjson.dumps(self.faults.faults.describe()), content_type=JSON)

    async def set_faults(self, request: web.Request) -> web.Response:
        self._control(request)
        data = await self.json_body(request)
        if not isinstance(data, dict):
            raise Problem(400, "body must be a JSON object of fault options")
        try:
            faults = parse_faults(data)
        except ValueError as exc:
            raise Problem(400, str(exc)) from None
        self.faults.set(faults)
        log.info("faults replaced: %s", faults.describe())
        return web.Response(body=orjson.dumps(faults.describe()), content_type=JSON)

    async def stall(self, request: web.Request) -> web.Response:
        self._control(request)
        data = await self.json_body(request)
        duration = data.get("duration_s") if isinstance(data, dict) else None
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 0 <= duration <= 3600:
            raise Problem(400, f"duration_s must be a number of seconds 0..3600, got {duration!r}")
        now = time.monotonic()
        self.faults.stall_until = max(self.faults.stall_until, now + float(duration))
        return web.Response(body=orjson.dumps({"stall_until_s": round(self.faults.stall_until - self._started_at, 3)}),
                            content_type=JSON)


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


def _int_param(q: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = q.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Problem(400, f"{name} must be an integer, got {raw[:32]!r}") from None
    if not lo <= value <= hi:
        raise Problem(400, f"{name} must be {lo}..{hi}, got {value}")
    return value


async def _delay(seconds: float) -> None:
    """Wait `seconds` to within a few tens of microseconds. Loop timers fire on whole-millisecond polls (up to
    1 ms late, 0.5 ms on average), which would bias an injected 50 ms by 1 %: so sleep on the timer until 1 ms
    before the deadline and yield the loop for the rest."""
    deadline = time.monotonic() + seconds
    if seconds > 0.001:
        await asyncio.sleep(seconds - 0.001)
    while time.monotonic() < deadline:
        await asyncio.sleep(0)


def _abort(request: web.Request) -> None:
    """Reset the connection (RST, no response) so the client sees a reset, not a clean close."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


def make_app(config: VtnConfig, *, clock: Callable[[], float] = time.monotonic) -> web.Application:
    """The VTN application; its store and notifier open on startup and close on cleanup. `clock` times
    token expiry (tests pass a fake one)."""
    vtn = Vtn(config, clock)
    app = web.Application(
        middlewares=[vtn.count_requests, vtn.inject_faults, vtn.problems], client_max_size=8 * 1024 * 1024
    )
    app[VTN_KEY] = vtn
    app.cleanup_ctx.append(vtn.lifecycle)
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
    r.add_get(CONTROL_PREFIX + "stats", vtn.stats, allow_head=False)
    r.add_get(CONTROL_PREFIX + "faults", vtn.get_faults, allow_head=False)
    r.add_post(CONTROL_PREFIX + "faults", vtn.set_faults)
    r.add_post(CONTROL_PREFIX + "stall", vtn.stall)
    return app

