"""Fuzzing the two places bad input enters: the profile parser (only a one-line ProfileError escapes) and the
embedded VTN's request handling (bad client input is a 4xx with a problem body, never a 500)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from harness import dialects
from harness.core.profile import _KEYS, ProfileError, from_mapping, from_toml
from harness.core.target import KEYS as TARGET_KEYS
from harness.dialects import Site
from harness.vtn import VtnConfig, make_app
from harness.vtn.app import VTN_KEY

PROFILE_EXAMPLES = 600
VTN_EXAMPLES = 1000

# ---- values of every type, in the shapes TOML and JSON give --------------------------------------------

durations = st.builds(lambda n, u: f"{n}{u}", st.one_of(st.integers(-10, 10**6), st.floats(allow_nan=True)),
                      st.sampled_from(["", "ms", "s", "m", "h", "d", " s", "parsecs", "S"]))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-(2**70), 2**70), st.floats(),
                    st.text(max_size=12), durations, st.sampled_from(["", "0", "-1", "nan", "inf", "1e400", "∞"]))
keys = st.sampled_from(["", "a", "expr", "at", "token", "report", "url", "1", "ünï", "x.y"])
values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(keys, c, max_size=3), max_leaves=6)

KNOWN = sorted([*_KEYS, *(f"target.{k}" for k in TARGET_KEYS)])


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{"fleet.vens": 3} -> {"fleet": {"vens": 3}}; a key that collides with a value keeps the first."""
    doc: dict[str, Any] = {}
    for dotted, v in flat.items():
        node = doc
        *path, last = dotted.split(".")
        for part in path:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                break
            node = nxt
        else:
            node.setdefault(last, v)
    return doc


profile_docs = st.builds(
    lambda known, unknown: _nest({**unknown, **known}),
    st.dictionaries(st.sampled_from(KNOWN), values, max_size=8),
    st.dictionaries(st.sampled_from(["fleet.vns", "run.extra", "nope", "target.tls.x", "behaviour.timeouts.tokn"]) | st.text(min_size=1, max_size=6), values, max_size=2),
)


def _one_line_profile_error(call: Any) -> None:
    try:
        call()
    except ProfileError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg, msg


@settings(max_examples=PROFILE_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=profile_docs)
@example(doc={"fleet": {"vens": 10**30}})
@example(doc={"behaviour": {"interval": "1e400s"}})
@example(doc={"behaviour": {"timeouts": {"token": None}}})
@example(doc={"run": {"heartbeat": "-1s"}})
@example(doc={"thresholds": [{"expr": None}]})
@example(doc={"dr_events": [{"at": []}]})
def test_profile_mapping_of_any_shape_fails_only_with_one_line(doc: dict[str, Any]) -> None:
    """from_mapping on arbitrary nested keys and values: a Profile or a one-line ProfileError, nothing else."""
    _one_line_profile_error(lambda: from_mapping(doc))


@settings(max_examples=PROFILE_EXAMPLES // 3, deadline=None)
@given(text=st.one_of(st.text(max_size=200), st.builds(lambda k, v: f"[{k.split('.')[0]}]\n{k.split('.')[-1]} = {v}\n",
                                                      st.sampled_from(KNOWN), st.sampled_from(
                                                          ['"15 parsecs"', "-1", "1e999", "[1,2]", "{a=1}", "true",
                                                           '"\\u0000"', "nan", "1979-05-27T07:32:00Z", '"""x"""']))))
def test_profile_toml_text_fails_only_with_one_line(text: str) -> None:
    """from_toml on arbitrary text and on known keys with odd TOML values: only a one-line ProfileError."""
    _one_line_profile_error(lambda: from_toml(text, "fuzz.toml"))


# ---- the embedded VTN ----------------------------------------------------------------------------------


@dataclass
class Vtn:
    loop: asyncio.AbstractEventLoop
    client: TestClient[Any, Any]
    tokens: dict[str, str]
    paths: list[tuple[str, str, Any]]  # (method, path, a valid body)

    def call(self, method: str, path: str, body: bytes, content_type: str, who: str) -> tuple[int, bytes]:
        async def go() -> tuple[int, bytes]:
            headers = {"Content-Type": content_type} if content_type else {}
            if who in self.tokens:
                headers["Authorization"] = f"Bearer {self.tokens[who]}"
            async with self.client.request(method, path, data=body, headers=headers) as r:
                return r.status, await r.read()

        return self.loop.run_until_complete(go())


BASE = "/openadr3/3.0.1"
BASE31 = "/openadr3/3.1.0"


async def _setup(client: TestClient[Any, Any]) -> Vtn:
    d = dialects.get("openadr-3.0.1")

    async def token(cid: str, secret: str) -> str:
        r = await client.post(BASE + "/auth/token", data={"grant_type": "client_credentials", "client_id": cid,
                                                           "client_secret": secret})
        return str((await r.json())["access_token"])

    tokens = {"bl": await token("bl", "bl-secret"), "ven": await token("ven-fuzz", "ven-secret")}

    async def create(who: str, path: str, body: Any) -> str:
        r = await client.post(BASE + path, json=body, headers={"Authorization": f"Bearer {tokens[who]}"})
        assert r.status == 201, await r.text()
        return str((await r.json())["id"])

    prog_body = d.create_program("fuzz-program").json
    program = await create("bl", "/programs", prog_body)
    ev_body = d.create_event(program, "fuzz-event", "2025-01-01T00:00:00Z", "PT1H", 1).json
    event = await create("bl", "/events", ev_body)
    ven_body = d.create_ven("fuzz").json
    ven = await create("ven", "/vens", ven_body)
    res_body = d.create_resource(ven, "fuzz-site").json
    resource = await create("ven", f"/vens/{ven}/resources", res_body)
    rep_body = d.report(program, event, "fuzz", [Site("fuzz-site", 1.5, 3.0)], "2025-01-01T00:00:00Z", "PT15S").json
    report = await create("ven", "/reports", rep_body)
    sub_body = {"objectType": "SUBSCRIPTION", "clientName": "fuzz", "programID": program, "objectOperations": [
        {"objects": ["EVENT"], "operations": ["CREATE"], "callbackUrl": "http://127.0.0.1:9/cb", "bearerToken": "x"}]}
    sub = await create("ven", "/subscriptions", sub_body)
    paths = [("POST", "/auth/token", {"grant_type": "client_credentials", "client_id": "ven-x", "client_secret": "s"})]
    for coll, item, body in (("/programs", program, prog_body), ("/events", event, ev_body), ("/vens", ven, ven_body),
                             (f"/vens/{ven}/resources", resource, res_body), ("/reports", report, rep_body),
                             ("/subscriptions", sub, sub_body)):
        paths += [("POST", coll, body), ("PUT", f"{coll}/{item}", body)]
    paths += [("POST", "/_harness/faults", {"latency": "1ms"}), ("POST", "/_harness/stall", {"duration_s": 0})]
    paths = [(m, p if p.startswith("/_") else BASE + p, b) for m, p, b in paths]
    return Vtn(asyncio.get_running_loop(), client, tokens, paths + await _setup_31(create, tokens))


async def _setup_31(create: Any, tokens: dict[str, str]) -> list[tuple[str, str, Any]]:
    """The same objects through the 3.1.0 API (its bodies from the 3.1.0 dialect)."""
    d = dialects.get("openadr-3.1.0")

    async def create31(who: str, path: str, body: Any) -> str:
        return str(await create(who, "/../3.1.0" + path, body))

    prog_body = d.create_program("fuzz-program").json
    program = await create31("bl", "/programs", prog_body)
    ev_body = {**d.create_event(program, "fuzz-event", "2025-01-01T00:00:00Z", "PT1H", 1).json, "targets": ["t"]}
    event = await create31("bl", "/events", ev_body)
    ven_body = d.create_ven("fuzz").json
    ven = await create31("ven", "/vens", ven_body)
    res_body = d.create_resource(ven, "fuzz-site").json
    resource = await create31("ven", "/resources", res_body)
    rep_body = d.report(program, event, "fuzz", [Site("fuzz-site", 1.5, 3.0)], "2025-01-01T00:00:00Z", "PT15S").json
    report = await create31("ven", "/reports", rep_body)
    sub_body = {"clientName": "fuzz", "programID": program, "targets": ["t"], "objectOperations": [
        {"objects": ["EVENT"], "operations": ["CREATE"], "callbackUrl": "http://127.0.0.1:9/cb", "bearerToken": "x"}]}
    sub = await create31("ven", "/subscriptions", sub_body)
    paths: list[tuple[str, str, Any]] = []
    for coll, item, body in (("/programs", program, prog_body), ("/events", event, ev_body), ("/vens", ven, ven_body),
                             ("/resources", resource, res_body), ("/reports", report, rep_body),
                             ("/subscriptions", sub, sub_body)):
        paths += [("POST", BASE31 + coll, body), ("PUT", f"{BASE31}{coll}/{item}", body)]
    return paths


@pytest.fixture(scope="module")
def vtn() -> Iterator[Vtn]:
    loop = asyncio.new_event_loop()

    async def start() -> Vtn:
        client: TestClient[Any, Any] = TestClient(TestServer(make_app(VtnConfig())))
        await client.start_server()
        return await _setup(client)

    v = loop.run_until_complete(start())
    yield v
    loop.run_until_complete(v.client.close())
    loop.close()


def mutated(template: Any) -> st.SearchStrategy[Any]:
    """The valid body with any part (a field, an item, the whole) replaced by a value of any type, fields added."""
    if isinstance(template, dict):
        same = st.fixed_dictionaries({k: mutated(v) for k, v in template.items()})
        return st.one_of(same, st.builds(lambda d, extra: {**d, **extra}, same, st.dictionaries(keys, values,
                                                                                                 max_size=2)),
                         st.builds(lambda d, k: {x: y for x, y in d.items() if x != k}, same,
                                   st.sampled_from(sorted(template) or [""])), values)
    if isinstance(template, list):
        return st.one_of(st.lists(mutated(template[0]), max_size=3) if template else st.lists(values, max_size=3),
                         values)
    return st.one_of(st.just(template), values)


CONTENT_TYPES = ["application/json", "", "text/plain", "application/x-www-form-urlencoded",
                 "multipart/form-data; boundary=zz", "application/json; charset=utf-16"]


def _json_bytes(v: Any) -> bytes:
    return json.dumps(v, allow_nan=True).encode()  # NaN, Infinity and 10**40 go on the wire as is


@st.composite
def requests(draw: st.DrawFn, paths: list[tuple[str, str, Any]]) -> tuple[str, str, bytes, str, str]:
    method, path, template = draw(st.sampled_from(paths))
    body = draw(st.one_of(mutated(template).map(_json_bytes), st.binary(max_size=64),
                          st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
                          st.integers(1, 3000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n)))
    content_type = draw(st.sampled_from(CONTENT_TYPES))
    who = draw(st.sampled_from(["bl", "ven", "nobody"]))
    return method, path, body, content_type, who


def _check(vtn: Vtn, method: str, path: str, body: bytes, content_type: str, who: str) -> None:
    status, raw = vtn.call(method, path, body, content_type, who)
    assert status < 500, (method, path, body[:200], status, raw[:300])
    if status >= 400:
        doc = orjson.loads(raw)
        if path.endswith("/auth/token"):
            assert isinstance(doc.get("error"), str), raw  # OAuth2 error shape
        else:
            assert doc["status"] == status and isinstance(doc["title"], str) and isinstance(doc["detail"], str), raw


def test_vtn_never_answers_500_to_bad_client_input(vtn: Vtn) -> None:
    """Any body (mutated valid objects, wrong types, bytes, deep nesting) on every write endpoint, with any token:
    never a 500, every error a problem body; the control endpoints too."""

    @settings(max_examples=VTN_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                               HealthCheck.data_too_large])
    @given(req=requests(vtn.paths))
    def run(req: tuple[str, str, bytes, str, str]) -> None:
        try:
            _check(vtn, *req)
        finally:
            state = vtn.client.app[VTN_KEY]  # type: ignore[index]
            state.faults.set(VtnConfig().faults)  # a valid fuzzed fault setting must not slow the next request
            state.faults.stall_until = 0.0

    run()


@pytest.mark.parametrize("body", [b"1" * 5000, b"-" + b"9" * 400, b"1e999", b'{"programName": 1e999}',
                                  b'"\\ud800"', b"\xff\xfe{}", b"[" * 100_000, b"{}" * 10, b'{"a": NaN}'])
def test_vtn_odd_bodies_are_400(vtn: Vtn, body: bytes) -> None:
    """Huge numbers, lone surrogates, invalid UTF-8, 100 000 nested arrays, NaN: a 400 problem on each endpoint."""
    for method, path, _ in vtn.paths:
        if path.startswith("/_harness/") or path.endswith("/auth/token"):
            continue
        status, raw = vtn.call(method, path, body, "application/json", "bl" if "programs" in path or "events" in path
                               else "ven")
        assert status == 400, (method, path, body[:40], status, raw[:200])
        assert orjson.loads(raw)["status"] == 400
