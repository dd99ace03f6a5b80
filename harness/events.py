"""Demand-response events as harness sees them: which VENs an event targets, schedule phases, and the
VEN's lenient view of an OpenADR 3 event object.

Pure: callers pass time in; targeting and phases are hashes of (seed, global VEN index), never a stream,
so they do not depend on sharding.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.fleet import hash64, uniform01

STREAM_REPORT_PHASE = 100
STREAM_POLL_PHASE = 101
STREAM_TARGET = 102


def phases(seed: int, ven_start: int, ven_stop: int, interval_s: float, stream: int = STREAM_REPORT_PHASE) -> npt.NDArray[np.float64]:
    """Each VEN's phase in [0, interval): a hash of (seed, stream, global VEN index)."""
    idx = np.arange(ven_start, ven_stop, dtype=np.uint64)
    return uniform01(hash64(seed, stream, idx)) * interval_s


def targeted(seed: int, event_index: int, ven_indices: npt.NDArray[np.int64], share: float) -> npt.NDArray[np.bool_]:
    """Which VENs the event_index-th DR event of a run targets: a share of the fleet chosen by hash."""
    if share >= 1.0:
        return np.ones(len(ven_indices), dtype=bool)
    u = uniform01(hash64(seed, STREAM_TARGET, event_index, np.asarray(ven_indices, dtype=np.uint64)))
    return u < share


@dataclass(frozen=True)
class EventView:
    """What a VEN needs from an event: its id, SIMPLE level, window, and which VENs it names (None: all)."""

    id: str
    level: int | None
    start_epoch_s: float | None
    duration_s: float | None
    ven_names: frozenset[str] | None

    def applies_to(self, ven_name: str) -> bool:
        return self.ven_names is None or ven_name in self.ven_names

    def end_epoch_s(self) -> float | None:
        if self.start_epoch_s is None or self.duration_s is None:
            return None
        return self.start_epoch_s + self.duration_s


def parse_time(value: Any) -> float | None:
    """RFC 3339 (with Z or an offset; a naive time is taken as UTC) to epoch seconds; None if not a time."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def parse_duration_iso(value: Any) -> float | None:
    """ISO 8601 durations of the forms OpenADR uses (PnDTnHnMnS, PnW) to seconds; None if not one."""
    import re

    if not isinstance(value, str):
        return None
    m = re.fullmatch(r"(-?)P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?", value.strip())
    if not m or value.strip() in ("P", "PT"):
        return None
    sign, w, d, h, mi, s = m.groups()
    total = int(w or 0) * 604800 + int(d or 0) * 86400 + int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0)
    return -total if sign else total


def _simple_level(event: dict[str, Any]) -> int | None:
    for interval in event.get("intervals") or []:
        if not isinstance(interval, dict):
            continue
        for payload in interval.get("payloads") or []:
            if isinstance(payload, dict) and payload.get("type") == "SIMPLE":
                values = payload.get("values") or []
                try:
                    return int(values[0])
                except (IndexError, TypeError, ValueError):
                    return None
    return None


def _ven_names(event: dict[str, Any]) -> frozenset[str] | None:
    names: set[str] = set()
    found = False
    for t in event.get("targets") or []:  # "targets": null is seen in the wild
        if isinstance(t, dict) and t.get("type") == "VEN_NAME":
            found = True
            names.update(str(v) for v in t.get("values") or [])
    return frozenset(names) if found else None


def view(event: Any) -> EventView | None:
    """A lenient view of one event object; None when it has no id (not something a VEN can act on)."""
    if not isinstance(event, dict) or event.get("id") is None:
        return None
    period = event.get("intervalPeriod") if isinstance(event.get("intervalPeriod"), dict) else {}
    return EventView(
        id=str(event["id"]),
        level=_simple_level(event),
        start_epoch_s=parse_time(period.get("start")),
        duration_s=parse_duration_iso(period.get("duration")),
        ven_names=_ven_names(event),
    )


def event_targets(ven_names: list[str] | None) -> list[dict[str, Any]] | None:
    """The 3.0.1 `targets` of an event aimed at these VENs (None: the whole program)."""
    return None if ven_names is None else [{"type": "VEN_NAME", "values": ven_names}]
