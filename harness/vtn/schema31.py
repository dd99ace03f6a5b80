"""Request-body checks for the OpenADR 3.1.0 objects the VTN accepts (required fields, types, lengths).

Pure. Like `schema` for 3.0.1: a bad body raises `InvalidBody` naming the field path, and enumerations are
"enumerated or private strings". What 3.1.0 changes: targets are strings, payload descriptors need their
objectType, a report has no programID, vens and resources are discriminated by a request objectType.
"""

from __future__ import annotations

import re

from harness.vtn.schema import (
    InvalidBody, JsonObj, _array, _body, _boolean, _duration, _fail, _integer, _name, _nullable_str, _obj, _optional,
    _quality, _req, _string, _values_maps, date_time, interval_check, object_id, object_operation, report_body,
    report_resource_check,
)
from harness.vtn.schema import intervals as _intervals

VEN_VEN = "VEN_VEN_REQUEST"
BL_VEN = "BL_VEN_REQUEST"
VEN_RESOURCE = "VEN_RESOURCE_REQUEST"
BL_RESOURCE = "BL_RESOURCE_REQUEST"

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$")


def _targets(value: object, path: str) -> None:
    _array(value, path, _name)


def _optional_targets(body: JsonObj, p: str) -> None:
    _optional(body, "targets", p, _targets, nullable=True)


def interval_period(value: object, path: str) -> None:
    ip = _obj(value, path)
    p = path + "."
    _optional(ip, "start", p, date_time, nullable=False)
    _optional(ip, "duration", p, _duration, nullable=False)
    _optional(ip, "randomizeStart", p, _duration, nullable=False)


interval = interval_check(interval_period)


def intervals(value: object, path: str) -> None:
    if isinstance(value, list) and any(isinstance(iv, dict) and "intervalPeriod" in iv for iv in value):
        _array(value, path, interval)  # 3.1.0 interval periods need no start
    else:
        _intervals(value, path)


def _descriptor(value: object, path: str, object_type: str, *strings: str) -> tuple[JsonObj, str]:
    """A descriptor's payloadType and nullable `strings`, after its objectType when it must have one (a payload
    descriptor's, in 3.1.0; a report descriptor has none: "")."""
    d = _obj(value, path)
    p = path + "."
    if object_type:
        kind = _req(d, "objectType", p)
        if kind != object_type:
            raise _fail(p + "objectType", repr(object_type), kind)
    _name(_req(d, "payloadType", p), p + "payloadType")
    _nullable_str(d, p, *strings)
    return d, p


def event_payload_descriptor(value: object, path: str) -> None:
    _descriptor(value, path, "EVENT_PAYLOAD_DESCRIPTOR", "units", "currency")


def report_payload_descriptor(value: object, path: str) -> None:
    _quality(*_descriptor(value, path, "REPORT_PAYLOAD_DESCRIPTOR", "readingType", "units"))


def _any_payload_descriptor(value: object, path: str) -> None:
    d = _obj(value, path)
    if d.get("objectType") == "REPORT_PAYLOAD_DESCRIPTOR":
        report_payload_descriptor(d, path)
    elif d.get("objectType") == "EVENT_PAYLOAD_DESCRIPTOR":
        event_payload_descriptor(d, path)
    else:
        raise _fail(path + ".objectType", "'EVENT_PAYLOAD_DESCRIPTOR' or 'REPORT_PAYLOAD_DESCRIPTOR'", d.get("objectType"))


def report_descriptor(value: object, path: str) -> None:
    d, p = _descriptor(value, path, "", "readingType", "units")
    _optional_targets(d, p)
    for key in ("aggregate", "historical"):
        _optional(d, key, p, _boolean, nullable=False)
    for key in ("startInterval", "numIntervals", "frequency", "repeat"):
        _optional(d, key, p, _integer, nullable=False)
    _optional(d, "reportIntervals", p, _string, nullable=False)


def _program_description(value: object, path: str) -> None:
    d = _obj(value, path)
    url = _string(_req(d, "URL", path + "."), path + ".URL", 2, 8000)
    if not _URI.match(url):
        raise _fail(path + ".URL", "a URI", url)


def check_program(value: object) -> JsonObj:
    body = _body(value)
    _name(_req(body, "programName", ""), "programName")
    _optional(body, "intervalPeriod", "", interval_period, nullable=False)
    _optional(body, "programDescriptions", "", lambda v, p: _array(v, p, _program_description), nullable=True)
    _optional(body, "payloadDescriptors", "", lambda v, p: _array(v, p, _any_payload_descriptor), nullable=True)
    _optional(body, "attributes", "", _values_maps, nullable=True)
    _optional_targets(body, "")
    return body


def check_event(value: object) -> JsonObj:
    body = _body(value)
    object_id(_req(body, "programID", ""), "programID")
    _nullable_str(body, "", "eventName")
    _optional(body, "duration", "", _duration, nullable=False)
    _optional(body, "priority", "", lambda v, p: _integer(v, p, 0), nullable=True)
    _optional_targets(body, "")
    _optional(body, "reportDescriptors", "", lambda v, p: _array(v, p, report_descriptor), nullable=True)
    _optional(body, "payloadDescriptors", "", lambda v, p: _array(v, p, event_payload_descriptor), nullable=True)
    _optional(body, "intervalPeriod", "", interval_period, nullable=False)
    _optional(body, "intervals", "", intervals, nullable=False)
    return body


_report_resource = report_resource_check(interval_period, intervals)


def check_report(value: object) -> JsonObj:
    return report_body(value, _report_resource, report_payload_descriptor, program_id=False)


def _object_operation(value: object, path: str) -> None:
    object_operation(value, path, _string, 2, 8000)  # operations are any strings; the URL is 2..8000 long


def check_subscription(value: object) -> JsonObj:
    body = _body(value)
    _name(_req(body, "clientName", ""), "clientName")
    _optional(body, "programID", "", object_id, nullable=False)
    _array(_req(body, "objectOperations", ""), "objectOperations", _object_operation)
    _optional_targets(body, "")
    return body


def _request_type(body: JsonObj, *allowed: str) -> str:
    kind = _req(body, "objectType", "")
    if kind not in allowed:
        raise _fail("objectType", " or ".join(repr(a) for a in allowed), kind)
    return str(kind)


def _request_body(value: object, own: str, bl: str, name: str, *ids: str) -> JsonObj:
    """A VEN's `own` request for itself or its resource, or business logic's `bl` one (with clientID and targets);
    both name the object by `name` and refer to `ids`."""
    body = _body(value)
    kind = _request_type(body, own, bl)
    _name(_req(body, name, ""), name)
    for key in ids:
        object_id(_req(body, key, ""), key)
    _optional(body, "attributes", "", _values_maps, nullable=True)
    if kind == bl:
        _name(_req(body, "clientID", ""), "clientID")
        _optional_targets(body, "")
    return body


def check_ven(value: object) -> JsonObj:
    """A VEN_VEN_REQUEST (a VEN creating itself) or a BL_VEN_REQUEST (business logic, with clientID and targets)."""
    return _request_body(value, VEN_VEN, BL_VEN, "venName")


def check_resource(value: object) -> JsonObj:
    """A VEN_RESOURCE_REQUEST or a BL_RESOURCE_REQUEST (business logic, with clientID and targets)."""
    return _request_body(value, VEN_RESOURCE, BL_RESOURCE, "resourceName", "venID")


__all__ = ["InvalidBody", "check_event", "check_program", "check_report", "check_resource", "check_subscription",
           "check_ven"]
