"""The simulated clock: maps run time (seconds since t0) to simulated UTC instants, and formats them.

Pure: callers pass elapsed run time in; timestamps are RFC 3339 with an explicit zone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone


@dataclass(frozen=True)
class SimClock:
    start_epoch_s: float  # simulated instant at run time 0
    time_scale: float = 1.0  # simulated seconds per wall second

    def at(self, run_s: float) -> float:
        return self.start_epoch_s + run_s * self.time_scale


# Whole seconds already formatted: reports come thousands a second, and in a backlog their interval starts
# jump between seconds, so a last-second cache alone missed (strftime per report). Bounded: cleared when full.
_seconds: dict[int, str] = {}
_SECONDS_KEPT = 4096
_durations: dict[float, str] = {}  # iso_duration's texts, bounded the same way


def rfc3339(epoch_s: float) -> str:
    """`2026-11-28T10:04:29.123Z` (millisecond precision, explicit UTC zone)."""
    frac, whole = math.modf(epoch_s)  # rounded to the microsecond as datetime.fromtimestamp does, then truncated
    micro = round(frac * 1e6)
    sec = int(whole) + micro // 1_000_000
    milli = (micro % 1_000_000) // 1000
    head = _seconds.get(sec)
    if head is None:
        if len(_seconds) >= _SECONDS_KEPT:
            _seconds.clear()
        head = _seconds[sec] = datetime.fromtimestamp(sec, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
    return f"{head}{milli:03d}Z"


def iso_duration(seconds: float) -> str:
    """ISO 8601 duration: `PT15S`, `PT15M`, `PT1H30M`, `PT0.5S`. A run's reports cover about one interval each,
    rounded to the millisecond: a handful of distinct values, each formatted once (~1 us a report otherwise)."""
    text = _durations.get(seconds)
    if text is None:
        if len(_durations) >= _SECONDS_KEPT:
            _durations.clear()
        text = _durations[seconds] = _iso_duration(seconds)
    return text


def _iso_duration(seconds: float) -> str:
    if seconds <= 0:
        return "PT0S"
    whole = int(seconds)
    frac = seconds - whole
    h, rem = divmod(whole, 3600)
    m, s = divmod(rem, 60)
    out = "PT"
    if h:
        out += f"{h}H"
    if m:
        out += f"{m}M"
    if s or frac or out == "PT":
        out += f"{s + frac:g}S" if frac else f"{s}S"
    return out
