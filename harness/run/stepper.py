"""The capacity search: one `RunSession` per step against ONE target, until the SLO breaks, the generator
becomes the limit, or the plan's max.

Edge (processes, files). With no target it starts one embedded VTN (with the profile's `vtn.faults`) for the whole
search, so VENs provisioned by earlier steps are found again (409 → lookup). Each step holds until its last `hold`
seconds are stable (see `harness.core.capacity.trend`), then stops its workers; its run folder is kept as
`<capacity folder>/step-NN-<vens>/`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from harness.core.capacity import CapacityPlan, StepFigures, step_figures, stop_reason
from harness.core.exits import EXIT_INTERRUPTED, ProfileError
from harness.core.knee import CapacityOutcome, analyse
from harness.core.profile import Profile
from harness.run.credentials import embedded_vtn_auth, resolve_credentials
from harness.run.session import RunSession
from harness.sinks.base import RunSink
from harness.sinks.resultsdir import make_run_dir
from harness.sinks.stepwatch import StepWatch


def _workers(profile: Profile, embedded: bool) -> int:
    if profile.workers:
        return profile.workers
    # The embedded VTN is on this machine: leave it a core, as `harness run` does.
    return max(1, (os.cpu_count() or 1) - (1 if embedded else 0))


def run_step(profile: Profile, plan: CapacityPlan, index: int, vens: int, target: str, out_dir: Path,
             workers: int, view: RunSink | None = None, embedded: bool = False) -> StepFigures:
    """Run one step to its hold and measure it; its run folder ends up as out_dir/step-NN-<vens>/."""
    name = f"step-{index:02d}-{vens}"
    p = replace(profile, name=name, target=target, vens=vens, interval_s=plan.interval_s,
                duration_s=plan.step_duration_s, reports_per_ven=None, warmup_s=float(plan.warmup_windows),
                thresholds=(), workers=min(workers, vens))
    watch = StepWatch(plan, vens)
    # embedded: default secrets apply; the plan's SLO judges a step, not the default gates.
    sup = RunSession(p, out_dir, view, sinks=[watch], embedded_target=embedded, default_gates=False)
    outcome = sup.run()
    run_dir = outcome.run_dir
    final = out_dir / name
    try:
        os.replace(run_dir, final)
        run_dir = final
    except OSError:
        pass  # keep it where the supervisor put it; capacity.json names the folder either way
    window, t = watch.window, watch.trend
    if window is None:  # held to the end of the schedule without settling: judge the last hold windows anyway
        end = int(plan.step_duration_s)
        window = (max(plan.warmup_windows, end - plan.hold_windows), end)
    return step_figures(sup.results, index=index, vens=vens, plan=plan, window=window, verdict=outcome.verdict,
                        reasons=outcome.summary.get("reasons", []), trend_=t, run_dir=str(run_dir))


def run_capacity(
    profile: Profile,
    plan: CapacityPlan,
    out_dir: str | os.PathLike[str] = ".",
    *,
    on_step: Callable[[StepFigures], None] | None = None,
    on_start: Callable[[Path, str], None] | None = None,
    view: RunSink | None = None,
) -> CapacityOutcome:
    """Step the fleet up and write capacity.json (and capacity.html when matplotlib is there)."""
    cap_dir = make_run_dir(out_dir, f"capacity-{profile.name}")
    steps: list[StepFigures] = []
    with ExitStack() as stack:
        target = profile.target
        embedded = target is None
        if target is None:
            from harness.vtn import EmbeddedVtn, VtnConfig, parse_faults

            try:
                faults = parse_faults(profile.vtn_faults) if profile.vtn_faults else None
            except ValueError as exc:
                raise ProfileError(f"profile: vtn.faults: {exc}") from None
            # It issues VEN credentials the way the profile's VENs log in (shared client, credentials file, ...).
            auth = embedded_vtn_auth(resolve_credentials(profile, embedded_vtn=True))
            config = VtnConfig(db_path=str(cap_dir / "vtn.sqlite"), **auth)
            if faults is not None:
                config = replace(config, faults=faults)
            target = stack.enter_context(EmbeddedVtn(config)).url
        if on_start is not None:
            on_start(cap_dir, target)
        workers = _workers(profile, embedded)
        started = time.time()
        try:
            for i, vens in enumerate(plan.fleet_sizes(), 1):
                fig = run_step(profile, plan, i, vens, target, cap_dir, workers, view, embedded)
                steps.append(fig)
                if on_step is not None:
                    on_step(fig)
                if stop_reason(fig) is not None:
                    break
        except KeyboardInterrupt:
            pass  # between steps: what was measured is still reported
        finally:
            try:
                (cap_dir / "runs").rmdir()  # the supervisor's staging folder, empty once steps are renamed
            except OSError:
                pass
    result = analyse(steps, plan)
    if result.stop == "no steps" and steps == []:
        result = replace(result, stop="interrupted", interrupted=True, exit_code=EXIT_INTERRUPTED,
                         answer="interrupted before the first step finished")
    outcome = CapacityOutcome(plan, steps, result, cap_dir, target)
    from harness.reports.capacity import write_capacity

    write_capacity(outcome, profile, started_epoch=started, embedded=embedded)
    return outcome
