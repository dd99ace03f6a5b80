"""Request-body checks for the OpenADR 3.0.1 objects the VTN accepts (required fields, types, lengths).

Pure. A bad body raises `InvalidBody` whose message names the field path (`resources[0].intervals[1].id`).
Enumerations are "enumerated or private strings": any string is accepted where the schema lists an enum.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Callable

JsonObj = dict[str, Any]

OBJECT_ID = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_DATE_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
_DURATION = re.compile(
    r"^(-?)P(?=\d|T\d)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)([DW]))?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)
_INT32 = (-(2**31), 2**31 - 1)

# Fields the VTN provisions; a client's values for them are ignored.
VTN_FIELDS = ("id", "createdDateTime", "modificationDateTime", "objectType")


class InvalidBody(ValueError):
    """The request body does not match the schema; the message says where and why."""


# JSON's name for a value's type (bool before int: a bool is an int in Python).
_TYPE_NAMES = ((type(None), "null"), (bool, "boolean"), ((int, float), "number"), (str, "string"), (list, "array"),
               (dict, "object"))


def _type_name(value: object) -> str:
    return next((name for t, name in _TYPE_NAMES if isinstance(value, t)), type(value).__name__)


def _fail(path: str, expected: str, value: object) -> InvalidBody:
    shown = repr(value) if isinstance(value, (str, int, float)) and len(repr(value)) <= 60 else _type_name(value)
    return InvalidBody(f"{path}: expected {expected}, got {shown}")


def _obj(value: object, path: str) -> JsonObj:
    if not isinstance(value, dict):
        raise _fail(path, "an object", value)
    return value


def _req(obj: JsonObj, key: str, path: str) -> object:
    if key not in obj:
        raise InvalidBody(f"{path}{key}: required field is missing")
    return obj[key]


def _string(value: object, path: str, min_len: int = 0, max_len: int | None = None) -> str:
    if not isinstance(value, str):
        raise _fail(path, "a string", value)
    if len(value) < min_len or (max_len is not None and len(value) > max_len):
        bounds = f"{min_len}..{max_len}" if max_len is not None else f">= {min_len}"
        raise InvalidBody(f"{path}: length must be {bounds}, got {len(value)}")
    return value


def _name(value: object, path: str) -> str:
    return _string(value, path, 1, 128)


def object_id(value: object, path: str) -> str:
    if not isinstance(value, str) or not OBJECT_ID.match(value):
        raise _fail(path, "an object id (1..128 of [a-zA-Z0-9_-])", value)
    return value


def _integer(value: object, path: str, lo: int = _INT32[0], hi: int = _INT32[1]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, "an integer", value)
    if not lo <= value <= hi:
        raise InvalidBody(f"{path}: must be {lo}..{hi}, got {value}")
    return value


def _number(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(path, "a number", value)
    return float(value)


def _boolean(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(path, "a boolean", value)
    return value


def date_time(value: object, path: str) -> str:
    if not isinstance(value, str) or not _DATE_TIME.match(value):
        raise _fail(path, "an RFC 3339 date-time with a zone", value)
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise _fail(path, "a valid RFC 3339 date-time", value) from None
    return value


def _duration(value: object, path: str) -> str:
    if not isinstance(value, str) or not _DURATION.match(value):
        raise _fail(path, "an ISO 8601 duration (PT15M)", value)
    return value


def _array(value: object, path: str, item: Callable[[object, str], object]) -> None:
    if not isinstance(value, list):
        raise _fail(path, "an array", value)
    for i, v in enumerate(value):
        item(v, f"{path}[{i}]")


def _optional(obj: JsonObj, key: str, path: str, check: Callable[[object, str], object], nullable: bool) -> None:
    if key in obj:
        value = obj[key]
        if value is None:
            if not nullable:
                # Clients send null for unset optional fields (openadr3-client: "randomizeStart": null): it means
                # absent, and is stored absent, since the schema has no null there for readers to expect.
                del obj[key]
            return
        check(value, path + key)


def _value_item(value: object, path: str) -> None:
    if value is None or isinstance(value, (int, float, str, bool)):
        if value is None:
            raise _fail(path, "a number, string, boolean or point", value)
        return
    point = _obj(value, path)
    _number(_req(point, "x", path + "."), path + ".x")
    _number(_req(point, "y", path + "."), path + ".y")


def values_map(value: object, path: str) -> None:
    vm = _obj(value, path)
    p = path + "."
    _name(_req(vm, "type", p), p + "type")
    _array(_req(vm, "values", p), p + "values", _value_item)


def interval_period(value: object, path: str) -> None:
    ip = _obj(value, path)
    p = path + "."
    date_time(_req(ip, "start", p), p + "start")
    _optional(ip, "duration", p, _duration, nullable=False)
    _optional(ip, "randomizeStart", p, _duration, nullable=False)


Check = Callable[[object, str], None]


def interval_check(period: Check) -> Check:
    """The check of one interval whose optional intervalPeriod is checked by `period` (3.0.1 and 3.1.0 differ)."""

    def interval(value: object, path: str) -> None:
        iv = _obj(value, path)
        p = path + "."
        _integer(_req(iv, "id", p), p + "id")
        _optional(iv, "intervalPeriod", p, period, nullable=False)
        _array(_req(iv, "payloads", p), p + "payloads", values_map)

    return interval


interval = interval_check(interval_period)


_SCALARS = frozenset({int, float, str, bool})


def _plain_intervals(value: object) -> bool:
    """True when `value` is certainly a valid interval list of the common shape (no intervalPeriod, scalar
    values): the hot path of every report, checked without building field paths. False means "check in
    detail", which then either passes or names the bad field."""
    if type(value) is not list:
        return False
    lo, hi = _INT32
    scalars = _SCALARS
    for iv in value:
        if type(iv) is not dict or "intervalPeriod" in iv:
            return False
        i = iv.get("id")
        payloads = iv.get("payloads")
        if type(i) is not int or not lo <= i <= hi or type(payloads) is not list:
            return False
        for vm in payloads:
            if type(vm) is not dict:
                return False
            t = vm.get("type")
            values = vm.get("values")
            if type(t) is not str or not 0 < len(t) <= 128 or type(values) is not list:
                return False
            for x in values:
                if type(x) not in scalars:
                    return False
    return True


def intervals(value: object, path: str) -> None:
    if not _plain_intervals(value):
        _array(value, path, interval)


def _values_maps(value: object, path: str) -> None:
    _array(value, path, values_map)


def _nullable_str(obj: JsonObj, p: str, *keys: str) -> None:
    for key in keys:
        _optional(obj, key, p, _string, nullable=True)


def _descriptor(value: object, path: str, *strings: str) -> tuple[JsonObj, str]:
    d = _obj(value, path)
    p = path + "."
    _name(_req(d, "payloadType", p), p + "payloadType")
    _optional(d, "objectType", p, _string, nullable=False)
    _nullable_str(d, p, *strings)
    return d, p


def _quality(d: JsonObj, p: str) -> None:
    _optional(d, "accuracy", p, _number, nullable=True)
    _optional(d, "confidence", p, lambda v, q: _integer(v, q, 0, 100), nullable=True)


def event_payload_descriptor(value: object, path: str) -> None:
    _descriptor(value, path, "units", "currency")


def report_payload_descriptor(value: object, path: str) -> None:
    _quality(*_descriptor(value, path, "readingType", "units"))


def _any_payload_descriptor(value: object, path: str) -> None:
    d = _obj(value, path)
    if d.get("objectType") == "REPORT_PAYLOAD_DESCRIPTOR":
        report_payload_descriptor(d, path)
    else:  # an event's descriptor, with a report's optional fields allowed
        _quality(*_descriptor(d, path, "units", "currency", "readingType"))


def report_descriptor(value: object, path: str) -> None:
    d = _obj(value, path)
    p = path + "."
    _name(_req(d, "payloadType", p), p + "payloadType")
    _nullable_str(d, p, "readingType", "units")
    _optional(d, "targets", p, _values_maps, nullable=True)
    for key in ("aggregate", "historical"):
        _optional(d, key, p, _boolean, nullable=False)
    for key in ("startInterval", "numIntervals", "frequency", "repeat"):
        _optional(d, key, p, _integer, nullable=False)


def _program_description(value: object, path: str) -> None:
    d = _obj(value, path)
    _string(_req(d, "URL", path + "."), path + ".URL")


def _body(value: object) -> JsonObj:
    if not isinstance(value, dict):
        raise _fail("body", "a JSON object", value)
    return value


def check_program(value: object) -> JsonObj:
    body = _body(value)
    _name(_req(body, "programName", ""), "programName")
    _nullable_str(
        body, "", "programLongName", "retailerName", "retailerLongName", "programType", "country",
        "principalSubdivision",
    )
    _optional(body, "timeZoneOffset", "", _duration, nullable=False)
    _optional(body, "intervalPeriod", "", interval_period, nullable=False)
    _optional(body, "programDescriptions", "", lambda v, p: _array(v, p, _program_description), nullable=True)
    _optional(body, "bindingEvents", "", _boolean, nullable=True)
    _optional(body, "localPrice", "", _boolean, nullable=True)
    _optional(body, "payloadDescriptors", "", lambda v, p: _array(v, p, _any_payload_descriptor), nullable=True)
    _optional(body, "targets", "", _values_maps, nullable=True)
    return body


def check_event(value: object) -> JsonObj:
    body = _body(value)
    object_id(_req(body, "programID", ""), "programID")
    _nullable_str(body, "", "eventName")
    _optional(body, "priority", "", lambda v, p: _integer(v, p, 0), nullable=True)
    _optional(body, "targets", "", _values_maps, nullable=True)
    _optional(body, "reportDescriptors", "", lambda v, p: _array(v, p, report_descriptor), nullable=True)
    _optional(body, "payloadDescriptors", "", lambda v, p: _array(v, p, event_payload_descriptor), nullable=True)
    _optional(body, "intervalPeriod", "", interval_period, nullable=False)
    intervals(_req(body, "intervals", ""), "intervals")
    return body


def report_resource_check(period: Check, ivs: Check) -> Check:
    """The check of one resource of a report, its interval period and intervals checked by `period` and `ivs`."""

    def report_resource(value: object, path: str) -> None:
        r = _obj(value, path)
        p = path + "."
        _name(_req(r, "resourceName", p), p + "resourceName")
        _optional(r, "intervalPeriod", p, period, nullable=False)
        ivs(_req(r, "intervals", p), p + "intervals")

    return report_resource


_report_resource = report_resource_check(interval_period, intervals)


def check_report(value: object) -> JsonObj:
    return report_body(value, _report_resource, report_payload_descriptor, program_id=True)


def report_body(value: object, resource: Check, descriptor: Check, *, program_id: bool) -> JsonObj:
    """A report's body, its resources and payload descriptors checked by the version's own checks: 3.0 names its
    program and event; 3.1.0 its event alone."""
    body = _body(value)
    if program_id:
        object_id(_req(body, "programID", ""), "programID")
    object_id(_req(body, "eventID", ""), "eventID")
    _name(_req(body, "clientName", ""), "clientName")
    _nullable_str(body, "", "reportName")
    _optional(body, "payloadDescriptors", "", lambda v, p: _array(v, p, descriptor), nullable=True)
    _array(_req(body, "resources", ""), "resources", resource)
    return body


# Subscription operations in either vocabulary: 3.0.1's enum and the HTTP methods of 3.0.0 and most implementations.
OPERATIONS = frozenset({"READ", "CREATE", "UPDATE", "DELETE", "GET", "POST", "PUT"})


def _operation(value: object, path: str) -> None:
    if not isinstance(value, str) or value.upper() not in OPERATIONS:
        raise _fail(path, f"one of {', '.join(sorted(OPERATIONS))}", value)


def object_operation(value: object, path: str, operation: Callable[[object, str], object] = _operation,
                     url_min: int = 0, url_max: int | None = None) -> None:
    """One subscription's objectOperation; 3.1.0 names its operations by any string and bounds the URL's length."""
    op = _obj(value, path)
    p = path + "."
    _array(_req(op, "objects", p), p + "objects", _string)
    _array(_req(op, "operations", p), p + "operations", operation)
    url = _string(_req(op, "callbackUrl", p), p + "callbackUrl", url_min, url_max)
    if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://[^\s]+$", url):
        raise _fail(p + "callbackUrl", "an absolute URI (http://host/path)", url)
    _optional(op, "bearerToken", p, _string, nullable=True)


def check_subscription(value: object) -> JsonObj:
    body = _body(value)
    _name(_req(body, "clientName", ""), "clientName")
    object_id(_req(body, "programID", ""), "programID")
    _array(_req(body, "objectOperations", ""), "objectOperations", object_operation)
    _optional(body, "targets", "", _values_maps, nullable=True)
    return body


def _resource_fields(body: JsonObj, p: str) -> None:
    _name(_req(body, "resourceName", p), p + "resourceName")
    _optional(body, "attributes", p, _values_maps, nullable=True)
    _optional(body, "targets", p, _values_maps, nullable=True)


def _nested_resource(value: object, path: str) -> None:
    r = _obj(value, path)
    p = path + "."
    _resource_fields(r, p)
    for key in ("id", "venID"):
        _optional(r, key, p, object_id, nullable=False)
    for key in ("createdDateTime", "modificationDateTime"):
        _optional(r, key, p, date_time, nullable=False)
    if "objectType" in r and r["objectType"] != "RESOURCE":
        raise _fail(p + "objectType", "'RESOURCE'", r["objectType"])


def check_resource(value: object) -> JsonObj:
    body = _body(value)
    _resource_fields(body, "")
    return body


def check_ven(value: object) -> JsonObj:
    body = _body(value)
    _name(_req(body, "venName", ""), "venName")
    _optional(body, "attributes", "", _values_maps, nullable=True)
    _optional(body, "targets", "", _values_maps, nullable=True)
    _optional(body, "resources", "", lambda v, p: _array(v, p, _nested_resource), nullable=True)
    return body
