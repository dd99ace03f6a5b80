"""Reading one notification body, whatever channel carried it (webhook POST or MQTT message).

Edge (the dialect's lenient parsers count what they tolerate). It says what the body asks of a VEN: an event to
learn of, nothing (a deletion, another object type), or that it could not be understood.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.core.errors import Failure
from harness.dialects import Dialect, EventInfo
from harness.net.wire import decode

NOT_UNDERSTOOD = "notification_not_understood"
UNUSABLE = "notification_unusable"  # about an event, but not one a VEN can act on: it reads the event by id


@dataclass(frozen=True)
class ReadById:
    """A notification about event `event_id` that a VEN cannot act on (no program, no interval period: e.g. the
    reference 3.1 VTN's snake_case bodies). A real VEN reads the event by id; it is aware once that read is usable."""

    event_id: str


def usable(ev: EventInfo) -> bool:
    """Whether a VEN can act on this event as told: it names its program and has an interval period."""
    return bool(ev.program_id) and ev.duration_s is not None


def event_of(dialect: Dialect, raw: bytes) -> EventInfo | ReadById | str | None:
    """The event a notification body tells of; None when it asks nothing (a deleted event); ReadById when it
    names an event the VEN cannot act on from the body; NOT_UNDERSTOOD when it is not JSON, not a notification,
    or not about an event."""
    try:
        doc: Any = decode(raw)
        note = dialect.parse_notification(doc)
        events = dialect.parse_events([note.object]) if note is not None else []
    except Failure:
        return NOT_UNDERSTOOD
    if note is None or note.object_type not in ("EVENT", "UNKNOWN") or not events:
        return NOT_UNDERSTOOD
    if note.operation == "DELETE":
        return None
    ev = events[0]
    if not usable(ev):
        return ReadById(ev.id) if ev.id else NOT_UNDERSTOOD
    return ev
