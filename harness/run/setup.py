"""Run set-up: everything before the workers start — preflight checks, secrets, the fleet fitted to this host, the
embedded VTN, the operator's program and event, and the shard specs.

Edge. Every mistake a user can make is a one-line ProfileError raised before anything starts.
"""

from __future__ import annotations

import ssl
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness import dialects
from harness.core import embedded
from harness.core.exits import ProfileError, SetupFailed
from harness.core.fleet import FleetSpec, split
from harness.core.profile import Profile
from harness.core.shard import Credentials, ShardSpec
from harness.dialects import resolve_granularity
from harness.host.limits import check_fleet, describe_addresses, loopback_sources
from harness.net import tls
from harness.run.backend import Backend
from harness.run.credentials import embedded_vtn_auth, resolve_credentials
from harness.run.replayfile import load_replay
from harness.run.operator import Operator
from harness.run.signals import SignalLog

VTN_STOP_S, VTN_STOP_INTERRUPTED_S, VTN_STOP_FORCED_S = 10.0, 2.0, 0.5


def preflight(p: Profile, embedded_vtn: bool, speaks: tuple[str, ...] = embedded.DIALECTS
              ) -> tuple[Credentials, ssl.SSLContext | None]:
    """Everything a run needs that a user can get wrong, checked before anything starts (each a one-line
    ProfileError): the dialect and its granularity, TLS files, the dialects an embedded VTN `speaks`, secrets."""
    try:
        dialect = dialects.get(p.dialect)
    except ValueError as exc:
        raise ProfileError(f"profile: target.{exc}") from None
    try:
        resolve_granularity(dialect, p.target_settings.granularity)
        if p.target_settings.uses_tls_files:
            tls.client_context(p.target_settings)  # the files exist and load, whatever the scheme
        ctx = tls.context_for(p.target_settings.base_url(p.target or "http://127.0.0.1"), p.target_settings)
    except ValueError as exc:
        raise ProfileError(f"profile: {exc}") from None
    if embedded_vtn and p.dialect not in speaks:
        raise ProfileError(f"profile: target.dialect {p.dialect} needs --target: the embedded VTN speaks only "
                           f"{' and '.join(speaks)}")
    load_replay(p)  # the replay CSV reads and maps onto load kinds
    return resolve_credentials(p, embedded_vtn), ctx


def worker_count(p: Profile, backend: Backend) -> int:
    """The profile's workers, else the backend's default (one per core, or per cluster thread); at most one per VEN."""
    default = backend.default_workers(embedded_vtn=p.target is None)
    return int(min(p.workers or default, p.vens))


def fit_to_host(p: Profile, n_workers: int, notes: list[str]) -> Profile:
    """On this machine: VENs beyond one address's ephemeral ports connect from more loopback addresses; a fleet
    the host's open-file or port limits cannot hold is a ProfileError."""
    target_host = urlsplit(p.target).hostname if p.target else None
    sources = loopback_sources(p.vens, p.connection, target_host, p.target_settings.source_addresses)
    if sources != p.target_settings.source_addresses:
        p = replace(p, target_settings=replace(p.target_settings, source_addresses=sources))
        notes.append(f"{p.vens:,} own connections exceed one address's ephemeral ports: VENs connect "
                     f"from {describe_addresses(sources)} in turn")
    problem = check_fleet(p.vens, n_workers, p.connection, p.target is None,
                          sources=len(p.target_settings.source_addresses))
    if problem is not None:
        raise ProfileError(problem)
    return p


def start_embedded_vtn(stack: ExitStack, p: Profile, run_dir: Path, signals: SignalLog,
                       creds: Credentials | None = None) -> tuple[str, int | None, Any]:
    """The embedded VTN for this run, issuing VEN credentials the way `creds` log in, stopped when the stack
    closes: (its URL, its pid, the EmbeddedVtn, which a restart fault kills and starts again). A 3.1.0 run gets
    the VTN's 3.1.0 base path and an MQTT broker of its own (`vtn.broker`), stopped after the VTN."""
    from harness.vtn import EmbeddedVtn, VtnConfig  # the embedded VTN is optional at import time

    auth = embedded_vtn_auth(creds) if creds is not None else {}
    config = VtnConfig(db_path=str(run_dir / "vtn.sqlite"), notification_case=p.vtn_notification_case,
                       **_vtn_faults(p), **auth)
    broker = _start_broker(stack, p) if p.dialect == embedded.DIALECT_31 else None
    if broker is not None:
        config = replace(config, mqtt_url=broker.url, mqtt_qos=p.mqtt_qos)
    vtn = EmbeddedVtn(config).start()
    vtn.broker = broker
    stack.callback(lambda: vtn.stop(timeout=vtn_stop_s(signals)))
    return vtn.url if broker is None else vtn.url_31, vtn.pid, vtn


def _start_broker(stack: ExitStack, p: Profile) -> Any:
    """The run's MQTT broker: Mosquitto when installed (persistent sessions: a restarted broker keeps its queued
    QoS 1 messages), else amqtt; closed when the stack closes. A broker that cannot start is a SetupFailed."""
    from harness.vtn.broker import Broker, BrokerError, find_mosquitto

    try:
        broker = Broker(persistence=find_mosquitto() is not None).start()
    except BrokerError as exc:
        raise SetupFailed(f"cannot start an MQTT broker for the embedded 3.1.0 VTN: {exc}") from None
    stack.callback(broker.close)
    return broker


def vtn_mqtt_counts(vtn: Any, timeout_s: float = 10.0) -> dict[str, Any] | None:
    """The embedded VTN's MQTT publish counts (GET /_harness/stats), once what it queued was sent; None without a
    broker, or when the VTN does not answer (a run that killed it)."""
    import json
    import urllib.request

    if vtn is None or vtn.broker is None:
        return None
    root = f"http://127.0.0.1:{vtn.port}/_harness/stats"
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            with urllib.request.urlopen(root, timeout=timeout_s) as resp:  # noqa: S310 - the run's loopback VTN
                mqtt: dict[str, Any] = json.loads(resp.read())["mqtt"]
            if not (mqtt.get("queued") or mqtt.get("inflight") or mqtt.get("batches")) or time.monotonic() > deadline:
                return mqtt
            time.sleep(0.05)  # a poll interval of a predicate with a deadline: the publisher is draining
    except (OSError, ValueError, KeyError):
        return None


def vtn_stop_s(signals: SignalLog) -> float:
    """How long the embedded VTN may take to finish in-flight requests: short once interrupted, shorter on
    a second signal (a stalled VTN must not hold the exit)."""
    n = len(signals.received)
    return VTN_STOP_S if not n else VTN_STOP_INTERRUPTED_S if n == 1 else VTN_STOP_FORCED_S


def _vtn_faults(p: Profile) -> dict[str, Any]:
    if not p.vtn_faults:
        return {}
    from harness.vtn import parse_faults

    return {"faults": parse_faults(p.vtn_faults)}


def set_up_operator(p: Profile, target: str, creds: Credentials, ssl_context: ssl.SSLContext | None,
                    reachable_window_s: float) -> tuple[Operator, str, str]:
    """The business-logic role: wait for the target, find its token URL, ensure the program and the telemetry
    event the reports reference. Returns (operator, program_id, event_id)."""
    op = Operator(p.target_settings.base_url(target), dialects.get(p.dialect), creds.bl_client_id,
                  creds.bl_secret, p.timeout_s, ssl_context)
    op.wait_reachable(reachable_window_s)
    op.discover_token_url(creds.token_url)
    program_id = op.ensure_program(p.program_name)
    event_id = op.ensure_event(program_id, f"{p.program_name}-telemetry", time.time())
    return op, program_id, event_id


def fleet_of(p: Profile) -> FleetSpec:
    return FleetSpec(vens=p.vens, sites_per_ven=p.sites_per_ven, mix=p.mix, name_prefix=p.name_prefix)


def shard_specs(p: Profile, n_workers: int, target: str, program_id: str, event_id: str,
                creds: Credentials, report_tag: str = "") -> list[ShardSpec]:
    """One spec per worker: its slice of the fleet and every setting it needs (picklable)."""
    fleet = fleet_of(p)
    replay, sim_start = load_replay(p)
    return [
        ShardSpec(replay=replay, sim_start_epoch_s=sim_start,
            worker_id=i, fleet=fleet, ven_start=lo, ven_stop=hi, seed=p.seed, target=target, program_id=program_id,
            event_id=event_id, interval_s=p.interval_s, duration_s=p.duration_s, reports_per_ven=p.reports_per_ven,
            connection=p.connection, pool_size=max(1, p.pool_size // n_workers),
            timeout_s=max([p.timeout_s, *p.op_timeouts.values()]), op_timeouts=tuple(sorted(p.op_timeouts.items())),
            credentials=creds.for_vens(lo, hi), dialect=p.dialect, time_scale=p.time_scale, meter_tick_s=p.meter_tick_s,
            warmup_s=p.warmup_s, events=p.events, poll_interval_s=p.poll_interval_s, unsubscribe=p.unsubscribe,
            target_settings=p.target_settings, stages=p.stages, startup_s=p.startup_s, report_tag=report_tag,
            reconnect=p.reconnect, reread_s=p.reread_s, mqtt_qos=p.mqtt_qos,
            mqtt_pooled=(p.mqtt_connection or p.connection) == "pooled",
            dr_shares=tuple(e.share for e in p.dr_events), fault_ends_s=tuple(f.end_s for f in p.faults),
            drops_at_s=tuple(f.at_s for f in p.faults if f.kind == "drop_connections"),
        )
        for i, (lo, hi) in enumerate(split(p.vens, n_workers))
    ]
