"""Dialects: every request body conforms to the OpenAPI documents (3.0.1, 3.1.0; each operation and granularity),
and every interop deviation in the OpenADR digest (docs/targets.md) is tolerated and noted, never raised."""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from harness import dialects
from harness.core.errors import Failure
from harness.core.simclock import iso_duration, rfc3339
from harness.dialects import (
    EventInfo,
    LoadReading,
    Request,
    Signal,
    Site,
    get,
    lenient,
    resolve_granularity,
    sites_from_loads,
)
from harness.dialects.lenient import Deviations, parse_duration, parse_time
from harness.net.wire import decode
from tests.conftest import openapi, schema_errors

SPEC = {"openadr-3.0.1": "3.0.1", "openadr-3.1.0": "3.1.0"}
# The schema each request body must satisfy, per spec version.
BODY_SCHEMA = {
    "3.0.1": {"ven": "ven", "resource": "resource", "program": "program", "event": "event", "report": "report",
              "subscription": "subscription"},
    "3.1.0": {"ven": "venRequest", "resource": "resourceRequest", "program": "programRequest", "event": "eventRequest",
              "report": "reportRequest", "subscription": "subscriptionRequest"},
}
SITES = [Site("harness-ven-0000001-site-000", 0.0123, 2.5), Site("harness-ven-0000001-site-001", 0.2, 14.0)]
LOADS = [
    LoadReading("harness-ven-0000001-site-000", "harness-ven-0000001-site-000-base-0", "base", 0.01, 0.4),
    LoadReading("harness-ven-0000001-site-000", "harness-ven-0000001-site-000-ev-1", "ev", 0.0023, 2.1),
    LoadReading("harness-ven-0000001-site-001", "harness-ven-0000001-site-001-pv-0", "pv", -0.05, -3.0),
]
START, DURATION = rfc3339(1_790_000_000.5), iso_duration(15)
EVENT_DT = "2026-11-28T10:00:00Z"
EVENT_EPOCH = 1_795_860_000.0


def path_errors(version: str, req: Request) -> list[str]:
    """The request's method, path template and query parameter names exist in the OpenAPI document."""
    spec = openapi(version)
    url = urlsplit(req.path)
    for template, ops in spec["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, url.path) and req.method.lower() in ops:
            op = ops[req.method.lower()]
            known = {p["name"] for p in op.get("parameters", []) + ops.get("parameters", []) if "name" in p}
            return [f"unknown query parameter {q}" for q in parse_qs(url.query) if q not in known]
    return [f"no {req.method} {url.path} in openadr3-{version}.yaml"]


def _requests(name: str) -> list[tuple[str, Request]]:
    d = get(name)
    out = [
        ("ven", d.create_ven("harness-ven-0000001")),
        ("resource", d.create_resource("7", "harness-ven-0000001-site-000")),
        ("program", d.create_program("harness-program")),
        ("event", d.create_event("1", "harness-program-telemetry", rfc3339(0), iso_duration(3600), 2)),
        ("subscription", d.subscribe("1", "harness-ven-0000001", "http://10.0.0.5:8081/notify/ven-1", "cb-token",
                                     ["EVENT", "PROGRAM"], "crud")),
    ]
    out += [("report", r) for g in d.granularities for r in d.reports("12", "34", "harness-ven-0000001", SITES, LOADS, START, DURATION, g)]
    out.append(("report", d.report("12", "34", "harness-ven-0000001", SITES, START, DURATION)))
    return out


CASES = [(n, kind, req) for n in SPEC for kind, req in _requests(n)]


@pytest.mark.parametrize(("name", "kind", "req"), CASES, ids=[f"{n}-{k}-{i}" for i, (n, k, _) in enumerate(CASES)])
def test_every_request_body_validates(name: str, kind: str, req: Request) -> None:
    """Each operation's body (every granularity's reports too) validates against its spec version's schema."""
    version = SPEC[name]
    assert schema_errors(version, BODY_SCHEMA[version][kind], req.json) == []
    assert path_errors(version, req) == []


@pytest.mark.parametrize("name", list(SPEC))
def test_every_request_without_body_exists_in_the_spec(name: str) -> None:
    """Lookups, paging, unsubscribe, token and (3.1.0) auth discovery are operations of the spec; the token
    form is a valid clientCredentialRequest."""
    d, version = get(name), SPEC[name]
    reqs = [d.find_ven("harness-ven-0000001"), d.find_program("p"), d.find_events("1", skip=50, limit=50), d.unsubscribe("9"), d.token("ven-a", "s"),
            d.read_event("7")]
    if (auth := d.auth_server()) is not None:
        reqs.append(auth)
    assert [e for r in reqs for e in path_errors(version, r)] == []
    assert schema_errors(version, "clientCredentialRequest", d.token("ven-a", "s3cret", "read_all").form) == []
    assert (d.auth_server() is not None) == (version == "3.1.0")


def test_granularities_make_the_expected_reports() -> None:
    """"ven": one report with every resource; "resource": one per resource; "load": one per load reading."""
    d = get("openadr-3.0.1")
    args = ("12", "34", "v", SITES, LOADS, START, DURATION)
    ven, per_res, per_load = (d.reports(*args, g) for g in ("ven", "resource", "load"))
    assert [len(r.json["resources"]) for r in ven] == [2]
    assert [r.json["resources"][0]["resourceName"] for r in per_res] == [s.name for s in SITES]
    assert [r.json["reportName"] for r in per_load] == [ld.load_name for ld in LOADS]
    assert per_load[2].json["resources"][0]["intervals"][0]["payloads"] == [
        {"type": "USAGE", "values": [-0.05]}, {"type": "DEMAND", "values": [-3.0]}]
    assert ven[0] == d.report("12", "34", "v", SITES, START, DURATION)
    with pytest.raises(ValueError, match="granularity 'load' needs load readings"):
        d.reports("12", "34", "v", SITES, None, START, DURATION, "load")
    with pytest.raises(ValueError, match="granularity must be one of ven, resource, load, got 'site'"):
        d.reports(*args, "site")


def test_sites_from_loads_sums_per_site() -> None:
    """Load readings sum to per-site readings in first-seen order."""
    assert sites_from_loads(LOADS) == [Site(LOADS[0].site_name, 0.0123, 2.5), Site(LOADS[2].site_name, -0.05, -3.0)]


def test_3_1_0_differences() -> None:
    """3.1.0: top-level /resources with venID, no report.programID, VEN_VEN_REQUEST, /auth/server tokenURL."""
    d = get("openadr-3.1.0")
    assert d.create_resource("7", "r").path == "/resources" and d.create_resource("7", "r").json["venID"] == "7"
    assert "programID" not in d.report("12", "34", "v", SITES, START, DURATION).json
    assert d.create_ven("v").json == {"objectType": "VEN_VEN_REQUEST", "venName": "v"}
    assert d.parse_auth_server({"tokenURL": "https://auth.example/token"}) == "https://auth.example/token"
    assert d.token("a", "b", token_url="https://auth.example/token").path == "https://auth.example/token"
    assert d.parse_auth_server({}) is None and lenient.MISSING_FIELD in d.deviations.take()
    # a 3.0.1 report body is not a valid 3.1.0 one only by carrying programID; the 3.1.0 one lacks it
    assert schema_errors("3.0.1", "report", d.report("12", "34", "v", SITES, START, DURATION).json) != []


def test_subscription_operation_vocabularies() -> None:
    """"crud" is the 3.0.1 schema's READ/CREATE/..; "http" is 3.0.0's GET/POST/.. (and most VTNs'); each
    validates against the document that defines it."""
    d = get("openadr-3.0.1")
    crud = d.subscribe("1", "c", "https://h/cb", None, ["EVENT"], "crud").json
    http = d.subscribe("1", "c", "https://h/cb", None, ["EVENT"], "http").json
    assert crud["objectOperations"][0]["operations"] == ["CREATE", "UPDATE", "DELETE"]
    assert http["objectOperations"][0]["operations"] == ["POST", "PUT", "DELETE"]
    assert "bearerToken" not in crud["objectOperations"][0]
    assert schema_errors("3.0.0", "subscription", http) == []
    assert schema_errors("3.0.1", "subscription", http) != []
    assert schema_errors("3.1.0", "subscriptionRequest", get("openadr-3.1.0").subscribe(
        None, "c", "https://h/cb", "t", ["VEN"], "crud").json) == []
    with pytest.raises(ValueError, match="operations must be one of crud, http, got 'rest'"):
        d.subscribe("1", "c", "https://h/cb", None, ["EVENT"], "rest")


# ---- lenient timestamps and durations --------------------------------------------------------------------

@pytest.mark.parametrize(
    ("value", "epoch", "noted"),
    [
        ("2026-11-28T10:00:00Z", EVENT_EPOCH, False),
        ("2026-11-28T10:00:00.250Z", EVENT_EPOCH + 0.25, False),
        ("2026-11-28T11:00:00+01:00", EVENT_EPOCH, False),
        ("2026-11-28T10:00:00.123456789z", EVENT_EPOCH + 0.123456789, False),
        ("2026-11-28 10:00:00", EVENT_EPOCH, True),
        ("2026-11-28T10:00:00", EVENT_EPOCH, True),
        ("2026-11-28", EVENT_EPOCH - 36000, True),
        ("10:04:29", None, True),
        (EVENT_EPOCH, EVENT_EPOCH, True),
        (EVENT_EPOCH * 1000, EVENT_EPOCH, True),
        ("yesterday", None, True),
        ("2026-13-45T10:00:00Z", None, True),
        ("0001-01-01T00:00:00Z", None, False),
        ("0001-01-01", None, False),
        ([], None, True),
        (True, None, True),
        (None, None, False),
    ],
)
def test_odd_timestamps_are_best_effort_never_raise(value: Any, epoch: float | None, noted: bool) -> None:
    """RFC 3339 parses; `"10:04:29"`, `"2026-11-28 10:04:29"`, epochs and junk give a value or None, and are noted."""
    dev = Deviations()
    got = parse_time(value, dev)
    assert got == pytest.approx(epoch) if epoch is not None else got is None
    assert (lenient.TIMESTAMP in dev.peek() or lenient.TIME_WITHOUT_DATE in dev.peek()) == noted
    if value == "10:04:29":  # a time without a date is its own kind
        assert set(dev.peek()) == {lenient.TIME_WITHOUT_DATE}


@pytest.mark.parametrize(
    ("value", "seconds", "noted"),
    [("PT15M", 900.0, False), ("PT1H30M", 5400.0, False), ("PT0.5S", 0.5, False), ("P1D", 86400.0, False),
     ("P1W", 604800.0, False), ("P9999Y", math.inf, False), ("900", 900.0, True), (900, 900.0, True),
     ("00:15:00", 900.0, True), ("soon", None, True), (None, None, False)],
)
def test_durations_are_lenient(value: Any, seconds: float | None, noted: bool) -> None:
    """ISO 8601 durations parse (P9999Y is infinity); seconds and HH:MM:SS are tolerated and noted."""
    dev = Deviations()
    assert parse_duration(value, dev) == seconds
    assert (lenient.DURATION in dev.peek()) == noted


# ---- events ------------------------------------------------------------------------------------------------

def _event(**over: Any) -> dict[str, Any]:
    ev = {
        "id": "e1", "objectType": "EVENT", "programID": "p1", "eventName": "shed",
        "createdDateTime": "2026-11-28T09:00:00Z", "modificationDateTime": "2026-11-28T09:00:00Z",
        "intervalPeriod": {"start": EVENT_DT, "duration": "PT1H"},
        "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [2]}]}],
    }
    ev.update(over)
    return {k: v for k, v in ev.items() if v is not ...}


def test_event_parses_to_event_info() -> None:
    """A spec event becomes EventInfo: start, duration, SIMPLE level, created; no deviation."""
    d = get("openadr-3.0.1")
    [ev] = d.parse_events([_event(targets=[{"type": "VEN_NAME", "values": ["harness-ven-0000001"]}])])
    assert ev == EventInfo("e1", "p1", "shed", EVENT_EPOCH, 3600.0, Signal("SIMPLE", (2,), 2, 1), EVENT_EPOCH - 3600,
                           ("harness-ven-0000001",))
    assert d.deviations.peek() == {}


def test_events_with_odd_timestamps_and_missing_fields_never_raise() -> None:
    """Odd timestamps, missing modificationDateTime, integer ids, no eventName, null targets: parsed and noted."""
    d = get("openadr-3.1.0")
    evs = d.parse_events([
        _event(id=17, createdDateTime="10:04:29", modificationDateTime=..., eventName=..., targets=None),
        _event(id="e2", intervalPeriod={"start": "2026-11-28 10:00:00", "duration": "PT15M"},
               intervals=[{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]},
                          {"id": 1, "payloads": [{"type": "SIMPLE", "values": [3]}]}], targets=["group-1"]),
        _event(id=..., eventName="no id"),
        _event(id="e4", intervalPeriod=..., intervals=[{"id": 0, "intervalPeriod": {"start": EVENT_DT, "duration": "P9999Y"},
                                                        "payloads": [{"type": "PRICE", "values": [0.17]}]}]),
        _event(id="e5", intervals=[{"id": 0, "payloads": [{"type": "SIMPLE", "values": ["high"]}]}], programID=...),
        "not an event",
    ])
    assert [e.id for e in evs] == ["17", "e2", "e4", "e5"]
    assert (evs[0].created_epoch_s, evs[0].event_name, evs[0].targets) == (None, None, ())
    assert (evs[1].start_epoch_s, evs[1].duration_s, evs[1].signal.level, evs[1].targets) == (EVENT_EPOCH, 1800.0, 1, ("group-1",))
    assert (evs[2].start_epoch_s, evs[2].duration_s, evs[2].signal) == (EVENT_EPOCH, math.inf, Signal("PRICE", (0.17,), None, 1))
    assert (evs[3].program_id, evs[3].signal.level) == ("", None)
    dev = d.deviations.take()
    assert {lenient.TIMESTAMP, lenient.TIME_WITHOUT_DATE, lenient.MISSING_FIELD, lenient.ID_NOT_STRING} <= set(dev)
    assert dev[lenient.TIME_WITHOUT_DATE].example == "event created: '10:04:29'"


def test_event_listing_shapes() -> None:
    """null is no events, a single object is tolerated (noted), a JSON string of the array is unwrapped, junk is a Failure."""
    d = get("openadr-3.0.1")
    assert d.parse_events(None) == []
    assert [e.id for e in d.parse_events(_event())] == ["e1"]
    assert [e.id for e in d.parse_events('[{"id": "e9", "programID": "p"}]')] == ["e9"]
    with pytest.raises(Failure):
        d.parse_events(42)


# ---- notifications -------------------------------------------------------------------------------------------

def test_notification_parses_spec_body() -> None:
    """A spec notification gives object type, CRUD operation and the object."""
    n = get("openadr-3.1.0").parse_notification({"objectType": "EVENT", "operation": "CREATE", "object": _event(), "targets": ["g"]})
    assert n is not None and (n.object_type, n.operation, n.object["id"], n.targets) == ("EVENT", "CREATE", "e1", ("g",))


def test_notification_double_encoded_and_targets_null() -> None:
    """A JSON string holding the notification (and an object that is itself a JSON string), targets null: parsed."""
    import json

    d = get("openadr-3.0.1")
    inner = json.dumps({"objectType": "EVENT", "operation": "POST", "object": json.dumps(_event()), "targets": None})
    n = d.parse_notification(decode(json.dumps(inner).encode()))
    assert n is not None and (n.object_type, n.operation, n.object["eventName"], n.targets) == ("EVENT", "CREATE", "shed", ())
    assert d.parse_notification(json.dumps(inner)) == n
    dev = d.deviations.take()
    assert set(dev) == {lenient.DOUBLE_ENCODED_NOTIFICATION} and dev[lenient.DOUBLE_ENCODED_NOTIFICATION].count == 4


def test_notification_missing_fields_and_http_verbs() -> None:
    """HTTP verbs map to CRUD; a missing objectType comes from the object; no object at all is None, noted."""
    d = get("openadr-3.0.1")
    assert [d.parse_notification({"operation": v, "object": _event()}).operation for v in ("PUT", "DELETE", "get", "CREATE")] == [  # type: ignore[union-attr]
        "UPDATE", "DELETE", "READ", "CREATE"]
    n = d.parse_notification({"object": {"objectType": "PROGRAM", "id": "1"}})
    assert n is not None and (n.object_type, n.operation) == ("PROGRAM", "UNKNOWN")
    assert d.parse_notification({"objectType": "EVENT", "operation": "CREATE"}) is None
    assert d.parse_notification([]) is None and d.parse_notification("ok") is None
    assert {lenient.MISSING_FIELD, lenient.UNPARSEABLE} <= set(d.deviations.take())


def test_snake_notification_keys() -> None:
    """The snake dialect reads object_type / operation / object."""
    n = get("snake-case-example").parse_notification({"object_type": "event", "operation": "POST", "object": {"id": "1"}})
    assert n is not None and (n.object_type, n.operation) == ("EVENT", "CREATE")


# ---- errors, tokens and ids -------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("status", "body", "text", "kind"),
    [
        (409, {"type": "about:blank", "title": "Conflict", "status": 409, "detail": "venName exists"}, "409: Conflict: venName exists", None),
        (409, {"title": "Conflict", "status": "409"}, "409: Conflict", lenient.STATUS_STRING),
        (400, {"title": "Bad Request", "status": 404}, "400 (problem.status 404): Bad Request", None),
        (409, [], "409 (body [])", lenient.NON_PROBLEM_BODY),
        (500, {"message": "boom", "error": "internal"}, "500: internal: boom", lenient.NON_PROBLEM_BODY),
        (403, {"foo": 1}, '403 {"foo": 1}', lenient.NON_PROBLEM_BODY),
        (502, "Bad gateway from nginx", "502 Bad gateway from nginx", lenient.NON_PROBLEM_BODY),
        (401, None, "401 (no body)", lenient.NON_PROBLEM_BODY),
        (409, '{"title": "Conflict", "status": 409}', "409: Conflict", lenient.DOUBLE_ENCODED),
    ],
)
def test_problem_bodies_are_described(status: int, body: Any, text: str, kind: str | None) -> None:
    """Problem bodies, string statuses, `[]`, other error shapes, text and no body: one short line, noted."""
    d = get("openadr-3.0.1")
    assert d.parse_problem(status, body) == text
    assert list(d.deviations.take()) == ([kind] if kind else [])


def test_token_oddities() -> None:
    """`scope` as an array, `expires_in` as a string, no expires_in (never expires), a token response encoded twice:
    accepted, each noted as its own kind."""
    d = get("openadr-3.0.1")
    tok = d.parse_token({"access_token": "t", "token_type": "Bearer", "scope": ["read_all"], "expires_in": "60"})
    assert tok.expires_in_s == 60.0 and d.parse_token({"access_token": "t"}).expires_in_s is None
    assert d.parse_token('{"access_token": "t2", "expires_in": 5}').access_token == "t2"
    assert {k: v.count for k, v in d.deviations.take().items()} == {
        lenient.SCOPE_ARRAY: 1, lenient.EXPIRES_IN_STRING: 1, lenient.EXPIRES_IN_MISSING: 1, lenient.DOUBLE_ENCODED: 1}
    assert d.token_from_create_ven({"id": "1", "venName": "v"}) is None


def test_sequential_integer_ids() -> None:
    """Ids as JSON numbers are ids (noted); sequential ids as strings are plain spec ids."""
    d = get("openadr-3.0.1")
    assert d.parse_id({"id": "12"}) == "12" and d.deviations.peek() == {}
    assert d.parse_id({"id": 17}) == "17" and d.parse_first_id([{"venName": "x"}, {"id": 3}]) == "3"
    assert d.deviations.take()[lenient.ID_NOT_STRING].count == 2
    assert [p.id for p in d.parse_programs([{"id": 5, "programName": "p"}, {"programName": "no id"}])] == ["5"]


def test_deviations_keep_count_and_first_example() -> None:
    """A tally keeps one example per kind and empties on take()."""
    dev = Deviations()
    for v in ("10:04:29", "11:00:00"):
        parse_time(v, dev, "created")
    assert dev.take() == {lenient.TIME_WITHOUT_DATE: lenient.Deviation(2, "created: '10:04:29'")} and dev.take() == {}


# ---- registry ------------------------------------------------------------------------------------------------------

def test_registry_lists_builtins_and_accepts_plugins() -> None:
    """The three built-in dialects are listed; register() adds a plug-in by name; get() makes fresh instances."""
    assert {"openadr-3.0.1", "openadr-3.1.0", "snake-case-example"} <= set(dialects.names())
    from harness.dialects.snake import SnakeCase

    class Mine(SnakeCase):
        name = "test-plugin"

    dialects.register("test-plugin", Mine)
    try:
        assert get("test-plugin").name == "test-plugin" and get("test-plugin") is not get("test-plugin")
    finally:
        dialects._REGISTRY.pop("test-plugin")


def test_resolve_granularity() -> None:
    """No request means the dialect's default; an unknown or unsupported one is a one-line error naming the key."""
    d = get("openadr-3.0.1")
    assert [resolve_granularity(d, g) for g in (None, "ven", "resource", "load")] == ["ven", "ven", "resource", "load"]
    with pytest.raises(ValueError, match="target.granularity must be one of ven, resource, load, got 'x'"):
        resolve_granularity(d, "x")


def test_a_notification_a_ven_cannot_act_on_names_the_event_to_read_by_id() -> None:
    """The 3.1.0 notification is an event a VEN can act on; the same body snake_cased (as the reference 3.1 VTN
    sends it: no programID, no intervalPeriod to read) is ReadById(its id); without an id it is not understood."""
    import orjson

    from harness.dialects import get
    from harness.notify.notification import NOT_UNDERSTOOD, ReadById, event_of
    from harness.vtn.fanout import notification, snake_case

    d = get("openadr-3.1.0")
    obj = {"id": "7", "objectType": "EVENT", "programID": "1", "eventName": "p-dr-0-1",
           "intervalPeriod": {"start": "2026-12-06T10:01:00Z", "duration": "PT30M"},
           "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [2]}]}]}
    camel = event_of(d, notification("EVENT", "CREATE", obj))
    assert not isinstance(camel, (str, ReadById)) and camel is not None
    assert (camel.id, camel.program_id, camel.duration_s, camel.signal.level) == ("7", "1", 1800.0, 2)
    snake = snake_case(notification("EVENT", "CREATE", obj))
    assert b'"program_id"' in snake and b'"interval_period"' in snake
    assert event_of(d, snake) == ReadById("7")
    no_id = orjson.loads(snake)
    del no_id["object"]["id"]
    assert event_of(d, orjson.dumps(no_id)) == NOT_UNDERSTOOD
