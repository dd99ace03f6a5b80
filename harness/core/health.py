"""Generator health: decide from per-window worker health whether harness itself was the bottleneck.

Pure. A window is *saturated* when a worker's event loop woke later than `max_loop_lag_ms` after a timer
was due, or its CPU was at `max_cpu_percent`: then the intended schedule was not kept by harness, and the
latencies it measured describe harness as much as the target. Too many such windows make the run invalid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from harness.core.messages import Health


@dataclass(frozen=True)
class HealthLimits:
    max_loop_lag_ms: float = 100.0
    max_cpu_percent: float = 95.0
    max_saturated_fraction: float = 0.1  # of a worker's windows
    min_saturated_windows: int = 3


def is_saturated(h: Health, limits: HealthLimits) -> bool:
    return h.loop_lag_max_ms > limits.max_loop_lag_ms or h.cpu_percent >= limits.max_cpu_percent


def judge(history: Mapping[int, Sequence[Health]], limits: HealthLimits) -> list[str]:
    """Reasons the generator was the bottleneck (empty: it kept up)."""
    reasons: list[str] = []
    for worker_id, windows in sorted(history.items()):
        if not windows:
            continue
        bad = [h for h in windows if is_saturated(h, limits)]
        if len(bad) >= limits.min_saturated_windows and len(bad) > limits.max_saturated_fraction * len(windows):
            lag = max(h.loop_lag_max_ms for h in bad)
            cpu = max(h.cpu_percent for h in bad)
            reasons.append(
                f"generator saturated: worker {worker_id} missed its schedule in {len(bad)} of {len(windows)} windows "
                f"(loop lag up to {lag:.0f} ms, limit {limits.max_loop_lag_ms:g} ms; CPU up to {cpu:.0f} %)"
            )
    return reasons


def first_saturated(deltas: Iterable[tuple[int, Health]], limits: HealthLimits) -> str | None:
    """A live warning for the first saturated window seen, or None."""
    for worker_id, h in deltas:
        if is_saturated(h, limits):
            return (
                f"worker {worker_id} is saturated (loop lag {h.loop_lag_max_ms:.0f} ms, CPU {h.cpu_percent:.0f} %): "
                "latencies may describe harness, not the target"
            )
    return None
