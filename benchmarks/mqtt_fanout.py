"""MQTT fan-out at fleet scale: N VENs, each on its own MQTT connection to the embedded VTN's Mosquitto, one DR
event to all of them — how long until every VEN has it, how many never do, and what an MQTT VEN costs.

A benchmark, not a test (minutes, a whole box). Two runs of the same fleet side by side, in one invocation:
`events = "mqtt"` and `events = "poll"` (a 10-minute poll: no notifications). The difference of the workers'
peak RSS, divided by the VENs, is the memory an MQTT VEN adds. Broker CPU is sampled from the run's Mosquitto
process (user + system seconds over the run). Everything shares this box: workers, embedded VTN, broker.

    python benchmarks/mqtt_fanout.py [--vens 18000] [--workers 2] [--interval 60] [--at 90] [--duration 150]

VENs provision (and connect) spread over the first report interval, so the event comes after it.

Per-VEN, the broker holds one socket per VEN, so N is bound by one process's open-files limit (`ulimit -Hn`; 20,000
on the box these figures come from, which is why the default is 18,000). `--mqtt-connection pooled --vens 25000`:
the VENs share `--mqtt-pool` connections (each subscribes its own topics on its shared connection), so N is not.
Goal (issue 16): fan-out p99 under 2 s, 0 never received, at most 8 KB per MQTT VEN.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from harness.core.profile import DrEvent, Profile
from harness.run.session import RunSession


def broker_cpu(stop: threading.Event, out: dict[str, float]) -> None:
    """The run's Mosquitto (a descendant of this process): its latest user + system CPU seconds, once a second."""
    me = psutil.Process()
    while not stop.wait(1.0):
        for child in me.children(recursive=True):
            try:
                if child.name() == "mosquitto":
                    t = child.cpu_times()
                    out["cpu_s"] = t.user + t.system
                    out["rss_mb"] = child.memory_info().rss / 2**20
            except psutil.Error:
                pass


def run(events: str, args: argparse.Namespace) -> dict[str, Any]:
    p = Profile(name=f"mqtt-fanout-{events}", vens=args.vens, workers=args.workers, interval_s=args.interval,
                duration_s=args.duration, warmup_s=0.0, seed=1, connection="pooled", max_loop_lag_ms=60_000,
                mqtt_connection=args.mqtt_connection, pool_size=args.mqtt_pool,
                dialect="openadr-3.1.0", events=events, poll_interval_s=600.0,
                dr_events=(DrEvent(at_s=args.at, level=2, duration_s=1800.0, share=1.0),))
    stop, cpu = threading.Event(), {"cpu_s": 0.0, "rss_mb": 0.0}
    sampler = threading.Thread(target=broker_cpu, args=(stop, cpu), daemon=True)
    sampler.start()
    started = time.monotonic()
    outcome = RunSession(p, Path(tempfile.mkdtemp(prefix="mqtt-fanout-"))).run()
    stop.set()
    sampler.join()
    doc = outcome.summary
    fan = doc.get("event_fanout") or {}
    (event,) = fan.get("events") or [{}]
    return {
        "events": events,
        "verdict": outcome.verdict,
        "wall_s": round(time.monotonic() - started, 1),
        "targeted": event.get("targeted"),
        "aware": event.get("aware"),
        "never_received": event.get("never_received"),
        "learned_by": event.get("learned_by"),
        "fanout_ms": {k: event.get("fanout", {}).get(f"{k}_ms") for k in ("p50", "p99", "max")},
        "worker_rss_mb": round(sum(w["rss_max_bytes"] for w in doc["workers"]) / 2**20, 1),
        "broker_cpu_s": round(cpu["cpu_s"], 1),
        "broker_rss_mb": round(cpu["rss_mb"], 1),
        "errors": {k: v["count"] for k, v in doc.get("errors", {}).items()},
        "notifications": doc.get("notifications"),
        "run_dir": str(outcome.run_dir),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vens", type=int, default=18_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--interval", type=float, default=60.0, help="report interval: VENs provision spread over the first one")
    ap.add_argument("--at", type=float, default=90.0, help="run second at which the event is created (after the first interval)")
    ap.add_argument("--duration", type=float, default=150.0)
    ap.add_argument("--mqtt-connection", choices=("per-ven", "pooled"), default="per-ven",
                    help="per-ven: an MQTT connection per VEN (the broker's fd limit bounds N); pooled: the workers' "
                         "VENs share --mqtt-pool connections")
    ap.add_argument("--mqtt-pool", type=int, default=64, help="pooled: MQTT (and HTTP) connections over all workers")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the broker and the VTN inherit it
    mqtt = run("mqtt", args)
    poll = run("poll", args)
    per_ven_kib = (mqtt["worker_rss_mb"] - poll["worker_rss_mb"]) * 1024 / args.vens
    print(json.dumps({"vens": args.vens, "mqtt_connection": args.mqtt_connection, "mqtt": mqtt, "poll": poll,
                      "mqtt_ven_extra_kib": round(per_ven_kib, 1),
                      "goal": {"p99_under_2s": (mqtt["fanout_ms"]["p99"] or 1e12) < 2000,
                               "never_received_0": mqtt["never_received"] == 0,
                               "at_most_8kb_per_ven": per_ven_kib <= 8000 / 1024}}, indent=1))


if __name__ == "__main__":
    main()
