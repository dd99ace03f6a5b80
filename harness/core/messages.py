"""Messages between supervisor and workers: frozen dataclasses of plain data, named for facts.

Pure and picklable: nothing loop-bound, no sockets, no sessions ever travel in them.
Down (supervisor → worker, over the control pipe): Start, Stop.
Up (worker → supervisor, over the results queue): WorkerReady, WorkerDelta, WorkerDone, WorkerFailed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from harness.core.delivery import ReportLedger
from harness.core.histogram import MAX_NS

SparseHist = tuple[npt.NDArray[np.int32], npt.NDArray[np.int64], int, int]
EMPTY_SPARSE: SparseHist = (np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64), MAX_NS, 0)


@dataclass(frozen=True)
class Start:
    """Begin the schedule: slot 0 of the run is at this wall-clock instant (epoch seconds)."""

    t0_epoch_s: float


@dataclass(frozen=True)
class Stop:
    """Stop scheduling now; drain in-flight requests for at most drain_s, then close and report."""

    drain_s: float
    reason: str = "stop"


@dataclass(frozen=True)
class OpDelta:
    """One operation's results over one window: counts and sparse latency histograms (ns)."""

    ok: int
    errors: int
    response: SparseHist
    service: SparseHist
    lag: SparseHist
    # Failed attempts' time to their outcome (failure instant - intended): with `response`, every attempt.
    failed: SparseHist = EMPTY_SPARSE


@dataclass(frozen=True)
class ErrorDelta:
    """One failure class in a window: its count, the operation with most of it and an example, and per operation
    (op, count, example) — a class spread over operations is credited to each (empty: all of it is `op`'s)."""

    count: int
    op: str
    example: str
    by_op: tuple[tuple[str, int, str], ...] = ()


@dataclass(frozen=True)
class Health:
    """Generator health over one window."""

    loop_lag_max_ms: float
    loop_lag_mean_ms: float
    cpu_percent: float
    rss_bytes: int
    open_fds: int
    in_flight: int
    backlog: int


@dataclass(frozen=True)
class WorkerReady:
    worker_id: int
    pid: int
    vens: int


@dataclass(frozen=True)
class WorkerDelta:
    """What one worker measured in window `window` (seconds since t0, by completion time)."""

    worker_id: int
    window: int
    ops: dict[str, OpDelta]
    errors: dict[str, ErrorDelta]
    health: Health
    vens_ready: int
    vens_done: int
    is_final: bool = False
    counters: dict[str, int] = field(default_factory=dict)  # summed over workers; "max:<name>" keeps the largest
    aware: dict[str, list[float]] = field(default_factory=dict)  # DR event id -> instants VENs learned of it
    shed: dict[str, list[float]] = field(default_factory=dict)  # DR event id -> instants of first shed reports
    # Protocol deviation kind -> one example (its count is the counter deviation:<kind>).
    deviations: dict[str, str] = field(default_factory=dict)
    learned: dict[str, dict[str, int]] = field(default_factory=dict)  # DR event id -> how VENs learned -> count
    # The final delta only: which reports this worker sent and which were acknowledged (delivery audit).
    ledger: ReportLedger | None = None


@dataclass(frozen=True)
class WorkerDone:
    worker_id: int
    reason: str
    deltas_sent: int


@dataclass(frozen=True)
class WorkerFailed:
    """A worker hit a bug: the traceback travels up to be reported; the run is marked."""

    worker_id: int
    traceback: str
