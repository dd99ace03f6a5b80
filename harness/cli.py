"""The `harness` command: run, vtn, profiles, report, compare, capacity.

Edge. A user's mistake is one line on stderr and exit code 2 — never a traceback; a bug still shows one.
"""

from __future__ import annotations

import importlib.resources
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import click

from harness.core.profile import Profile, ProfileError, from_toml, override, with_target_settings
from harness.core.units import parse_duration

EXIT_USAGE = 2
EXIT_ABORTED = 4


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"harness: error: {message}", err=True)
    sys.exit(code)


class Duration(click.ParamType):  # type: ignore[type-arg]
    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_duration(value, f"--{param.name.replace('_', '-')}" if param and param.name else "duration")
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = Duration()


def shipped_profiles() -> dict[str, Path]:
    """Profiles shipped in the package (installed: harness/profiles; a checkout: the top-level profiles/)."""
    try:
        root = Path(str(importlib.resources.files("harness.profiles")))
    except ModuleNotFoundError:
        root = Path(__file__).resolve().parents[1] / "profiles"
    return {p.stem: p for p in sorted(root.glob("*.toml"))}


def load_profile(name_or_path: str | None) -> Profile:
    if name_or_path is None:
        return Profile()
    path = Path(name_or_path)
    if not path.is_file():
        shipped = shipped_profiles()
        if name_or_path not in shipped:
            fail(f"--profile: no profile file {name_or_path!r} and no shipped profile of that name "
                 f"(shipped: {', '.join(shipped)})")
        path = shipped[name_or_path]
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"--profile: cannot read {path}: {exc.strerror}")
    return from_toml(text, source=str(path))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="harness", prog_name="harness")
def cli() -> None:
    """Load-simulation harness for OpenADR 3 VTN servers.

    Simulates a fleet of VENs (homes, shops, EV chargers, PV...) that provision themselves and send
    telemetry reports on a schedule, and reports throughput, coordinated-omission-free latency and
    failures by class. With no --target, `harness run` starts an embedded VTN on 127.0.0.1.
    """


@cli.command()
@click.option("--profile", "profile_name", metavar="NAME|FILE", help="A shipped profile name (see `harness profiles`) or a TOML file.")
@click.option("--vens", type=int, help="Number of simulated VENs. [default: 1000]")
@click.option("--interval", type=DURATION, help="Report interval per VEN, e.g. 15s. [default: 15s]")
@click.option("--duration", type=DURATION, help="How long to schedule operations, e.g. 60s, 2m. [default: 60s]")
@click.option("--reports-per-ven", type=int, help="Count-bounded mode: each VEN sends exactly this many reports, then the run ends.")
@click.option("--target", metavar="URL", help="Base URL of the VTN, e.g. http://127.0.0.1:8080/openadr3/3.0.1. Default: start the embedded VTN.")
@click.option("--dialect", metavar="NAME", help="What the target speaks: openadr-3.0.1, openadr-3.1.0, snake-case-example or a plug-in (needs --target unless openadr-3.0.1). [default: openadr-3.0.1]")
@click.option("--granularity", type=click.Choice(["ven", "resource", "load"]), help="Reports per VEN per interval: one (ven), one per resource, or one per load. [default: the dialect's]")
@click.option("--insecure", is_flag=True, default=None, help="TLS: no certificate or hostname check (test VTNs only).")
@click.option("--ca-bundle", metavar="FILE", help="TLS: trust the CAs in this PEM file instead of the system store.")
@click.option("--source-address", "source_addresses", metavar="IP", multiple=True, help="Local address VENs connect from, in turn (repeat it): each has its own ~28,000 ephemeral ports to the target. [default: the kernel's; 127.0.0.1, .2, ... as needed for a loopback target]")
@click.option("--workers", type=int, help="Worker processes. [default: one per core]")
@click.option("--seed", type=int, help="Seed for the fleet, phases and meter noise. [default: 1]")
@click.option("--sites-per-ven", type=int, help="Resources (sites) per VEN. [default: 1]")
@click.option("--connection", type=click.Choice(["per-ven", "pooled"]), help="One keep-alive connection per VEN (realistic) or a shared pool per worker. [default: per-ven]")
@click.option("--timeout", type=DURATION, help="Per-request timeout. [default: 10s]")
@click.option("--time-scale", type=float, help="Simulated seconds per wall second for meter time. [default: 1]")
@click.option("--name", help="Run name used in the results folder. [default: the profile's name]")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=".", show_default=True, help="Results go to OUT/runs/<UTC time>-<name>/.")
@click.option("--unsubscribe/--keep-subscriptions", "unsubscribe", default=None, help="Webhook mode: delete each VEN's subscription when the run ends. [default: keep]")
@click.option("--startup", type=DURATION, help="Spread the VENs coming online (token, create, resources) over this window instead of the first interval, e.g. 2m for a large fleet.")
@click.option("--warmup", type=DURATION, help="Report the first seconds apart from the measured window. [default: 0s]")
@click.option("--max-loop-lag", "max_loop_lag_ms", type=DURATION, help="Generator health: event-loop lag that makes a window saturated; sustained saturation makes the run invalid (exit 3). [default: 100ms]")
@click.option("--quiet", is_flag=True, help="No live view; print only the final summary.")
@click.option("--threshold", "extra_thresholds", multiple=True, metavar="EXPR", help="A pass/fail check, repeatable, added to the profile's, e.g. 'report.response_time.p99 < 500ms'.")
@click.option("--cluster", metavar="ADDRESS|local:N", help="Run the shards on a Dask cluster: a scheduler address (tcp://HOST:8786), or local:N to start a LocalCluster of N workers. Needs `pip install 'harness[cluster]'`.")
def run(profile_name: str | None, out_dir: str, quiet: bool, extra_thresholds: tuple[str, ...], cluster: str | None, **flags: Any) -> None:
    """Simulate a VEN fleet against a VTN and report what it measured.

    Exit codes: 0 pass, 1 thresholds failed, 2 usage/profile error, 3 generator invalid,
    4 target unreachable or run aborted, 130 interrupted (SIGINT), 143 terminated (SIGTERM).
    """
    from rich.console import Console

    from harness.run.cluster import ClusterError, DaskBackend
    from harness.run.operator import SetupFailed, TargetUnreachable
    from harness.run.supervisor import Supervisor
    from harness.sinks.resultsdir import OutputError
    from harness.sinks.terminal import LiveView, final_report

    profile = load_profile(profile_name)
    profile = with_target_settings(profile, granularity=flags.pop("granularity"), ca_bundle=flags.pop("ca_bundle"),
                                   verify=False if flags.pop("insecure") else None,
                                   source_addresses=flags.pop("source_addresses") or None)
    rename = {"interval": "interval_s", "duration": "duration_s", "timeout": "timeout_s", "warmup": "warmup_s", "startup": "startup_s"}
    if flags.get("max_loop_lag_ms") is not None:
        flags["max_loop_lag_ms"] *= 1000.0
    profile = override(profile, **{rename.get(k, k): v for k, v in flags.items()})
    if extra_thresholds:
        from harness.core.thresholds import parse

        try:
            added = tuple(parse(expr) for expr in extra_thresholds)
        except ValueError as exc:
            fail(f"--threshold: {exc}")
        profile = override(profile, thresholds=profile.thresholds + added)
    console = Console(stderr=False)
    if not console.is_terminal:
        console = Console(stderr=False, width=160)  # CI logs: wide enough for the tables
    try:
        backend = DaskBackend(cluster) if cluster else None  # no connection yet: the supervisor starts it
    except ClusterError as exc:
        fail(str(exc), exc.exit_code)
    view = None if quiet else LiveView(console)
    sup = Supervisor(profile, out_dir, view, backend=backend)
    try:
        outcome = sup.run()
    except ClusterError as exc:
        if view:
            view.close()
        fail(str(exc), exc.exit_code)
    except (TargetUnreachable, SetupFailed) as exc:
        if view:
            view.close()
        fail(str(exc), EXIT_ABORTED)
    except OutputError as exc:
        if view:
            view.close()
        fail(str(exc))
    finally:
        if view:
            view.close()
    final_report(console, outcome.summary, sup.results, outcome.run_dir)
    for t in outcome.summary.get("thresholds", []):
        console.print(f"threshold {'pass' if t['passed'] else 'FAIL'}: {t['expr']} ({t['detail']})",
                      style="green" if t["passed"] else "bold red", markup=False, highlight=False)
    sys.exit(outcome.exit_code)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8080, show_default=True, help="Port (0: a free port, printed at start).")
@click.option("--db", "db_path", default="vtn.sqlite", show_default=True, help="SQLite file (created if missing; kept across restarts).")
@click.option("--token-ttl", type=DURATION, default=3600.0, show_default="1h", help="Access token lifetime.")
@click.option("--fault", "faults", multiple=True, metavar="KEY=VALUE", help="Fault injection, repeatable: latency=50ms, latency=lognormal:20ms:0.5, errors=503:0.05, reset=0.01, stall=30s:2s, max_concurrency=8, service_time=20ms, rate_limit=...")
@click.option("--access-log", is_flag=True, help="Log every request (never secrets or tokens).")
@click.option("--null", "null", is_flag=True, help="Serve the null VTN instead: a canned success for every call at wire speed, storing nothing, no auth or faults — for measuring harness itself (benchmarks, generator ceiling).")
@click.option("--processes", type=click.IntRange(min=1), default=1, show_default=True, help="With --null: serve the port from N processes (SO_REUSEPORT), to hold more connections than one process's open-files limit.")
def vtn(host: str, port: int, db_path: str, token_ttl: float, faults: tuple[str, ...], access_log: bool,
        null: bool, processes: int) -> None:
    """Serve the embedded OpenADR 3.0.1 VTN (aiohttp + SQLite) until Ctrl-C.

    Credentials: business logic client `bl` / secret from $HARNESS_BL_SECRET (default `bl-secret`);
    any VEN client id `ven-<name>` with the secret from $HARNESS_VEN_SECRET (default `ven-secret`).
    """
    from harness.vtn import VtnConfig, parse_faults, serve

    fault_map: dict[str, str] = {}
    for item in faults:
        key, sep, value = item.partition("=")
        if not sep:
            fail(f"--fault must be KEY=VALUE, got {item!r}")
        fault_map[key.strip()] = value.strip()
    try:
        parsed = parse_faults(fault_map)
    except ValueError as exc:
        fail(f"--fault: {exc}")
    config = VtnConfig(
        host=host,
        port=port,
        db_path=db_path,
        token_ttl_s=token_ttl,
        faults=parsed,
        access_log=access_log,
        bl_client_secret=os.environ.get("HARNESS_BL_SECRET", "bl-secret"),
        ven_client_secret=os.environ.get("HARNESS_VEN_SECRET", "ven-secret"),
    )

    if processes > 1 and not null:
        fail("--processes needs --null (the SQLite VTN is one process)")
    if null:
        config = replace(config, null=True, processes=processes)
        if processes > 1:
            _serve_null_processes(config)
            return

    def ready(actual_port: int) -> None:
        what = "null VTN (stores nothing)" if null else f"OpenADR 3.0.1 (db {db_path})"
        click.echo(f"harness vtn: serving {what} at http://{host}:{actual_port}{config.base_path}", err=True)

    from harness.host import collector

    collector.tune()  # this process is the VTN from here on
    try:
        serve(config, ready=ready)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_ABORTED)


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
        fail(f"cannot serve on {config.host}:{config.port}: {exc}", EXIT_ABORTED)


@cli.command("profiles")
def profiles_cmd() -> None:
    """List the shipped profiles with a one-line description."""
    for name, path in shipped_profiles().items():
        try:
            desc = from_toml(path.read_text(encoding="utf-8"), str(path)).description
        except ProfileError as exc:  # pragma: no cover - shipped profiles are tested
            desc = f"(invalid: {exc})"
        click.echo(f"{name:12s} {desc}")


@cli.command("report")
@click.argument("run_dir", type=click.Path())
def report_cmd(run_dir: str) -> None:
    """Write RUN_DIR/report.html: a self-contained HTML report (plots inline, no network needed) of a run.

    Needs matplotlib (pip install 'harness[report]'). Prints the report's path; exit 2 if RUN_DIR is not a
    readable results folder.
    """
    from harness.reports.run import ReportError, write_report

    try:
        path = write_report(Path(run_dir))
    except ReportError as exc:
        fail(str(exc))
    click.echo(str(path))


@cli.command("compare")
@click.argument("base_run", type=click.Path())
@click.argument("new_run", type=click.Path())
@click.option("--tolerance", default="10%", show_default=True, help="Relative change that counts, e.g. 10% or 0.1.")
@click.option("--metric", "metrics", multiple=True, type=click.Choice(["response_time", "service_time", "start_lag"]), help="Latency metric to compare, repeatable. [default: response_time and service_time]")
@click.option("--min-ms", type=float, default=1.0, show_default=True, help="Latency changes smaller than this many ms are noise.")
@click.option("--min-samples", type=click.IntRange(min=1), default=100, show_default=True, help="Judge an operation's latencies only with this many samples in both runs.")
def compare_cmd(base_run: str, new_run: str, tolerance: str, metrics: tuple[str, ...], min_ms: float, min_samples: int) -> None:
    """Compare NEW_RUN against BASE_RUN (results folders) and flag regressions beyond the tolerance.

    Latency percentiles come from the saved histograms (exact merge), rates and error rates from summary.json.
    A percentile is judged only with enough samples above it; max is shown, never judged.
    Exit codes: 0 no regression, 1 regressions beyond the tolerance, 2 usage error or unreadable folder.
    """
    from rich.console import Console
    from rich.table import Table

    from harness.core.compare import IMPROVEMENT, REGRESSION, RunData, Settings, compare, regressions
    from harness.core.thresholds import format_value
    from harness.core.units import parse_percent
    from harness.sinks.resultsdir import RunDirError, read_run

    try:
        tol = parse_percent(tolerance, "--tolerance")
    except ValueError as exc:
        fail(str(exc))
    if not 0 <= tol or (tol > 1 and not tolerance.strip().endswith("%")):
        fail(f"--tolerance must be a percentage like 10% or a fraction in [0, 1], got {tolerance!r}")
    if min_ms < 0:
        fail(f"--min-ms must be >= 0, got {min_ms:g}")
    try:
        base, new = (RunData(*read_run(d)) for d in (base_run, new_run))
    except RunDirError as exc:
        fail(str(exc))
    settings = Settings(tolerance=tol, metrics=metrics or Settings().metrics, min_ms=min_ms, min_samples=min_samples)
    rows = compare(base, new, settings)
    table = Table(title=f"{new_run} vs {base_run}", title_justify="left")
    for col in ("operation", "quantity", "base", "new", "change", ""):
        table.add_column(col, justify="right" if col in ("base", "new", "change") else "left")
    for r in rows:
        style = {REGRESSION: "red", IMPROVEMENT: "green"}.get(r.mark, "")
        change = "" if r.change_pct is None else f"{r.change_pct:+.1f}%"
        shown = ["-" if v is None else format_value(v, r.unit) for v in (r.base, r.new)]
        table.add_row(r.op, r.quantity, *shown, change, r.mark or r.note, style=style or ("dim" if r.note else ""))
    console = Console()
    console.print(table)
    n = len(regressions(rows))
    console.print(f"{n} regression{'' if n == 1 else 's'} beyond {tol * 100:g}%", style="bold red" if n else "bold green",
                  markup=False, highlight=False)
    sys.exit(1 if n else 0)


@cli.command("capacity")
@click.option("--profile", "profile_name", metavar="NAME|FILE", help="A shipped profile (e.g. capacity, ramp) or a TOML file; its [capacity] table sets the plan.")
@click.option("--start", "start_vens", type=int, help="VENs in the first step. [default: the profile's, else 1000]")
@click.option("--step", metavar="N|xF", help="Add N VENs per step, or multiply by F (x1.5). [default: 1000]")
@click.option("--max", "max_vens", type=int, help="Largest fleet to try (the last step). [default: 20000]")
@click.option("--interval", type=DURATION, help="Report interval per VEN. [default: the profile's, 15s]")
@click.option("--hold", "hold_s", type=DURATION, help="Seconds of each step that are measured, once stable. [default: 30s]")
@click.option("--warmup", "warmup_s", type=DURATION, help="Seconds of each step excluded first (provisioning); at least 2 intervals. [default: 30s]")
@click.option("--settle", "settle_s", type=DURATION, help="The most a step holds beyond warm-up + hold waiting to be stable. [default: 60s]")
@click.option("--slo", "slos", multiple=True, metavar="EXPR", help="The SLO, repeatable, replacing the profile's, e.g. 'report.response_time.p99 < 500ms'. [default: p99 < 500ms and errors.rate < 1%]")
@click.option("--target", metavar="URL", help="Base URL of the VTN. Default: one embedded VTN (with the profile's vtn.faults) for the whole search.")
@click.option("--workers", type=int, help="Worker processes per step. [default: one per core]")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=".", show_default=True, help="Writes OUT/runs/<UTC time>-capacity-<name>/.")
def capacity_cmd(profile_name: str | None, slos: tuple[str, ...], interval: float | None, target: str | None,
                 workers: int | None, out_dir: str, **flags: Any) -> None:
    """Step the fleet up until the SLO breaks; report the largest fleet within SLO and the knee.

    Each step runs the fleet against the same target: warm-up (excluded), then it holds until its last --hold
    seconds are stable, which are measured and judged. Stops at the first SLO breach, when the generator becomes
    the limit (a step's run invalid), or at --max. Writes capacity.json and capacity.html.
    Exit codes: 0 capacity found, 1 even the first step breached the SLO, 2 usage error, 3 the generator was the
    limit before any SLO breach, 4 target unreachable, 130 interrupted.
    """
    from rich.console import Console

    from harness.core.capacity import CapacityError, plan_from_mapping
    from harness.core.thresholds import parse
    from harness.reports.capacity import HTML_NAME, JSON_NAME, step_line, steps_table
    from harness.run.operator import SetupFailed, TargetUnreachable
    from harness.run.stepper import run_capacity
    from harness.sinks.resultsdir import OutputError

    profile = override(load_profile(profile_name), interval_s=interval, target=target, workers=workers)
    try:
        slo = tuple(parse(expr) for expr in slos) or None
    except ValueError as exc:
        fail(f"--slo: {exc}")
    try:
        plan = plan_from_mapping(profile.capacity, interval_s=profile.interval_s, default_warmup_s=profile.warmup_s,
                                 slo=slo, **flags)
    except CapacityError as exc:
        fail(str(exc))
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    sizes = plan.fleet_sizes()
    console.print(f"capacity search: {len(sizes)} steps at most ({', '.join(f'{n:,}' for n in sizes[:8])}"
                  f"{', …' if len(sizes) > 8 else ''} VENs), a report every {plan.interval_s:g} s", markup=False, highlight=False)
    try:
        outcome = run_capacity(
            profile, plan, out_dir,
            on_start=lambda d, url: console.print(f"folder {d}, target {url}", markup=False, highlight=False),
            on_step=lambda s: console.print(step_line(s), markup=False, highlight=False),
        )
    except (TargetUnreachable, SetupFailed) as exc:
        fail(str(exc), EXIT_ABORTED)
    except OutputError as exc:
        fail(str(exc))
    console.print(steps_table(outcome))
    console.print(outcome.result.answer, style="bold green" if outcome.result.exit_code == 0 else "bold red",
                  markup=False, highlight=False)
    console.print(f"{outcome.out_dir / JSON_NAME}" + (f"\n{outcome.out_dir / HTML_NAME}" if (outcome.out_dir / HTML_NAME).exists() else ""),
                  markup=False, highlight=False)
    sys.exit(outcome.result.exit_code)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        fail("aborted", 130)
    except click.UsageError as exc:
        where = f"{exc.ctx.command_path}: " if exc.ctx else ""
        fail(f"{where}{exc.format_message()}")
    except click.ClickException as exc:
        fail(exc.format_message())
    except ProfileError as exc:
        fail(str(exc))
    except SystemExit:
        raise
    except KeyboardInterrupt:
        fail("interrupted", 130)
