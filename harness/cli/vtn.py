"""`harness vtn`: serve the embedded VTN (or the null VTN) until Ctrl-C.

Edge. Errors propagate to the command group, which prints them in one line with their exit code.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import click

from harness.cli.options import DURATION
from harness.core import embedded
from harness.core.exits import ServeFailed, UsageError


@click.command("vtn")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8080, show_default=True, help="Port (0: a free port, printed at start).")
@click.option("--db", "db_path", default="vtn.sqlite", show_default=True, help="SQLite file (created if missing; kept across restarts).")
@click.option("--token-ttl", type=DURATION, default=3600.0, show_default="1h", help="Access token lifetime.")
@click.option("--fault", "faults", multiple=True, metavar="KEY=VALUE", help="Fault injection, repeatable: latency=50ms, latency=lognormal:20ms:0.5, errors=503:0.05, reset=0.01, stall=30s:2s, max_concurrency=8, service_time=20ms, rate_limit=...")
@click.option("--access-log", is_flag=True, help="Log every request (never secrets or tokens).")
@click.option("--null", "null", is_flag=True, help="Serve the null VTN instead: a canned success for every call at wire speed, storing nothing, no auth or faults — for measuring harness itself (benchmarks, generator ceiling).")
@click.option("--processes", type=click.IntRange(min=1), default=1, show_default=True, help="With --null: serve the port from N processes (SO_REUSEPORT), to hold more connections than one process's open-files limit.")
@click.option("--shared-ven-client", "shared_ven_client", metavar="ID", help="Issue VEN tokens to this one client id only (with the secret from $HARNESS_VEN_SECRET), as VTNs with one shared VEN credential do.")
@click.option("--ven-credentials", "ven_credentials", metavar="FILE", type=click.Path(dir_okay=False), help="Pre-registered VENs from a CSV file (venName, clientID, secret, or a token column): only those client ids with their own secrets get VEN tokens; tokens listed are valid from the start and never expire.")
@click.option("--mqtt/--no-mqtt", "mqtt", default=True, show_default=True, help="Publish OpenADR 3.1.0 notifications over MQTT (advertised in GET /notifiers). Without --broker, a broker is started for the VTN's lifetime on a free port: Mosquitto when installed, else amqtt.")
@click.option("--broker", "broker_url", metavar="mqtt://HOST:PORT", help="Publish to this running MQTT broker instead of starting one.")
@click.option("--broker-kind", type=click.Choice(["auto", "mosquitto", "amqtt"]), default="auto", show_default=True, help="Which broker to start when there is no --broker.")
@click.option("--mqtt-qos", type=click.Choice(["0", "1"]), default="1", show_default=True, help="QoS of every MQTT notification.")
@click.option("--notification-case", type=click.Choice(["camel", "snake"]), default="camel", show_default=True, help="3.1.0 notification bodies: camelCase as the 3.1.0 document defines them, or snake_case as the Alliance's reference 3.1 VTN sends them.")
def vtn_cmd(host: str, port: int, db_path: str, token_ttl: float, faults: tuple[str, ...], access_log: bool,
        null: bool, processes: int, shared_ven_client: str | None, ven_credentials: str | None, mqtt: bool,
        broker_url: str | None, broker_kind: str, mqtt_qos: str, notification_case: str) -> None:
    """Serve the embedded OpenADR VTN (aiohttp + SQLite) until Ctrl-C: 3.0.1 under /openadr3/3.0.1 and 3.1.0
    (with MQTT notifications) under /openadr3/3.1.0, from one store.

    Credentials: business logic client `bl` / secret from $HARNESS_BL_SECRET (default `bl-secret`);
    any VEN client id `ven-<name>` with the secret from $HARNESS_VEN_SECRET (default `ven-secret`) — or only
    the --shared-ven-client, or only the VENs of a --ven-credentials file.
    """
    from harness.vtn import VtnConfig, parse_faults

    fault_map: dict[str, str] = {}
    for item in faults:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--fault must be KEY=VALUE, got {item!r}")
        fault_map[key.strip()] = value.strip()
    try:
        parsed = parse_faults(fault_map)
    except ValueError as exc:
        raise UsageError(f"--fault: {exc}") from None
    config = VtnConfig(
        host=host,
        port=port,
        db_path=db_path,
        token_ttl_s=token_ttl,
        faults=parsed,
        access_log=access_log, notification_case=notification_case,
        bl_client_secret=os.environ.get(embedded.BL_SECRET_ENV, embedded.BL_SECRET),
        ven_client_secret=os.environ.get(embedded.VEN_SECRET_ENV, embedded.VEN_SECRET),
    )
    config = _ven_logins(config, shared_ven_client, ven_credentials)

    if processes > 1 and not null:
        raise UsageError("--processes needs --null (the SQLite VTN is one process)")
    if null:
        config = replace(config, null=True, processes=processes)
        if processes > 1:
            _serve_null_processes(config)
            return

    if broker_url is not None and not mqtt:
        raise UsageError("--broker and --no-mqtt exclude each other")
    if null and broker_url is not None:
        raise UsageError("--broker needs the OpenADR VTN: the null VTN publishes nothing")
    try:
        config = replace(config, mqtt_qos=int(mqtt_qos), mqtt_url=broker_url)
    except ValueError as exc:
        raise UsageError(f"--broker: {exc}") from None
    if not mqtt or null or broker_url is not None:
        _serve(config, db_path, null)
        return
    from harness.vtn.broker import Broker, BrokerError

    try:
        with Broker(kind=broker_kind) as broker:  # type: ignore[arg-type]
            _serve(replace(config, mqtt_url=broker.url), db_path, null, f"{broker.kind} broker pid {broker.pid}")
    except BrokerError as exc:
        raise ServeFailed(f"cannot start an MQTT broker: {exc} (or give --broker, or --no-mqtt)") from None


def _serve(config: Any, db_path: str, null: bool, broker: str = "") -> None:
    from harness.vtn import serve

    def ready(actual_port: int) -> None:
        root = f"http://{config.host}:{actual_port}"
        if null:
            click.echo(f"harness vtn: serving null VTN (stores nothing) at {root}{config.base_path}", err=True)
            return
        click.echo(f"harness vtn: serving OpenADR 3.0.1 at {root}{config.base_path} and 3.1.0 at "
                   f"{root}{config.base_path_31} (db {db_path})", err=True)
        if config.mqtt_url:
            started = f" ({broker})" if broker else ""
            click.echo(f"harness vtn: MQTT notifications (QoS {config.mqtt_qos}) via {config.mqtt_url}{started}", err=True)

    from harness.host import collector

    collector.tune()  # this process is the VTN from here on
    try:
        serve(config, ready=ready)
    except ConnectionError as exc:  # the broker (an OSError too) is not the listening socket
        raise ServeFailed(str(exc)) from None
    except OSError as exc:
        raise ServeFailed(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None


def _ven_logins(config: Any, shared_ven_client: str | None, ven_credentials: str | None) -> Any:
    """The config with VENs logging in as the flags say: one shared client, or a credentials file's VENs."""
    if shared_ven_client is not None and ven_credentials is not None:
        raise UsageError("--shared-ven-client and --ven-credentials exclude each other: choose how VENs log in")
    try:
        if shared_ven_client is not None:
            return replace(config, ven_client_id=shared_ven_client)
        if ven_credentials is not None:
            from harness.run.credentials import read_logins

            return replace(config, ven_logins=read_logins(ven_credentials, "--ven-credentials"))
    except ValueError as exc:  # a ProfileError is one already
        raise UsageError(f"--shared-ven-client: {exc}" if shared_ven_client else str(exc)) from None
    return config


def _serve_null_processes(config: Any) -> None:
    """The null VTN from several spawned processes on one port, until SIGINT or SIGTERM."""
    import signal

    from harness.vtn import EmbeddedVtn

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        with EmbeddedVtn(config) as v:
            click.echo(f"harness vtn: serving null VTN (stores nothing) at {v.url} from {config.processes} processes "
                       f"(pids {', '.join(map(str, v.pids))})", err=True)
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except RuntimeError as exc:
        raise ServeFailed(f"cannot serve on {config.host}:{config.port}: {exc}") from None
