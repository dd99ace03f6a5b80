"""`harness run`: one run of a profile, its live view and its final tables.

Edge. Errors propagate to the command group, which prints them in one line with their exit code.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from harness.cli.options import DURATION, load_profile, out_console
from harness.core.exits import UsageError
from harness.core.profile import Profile, override, with_target_settings


@click.command("run")
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
@click.option("--workers", type=int, help="Worker processes. [default: one per core, one less when the embedded VTN runs on this machine]")
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
@click.option("--audit", "audit", is_flag=True, help="At the end, read every report the run sent back from the VTN (as the operator) and prove each stored once: an acknowledged report the VTN does not hold fails the run (see `harness audit`).")
@click.option("--audit-rate", type=float, default=20.0, show_default=True, help="With --audit: page requests per second at most (50 reports a page).")
@click.option("--cluster", metavar="ADDRESS|local:N", help="Run the shards on a Dask cluster: a scheduler address (tcp://HOST:8786), or local:N to start a LocalCluster of N workers. Needs `pip install 'harness[cluster]'`.")
@click.option("--web", metavar="[HOST:]PORT", help="Serve a live dashboard of the run at http://HOST:PORT/ (HOST 127.0.0.1 unless given; port 0: any free one), updated every second; the URL is printed on stderr. See docs/dashboard.md.")
@click.option("--prometheus", metavar="[HOST:]PORT", help="Serve the run's metrics for Prometheus at http://HOST:PORT/metrics (HOST 127.0.0.1 unless given; port 0: any free one, printed on stderr). See docs/metrics.md.")
@click.option("--prometheus-linger", type=DURATION, default=15.0, help="With --prometheus: at the end, keep serving the final counts until one scrape has read them, this long at most (0s: close at once). [default: 15s]")
@click.option("--otlp", metavar="URL", help="Push the run's metrics to an OpenTelemetry collector over OTLP/HTTP, e.g. http://127.0.0.1:4318 (/v1/metrics is added to a bare URL); flushed at the end.")
@click.option("--otlp-interval", type=DURATION, default=10.0, help="With --otlp: push this often while the run goes. [default: 10s]")
def run_cmd(profile_name: str | None, out_dir: str, quiet: bool, extra_thresholds: tuple[str, ...], cluster: str | None,
            audit: bool, audit_rate: float, web: str | None, prometheus: str | None, prometheus_linger: float, otlp: str | None,
            otlp_interval: float, **flags: Any) -> None:
    """Simulate a VEN fleet against a VTN and report what it measured.

    Exit codes: 0 pass, 1 thresholds failed, 2 usage/profile error, 3 generator invalid,
    4 target unreachable or run aborted, 130 interrupted (SIGINT), 143 terminated (SIGTERM).
    """

    from harness.run.cluster import DaskBackend
    from harness.run.session import RunSession
    from harness.sinks.terminal import LiveView, final_report

    profile = _profile(profile_name, extra_thresholds, flags)
    console = out_console()
    backend = DaskBackend(cluster) if cluster else None  # no connection yet: the run set-up starts it
    view = None if quiet else LiveView(console)
    from harness.run.audit import AuditSettings

    settings = AuditSettings(rate_per_s=audit_rate) if audit else None
    exporters = _exporters(prometheus, prometheus_linger, otlp, otlp_interval)
    dashboard = _dashboard(web)
    session = RunSession(profile, out_dir, view, backend=backend, audit=settings, exporters=exporters,
                         report=True, sinks=[dashboard] if dashboard else ())
    try:
        outcome = session.run()
    finally:
        if dashboard:
            dashboard.close()
        for e in exporters:
            e.close()  # a run that failed in set-up never told them it finished
            if getattr(e, "problem", None):
                click.echo(f"harness: {e.problem}", err=True)
        if view:
            view.close()  # before any error line, so it is not drawn over
    final_report(console, outcome.summary, session.results, outcome.run_dir)  # thresholds or default gates included
    if outcome.report_path is not None:
        console.print(f"report: {outcome.report_path}", highlight=False, soft_wrap=True)
    if outcome.report_error is not None:
        click.echo(f"harness: note: report.html not written ({outcome.report_error}); the results and verdict stand",
                   err=True)
    aborted = outcome.summary.get("aborted")
    if aborted:  # the target refused the run at first contact: its status and detail, in one line
        click.echo(f"harness: error: {aborted['reason']}", err=True)
    sys.exit(outcome.exit_code)


def _dashboard(web: str | None) -> Any:
    """The live web dashboard, bound now (a bad or busy address ends the command before the run), or None."""
    if web is None:
        return None
    from harness.sinks.web import WebDashboard

    dashboard = WebDashboard(web)
    click.echo(f"harness: web dashboard: {dashboard.url}", err=True)
    return dashboard


def _exporters(prometheus: str | None, linger_s: float, otlp: str | None, interval_s: float) -> list[Any]:
    """The metrics exporters asked for, bound or checked now, so a bad address ends the command before the run."""
    out: list[Any] = []
    if otlp is not None:
        from harness.sinks.otlp import OtlpSink

        out.append(OtlpSink(otlp, interval_s))
    if prometheus is not None:
        from harness.sinks.prometheus import PrometheusSink

        sink = PrometheusSink(prometheus, linger_s, say=lambda line: click.echo(f"harness: {line}", err=True))
        click.echo(f"harness: prometheus: serving {sink.url}", err=True)
        out.append(sink)
    return out


def _profile(profile_name: str | None, extra_thresholds: tuple[str, ...], flags: dict[str, Any]) -> Profile:
    """The profile named, with the flags given on top (None: not given)."""
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
            raise UsageError(f"--threshold: {exc}") from None
        profile = override(profile, thresholds=profile.thresholds + added)
    return profile
