"""Open-model schedules: each VEN's operations fall due at t0 + phase + k × interval, whatever the target does.

Pure: callers pass the current time in (any monotonic clock); a Stream hands out what is due, in
intended-time order, and says when it next needs a wake-up. VENs are rows of numpy arrays, not tasks. Phases
and startup slots are hashes of (seed, global VEN index), never a stream, so they do not depend on sharding.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from harness.core.fleet import hash64, uniform01

# Random streams of the schedule (core/targeting.py uses 102: each stream number is used once).
STREAM_REPORT_PHASE = 100
STREAM_POLL_PHASE = 101
STREAM_STARTUP = 104


def phases(seed: int, ven_start: int, ven_stop: int, interval_s: float, stream: int = STREAM_REPORT_PHASE) -> npt.NDArray[np.float64]:
    """Each VEN's phase in [0, interval): a hash of (seed, stream, global VEN index)."""
    idx = np.arange(ven_start, ven_stop, dtype=np.uint64)
    return uniform01(hash64(seed, stream, idx)) * interval_s


def startup_slots(seed: int, ven_start: int, ven_stop: int, interval_s: float, startup_s: float | None) -> npt.NDArray[np.int64]:
    """The report slot at which each VEN comes online (provisions): spread evenly over the startup window."""
    n = ven_stop - ven_start
    if startup_s is None or startup_s <= interval_s:
        return np.zeros(n, dtype=np.int64)
    u = uniform01(hash64(seed, STREAM_STARTUP, np.arange(ven_start, ven_stop, dtype=np.uint64)))
    return np.floor(u * (startup_s / interval_s)).astype(np.int64)


class Stream:
    """Slots first_slot.. of every VEN, slot k of VEN v due at t0 + phase[v] + k × interval, all before end."""

    def __init__(
        self,
        phase: npt.NDArray[np.float64],
        interval_s: float,
        t0: float,
        end: float,
        first_slot: int = 0,
        last_slot: int | None = None,
    ) -> None:
        self.order = np.argsort(phase, kind="stable")
        self.sorted_phase = phase[self.order]
        self.interval_s = interval_s
        self.t0 = t0
        self.end = end
        self.last_slot = last_slot
        self.k = first_slot
        self.p = 0
        self.n = len(phase)

    def next_due(self) -> float:
        """Intended time of the next slot, or +inf when the stream is exhausted."""
        if self.n == 0 or (self.last_slot is not None and self.k > self.last_slot):
            return math.inf
        t = self.t0 + self.k * self.interval_s + float(self.sorted_phase[self.p])
        return t if t < self.end else math.inf

    def take_due(self, now: float) -> list[tuple[int, int, float]]:
        """(row, slot, intended) of every slot due at or before `now`, in intended-time order."""
        out: list[tuple[int, int, float]] = []
        while self.n and (self.last_slot is None or self.k <= self.last_slot):
            base = self.t0 + self.k * self.interval_s
            q = int(np.searchsorted(self.sorted_phase, now - base, side="right"))
            if q > self.p:
                intended = base + self.sorted_phase[self.p : q]
                rows = self.order[self.p : q]
                keep = intended < self.end
                k = self.k
                out.extend((r, k, t) for r, t in zip(rows[keep].tolist(), intended[keep].tolist()))
                self.p = q
            if self.p < self.n:
                break
            self.k, self.p = self.k + 1, 0
            if self.t0 + self.k * self.interval_s >= self.end:
                break
        return out
