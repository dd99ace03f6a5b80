"""The capacity search: one `Supervisor` run per step against ONE target, until the SLO breaks, the generator
becomes the limit, or the plan's max.

Edge (processes, files). With no target it starts one embedded VTN (with the profile's `vtn.faults`) for the whole
search, so VENs provisioned by earlier steps are found again (409 → lookup). Each step holds until its last `hold`
seconds are stable (see `harness.core.capacity.trend`), then stops its workers; its run folder is kept as
`<capacity folder>/step-NN-<vens>/`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

from harness.core.capacity import (
    GROWING,
    STABLE,
    CapacityOutcome,
    CapacityPlan,
    CapacityResult,
    StepFigures,
    analyse,
    step_figures,
    stop_reason,
    trend,
    window_doc,
)
from harness.core.messages import Stop
from harness.core.profile import Profile, ProfileError
from harness.core.thresholds import evaluate
from harness.run.supervisor import Supervisor
from harness.sinks.base import NullView, Snapshot, View
from harness.sinks.resultsdir import make_run_dir

STOP_DRAIN_S = 2.0


class StepWatch:
    """The view of one step: passes snapshots on, and stops the workers once the hold is stable — or once it is
    growing past the SLO, which waiting cannot mend. Records the hold windows it judged."""

    def __init__(self, plan: CapacityPlan, vens: int, inner: View | None = None) -> None:
        self.plan = plan
        self.vens = vens
        self.inner = inner or NullView()
        self.supervisor: Supervisor | None = None
        self.window: tuple[int, int] | None = None
        self.trend: str | None = None
        self.stopped_early = False

    def update(self, snap: Snapshot) -> None:
        self.inner.update(snap)
        if self.window is not None or snap.phase != "running" or self.supervisor is None:
            return
        # Window w is sent at t0 + w + 1; a quarter second later every worker's delta of it is in.
        complete = int(math.floor(snap.elapsed_s - 0.25))
        lo, hi = complete - self.plan.hold_windows, complete
        if lo < self.plan.warmup_windows:
            return
        t = trend(snap.results, lo, hi, self.plan.stability)
        breached = False
        if t == GROWING:
            doc = window_doc(snap.results, lo, hi, self.vens / self.plan.interval_s)
            breached = not all(r.passed for r in evaluate(self.plan.slo, doc))
        if t == STABLE or breached:
            self.window, self.trend, self.stopped_early = (lo, hi), t, True
            sup = self.supervisor
            for wid in sup.specs:
                if wid not in sup.finished:
                    sup.backend.send(wid, Stop(STOP_DRAIN_S, f"capacity: hold {t}"))

    def close(self) -> None:
        self.inner.close()


def _workers(profile: Profile, embedded: bool) -> int:
    if profile.workers:
        return profile.workers
    # The embedded VTN is on this machine: leave it a core, as `harness run` does.
    return max(1, (os.cpu_count() or 1) - (1 if embedded else 0))


def run_step(profile: Profile, plan: CapacityPlan, index: int, vens: int, target: str, out_dir: Path,
             workers: int, inner: View | None = None, embedded: bool = False) -> StepFigures:
    """Run one step to its hold and measure it; its run folder ends up as out_dir/step-NN-<vens>/."""
    name = f"step-{index:02d}-{vens}"
    p = replace(profile, name=name, target=target, vens=vens, interval_s=plan.interval_s,
                duration_s=plan.step_duration_s, reports_per_ven=None, warmup_s=float(plan.warmup_windows),
                thresholds=(), workers=min(workers, vens))
    watch = StepWatch(plan, vens, inner)
    sup = Supervisor(p, out_dir, watch, embedded_target=embedded)  # embedded: the VTN's default secrets apply
    watch.supervisor = sup
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
    view: View | None = None,
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
            config = VtnConfig(db_path=str(cap_dir / "vtn.sqlite"))
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
        result = replace(result, stop="interrupted", interrupted=True, exit_code=130,
                         answer="interrupted before the first step finished")
    outcome = CapacityOutcome(plan, steps, result, cap_dir, target)
    from harness.reports.capacity import write_capacity

    write_capacity(outcome, profile, started_epoch=started, embedded=embedded)
    return outcome
