"""Lenient reading of reply values (timestamps, durations, targets, error bodies) shared by all dialects.

Pure: never raises for an odd value; what was tolerated is noted in a `Deviations` tally (kind → count and one
example) so the worker can count protocol deviations instead of crashing a VEN.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

# Deviation kinds (stable names: they become counter keys in results).
TIMESTAMP = "timestamp_not_rfc3339"
DURATION = "duration_not_iso8601"
MISSING_FIELD = "missing_field"
ID_NOT_STRING = "id_not_string"
STATUS_STRING = "problem_status_string"
NON_PROBLEM_BODY = "non_problem_body"
DOUBLE_ENCODED = "double_encoded_json"  # a reply body (or a part of one) that is a JSON string of JSON
DOUBLE_ENCODED_NOTIFICATION = "double_encoded_notification"  # the same in a notification the VTN sent
SCOPE_ARRAY = "token_scope_array"
EXPIRES_IN_STRING = "token_expires_in_string"
EXPIRES_IN_MISSING = "token_without_expires_in"  # the token is then kept until the VTN refuses it (401)
TIME_WITHOUT_DATE = "time_without_date"  # "10:04:29": unknowable, taken as unknown
NO_CREATED = "missing_created_date_time"  # an object without its creation time
UNPARSEABLE = "unparseable_object"


@dataclass
class Deviation:
    count: int
    example: str


class Deviations:
    """A tally of tolerated protocol deviations; the worker drains it with `take()` into its delta."""

    def __init__(self) -> None:
        self._seen: dict[str, Deviation] = {}

    def note(self, kind: str, example: object) -> None:
        d = self._seen.get(kind)
        if d is None:
            self._seen[kind] = Deviation(1, str(example)[:200])
        else:
            d.count += 1

    def take(self) -> dict[str, Deviation]:
        """Everything noted since the last take (and forget it)."""
        out, self._seen = self._seen, {}
        return out

    def peek(self) -> dict[str, Deviation]:
        return dict(self._seen)


_STAMP = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:([Tt ])(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?)?\s*([Zz]|[+-]\d{2}:?\d{2})?$"
)
_TIME_ONLY = re.compile(r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$")


def parse_time(value: object, dev: Deviations | None = None, what: str = "timestamp") -> float | None:
    """Epoch seconds of an RFC 3339 timestamp, best effort for odd ones; None when unknown or 'now'.

    Tolerated (noted): a space instead of `T`, no zone (UTC assumed), a date alone, epoch numbers (s or ms).
    Unknowable (noted, None): a time of day without a date (`"10:04:29"`, its own kind), anything else. The spec's
    `0001-01-01` start means 'now': None, not a deviation.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        _note(dev, TIMESTAMP, what, value)
        return None
    if isinstance(value, (int, float)):
        _note(dev, TIMESTAMP, what, value)
        v = float(value)
        if not math.isfinite(v):
            return None
        return v / 1000.0 if abs(v) > 1e11 else v
    if not isinstance(value, str):
        _note(dev, TIMESTAMP, what, value)
        return None
    text = value.strip()
    m = _STAMP.match(text)
    if m is None:
        if _TIME_ONLY.match(text) is not None:
            _note(dev, TIME_WITHOUT_DATE, what, value)
            return None
        _note(dev, TIMESTAMP, what, value)
        try:  # numbers sent as strings
            return parse_time(float(text), None)
        except ValueError:
            return None
    year, month, day, sep, hh, mm, ss, frac, zone = m.groups()
    if year == "0001" and month == "01" and day == "01":
        return None
    if sep not in ("T", "t") or ss is None or zone is None:
        _note(dev, TIMESTAMP, what, value)
    try:
        tz = timezone.utc
        if zone and zone not in ("Z", "z"):
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
        dt = datetime(int(year), int(month), int(day), int(hh or 0), int(mm or 0), int(ss or 0), tzinfo=tz)
    except ValueError:
        _note(dev, TIMESTAMP, what, value)
        return None
    return dt.timestamp() + (float(frac) if frac else 0.0)


_DURATION = re.compile(
    r"^(-?)P(?=\d|T\d)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)([DW]))?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)
_CLOCK = re.compile(r"^(\d+):(\d{2})(?::(\d{2}(?:\.\d+)?))?$")


def parse_duration(value: object, dev: Deviations | None = None, what: str = "duration") -> float | None:
    """Seconds of an ISO 8601 duration (`PT15M`); `P9999Y` is infinity (per the spec). Tolerated (noted):
    plain seconds (number or string), `HH:MM[:SS]`. A year is 365 days and a month 30 days."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        _note(dev, DURATION, what, value)
        return float(value) if math.isfinite(value) and value >= 0 else None
    if not isinstance(value, str):
        _note(dev, DURATION, what, value)
        return None
    text = value.strip()
    m = _DURATION.match(text)
    if m is not None:
        neg, y, mo, d, dw, h, mi, s = m.groups()
        if y == "9999":
            return math.inf
        days = int(y or 0) * 365 + int(mo or 0) * 30 + int(d or 0) * (7 if dw == "W" else 1)
        total = days * 86400.0 + int(h or 0) * 3600.0 + int(mi or 0) * 60.0 + float(s or 0)
        return -total if neg else total
    _note(dev, DURATION, what, value)
    c = _CLOCK.match(text)
    if c is not None:
        return int(c.group(1)) * 3600.0 + int(c.group(2)) * 60.0 + float(c.group(3) or 0)
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) and v >= 0 else None


def targets(value: object) -> tuple[str, ...]:
    """Target values as strings: 3.1.0 strings, 3.0.1 valuesMaps (`{type, values}`) flattened; null is none."""
    if not isinstance(value, list):
        return ()
    out: list[str] = []
    for t in value:
        if isinstance(t, dict):
            vals = t.get("values")
            if isinstance(vals, list):
                out += [str(v) for v in vals if v is not None]
        elif t is not None:
            out.append(str(t))
    return tuple(out)


def object_id(value: object, dev: Deviations | None = None, what: str = "id") -> str | None:
    """An object id as a string; integer ids (sequential ids as JSON numbers) are tolerated and noted."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, (int, float)):
        _note(dev, ID_NOT_STRING, what, value)
        return str(int(value)) if float(value).is_integer() else str(value)
    return None


def unwrap_json(value: object, dev: Deviations | None = None, what: str = "body", kind: str = DOUBLE_ENCODED) -> object:
    """A JSON document sent as a JSON string (encoded twice, or more) is decoded and noted as `kind`."""
    doc = value
    for _ in range(3):
        if not (isinstance(doc, str) and doc.lstrip()[:1] in ("{", "[", '"')):
            break
        try:
            doc = json.loads(doc)
        except ValueError:
            break
    if doc is not value:
        _note(dev, kind, what, str(value)[:80])
    return doc


_PROBLEM_KEYS = ("type", "title", "status", "detail", "instance")
_OTHER_ERROR_KEYS = ("error", "error_description", "message", "msg", "detail", "errors", "reason")


def describe_problem(status: int, body: object, dev: Deviations | None = None, native_keys: tuple[str, ...] = ()) -> str:
    """A short line for an error reply: `409 Conflict: venName exists`. Spec bodies are `problem` objects;
    tolerated (noted): `problem.status` as a string, other error shapes (`{"error": ..}`, `{"message": ..}`),
    `[]`, text, no body. `native_keys` are error keys a dialect speaks natively (not noted)."""
    head = str(status)
    body = unwrap_json(body, dev, "error body")
    if isinstance(body, dict) and any(k in body for k in _PROBLEM_KEYS):
        st = body.get("status")
        if isinstance(st, str):
            _note(dev, STATUS_STRING, "problem.status", body)
        if st is not None and str(st).strip() != str(status):
            head += f" (problem.status {st!r})"
        parts = [str(body[k]) for k in ("title", "detail") if body.get(k) not in (None, "")]
        return _clip(head + (": " + ": ".join(parts) if parts else ""))
    if isinstance(body, dict):
        keys = [k for k in _OTHER_ERROR_KEYS if body.get(k) not in (None, "")]
        if not any(k in native_keys for k in keys):
            _note(dev, NON_PROBLEM_BODY, f"HTTP {status}", body)
        if keys:
            return _clip(head + ": " + ": ".join(_text(body[k]) for k in keys[:2]))
        return _clip(f"{head} {json.dumps(body, default=str)}")
    _note(dev, NON_PROBLEM_BODY, f"HTTP {status}", body)
    if body is None or body == "":
        return head + " (no body)"
    if isinstance(body, list):
        return _clip(f"{head} (body {json.dumps(body, default=str)})")
    return _clip(f"{head} {_text(body)}")


def _text(v: object) -> str:
    return v if isinstance(v, str) else json.dumps(v, default=str)


def _clip(s: str, n: int = 200) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 1] + "…"


def _note(dev: Deviations | None, kind: str, what: str, value: object) -> None:
    if dev is not None:
        dev.note(kind, f"{what}: {value!r}"[:200])
