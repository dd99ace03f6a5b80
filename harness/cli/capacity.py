"""`harness capacity`: step the fleet up against one target until the SLO breaks.

Edge. Errors propagate to the command group, which prints them in one line with their exit code.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from harness.cli.options import DURATION, load_profile, out_console
from harness.core.exits import UsageError
from harness.core.profile import override


@click.command("capacity")
@click.option("--profile", "profile_name", metavar="NAME|FILE", help="A shipped profile (e.g. capacity, ramp) or a TOML file; its [capacity] table sets the plan.")
@click.option("--start", "start_vens", type=int, help="VENs in the first step. [default: the profile's, else 1000]")
@click.option("--step", metavar="N|xF", help="Add N VENs per step, or multiply by F (x1.5). [default: 1000]")
@click.option("--max", "max_vens", type=int, help="Largest fleet to try (the last step). [default: 20000]")
@click.option("--interval", type=DURATION, help="Report interval per VEN. [default: the profile's, 15s]")
@click.option("--hold", "hold_s", type=DURATION, help="Seconds of each step that are measured, once stable. [default: 30s]")
@click.option("--warmup", "warmup_s", type=DURATION, help="Seconds of each step excluded first (provisioning), at least 2 intervals. [default: capacity.warmup, else the profile's run.warmup, else 2 intervals]")
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

    from harness.core.capacity import plan_from_mapping
    from harness.core.thresholds import parse
    from harness.reports.capacity import HTML_NAME, JSON_NAME, step_line, steps_table
    from harness.run.stepper import run_capacity

    profile = override(load_profile(profile_name), interval_s=interval, target=target, workers=workers)
    try:
        slo = tuple(parse(expr) for expr in slos) or None
    except ValueError as exc:
        raise UsageError(f"--slo: {exc}") from None
    plan = plan_from_mapping(profile.capacity, interval_s=profile.interval_s, default_warmup_s=profile.warmup_s,
                             slo=slo, **flags)
    console = out_console()
    sizes = plan.fleet_sizes()
    console.print(f"capacity search: {len(sizes)} steps at most ({', '.join(f'{n:,}' for n in sizes[:8])}"
                  f"{', …' if len(sizes) > 8 else ''} VENs), a report every {plan.interval_s:g} s", markup=False, highlight=False)
    outcome = run_capacity(
        profile, plan, out_dir,
        on_start=lambda d, url: console.print(f"folder {d}, target {url}", markup=False, highlight=False),
        on_step=lambda s: console.print(step_line(s), markup=False, highlight=False),
    )
    console.print(steps_table(outcome))
    console.print(outcome.result.answer, style="bold green" if outcome.result.exit_code == 0 else "bold red",
                  markup=False, highlight=False)
    console.print(f"{outcome.out_dir / JSON_NAME}" + (f"\n{outcome.out_dir / HTML_NAME}" if (outcome.out_dir / HTML_NAME).exists() else ""),
                  markup=False, highlight=False)
    sys.exit(outcome.result.exit_code)
