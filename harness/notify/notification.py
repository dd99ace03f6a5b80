"""Reading one notification body, whatever channel carried it (webhook POST or MQTT message).

Edge (the dialect's lenient parsers count what they tolerate). It says what the body asks of a VEN: an event to
learn of, nothing (a deletion, another object type), or that it could not be understood.
"""

from __future__ import annotations

from typing import Any

from harness.core.errors import Failure
from harness.dialects import Dialect, EventInfo
from harness.net.wire import decode

NOT_UNDERSTOOD = "notification_not_understood"


def event_of(dialect: Dialect, raw: bytes) -> EventInfo | str | None:
    """The event a notification body tells of; None when it asks nothing (a deleted event); NOT_UNDERSTOOD when
    it is not JSON, not a notification, or not about an event."""
    try:
        doc: Any = decode(raw)
        note = dialect.parse_notification(doc)
        events = dialect.parse_events([note.object]) if note is not None else []
    except Failure:
        return NOT_UNDERSTOOD
    if note is None or note.object_type not in ("EVENT", "UNKNOWN") or not events:
        return NOT_UNDERSTOOD
    return None if note.operation == "DELETE" else events[0]
