"""Stages: the fleet ramps up, holds and ramps down over a run (k6-style linear ramps between targets).

Pure: callers pass run time in. Which VENs are active at time t is decided by a rank per VEN (a seeded
permutation of the whole fleet), so every shard ramps evenly and any sharding activates the same VENs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from harness.core.fleet import hash64, uniform01

STREAM_STAGE_RANK = 103


@dataclass(frozen=True)
class Stage:
    """Ramp linearly from the previous stage's VEN count (0 before the first) to `vens` over `duration_s`."""

    duration_s: float
    vens: int


def total_s(stages: tuple[Stage, ...]) -> float:
    return sum(s.duration_s for s in stages)


def target_at(stages: tuple[Stage, ...], t: float, start_vens: int = 0) -> float:
    """How many VENs should be active t seconds into the run."""
    prev, begin = float(start_vens), 0.0
    for s in stages:
        if t < begin + s.duration_s:
            frac = (t - begin) / s.duration_s if s.duration_s > 0 else 1.0
            return prev + (s.vens - prev) * max(0.0, frac)
        prev, begin = float(s.vens), begin + s.duration_s
    return prev


def bounds(stages: tuple[Stage, ...]) -> list[tuple[float, float, int]]:
    """(start_s, end_s, target VENs at the end) of each stage."""
    out, begin = [], 0.0
    for s in stages:
        out.append((begin, begin + s.duration_s, s.vens))
        begin += s.duration_s
    return out


def ranks(seed: int, vens: int, ven_start: int, ven_stop: int) -> npt.NDArray[np.int64]:
    """Activation rank of each VEN of the shard in the whole fleet: VEN i is active while rank < target."""
    u = uniform01(hash64(seed, STREAM_STAGE_RANK, np.arange(vens, dtype=np.uint64)))
    rank = np.empty(vens, dtype=np.int64)
    rank[np.argsort(u, kind="stable")] = np.arange(vens, dtype=np.int64)
    return rank[ven_start:ven_stop]
