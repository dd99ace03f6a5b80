"""Parsing of the units users type: durations (`500ms`, `15s`, `2m`, `1h`), percentages, sizes.

Pure: raises ValueError with a one-line message naming what was wrong.
"""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(us|µs|ms|s|m|h|d)?\s*$")
_DURATION_S = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str | float | int, what: str = "duration") -> float:
    """Seconds from `500ms`, `15s`, `2m`, `1h`, `1d` or a bare number of seconds."""
    if isinstance(text, bool):
        raise ValueError(f"{what} must be a duration like 15s, got {text!r}")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        m = _DURATION.match(str(text))
        if not m:
            raise ValueError(f"{what} must be a duration like 500ms, 15s, 2m or 1h, got {text!r}")
        value = float(m.group(1)) * _DURATION_S[m.group(2) or "s"]
    if value != value or value < 0:
        raise ValueError(f"{what} must be >= 0, got {text!r}")
    return value


def parse_percent(text: str | float | int, what: str = "value") -> float:
    """A fraction from `0.1%`, `99%` or a bare fraction (`0.001`)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    s = str(text).strip()
    try:
        if s.endswith("%"):
            return float(s[:-1]) / 100.0
        return float(s)
    except ValueError:
        raise ValueError(f"{what} must be a percentage like 0.1% or a fraction, got {text!r}") from None


def format_duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    if seconds >= 1:
        return f"{seconds:g}s"
    return f"{seconds * 1000:g}ms"
