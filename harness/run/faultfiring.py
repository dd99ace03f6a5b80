"""The profile's `[[faults]]`, done to the embedded VTN when each one's time comes, and undone when it ends.

Edge (blocking loopback calls to the VTN's control endpoints; a restart kills and spawns the VTN process). A duty of
the supervisor's loop, like the DR events: called every turn while running. `rows` are what happened, in run
seconds (a restart ends when the new process listens, not when the profile said).
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from harness.core.badday import TimedFault
from harness.core.profile import Profile


class FaultFiring:
    def __init__(self, profile: Profile, target: str, vtn: Any, notes: list[str]) -> None:
        self.profile = profile
        parts = urlsplit(target)
        self.control = f"{parts.scheme}://{parts.netloc}/_harness/"
        self.vtn = vtn  # the EmbeddedVtn (None: an external target)
        self.notes = notes
        self.rows: list[dict[str, Any]] = []
        self.active: dict[int, dict[str, Any]] = {}
        self.t0 = 0.0

    def __call__(self, t0_epoch: float) -> None:
        self.t0 = t0_epoch
        elapsed = time.time() - t0_epoch
        for i, f in enumerate(self.profile.faults):
            if i == len(self.rows) and elapsed >= f.at_s:
                row = {"index": i, "kind": f.kind, "label": f.label(), "at_s": f.at_s, "duration_s": f.duration_s,
                       "started_s": round(elapsed, 3), "ended_s": None}
                self.rows.append(row)
                self._begin(f, row)
            row_or_none = self.active.get(i)
            if row_or_none is not None and time.time() - t0_epoch >= f.end_s:
                self._end(f, row_or_none)

    def finish(self) -> list[dict[str, Any]]:
        """The run is over: undo what is still in force (a VTN still down is started again for teardown)."""
        for i, row in list(self.active.items()):
            self._end(self.profile.faults[i], row)
        return self.rows

    def _broker(self) -> Any:
        broker = getattr(self.vtn, "broker", None)
        if broker is None:
            raise RuntimeError("the embedded VTN has no MQTT broker")
        return broker

    def _post(self, path: str, body: dict[str, Any]) -> None:
        req = urllib.request.Request(self.control + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()

    def _begin(self, f: TimedFault, row: dict[str, Any]) -> None:
        base = dict(self.profile.vtn_faults)
        try:
            if f.kind == "outage" and f.mode == "stall":
                self._post("stall", {"duration_s": f.duration_s})
            elif f.kind == "outage":
                self.vtn.stop(timeout=1.0)
            elif f.kind == "restart":
                self.vtn.kill()
            elif f.kind == "slowdown":
                self._post("faults", {**base, "latency": f.latency})
            elif f.kind == "errors":
                self._post("faults", {**base, "errors": f"{f.status}:{f.rate:g}"})
            elif f.kind == "token_expiry":
                self._post("expire_tokens", {})
            elif f.kind == "broker_outage":
                self._broker().stop(timeout_s=5.0)  # SIGTERM: Mosquitto saves its sessions first
            # drop_connections: the workers close their connections at `at` on their own clocks (worker.py)
        except (OSError, RuntimeError) as exc:
            self.notes.append(f"fault {row['index']} ({f.label()}) not applied: {exc}")
        self.active[row["index"]] = row
        self.notes.append(f"fault {row['index']} {f.label()} at {row['started_s']:.1f}s")

    def _end(self, f: TimedFault, row: dict[str, Any]) -> None:
        del self.active[row["index"]]
        try:
            if f.kind in ("outage", "restart") and f.mode != "stall" or f.kind == "restart":
                self.vtn.start_again()
            elif f.kind in ("slowdown", "errors"):
                self._post("faults", dict(self.profile.vtn_faults))
            elif f.kind == "broker_outage":
                self._broker().start()  # the same port and directory (its saved sessions)
        except (OSError, RuntimeError) as exc:
            self.notes.append(f"fault {row['index']} ({f.label()}) not undone: {exc}")
        row["ended_s"] = round(time.time() - self.t0, 3)
        self.notes.append(f"fault {row['index']} {f.label()} over at {row['ended_s']:.1f}s: recovery measured from here")
