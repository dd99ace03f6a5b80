"""Capacity planning: the step plan, the analysis (largest fleet within SLO, first breach, knee, generator limit),
the search against the embedded VTN with an injected concurrency cap, and the command line."""

from __future__ import annotations

import html
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.core.capacity import (
    GROWING,
    SETTLING,
    STABLE,
    CapacityError,
    CapacityPlan,
    StepFigures,
    parse_step,
    plan_from_mapping,
    trend,
)
from harness.core.knee import analyse, find_knee
from harness.core.histogram import Histogram
from harness.core.profile import Profile, from_toml
from harness.core.results import RunResults, WindowOp
from harness.core.thresholds import ThresholdResult

PLAN = CapacityPlan(start_vens=100, step_vens=100, max_vens=1000, interval_s=1.0, hold_s=3.0, warmup_s=2.0,
                    settle_s=5.0, slo=("report.response_time.p99 < 200ms", "errors.rate < 1%"))


def fig(i: int, vens: int, p99: float | None, *, verdict: str = "pass", slo_ok: bool | None = None) -> StepFigures:
    """A synthetic step: the p99 decides the latency SLO unless slo_ok says otherwise."""
    ok = (p99 is not None and p99 < 200.0) if slo_ok is None else slo_ok
    detail = "ok" if ok else f"{p99} ms is not < 200 ms"
    slo = (ThresholdResult("report.response_time.p99 < 200ms", "report.response_time.p99", "<", 200.0, p99, ok, detail),
           ThresholdResult("errors.rate < 1%", "errors.rate", "<", 0.01, 0.0, True, "0% < 1%", "fraction"))
    lat = {"p50": None if p99 is None else p99 / 2, "p90": None if p99 is None else p99 * 0.8, "p99": p99,
           "max": None if p99 is None else p99 * 1.1}
    return StepFigures(i, vens, 1.0, (2, 5), vens * 3, 0, float(vens), lat, lat, verdict, slo, STABLE,
                       ("worker 0 saturated",) if verdict == "invalid" else ())


# ---- the plan ---------------------------------------------------------------------------------------------------
def test_fleet_sizes_additive_multiplicative_and_max_included() -> None:
    """Steps go start, +step (or xF, rounded, always growing) and end exactly at max."""
    assert CapacityPlan(start_vens=50, step_vens=50, max_vens=200).fleet_sizes() == [50, 100, 150, 200]
    assert CapacityPlan(start_vens=50, step_vens=40, max_vens=150).fleet_sizes() == [50, 90, 130, 150]
    assert CapacityPlan(start_vens=1000, step_vens=0, step_factor=2.0, max_vens=5000).fleet_sizes() == [1000, 2000, 4000, 5000]
    assert CapacityPlan(start_vens=1, step_vens=0, step_factor=1.1, max_vens=4).fleet_sizes() == [1, 2, 3, 4]


@pytest.mark.parametrize(("value", "expected"), [(500, (500, 0.0)), ("500", (500, 0.0)), ("x1.5", (0, 1.5)), ("*2", (0, 2.0))])
def test_parse_step_reads_counts_and_factors(value: Any, expected: tuple[int, float]) -> None:
    """`--step 500` adds VENs, `--step x1.5` multiplies."""
    assert parse_step(value) == expected


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"start": 0}, "capacity.start must be > 0, got 0"),
        ({"start": 100, "max": 50}, "capacity.max must be >= capacity.start (100), got 50"),
        ({"step": "x0.9"}, "capacity.step factor must be > 1"),
        ({"step": "lots"}, "capacity.step must be a VEN count like 500 or a factor like x1.5, got 'lots'"),
        ({"hold": "1s"}, "capacity.hold must be >= 2s"),
        ({"slo": "p99 < 1s"}, "capacity.slo must be a list of threshold expressions"),
        ({"slo": ["p99 <"]}, "capacity.slo[0]: threshold 'p99 <'"),
        ({"speed": 1}, "unknown key 'capacity.speed'"),
    ],
)
def test_plan_errors_name_the_key(doc: dict[str, Any], message: str) -> None:
    """A bad [capacity] value is one CapacityError naming the key and the value."""
    with pytest.raises(CapacityError) as exc:
        plan_from_mapping(doc, interval_s=15.0)
    assert message in str(exc.value)


def test_plan_warmup_is_at_least_two_intervals_and_flags_win() -> None:
    """Warm-up covers provisioning (two intervals at least); flags override the profile's table."""
    plan = plan_from_mapping({"start": 10, "step": "x2", "max": 80, "warmup": "5s"}, interval_s=15.0)
    assert (plan.start_vens, plan.step_factor, plan.max_vens, plan.warmup_s) == (10, 2.0, 80, 30.0)
    plan = plan_from_mapping({"start": 10, "step": "x2", "max": 80}, interval_s=1.0, step="5", warmup_s=4.0)
    assert (plan.step_vens, plan.step_factor, plan.warmup_s, plan.fleet_sizes()) == (5, 0.0, 4.0, [10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80])


# ---- the analysis ---------------------------------------------------------------------------------------------
def test_largest_fleet_within_slo_and_first_breach() -> None:
    """The answer is the last step before the first breach; the breach names the SLO that broke; exit 0."""
    steps = [fig(1, 100, 20.0), fig(2, 200, 22.0), fig(3, 300, 30.0), fig(4, 400, 900.0)]
    r = analyse(steps, PLAN)
    assert (r.largest_vens, r.stop, r.exit_code) == (300, "slo breach", 0)
    assert r.breach is steps[3] and [b.expr for b in r.breach.broken] == ["report.response_time.p99 < 200ms"]
    assert r.answer.startswith("largest fleet within SLO at 1s: 300 VENs (breached at 400: report.response_time.p99 < 200ms")
    assert r.to_json()["first_breach"] == {"step": 4, "vens": 400, "broken": [
        {"expr": "report.response_time.p99 < 200ms", "detail": "900.0 ms is not < 200 ms"}]}


def test_first_step_breach_means_no_capacity_exit_1() -> None:
    """When even the first step breaks the SLO there is no answer, and the exit code is 1."""
    r = analyse([fig(1, 100, 500.0)], PLAN)
    assert (r.largest_vens, r.stop, r.exit_code) == (None, "slo breach", 1)
    assert r.answer.startswith("no fleet within SLO at 1s: the first step, 100 VENs, already breached")


def test_knee_is_the_step_before_super_linear_p99_growth() -> None:
    """Flat, flat, then p99 x10 for x1.33 VENs: the knee is the last flat step, the band ends at the jump."""
    steps = [fig(1, 100, 20.0), fig(2, 200, 21.0), fig(3, 300, 25.0), fig(4, 400, 250.0)]
    knee = find_knee(steps, 2.0)
    assert knee is not None and (knee.vens, knee.next_vens) == (300, 400)
    assert knee.elasticity == pytest.approx(math.log(10) / math.log(4 / 3))
    assert "knee at 300 VENs" in analyse(steps, PLAN).answer


def test_linear_growth_and_jitter_near_the_floor_are_no_knee() -> None:
    """p99 growing in proportion to the fleet is not a knee; nor is a jump that stays within twice the floor."""
    linear = [fig(i + 1, n, n / 10.0) for i, n in enumerate((100, 200, 400, 800))]
    assert find_knee(linear, 2.0) is None
    jitter = [fig(1, 100, 10.0), fig(2, 110, 8.0), fig(3, 120, 15.0)]  # elasticity > 2, but 15 < 2 x 8
    assert find_knee(jitter, 2.0) is None


def test_a_step_without_successful_reports_is_an_infinite_p99() -> None:
    """No successful report at all is the steepest knee there is."""
    knee = find_knee([fig(1, 100, 20.0), fig(2, 200, None)], 2.0)
    assert knee is not None and (knee.vens, knee.next_vens, knee.elasticity) == (100, 200, math.inf)


def test_generator_limit_stops_the_search_and_says_so_exit_3() -> None:
    """An invalid step means the generator was the limit: at least the last valid fleet, exit 3, no knee from it."""
    steps = [fig(1, 100, 20.0), fig(2, 200, 21.0), fig(3, 300, 5000.0, verdict="invalid")]
    r = analyse(steps, PLAN)
    assert (r.largest_vens, r.stop, r.exit_code, r.knee) == (200, "generator limit", 3, None)
    assert r.generator_limited is steps[2] and r.breach is None
    assert "at least 200 VENs — the generator became the limit at 300 VENs before any SLO breach" in r.answer
    assert "worker 0 saturated" in r.answer


def test_max_reached_without_breach_is_a_lower_bound() -> None:
    """Every step passing up to max: the answer says 'at least' max, exit 0."""
    r = analyse([fig(1, 100, 20.0), fig(2, 200, 20.0)], CapacityPlan(start_vens=100, step_vens=100, max_vens=200))
    assert (r.largest_vens, r.stop, r.exit_code) == (200, "max reached", 0)
    assert "at least 200 VENs" in r.answer


def _results_with_medians(medians_ms: list[float]) -> RunResults:
    results = RunResults()
    for w, m in enumerate(medians_ms):
        h = Histogram.of_ns([m * 1e6] * 50)
        op = WindowOp(ok=50)
        op.parts["response"].append(h.to_sparse())
        results.windows[w] = {"report": op}
    return results


def test_trend_tells_stable_from_settling_and_growing() -> None:
    """The hold's second-half median against its first: steady, falling (backlog clearing), rising (queue)."""
    assert trend(_results_with_medians([30, 31, 30, 32]), 0, 4, 0.1) == STABLE
    assert trend(_results_with_medians([900, 600, 80, 30]), 0, 4, 0.1) == SETTLING
    assert trend(_results_with_medians([100, 200, 400, 800]), 0, 4, 0.1) == GROWING


# ---- the search against a known cap -----------------------------------------------------------------------------
def test_capacity_finds_the_knee_a_concurrency_cap_puts_there(tmp_path: Path) -> None:
    """Embedded VTN with max_concurrency x service_time: the knee and the largest fleet sit within one step of
    cap / service_time x interval VENs; step folders, capacity.json and capacity.html are written."""
    from harness.run.stepper import run_capacity

    concurrency, service_s, interval_s, step = 6, 0.05, 0.5, 20
    expected_vens = concurrency / service_s * interval_s  # requests/s the cap allows x seconds per report = 60
    profile = Profile(name="cap", vtn_faults={"max_concurrency": str(concurrency), "service_time": f"{service_s * 1000:g}ms"},
                      workers=1, timeout_s=2.0, drain_s=1.0, max_loop_lag_ms=5000)
    plan = CapacityPlan(start_vens=step, step_vens=step, max_vens=int(3 * expected_vens), interval_s=interval_s,
                        hold_s=3.0, warmup_s=2.0, settle_s=12.0,
                        slo=("report.response_time.p99 < 200ms", "errors.rate < 1%"))
    outcome = run_capacity(profile, plan, tmp_path)
    r = outcome.result
    assert r.stop == "slo breach" and r.exit_code == 0, r.answer
    assert r.knee is not None and abs(r.knee.vens - expected_vens) <= step, r.answer
    assert r.largest_vens is not None and abs(r.largest_vens - expected_vens) <= step, r.answer
    assert r.breach is not None and r.breach.vens <= expected_vens + step
    # Every step before the breach kept up with its offered rate, and the folders are where they should be.
    for s in outcome.steps[:-1]:
        assert s.achieved_rate_per_s == pytest.approx(s.offered_rate_per_s, rel=0.1)
        assert Path(s.run_dir) == outcome.out_dir / f"step-{s.index:02d}-{s.vens}"
    # One VTN for the whole search: step 2 found the first step's VENs again (409 -> lookup).
    second = json.loads((outcome.out_dir / f"step-02-{2 * step}" / "summary.json").read_text())
    assert second["counters"]["ven_existing"] == step
    doc = json.loads((outcome.out_dir / "capacity.json").read_text())
    assert doc["result"]["knee"]["vens"] == r.knee.vens and doc["answer"] == r.answer
    assert [s["vens"] for s in doc["steps"]] == [s.vens for s in outcome.steps]
    page = (outcome.out_dir / "capacity.html").read_text()
    assert page.count("<svg") == 3 and f"knee ({r.knee.vens:,} VENs)" in page  # the knee is marked on the curves
    assert f'<tr data-vens="{r.breach.vens}">' in page and html.escape(r.answer) in page
    assert '>answered</span></h1>' in page and '<p id="stop">The search stopped: <b>slo breach</b>.</p>' in page


@pytest.mark.parametrize(("stop", "largest", "badge"), [
    ("slo breach", 300, ("answered", "pass")), ("max reached", 900, ("answered", "pass")),
    ("slo breach", None, ("no fleet within SLO", "fail")), ("generator limit", 300, ("generator limit", "invalid")),
    ("interrupted", 300, ("interrupted", "interrupted")),
])
def test_capacity_badge_colour_matches_its_words(stop: str, largest: int | None, badge: tuple[str, str]) -> None:
    """The capacity page's badge says what the search concluded in its verdict's colour: never a green "slo breach"."""
    from harness.reports.capacity import _verdict
    from harness.reports.kit import VERDICT_COLOURS

    assert _verdict(stop, largest) == (badge[0], VERDICT_COLOURS[badge[1]])


# ---- command line and shipped profiles --------------------------------------------------------------------------
def harness(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=60, cwd=cwd)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--step", "x0.5"], "--step factor must be > 1, got 'x0.5'"),
        (["--step", "many"], "--step must be a VEN count like 500 or a factor like x1.5, got 'many'"),
        (["--start", "0"], "capacity.start must be > 0, got 0"),
        (["--start", "100", "--max", "10"], "capacity.max must be >= capacity.start (100), got 10"),
        (["--hold", "1s"], "capacity.hold must be >= 2s"),
        (["--slo", "p99 <"], "--slo: threshold 'p99 <'"),
        (["--interval", "soon"], "--interval must be a duration"),
        (["--profile", "no-such-profile"], "--profile: no profile file 'no-such-profile'"),
        (["--target", "ftp://x"], "profile: target must be an http(s) URL"),
    ],
)
def test_capacity_usage_errors_are_one_line_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    """A bad capacity flag is one line on stderr naming it, exit 2, no traceback, no folder written."""
    r = harness("capacity", *args, cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "runs").exists()


def test_shipped_profiles_parse_and_are_listed(tmp_path: Path) -> None:
    """smoke, city, ramp, dr-event and capacity parse; capacity tables make valid plans; `profiles` lists each."""
    root = Path(__file__).resolve().parents[2] / "profiles"
    names = {p.stem for p in root.glob("*.toml")}
    assert {"smoke", "city", "ramp", "dr-event", "capacity"} <= names
    for path in sorted(root.glob("*.toml")):
        p = from_toml(path.read_text(encoding="utf-8"), str(path))
        assert p.description, path
        if p.capacity:
            plan_from_mapping(p.capacity, interval_s=p.interval_s, default_warmup_s=p.warmup_s)
    ramp = from_toml((root / "ramp.toml").read_text())
    sizes = plan_from_mapping(ramp.capacity, interval_s=ramp.interval_s).fleet_sizes()
    assert (sizes[0], sizes[-1], ramp.interval_s) == (1000, 20000, 15.0)
    city = from_toml((root / "city.toml").read_text())
    assert (city.vens, city.interval_s) == (10000, 15.0)
    dr = from_toml((root / "dr-event.toml").read_text())
    assert len(dr.dr_events) == 1 and dr.dr_events[0].share == 1.0 and dr.events == "poll"
    r = harness("profiles", cwd=tmp_path)
    listed = {line.split()[0]: line for line in r.stdout.splitlines()}
    assert r.returncode == 0 and {"smoke", "city", "ramp", "dr-event", "capacity"} <= set(listed)
    assert not any("(invalid" in line for line in listed.values())
