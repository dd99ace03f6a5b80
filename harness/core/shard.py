"""The plain, picklable spec a worker runs: its slice of the fleet and every setting it needs.

Pure: built by the supervisor from a Profile, sent to a worker process (or a Dask task) as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from harness.core import embedded
from harness.core.badday import Backoff
from harness.core.credentials import FILE, PER_VEN, SHARED, TOKEN, VenLogin
from harness.core.fleet import FleetSpec
from harness.core.replay import Replay
from harness.core.stages import Stage
from harness.core.target import TargetSettings


@dataclass(frozen=True)
class Login:
    """How one VEN gets its bearer token: client credentials, or a token issued beforehand (no token endpoint)."""

    client_id: str = ""
    secret: str = field(default="", repr=False)
    token: str = field(default="", repr=False)


@dataclass(frozen=True)
class Credentials:
    """Resolved secrets (never logged, never written to results) and the VEN credential mode they serve.

    ven_mode (harness.core.credentials): per-ven (`ven_client_prefix` + venName), shared (`ven_client_id` for every
    VEN; with `shared_token` one token per worker), file (`ven_logins`, one per VEN of this shard in fleet order from
    fleet index `ven_logins_start`), token (`ven_token` for every VEN). Whatever the mode, harness keys each VEN by
    its own name and id: a shared credential only means the VTN cannot tell them apart."""

    bl_client_id: str = embedded.BL_CLIENT_ID
    bl_secret: str = embedded.BL_SECRET
    ven_client_prefix: str = embedded.VEN_CLIENT_PREFIX
    ven_secret: str = embedded.VEN_SECRET
    provisioning_client_id: str | None = None  # when set, VENs and resources are created with this credential
    provisioning_secret: str = ""
    ven_mode: str = PER_VEN
    ven_client_id: str | None = None  # shared mode: the one VEN client id
    shared_token: bool = False  # shared mode: one token per worker, not one per VEN
    ven_token: str = ""  # token mode: the pre-issued bearer token
    ven_logins: tuple[VenLogin, ...] = ()  # file mode
    ven_logins_start: int = 0
    token_url: str | None = None  # None: the dialect's ({base}/auth/token, or 3.1 discovery); "discover"; or a URL

    def __post_init__(self) -> None:
        if self.ven_mode == SHARED and not self.ven_client_id:
            raise ValueError("credentials: shared mode needs ven_client_id")
        if self.shared_token and self.ven_mode != SHARED:
            raise ValueError("credentials: shared_token needs the shared mode (ven_client_id)")
        if self.ven_mode == TOKEN and not self.ven_token:
            raise ValueError("credentials: token mode needs ven_token")

    def login(self, ven_index: int, ven_name: str) -> Login:
        """The credentials VEN `ven_index` (fleet-wide) with name `ven_name` logs in with."""
        mode = self.ven_mode
        if mode == PER_VEN:
            return Login(f"{self.ven_client_prefix}{ven_name}", self.ven_secret)
        if mode == SHARED:
            assert self.ven_client_id is not None
            return Login(self.ven_client_id, self.ven_secret)
        if mode == TOKEN:
            return Login(token=self.ven_token)
        assert mode == FILE, mode
        row = self.ven_logins[ven_index - self.ven_logins_start]
        assert row.ven_name == ven_name, (row.ven_name, ven_name)  # the table is in fleet order
        return Login(row.client_id, row.secret, row.token)

    def for_vens(self, start: int, stop: int) -> Credentials:
        """These credentials for fleet VENs [start, stop): a credentials file's rows cut to them, so a worker
        carries only its own shard's secrets."""
        if self.ven_mode != FILE:
            return self
        lo = start - self.ven_logins_start
        if lo < 0 or stop - self.ven_logins_start > len(self.ven_logins):
            raise ValueError(f"credentials: VENs {start}..{stop - 1} are not all in the table")
        return replace(self, ven_logins=self.ven_logins[lo:stop - self.ven_logins_start], ven_logins_start=start)

    def __repr__(self) -> str:  # secrets stay out of logs and tracebacks
        return (f"Credentials(bl_client_id={self.bl_client_id!r}, ven_mode={self.ven_mode!r}, "
                f"ven_client_prefix={self.ven_client_prefix!r}, ven_client_id={self.ven_client_id!r}, "
                f"ven_logins={len(self.ven_logins)})")


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
    dialect: str = embedded.DIALECT
    delta_interval_s: float = 1.0
    time_scale: float = 1.0
    sim_start_epoch_s: float | None = None  # None: the wall-clock instant of t0
    meter_tick_s: float = 60.0  # simulated seconds per meter tick
    warmup_s: float = 0.0
    events: str = "none"  # none | poll | webhook | mqtt: how VENs learn of DR events
    mqtt_qos: int = 1  # mqtt mode: QoS of the subscriptions (1: a persistent session)
    mqtt_pooled: bool = False  # mqtt mode: the VENs share pool_size MQTT connections (else one each)
    dr_shares: tuple[float, ...] = ()  # the share of the fleet each of the profile's DR events targets (seeded)
    poll_interval_s: float = 30.0
    unsubscribe: bool = False  # webhook mode: delete each VEN's subscription when the run ends
    # Base path, operations vocabulary, granularity and TLS files; the SSLContext is built in the worker.
    target_settings: TargetSettings = TargetSettings()
    startup_s: float | None = None  # VENs come online spread over this window (None: the first interval)
    stages: tuple[Stage, ...] = ()  # the active fleet over time (empty: every VEN from the start)
    op_timeouts: tuple[tuple[str, float], ...] = ()  # per-operation overrides of timeout_s (the longest of all)
    replay: Replay | None = None  # measured curves that drive some loads (fleet.replay), parsed once at set-up
    report_tag: str = ""  # the run's tag in every report id (core.delivery); "": reports carry no id
    reread_s: float | None = None  # webhook mode: re-read the events this long after a notification (None: never)
    fault_ends_s: tuple[float, ...] = ()  # run time each [[faults]] entry ends (who reported after it)
    drops_at_s: tuple[float, ...] = ()  # run times of the drop_connections faults (the worker closes its connections)
    reconnect: Backoff = Backoff()  # after a failed attempt: the VEN's back-off and how many reports it keeps

    @property
    def vens(self) -> int:
        return self.ven_stop - self.ven_start
