"""`harness profiles`, `harness report` and `harness compare`: what was shipped and what was measured.

Edge. Errors propagate to the command group, which prints them in one line with their exit code.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from harness.cli.options import out_console, shipped_profiles
from harness.core.exits import EXIT_NO_REGRESSION, EXIT_REGRESSION, ProfileError, UsageError
from harness.core.profile import from_toml


@click.command("profiles")
def profiles_cmd() -> None:
    """List the shipped profiles with a one-line description."""
    for name, path in shipped_profiles().items():
        try:
            desc = from_toml(path.read_text(encoding="utf-8"), str(path)).description
        except ProfileError as exc:  # pragma: no cover - shipped profiles are tested
            desc = f"(invalid: {exc})"
        click.echo(f"{name:12s} {desc}")


@click.command("report")
@click.argument("run_dir", type=click.Path())
def report_cmd(run_dir: str) -> None:
    """Write RUN_DIR/report.html: a self-contained HTML report (plots inline, no network needed) of a run.

    `harness run` writes it too; this redraws it. Prints the report's path; exit 2 if RUN_DIR is not a
    readable results folder.
    """
    from harness.reports.run import write_report

    click.echo(str(write_report(Path(run_dir))))


@click.command("compare")
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
    from rich.table import Table

    from harness.core.compare import IMPROVEMENT, REGRESSION, RunData, Settings, compare, regressions
    from harness.core.thresholds import format_value
    from harness.core.units import parse_percent
    from harness.reports.folder import read_run

    try:
        tol = parse_percent(tolerance, "--tolerance")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not 0 <= tol or (tol > 1 and not tolerance.strip().endswith("%")):
        raise UsageError(f"--tolerance must be a percentage like 10% or a fraction in [0, 1], got {tolerance!r}")
    if min_ms < 0:
        raise UsageError(f"--min-ms must be >= 0, got {min_ms:g}")
    base, new = (RunData(*read_run(d)) for d in (base_run, new_run))
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
    console = out_console()
    console.print(table)
    n = len(regressions(rows))
    console.print(f"{n} regression{'' if n == 1 else 's'} beyond {tol * 100:g}%", style="bold red" if n else "bold green",
                  markup=False, highlight=False)
    sys.exit(EXIT_REGRESSION if n else EXIT_NO_REGRESSION)


@click.command("audit")
@click.argument("run_dir", type=click.Path())
@click.option("--rate", "rate_per_s", type=float, default=20.0, show_default=True, help="Page requests per second at most (50 reports a page).")
@click.option("--restart", is_flag=True, help="Read everything again instead of resuming from RUN_DIR/audit/progress.json.")
def audit_cmd(run_dir: str, rate_per_s: float, restart: bool) -> None:
    """Read back from the VTN, as the operator, every report the run in RUN_DIR sent, and classify each:
    acknowledged and stored; not acknowledged (timeout, reset, abandoned) but stored; acknowledged but missing
    (the VTN lost it); stored twice. An embedded run's VTN is started again on the run's own vtn.sqlite.

    Resumable: progress is saved in RUN_DIR/audit/. Updates summary.json (`audit`) and junit.xml. Exit 0 when every
    acknowledged report is stored, 1 when one is missing, 2 for a folder that cannot be audited, 4 when the VTN
    cannot be read.
    """
    from harness.run.audit import AuditSettings, audit_run, operator_for

    folder = Path(run_dir)
    settings = AuditSettings(rate_per_s=rate_per_s)
    with operator_for(folder) as op:
        result, _ = audit_run(folder, op, settings, restart=restart)
    counts = result.to_json()
    click.echo(f"sent {result.sent:,}: " + ", ".join(f"{k} {counts[k]:,}" for k in (
        "acknowledged_stored", "unacknowledged_stored", "acknowledged_missing", "unacknowledged_missing"))
        + f"; stored twice {result.stored_twice:,}; unexpected {result.unexpected:,}")
    for name, keys in result.examples.items():
        click.echo(f"  {name}: e.g. {', '.join(keys)}")
    sys.exit(1 if result.lost else 0)
