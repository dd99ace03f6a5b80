"""Request-body checks: any JSON either passes or raises InvalidBody naming a field — never another error."""

from __future__ import annotations

import copy
from typing import Any, Callable

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.vtn import schema
from harness.vtn.schema import InvalidBody

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)

VALID: dict[str, tuple[Callable[[object], Any], dict[str, Any]]] = {
    "report": (schema.check_report, {
        "programID": "prg-1", "eventID": "evt-1", "clientName": "a", "reportName": None,
        "payloadDescriptors": [{"payloadType": "USAGE", "units": "KWH", "confidence": 90, "accuracy": 0.1}],
        "resources": [{"resourceName": "r", "intervalPeriod": {"start": "2026-01-01T00:00:00+01:00", "duration": "PT15M"},
                       "intervals": [{"id": 0, "payloads": [{"type": "USAGE", "values": [1.5, {"x": 1, "y": 2}]}]},
                                     {"id": 1, "intervalPeriod": {"start": "2026-01-01T00:15:00Z"},
                                      "payloads": [{"type": "USAGE", "values": [2]}]}]}],
    }),
    "event": (schema.check_event, {
        "programID": "prg-1", "eventName": "e", "priority": 0, "targets": [{"type": "GROUP", "values": ["g"]}],
        "reportDescriptors": [{"payloadType": "USAGE", "aggregate": False, "startInterval": -1, "repeat": 1}],
        "payloadDescriptors": [{"payloadType": "SIMPLE"}],
        "intervalPeriod": {"start": "2026-01-01T00:00:00Z", "duration": "PT1H", "randomizeStart": "PT5M"},
        "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]}],
    }),
    "program": (schema.check_program, {
        "programName": "p", "retailerName": None, "timeZoneOffset": "PT1H", "bindingEvents": True,
        "programDescriptions": [{"URL": "https://example.com"}],
        "payloadDescriptors": [{"objectType": "REPORT_PAYLOAD_DESCRIPTOR", "payloadType": "USAGE", "readingType": "x"}],
    }),
    "ven": (schema.check_ven, {"venName": "v", "attributes": [{"type": "A", "values": [True]}],
                               "resources": [{"resourceName": "r", "objectType": "RESOURCE", "venID": "ven-1"}]}),
    "subscription": (schema.check_subscription, {
        "clientName": "c", "programID": "prg-1",
        "objectOperations": [{"objects": ["EVENT"], "operations": ["CREATE"], "callbackUrl": "http://h/cb", "bearerToken": None}],
    }),
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_examples_pass(name: str) -> None:
    """A full, valid example of each object passes its check unchanged."""
    check, body = VALID[name]
    assert check(copy.deepcopy(body)) == body


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


def _replace(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    node = copy.copy(node)
    node[path[0]] = _replace(node[path[0]], path[1:], value)
    return node


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from(sorted(VALID)), pick=st.integers(0, 10_000), value=json_values, drop=st.booleans())
def test_mutated_bodies_pass_or_name_the_field(name: str, pick: int, value: Any, drop: bool) -> None:
    """Replacing or dropping any node of a valid body either still passes or raises InvalidBody — nothing else."""
    check, body = VALID[name]
    paths = _paths(body)
    path = paths[pick % len(paths)]
    if drop and path and isinstance(path[-1], str):
        mutated = copy.deepcopy(body)
        target = mutated
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    else:
        mutated = _replace(body, path, value)
    mutated = orjson.loads(orjson.dumps(mutated))  # what the server would have parsed
    try:
        check(mutated)
    except InvalidBody as exc:
        assert str(exc) and "\n" not in str(exc)


@settings(max_examples=200, deadline=None)
@given(value=json_values)
def test_arbitrary_json_never_crashes_a_check(value: Any) -> None:
    """Any JSON value given to any check passes or raises InvalidBody."""
    for check, _ in VALID.values():
        try:
            check(value)
        except InvalidBody:
            pass


def test_null_in_an_optional_field_means_absent() -> None:
    """`"randomizeStart": null` (as openadr3-client sends) passes and is stored absent; nullable fields keep null."""
    body = copy.deepcopy(VALID["event"][1])
    body["intervalPeriod"] = {"start": "2026-01-01T00:00:00Z", "duration": None, "randomizeStart": None}
    body["eventName"] = None
    checked = schema.check_event(body)
    assert checked["intervalPeriod"] == {"start": "2026-01-01T00:00:00Z"}
    assert checked["eventName"] is None


@pytest.mark.parametrize("op", ["FOO", "", "create!", 3])
def test_an_unknown_subscription_operation_is_rejected(op: Any) -> None:
    """Subscription operations are READ/CREATE/UPDATE/DELETE or GET/POST/PUT/DELETE; anything else names the field."""
    body = copy.deepcopy(VALID["subscription"][1])
    body["objectOperations"][0]["operations"] = ["GET", op]
    with pytest.raises(InvalidBody, match=r"objectOperations\[0\]\.operations\[1\]: expected one of"):
        schema.check_subscription(body)
    for ok in (["GET", "POST", "PUT", "DELETE"], ["read", "CREATE", "UPDATE"]):
        body["objectOperations"][0]["operations"] = ok
        schema.check_subscription(body)
