"""Demand-response events as harness sees them: which VENs an event targets, schedule phases, and the
3.0.1 targets of an event aimed at some VENs (a VEN reads events through its dialect's parse_events).

Pure: callers pass time in; targeting and phases are hashes of (seed, global VEN index), never a stream,
so they do not depend on sharding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from harness.core.fleet import hash64, uniform01

STREAM_REPORT_PHASE = 100
STREAM_POLL_PHASE = 101
STREAM_TARGET = 102
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


def targeted(seed: int, event_index: int, ven_indices: npt.NDArray[np.int64], share: float) -> npt.NDArray[np.bool_]:
    """Which VENs the event_index-th DR event of a run targets: a share of the fleet chosen by hash."""
    if share >= 1.0:
        return np.ones(len(ven_indices), dtype=bool)
    u = uniform01(hash64(seed, STREAM_TARGET, event_index, np.asarray(ven_indices, dtype=np.uint64)))
    return u < share


def event_targets(ven_names: list[str] | None) -> list[dict[str, Any]] | None:
    """The 3.0.1 `targets` of an event aimed at these VENs (None: the whole program)."""
    return None if ven_names is None else [{"type": "VEN_NAME", "values": ven_names}]
