"""DR event fan-out for summary.json: per event, how long each targeted VEN took to learn of it and how it
learned (its poll, a notification, the read of current events after subscribing), then its first shed report.

Pure: callers pass the fired events and the merged results.
"""

from __future__ import annotations

from typing import Any

from harness.core.histogram import Histogram
from harness.core.results import RunResults

CURVE_POINTS = 101  # enough for a smooth curve, few enough for summary.json at any fleet size


def event_fanout(fired: list[dict[str, Any]], results: RunResults) -> dict[str, Any]:
    """DR fan-out: per event, creation -> each targeted VEN aware, and event start -> its first shed report.

    `fired` rows carry id, created_epoch_s (when the operator sent the create), start_epoch_s (wall instant
    the event starts), targeted (VEN count), level, at_s."""
    events = []
    all_aware = Histogram.empty()
    learned_by: dict[str, int] = {}
    for f in fired:
        aware = Histogram.empty()
        times = results.aware.get(f["id"], [])
        aware.record_s([max(0.0, t - f["created_epoch_s"]) for t in times])
        shed = Histogram.empty()
        shed_times = results.shed.get(f["id"], [])
        shed.record_s([max(0.0, t - f["start_epoch_s"]) for t in shed_times])
        all_aware += aware
        complete = len(times) >= f["targeted"]
        ways = dict(sorted(results.learned.get(f["id"], {}).items()))
        for how, n in ways.items():
            learned_by[how] = learned_by.get(how, 0) + n
        events.append({
            **{k: f[k] for k in ("id", "at_s", "level", "targeted")},
            "aware": len(times),
            "never_received": max(0, f["targeted"] - len(times)),  # targeted VENs not aware by the end
            "learned_by": ways,  # poll, notification, startup_read (read after subscribing) -> VENs
            "fanout": aware.summary_ms(),
            "all_aware_after_s": round(aware.max_ns / 1e9, 3) if complete and times else None,
            "aware_curve": aware_curve([t - f["created_epoch_s"] for t in times]),
            "shed_reported": len(shed_times),
            "shed_report_delay": shed.summary_ms(),
        })
    out: dict[str, Any] = {
        "events": events,
        "targeted": sum(f["targeted"] for f in fired),
        "aware": sum(e["aware"] for e in events),
        "never_received": sum(e["never_received"] for e in events),
        "learned_by": dict(sorted(learned_by.items())),
    }
    out.update(all_aware.summary_ms())
    return out


def aware_curve(delays_s: list[float], points: int = CURVE_POINTS) -> list[list[float]]:
    """[seconds after creation, VENs aware by then] at evenly spaced ranks of the sorted delays (the last is every
    aware VEN), so the report can draw the share of targeted VENs aware over time from summary.json alone."""
    ordered = sorted(max(0.0, d) for d in delays_s)
    n = len(ordered)
    if n == 0:
        return []
    ranks = sorted({round(i * (n - 1) / (points - 1)) for i in range(points)}) if n > points else range(n)
    return [[round(ordered[r], 4), r + 1] for r in ranks]


def notifications(channel: str, counters: dict[str, int], vtn_mqtt: dict[str, Any] | None) -> dict[str, Any]:
    """What the VENs' notification channel carried (summary.json "notifications"): received, not understood, for a
    VEN the seeded targeting did not aim the event at, late (created while the VEN was disconnected); with the
    embedded VTN's MQTT publisher, what it published in all and to the VENs' own event topics."""
    out: dict[str, Any] = {"channel": channel, "received": counters.get("notifications", 0)}
    for key, name in (("notification_not_understood", "not_understood"), ("notification_unusable", "unusable"),
                      ("notification_untargeted", "untargeted"),
                      ("notification_late", "late"), ("mqtt_reconnects", "reconnects")):
        out[name] = counters.get(key, 0)
    if vtn_mqtt is not None:
        families = vtn_mqtt.get("by_family") or {}
        out["vtn_published"] = vtn_mqtt.get("published", 0)
        out["vtn_published_ven_events"] = sum(n for f, n in families.items() if f.startswith("vens/{venID}/events/"))
    return out
