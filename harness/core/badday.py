"""Bad days: timed faults in a run (`[[faults]]`) and how VENs back off when the VTN fails them (`behaviour.reconnect`).

Pure: parsing with one-line ValueErrors naming the key and the value, and the seeded back-off draw (a hash of seed,
VEN and attempt, never a stream, so it does not depend on sharding or timing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.core.fleet import hash64, uniform01
from harness.core.keys import unknown_key
from harness.core.units import parse_duration

STREAM_BACKOFF = 105  # each stream number is used once (core/schedule.py, core/stages.py, core/targeting.py)
# kind -> what it does (to the embedded VTN, but drop_connections, which harness does itself: any target)
FAULT_KINDS = {
    "outage": "the VTN does not answer: mode \"refuse\" (process stopped, connections refused) or \"stall\" (held)",
    "restart": "the VTN process is killed and started again on the same port and store (its tokens die with it)",
    "slowdown": "every answer is delayed by `latency`",
    "errors": "a share `rate` of requests answered with `status`",
    "token_expiry": "every issued token expires at `at` (VENs get 401 and fetch new ones)",
    "broker_outage": "the embedded VTN's MQTT broker is stopped for `duration`, then started on the same port "
                     "(Mosquitto keeps its sessions and queued QoS 1 messages; the VTN queues what it publishes)",
    "drop_connections": "harness closes every VEN's HTTP connection at `at` (a network drop or load-balancer "
                        "failover): each VEN's next request connects again; any target",
}
EXTERNAL_KINDS = ("drop_connections",)  # what harness can do to a VTN it did not start
INSTANT_KINDS = ("token_expiry", "restart", "drop_connections")  # duration optional (0: the fault is an instant)
OUTAGE_MODES = ("refuse", "stall")
BACKOFF_KINDS = ("none", "fixed", "exponential")
JITTERS = ("none", "full")
RETRY_FLOOR_S = 0.1  # "none": the next try at once, but never faster than this (a refused connection cannot spin)


@dataclass(frozen=True)
class TimedFault:
    kind: str
    at_s: float
    duration_s: float = 0.0
    mode: str = "refuse"  # outage
    latency: str = "500ms"  # slowdown
    status: int = 503  # errors
    rate: float = 1.0  # errors

    @property
    def end_s(self) -> float:
        return self.at_s + self.duration_s

    def label(self) -> str:
        extra = {"outage": self.mode, "slowdown": self.latency, "errors": f"{self.status}:{self.rate:g}"}.get(self.kind)
        return f"{self.kind}({extra})" if extra else self.kind


@dataclass(frozen=True)
class Backoff:
    """After a failed attempt (no answer, 5xx), a VEN waits before its next request: none (RETRY_FLOOR_S), fixed
    `base_s`, or exponential min(cap, base * 2^(k-1)) for its k-th failure in a row; full jitter draws uniform(0, that)."""

    kind: str = "none"
    base_s: float = 1.0
    cap_s: float = 60.0
    jitter: str = "none"
    buffer: int = 0  # reports a VEN keeps while it cannot deliver them (sent late); 0: a failed report is lost

    def max_delay_s(self) -> float:
        return RETRY_FLOOR_S if self.kind == "none" else self.base_s if self.kind == "fixed" else self.cap_s

    def delays(self, seed: int, vens: npt.NDArray[np.int64], attempt: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """The wait after failure number `attempt` (1, 2, ...) of each VEN (global indices), in seconds."""
        k = np.maximum(1, attempt).astype(np.float64)
        if self.kind == "none":
            return np.full(len(vens), RETRY_FLOOR_S)
        top = np.full(len(vens), self.base_s) if self.kind == "fixed" else np.minimum(
            self.cap_s, self.base_s * np.exp2(np.minimum(k - 1, 60)))
        if self.jitter == "full":
            top = top * uniform01(hash64(seed, STREAM_BACKOFF, vens.astype(np.uint64), attempt.astype(np.uint64)))
        return np.maximum(RETRY_FLOOR_S, top)

    def delay(self, seed: int, ven: int, attempt: int) -> float:
        return float(self.delays(seed, np.array([ven], dtype=np.int64), np.array([attempt], dtype=np.int64))[0])


def _duration(key: str, value: Any) -> float:
    return parse_duration(value, key)


def parse_faults(key: str, value: Any) -> tuple[TimedFault, ...]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ValueError(f"{key} must be an array of tables ([[faults]] with kind, at, duration), got {value!r}")
    return tuple(_fault(f"{key}[{i}]", t) for i, t in enumerate(value))


def _fault(key: str, t: dict[str, Any]) -> TimedFault:
    known = ("kind", "at", "duration", "mode", "latency", "status", "rate")
    for k in t:
        if k not in known:
            raise ValueError(unknown_key(f"{key}.{k}", (f"{key}.{n}" for n in known)))
    kind = t.get("kind")
    if kind not in FAULT_KINDS:
        raise ValueError(f"{key}.kind must be one of {', '.join(FAULT_KINDS)}, got {kind!r}")
    if "at" not in t:
        raise ValueError(f"{key}.at is required (run time the fault starts, e.g. \"30s\")")
    at, dur = _duration(f"{key}.at", t["at"]), _duration(f"{key}.duration", t.get("duration", 0))
    if kind not in INSTANT_KINDS and dur <= 0:
        raise ValueError(f"{key}.duration must be > 0 for a {kind}, got {t.get('duration')!r}")
    mode = t.get("mode", "refuse")
    if mode not in OUTAGE_MODES:
        raise ValueError(f"{key}.mode must be one of {', '.join(OUTAGE_MODES)}, got {mode!r}")
    status, rate = t.get("status", 503), t.get("rate", 1.0)
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise ValueError(f"{key}.status must be an HTTP status 400..599, got {status!r}")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
        raise ValueError(f"{key}.rate must be in (0, 1], got {rate!r}")
    latency = t.get("latency", "500ms")
    if not isinstance(latency, str) or _duration(f"{key}.latency", latency) <= 0:
        raise ValueError(f"{key}.latency must be a duration like \"500ms\", got {latency!r}")
    return TimedFault(str(kind), at, dur, str(mode), latency, int(status), float(rate))


def parse_backoff(key: str, t: Any) -> Backoff:
    known = ("backoff", "base", "cap", "jitter", "buffer")
    if not isinstance(t, dict):
        raise ValueError(f"{key} must be a table like {{ backoff = \"exponential\", jitter = \"full\" }}, got {t!r}")
    for k in t:
        if k not in known:
            raise ValueError(unknown_key(f"{key}.{k}", (f"{key}.{n}" for n in known)))
    kind, jitter, buffer = t.get("backoff", "none"), t.get("jitter", "none"), t.get("buffer", 0)
    if kind not in BACKOFF_KINDS:
        raise ValueError(f"{key}.backoff must be one of {', '.join(BACKOFF_KINDS)}, got {kind!r}")
    if jitter not in JITTERS:
        raise ValueError(f"{key}.jitter must be one of {', '.join(JITTERS)}, got {jitter!r}")
    if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 0:
        raise ValueError(f"{key}.buffer must be a count of reports >= 0, got {buffer!r}")
    base, cap = _duration(f"{key}.base", t.get("base", "1s")), _duration(f"{key}.cap", t.get("cap", "60s"))
    if not 0 < base <= cap:
        raise ValueError(f"{key}: base must be > 0 and <= cap, got base {base:g}s, cap {cap:g}s")
    return Backoff(str(kind), base, cap, str(jitter), buffer)


def check(faults: tuple[TimedFault, ...], embedded_vtn: bool, reread_s: float | None, events: str) -> str | None:
    """What is wrong with the bad-day settings for this target (None: nothing)."""
    if reread_s is not None and events != "webhook":
        return "behaviour.reread_after_notification needs behaviour.events = \"webhook\" (notifications to re-read after)"
    for i, f in enumerate(faults):
        if f.kind == "broker_outage" and events != "mqtt":
            return (f"faults[{i}].kind broker_outage needs behaviour.events = \"mqtt\" (VENs on the embedded "
                    f"VTN's broker), got {events!r}")
        if not embedded_vtn and f.kind not in EXTERNAL_KINDS:
            return (f"faults[{i}].kind {f.kind} needs the embedded VTN (no target.url): against another target "
                    'harness can only do what it does itself (kind = "drop_connections")')
    return None
