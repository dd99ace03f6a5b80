"""Fixtures for the embedded VTN tests: async tests run on a uvloop Runner; a real server on 127.0.0.1:0.

Servers and client sessions are created and closed inside the test's loop; waits are predicates with deadlines.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, AsyncIterator, Awaitable, Callable

import aiohttp
import orjson
import pytest
import uvloop
from aiohttp import web

from harness.vtn import VtnConfig, make_app

SPEC_DIR = Path(__file__).resolve().parents[1] / "spec"


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run `async def` tests in one uvloop loop each (no plugin needed)."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(asyncio.wait_for(pyfuncitem.obj(**args), 60))
    return True


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any


class Client:
    """A test client of one running VTN; `root` is http://127.0.0.1:PORT, `base` adds the API base path."""

    def __init__(self, session: aiohttp.ClientSession, root: str, config: VtnConfig, app: web.Application,
                 spec: str | None = None) -> None:
        self.session = session
        self.root = root
        self.spec = spec  # set: every API response is validated against this OpenADR version's document
        base = config.base_path_31 if spec == "3.1.0" else config.base_path
        self.base = root + (base or "")
        self.config = config
        self.app = app

    def v31(self) -> Client:
        """The same server's 3.1.0 API, every response checked against the 3.1.0 document."""
        return Client(self.session, self.root, self.config, self.app, spec="3.1.0")

    async def token(self, client_id: str = "bl", secret: str | None = None, scope: str | None = None) -> str:
        if secret is None:
            secret = self.config.bl_client_secret if client_id == self.config.bl_client_id else self.config.ven_client_secret
        form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
        if scope is not None:
            form["scope"] = scope
        r = await self.call("POST", "/auth/token", data=form)
        assert r.status == 200, r.body
        return str(r.body["access_token"])

    async def call(
        self, method: str, path: str, token: str | None = None, json: Any = None, data: Any = None,
        raw: bytes | None = None, headers: dict[str, str] | None = None,
    ) -> Reply:
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        body: Any = data
        if json is not None:
            body = orjson.dumps(json)
            hdrs["Content-Type"] = "application/json"
        if raw is not None:
            body = raw
            hdrs.setdefault("Content-Type", "application/json")
        url = path if path.startswith("http") else (self.root + path if path.startswith("/_harness") else self.base + path)
        async with self.session.request(method, url, data=body, headers=hdrs) as resp:
            content = await resp.read()
            parsed = orjson.loads(content) if content else None
        if self.spec is not None and url.startswith(self.base):
            assert_response_valid(self.spec, method, url[len(self.base):].split("?")[0], resp.status, parsed)
        return Reply(resp.status, parsed, resp.headers)

    async def stats(self) -> dict[str, Any]:
        r = await self.call("GET", "/_harness/stats")
        assert r.status == 200
        return dict(r.body)


@asynccontextmanager
async def vtn_server(
    config: VtnConfig, *, clock: Callable[[], float] = time.monotonic
) -> AsyncIterator[Client]:
    """A VTN app on a real socket (127.0.0.1, free port) and a client session, both closed on exit."""
    app = make_app(config, clock=clock)
    runner = web.AppRunner(app, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession() as session:
            yield Client(session, f"http://127.0.0.1:{port}", config, app)
    finally:
        await runner.cleanup()


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout_s: float = 5.0, what: str = "condition") -> None:
    """Poll an async predicate until it holds; fail the test at the deadline."""
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.005)


@pytest.fixture
def config(tmp_path: Path) -> VtnConfig:
    return VtnConfig(db_path=str(tmp_path / "vtn.sqlite"))


@pytest.fixture
def kit() -> SimpleNamespace:
    """The helpers of this conftest (tests take them as a fixture rather than importing conftest)."""
    return SimpleNamespace(
        vtn_server=vtn_server, wait_for=wait_for, with_faults=with_faults, program_body=program_body,
        event_body=event_body, report_body=report_body, program_and_event=program_and_event,
        assert_valid=assert_valid, Client=Client, assert_response_valid=assert_response_valid,
        SIMPLE31=SIMPLE31, event31=event31, report31=report31, ven31=ven31, grant31=grant31,
    )


def with_faults(config: VtnConfig, **options: Any) -> VtnConfig:
    from harness.vtn import parse_faults

    return replace(config, faults=parse_faults(options))


# ---- objects --------------------------------------------------------------------------------------------

def program_body(name: str = "prog-1") -> dict[str, Any]:
    return {"programName": name, "programLongName": "Test program", "payloadDescriptors": [
        {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "SIMPLE"}]}


def event_body(program_id: str) -> dict[str, Any]:
    return {
        "programID": program_id,
        "eventName": "shed",
        "intervalPeriod": {"start": "2026-01-01T10:00:00Z", "duration": "PT1H"},
        "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]}],
    }


def report_body(program_id: str, event_id: str, client_name: str = "ven-a", n_intervals: int = 2) -> dict[str, Any]:
    return {
        "programID": program_id,
        "eventID": event_id,
        "clientName": client_name,
        "reportName": "usage",
        "payloadDescriptors": [{"objectType": "REPORT_PAYLOAD_DESCRIPTOR", "payloadType": "USAGE", "units": "KWH"}],
        "resources": [{
            "resourceName": "site-1",
            "intervalPeriod": {"start": "2026-01-01T10:00:00Z", "duration": "PT15M"},
            "intervals": [{"id": i, "payloads": [{"type": "USAGE", "values": [0.25 * i]}]} for i in range(n_intervals)],
        }],
    }


async def program_and_event(c: Client) -> tuple[str, str]:
    """The BL creates a program and one event of it; returns (programID, eventID)."""
    bl = await c.token()
    p = await c.call("POST", "/programs", bl, json=program_body())
    assert p.status == 201, p.body
    e = await c.call("POST", "/events", bl, json=event_body(p.body["id"]))
    assert e.status == 201, e.body
    return p.body["id"], e.body["id"]


# ---- 3.1.0 objects ----------------------------------------------------------------------------------------

SIMPLE31 = {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "SIMPLE"}


def event31(program_id: str, targets: list[str] | None = None, name: str = "shed") -> dict[str, Any]:
    body: dict[str, Any] = {
        "programID": program_id, "eventName": name, "payloadDescriptors": [SIMPLE31],
        "intervalPeriod": {"start": "2026-01-01T10:00:00Z", "duration": "PT1H"},
        "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]}],
    }
    if targets is not None:
        body["targets"] = targets
    return body


def report31(event_id: str, client_name: str) -> dict[str, Any]:
    return {"eventID": event_id, "clientName": client_name, "reportName": "usage",
            "payloadDescriptors": [{"objectType": "REPORT_PAYLOAD_DESCRIPTOR", "payloadType": "USAGE", "units": "KWH"}],
            "resources": [{"resourceName": "site-1", "intervalPeriod": {"start": "2026-01-01T10:00:00Z", "duration": "PT15M"},
                           "intervals": [{"id": 0, "payloads": [{"type": "USAGE", "values": [0.5]}]}]}]}


async def ven31(c: Any, client_id: str) -> tuple[str, str]:
    """A VEN logs in and creates its own ven record; returns (token, venID)."""
    token = await c.token(client_id)
    r = await c.call("POST", "/vens", token, json={"objectType": "VEN_VEN_REQUEST", "venName": f"name-{client_id}"})
    assert r.status == 201, r.body
    assert r.body["clientID"] == client_id and r.body["objectType"] == "VEN"
    return token, str(r.body["id"])


async def grant31(c: Any, bl: str, ven_id: str, client_id: str, targets: list[str]) -> None:
    """Business logic grants targets to a VEN by updating its ven record."""
    r = await c.call("PUT", f"/vens/{ven_id}", bl, json={
        "objectType": "BL_VEN_REQUEST", "clientID": client_id, "venName": f"name-{client_id}", "targets": targets})
    assert r.status == 200, r.body



# ---- OpenAPI validation ---------------------------------------------------------------------------------

_validators: dict[tuple[str, str], Any] = {}
_registries: dict[str, Any] = {}
_docs: dict[str, dict[str, Any]] = {}


def _doc(version: str) -> dict[str, Any]:
    if version not in _docs:
        import yaml

        doc = _without_discriminators(yaml.safe_load((SPEC_DIR / f"openadr3-{version}.yaml").read_text()))
        if version == "3.1.0":
            _fix_31_responses(doc)
        _docs[version] = doc
    return _docs[version]


def _fix_31_responses(doc: dict[str, Any]) -> None:
    """The 3.1.0 document defines the ven and resource responses as objectMetadata AND BlVenRequest
    (BlResourceRequest), so objectType would have to be both "VEN" and "BL_VEN_REQUEST": no object can
    validate. The responses are validated with the request's objectType (the discriminator of the request,
    which the VTN replaces by the object's type as for every object) taken out of that part only."""
    schemas = doc["components"]["schemas"]
    for response, request in (("ven", "BlVenRequest"), ("resource", "BlResourceRequest")):
        part = {**schemas[request], "properties": {k: v for k, v in schemas[request]["properties"].items()
                                                   if k != "objectType"},
                "required": [r for r in schemas[request]["required"] if r != "objectType"]}
        schemas[response]["allOf"] = [{"$ref": "#/components/schemas/objectMetadata"}, part]


def spec_validator(schema_name: str, version: str = "3.0.1") -> Any:
    """An OAS 3.0 validator (with format checks) for a component schema (`name` or `name[]`) of a document."""
    key = (version, schema_name)
    if key not in _validators:
        from openapi_schema_validator import OAS30Validator
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT4

        if version not in _registries:
            _registries[version] = Registry().with_resource(
                "urn:openadr3", Resource.from_contents(_doc(version), default_specification=DRAFT4))
        if schema_name.endswith("[]"):
            schema: dict[str, Any] = {"type": "array", "items": {"$ref": f"urn:openadr3#/components/schemas/{schema_name[:-2]}"}}
        else:
            schema = {"$ref": f"urn:openadr3#/components/schemas/{schema_name}"}
        _validators[key] = OAS30Validator(schema, registry=_registries[version], format_checker=OAS30Validator.FORMAT_CHECKER)
    return _validators[key]


def _without_discriminators(node: Any) -> Any:
    """The documents' discriminators have no mapping, so a validator would look up a schema named after the
    value (`#/components/schemas/EVENT_PAYLOAD_DESCRIPTOR`) and fail; the anyOf/oneOf they sit beside
    already say what is valid, so they are dropped."""
    if isinstance(node, dict):
        return {k: _without_discriminators(v) for k, v in node.items() if k != "discriminator"}
    if isinstance(node, list):
        return [_without_discriminators(v) for v in node]
    return node


def assert_valid(schema_name: str, instance: Any, version: str = "3.0.1") -> None:
    errors = sorted(spec_validator(schema_name, version).iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, f"{schema_name}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def _operation(version: str, method: str, path: str) -> tuple[str, dict[str, Any]]:
    """The document's path template and operation for a concrete request path (literal segments win)."""
    best: tuple[int, str, dict[str, Any]] | None = None
    for template, item in _doc(version)["paths"].items():
        if not re.fullmatch(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)), path):
            continue
        op = item.get(method.lower())
        params = template.count("{")
        if op is not None and (best is None or params < best[0]):
            best = (params, template, op)
    assert best is not None, f"{method} {path}: no such operation in the {version} document"
    return best[1], best[2]


def assert_response_valid(version: str, method: str, path: str, status: int, body: Any) -> None:
    """The response validates against what the document says this operation answers with this status; an
    error status the operation does not list must still be a `problem`."""
    template, op = _operation(version, method, path)
    responses = op.get("responses", {})
    response = responses.get(str(status))
    if response is None:
        assert status >= 400, f"{method} {template}: status {status} is not a documented response"
        assert_valid("problem", body, version)
        return
    if "$ref" in response:
        response = _doc(version)["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema = response.get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return
    name = schema.get("$ref", "").rsplit("/", 1)[-1] if "$ref" in schema else schema["items"]["$ref"].rsplit("/", 1)[1] + "[]"
    assert_valid(name, body, version)
