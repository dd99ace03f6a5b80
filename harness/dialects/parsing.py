"""Lenient parsers of VTN objects (events, programs, notifications), shared by dialects through their field names.

Pure. An odd value becomes None or a default and is noted in the dialect's Deviations; only a reply that is
not a list of objects at all raises Failure(PROTOCOL).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from harness.core.errors import PROTOCOL, Failure
from harness.dialects import EventInfo, Notification, ProgramInfo, Signal
from harness.dialects.lenient import (
    DOUBLE_ENCODED_NOTIFICATION,
    MISSING_FIELD,
    NO_CREATED,
    UNPARSEABLE,
    Deviations,
    object_id,
    parse_duration,
    parse_time,
    targets,
    unwrap_json,
)


@dataclass(frozen=True)
class Keys:
    """A dialect's field names for the objects parsed here."""

    program_id: str = "programID"
    program_name: str = "programName"
    event_name: str = "eventName"
    interval_period: str = "intervalPeriod"
    randomize_start: str = "randomizeStart"
    event_duration: str = "duration"  # 3.1.0 event.duration (loops the intervals)
    created: str = "createdDateTime"
    modified: str = "modificationDateTime"
    object_type: str = "objectType"
    operation: str = "operation"
    object: str = "object"


CAMEL = Keys()
HTTP_TO_CRUD = {"POST": "CREATE", "PUT": "UPDATE", "PATCH": "UPDATE", "GET": "READ", "DELETE": "DELETE"}


def items(doc: Any, what: str, dev: Deviations) -> list[dict[str, Any]]:
    """A reply that lists objects: a JSON array (null is empty; a single object is tolerated and noted)."""
    doc = unwrap_json(doc, dev, what)
    if doc is None:
        return []
    if isinstance(doc, dict):
        dev.note(UNPARSEABLE, f"{what}: an object where an array was expected")
        return [doc]
    if not isinstance(doc, list):
        raise Failure(PROTOCOL, f"{what}: expected a JSON array, got {type(doc).__name__}")
    return [d for d in doc if isinstance(d, dict)]


def programs(doc: Any, keys: Keys, dev: Deviations) -> list[ProgramInfo]:
    out = []
    for item in items(doc, "programs", dev):
        pid = object_id(item.get("id"), dev, "program.id")
        if pid is None:
            dev.note(MISSING_FIELD, "program.id")
            continue
        if keys.created and keys.created not in item:
            dev.note(NO_CREATED, f"program {pid}")
        name = item.get(keys.program_name)
        out.append(ProgramInfo(pid, name if isinstance(name, str) else None))
    return out


def events(doc: Any, keys: Keys, dev: Deviations) -> list[EventInfo]:
    out = []
    for item in items(doc, "events", dev):
        ev = event(item, keys, dev)
        if ev is not None:
            out.append(ev)
    return out


def event(item: dict[str, Any], keys: Keys, dev: Deviations) -> EventInfo | None:
    """One event object; None (noted) when it has no id."""
    eid = object_id(item.get("id"), dev, "event.id")
    if eid is None:
        dev.note(MISSING_FIELD, "event.id")
        return None
    program_id = object_id(item.get(keys.program_id), dev, "event.programID")
    if program_id is None:
        dev.note(MISSING_FIELD, f"event.{keys.program_id}")
    if keys.created and keys.created not in item:
        dev.note(NO_CREATED, f"event {eid}")
    if keys.modified and keys.modified not in item:
        dev.note(MISSING_FIELD, f"event.{keys.modified}")
    name = item.get(keys.event_name)
    intervals = [i for i in item.get("intervals") or [] if isinstance(i, dict)]
    period = _dict(item.get(keys.interval_period))
    first_period = _dict(intervals[0].get(keys.interval_period)) if intervals else {}
    start = parse_time(period.get("start", first_period.get("start")), dev, "event start")
    spread = period.get(keys.randomize_start, first_period.get(keys.randomize_start))
    randomize = parse_duration(spread, dev, "randomizeStart") if spread is not None else None
    return EventInfo(
        id=eid,
        program_id=program_id or "",
        event_name=name if isinstance(name, str) else None,
        start_epoch_s=start,
        duration_s=_event_duration(item, keys, period, intervals, dev),
        signal=_signal(intervals),
        created_epoch_s=parse_time(item.get(keys.created), dev, "event created") if keys.created else None,
        targets=targets(item.get("targets")),
        randomize_start_s=randomize if randomize is not None and 0 < randomize < math.inf else 0.0,
    )


def _event_duration(
    item: dict[str, Any], keys: Keys, period: dict[str, Any], intervals: list[dict[str, Any]], dev: Deviations
) -> float | None:
    if item.get(keys.event_duration) is not None:
        return parse_duration(item.get(keys.event_duration), dev, "event duration")
    default = parse_duration(period.get("duration"), dev, "event duration")
    if not intervals:
        return default
    total = 0.0
    for iv in intervals:
        d = parse_duration(_dict(iv.get(keys.interval_period)).get("duration"), dev, "interval duration")
        d = default if d is None else d
        if d is None:
            return None
        total += d
    return math.inf if math.isinf(total) else total


def _signal(intervals: list[dict[str, Any]]) -> Signal:
    payloads = [p for p in (intervals[0].get("payloads") or []) if isinstance(p, dict)] if intervals else []
    chosen = next((p for p in payloads if p.get("type") == "SIMPLE"), payloads[0] if payloads else None)
    if chosen is None:
        return Signal("", (), None, len(intervals))
    ptype = str(chosen.get("type") or "")
    raw = chosen.get("values")
    values = tuple(raw) if isinstance(raw, list) else (() if raw is None else (raw,))
    level = None
    if ptype == "SIMPLE" and values:
        try:
            level = int(float(values[0]))
        except (TypeError, ValueError):
            level = None
    return Signal(ptype, values, level, len(intervals))


def notification(doc: Any, keys: Keys, dev: Deviations) -> Notification | None:
    """A notification body: JSON-in-JSON (the whole body or its object) is unwrapped; `targets: null` is no
    targets; a missing objectType is taken from the object. None (noted) when there is no object at all."""
    doc = unwrap_json(doc, dev, "notification", DOUBLE_ENCODED_NOTIFICATION)
    if not isinstance(doc, dict):
        dev.note(UNPARSEABLE, f"notification: {str(doc)[:80]}")
        return None
    obj = unwrap_json(doc.get(keys.object), dev, "notification.object", DOUBLE_ENCODED_NOTIFICATION)
    if not isinstance(obj, dict):
        dev.note(UNPARSEABLE, f"notification without an object: {str(doc)[:80]}")
        return None
    otype = doc.get(keys.object_type) or obj.get(keys.object_type)
    if keys.object_type not in doc:
        dev.note(MISSING_FIELD, f"notification.{keys.object_type}")
    op = doc.get(keys.operation)
    if not isinstance(op, str) or not op:
        dev.note(MISSING_FIELD, f"notification.{keys.operation}")
        operation = "UNKNOWN"
    else:
        operation = HTTP_TO_CRUD.get(op.upper(), op.upper())
    return Notification(str(otype or "UNKNOWN").upper(), operation, obj, targets(doc.get("targets")))


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
