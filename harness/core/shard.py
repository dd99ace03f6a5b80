"""The plain, picklable spec a worker runs: its slice of the fleet and every setting it needs.

Pure: built by the supervisor from a Profile, sent to a worker process (or a Dask task) as is.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.core.fleet import FleetSpec
from harness.core.stages import Stage
from harness.core.target import TargetSettings


@dataclass(frozen=True)
class Credentials:
    """Resolved secrets (never logged, never written to results)."""

    bl_client_id: str = "bl"
    bl_secret: str = "bl-secret"
    ven_client_prefix: str = "ven-"
    ven_secret: str = "ven-secret"
    provisioning_client_id: str | None = None  # when set, VENs and resources are created with this credential
    provisioning_secret: str = ""

    def __repr__(self) -> str:  # secrets stay out of logs and tracebacks
        return f"Credentials(bl_client_id={self.bl_client_id!r}, ven_client_prefix={self.ven_client_prefix!r})"


@dataclass(frozen=True)
class ShardSpec:
    worker_id: int
    fleet: FleetSpec
    ven_start: int
    ven_stop: int
    seed: int
    target: str  # the target URL, e.g. http://127.0.0.1:8080/openadr3/3.0.1 (target_settings.base_url adds a base path)
    program_id: str
    event_id: str
    interval_s: float
    duration_s: float  # scheduling stops at t0 + duration_s
    reports_per_ven: int | None  # count-bounded mode: each VEN sends exactly this many reports
    connection: str  # "per-ven" | "pooled"
    pool_size: int
    timeout_s: float
    credentials: Credentials
    dialect: str = "openadr-3.0.1"
    delta_interval_s: float = 1.0
    time_scale: float = 1.0
    sim_start_epoch_s: float | None = None  # None: the wall-clock instant of t0
    meter_tick_s: float = 60.0  # simulated seconds per meter tick
    warmup_s: float = 0.0
    events: str = "none"  # none | poll | webhook: how VENs learn of DR events
    poll_interval_s: float = 30.0
    unsubscribe: bool = False  # webhook mode: delete each VEN's subscription when the run ends
    # Base path, operations vocabulary, granularity and TLS files; the SSLContext is built in the worker.
    target_settings: TargetSettings = TargetSettings()
    startup_s: float | None = None  # VENs come online spread over this window (None: the first interval)
    stages: tuple[Stage, ...] = ()  # the active fleet over time (empty: every VEN from the start)
    op_timeouts: tuple[tuple[str, float], ...] = ()  # per-operation overrides of timeout_s (the longest of all)

    @property
    def vens(self) -> int:
        return self.ven_stop - self.ven_start
