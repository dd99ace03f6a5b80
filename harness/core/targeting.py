"""Which VENs a demand-response event targets, and the 3.0.1 `targets` of an event aimed at some VENs (a VEN
reads events through its dialect's parse_events).

Pure: targeting is a hash of (seed, event index, global VEN index), never a stream, so it does not depend on
sharding.
"""

from __future__ import annotations

import hashlib

import re
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.core.fleet import hash64, uniform01

_DR_NAME = re.compile(r"-dr-(\d+)-\d+$")
STREAM_TARGET = 102  # a random stream of its own (core/schedule.py uses 100, 101, 104)
STREAM_RANDOMIZE = 106  # randomizeStart offsets (core/badday.py uses 105)


def targeted(seed: int, event_index: int, ven_indices: npt.NDArray[np.int64], share: float) -> npt.NDArray[np.bool_]:
    """Which VENs the event_index-th DR event of a run targets: a share of the fleet chosen by hash."""
    if share >= 1.0:
        return np.ones(len(ven_indices), dtype=bool)
    u = uniform01(hash64(seed, STREAM_TARGET, event_index, np.asarray(ven_indices, dtype=np.uint64)))
    return u < share


def randomized_starts(seed: int, event_id: str, ven_indices: npt.NDArray[np.int64], spread_s: float) -> npt.NDArray[np.float64]:
    """How much later than the event's start each VEN acts on it when the event says `randomizeStart`: uniform in
    [0, spread_s), seeded by the run, the event and the VEN (the same VEN delays the same event the same way)."""
    if spread_s <= 0:
        return np.zeros(len(ven_indices))
    key = int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "little")
    u = uniform01(hash64(seed, STREAM_RANDOMIZE, key, np.asarray(ven_indices, dtype=np.uint64)))
    return np.asarray(u * spread_s, dtype=np.float64)


def dr_event_index(event_name: str | None) -> int | None:
    """The index in the profile of a DR event the run's operator created, from its name (`{program}-dr-{i}-{t}`,
    see harness.run.drevents); None for any other event."""
    m = _DR_NAME.search(event_name or "")
    return int(m.group(1)) if m else None


def event_targets(ven_names: list[str] | None) -> list[dict[str, Any]] | None:
    """The 3.0.1 `targets` of an event aimed at these VENs (None: the whole program)."""
    return None if ven_names is None else [{"type": "VEN_NAME", "values": ven_names}]
