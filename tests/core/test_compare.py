"""`harness compare`: regressions from real run folders (worker in-process against a fake VTN), exit codes 0/1/2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.core.compare import IMPROVEMENT, REGRESSION, Row, RunData, Settings, compare, regressions
from harness.core.fleet import FleetSpec
from harness.core.histogram import Histogram
from harness.core.results import METRIC_KEYS, METRICS, RunResults, summary
from harness.reports.folder import read_run
from harness.sinks.resultsdir import read_histograms, write_histograms, write_json
from tests.doubles import FakeVtn
from tests.run.test_worker import merged, run_worker, spec

VENS, REPORTS, INTERVAL_S = 40, 5, 0.2


def write_run(run_dir: Path, results: RunResults, measured_s: float) -> Path:
    run_dir.mkdir(parents=True)
    doc = summary(run={"name": run_dir.name, "target_report_rate_per_s": VENS / INTERVAL_S}, results=results,
                  measured_s=measured_s, verdict="pass", reasons=[], thresholds=[])
    write_json(run_dir / "summary.json", doc)
    write_histograms(run_dir / "histograms.npz", results)
    return run_dir


def measured_run(run_dir: Path, report_delay_s: float) -> tuple[Path, RunResults]:
    """40 VENs x 5 reports against a fake VTN answering reports in report_delay_s, written as a results folder."""
    vtn = FakeVtn(delays_s={"POST /reports": report_delay_s})
    out, _ = run_worker(spec(fleet=FleetSpec(vens=VENS), ven_stop=VENS, interval_s=INTERVAL_S, reports_per_ven=REPORTS), vtn)
    results = merged(out)
    assert results.ok("report") == VENS * REPORTS
    # Count-bounded runs: the schedule's length is the measured time, so rates compare exactly.
    return write_run(run_dir, results, REPORTS * INTERVAL_S), results


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("runs")
    base, base_results = measured_run(root / "base", 0.02)
    same, _ = measured_run(root / "same", 0.02)
    # 25x the base's delay: a loaded box adds ~100 ms to the base's tail (seen: p95 105-127 ms with two CPU hogs),
    # never the 480 ms between them, so every judged percentile moves the same way under any load.
    slow, _ = measured_run(root / "slow", 0.5)
    return {"base": base, "same": same, "slow": slow, "base_results": base_results}


def invoke(*args: object) -> Any:
    return CliRunner().invoke(cli, ["compare", *map(str, args)])


def row(rows: list[Row], op: str, quantity: str) -> Row:
    return next(r for r in rows if (r.op, r.quantity) == (op, quantity))


def test_histograms_round_trip_exactly(runs: dict[str, Any]) -> None:
    """read_histograms gives back the totals written: same counts, min and max, keyed by the summary's names."""
    hists = read_histograms(runs["base"] / "histograms.npz")
    results: RunResults = runs["base_results"]
    assert sorted(hists) == sorted(results.totals)
    for op, totals in results.totals.items():
        for m in METRICS:
            h = hists[op][METRIC_KEYS[m]]
            assert np.array_equal(h.counts, totals.hist(m).counts)
            assert (h.min_ns, h.max_ns) == (totals.hist(m).min_ns, totals.hist(m).max_ns)


def test_two_runs_against_the_same_vtn_pass(runs: dict[str, Any]) -> None:
    """Same VTN, same delay: no regression at 50 % (a loaded box moves a 20 ms tail by 10-25 % between identical
    runs; the slow run below moves it by thousands of %); the CLI exits 0 and says so."""
    rows = compare(RunData(*read_run(runs["base"])), RunData(*read_run(runs["same"])), Settings(tolerance=0.5))
    assert [(r.op, r.quantity, r.base, r.new) for r in regressions(rows)] == []
    result = invoke(runs["base"], runs["same"], "--tolerance", "50%")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "0 regressions beyond 50%"


def test_a_vtn_made_25_times_as_slow_is_flagged(runs: dict[str, Any]) -> None:
    """Reports answered in 500 ms instead of 20 ms: report p50 and p90 service and response time regress by more
    than 100 % (the injected 480 ms over the base's own measured time, so machine load cannot make it a close
    call); exit 1."""
    rows = compare(RunData(*read_run(runs["base"])), RunData(*read_run(runs["slow"])))
    for quantity in ("service_time.p50", "response_time.p50", "service_time.p90", "response_time.p90"):
        r = row(rows, "report", quantity)
        assert r.mark == REGRESSION
        assert r.new is not None and r.new >= 500.0  # the injected delay is a floor under every new latency
        assert r.change_pct is not None and r.change_pct > 100.0
    assert {r.op for r in regressions(rows)} == {"report"}  # 40 tokens and VENs: too few samples to judge
    result = invoke(runs["base"], runs["slow"], "--tolerance", "10%")
    assert result.exit_code == 1, result.output
    assert "…" not in result.output  # captured, not a terminal: every cell whole (a CI log is not cut at 80 columns)
    assert result.output.splitlines()[-1] == f"{len(regressions(rows))} regressions beyond 10%"


def test_the_reverse_is_an_improvement(runs: dict[str, Any]) -> None:
    """Slow run as the base and the fast one as new: the same rows are improvements and the CLI exits 0."""
    rows = compare(RunData(*read_run(runs["slow"])), RunData(*read_run(runs["base"])))
    assert row(rows, "report", "service_time.p50").mark == IMPROVEMENT
    assert regressions(rows) == []
    assert invoke(runs["slow"], runs["base"]).exit_code == 0


def test_metric_option_limits_the_latency_rows(runs: dict[str, Any]) -> None:
    """`--metric service_time` compares only service time (plus rate and error rate) per operation."""
    rows = compare(RunData(*read_run(runs["base"])), RunData(*read_run(runs["slow"])), Settings(metrics=("service_time",)))
    assert [r.quantity for r in rows if r.op == "report"] == [
        "service_time.p50", "service_time.p90", "service_time.p95", "service_time.p99", "service_time.p999", "service_time.max",
        "rate_per_s", "error_rate",
    ]
    result = invoke(runs["base"], runs["slow"], "--metric", "service_time")
    assert result.exit_code == 1, result.output
    assert "response_time" not in result.output and "start_lag" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("{tmp}/nope", "{base}"), "harness: error: {tmp}/nope: no such results folder\n"),
        (("{tmp}", "{base}"), "harness: error: {tmp}: no summary.json (not a results folder?)\n"),
        (("{base}", "{base}", "--tolerance", "lots"), "harness: error: --tolerance must be a percentage like 0.1% or a fraction, got 'lots'\n"),
        (("{base}", "{base}", "--tolerance", "10"), "harness: error: --tolerance must be a percentage like 10% or a fraction in [0, 1], got '10'\n"),
        (("{base}", "{base}", "--tolerance", "-5%"), "harness: error: --tolerance must be a percentage like 10% or a fraction in [0, 1], got '-5%'\n"),
    ],
)
def test_usage_errors_exit_2_with_one_line(runs: dict[str, Any], tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    """A missing folder or file, or a bad tolerance: one line on stderr and exit 2."""
    fill = {"tmp": str(tmp_path), "base": str(runs["base"])}
    result = invoke(*(a.format(**fill) for a in args))
    assert result.exit_code == 2
    assert result.stderr == message.format(**fill)


def test_missing_histograms_is_exit_2(runs: dict[str, Any], tmp_path: Path) -> None:
    """A folder with summary.json but no histograms.npz cannot be compared exactly: exit 2."""
    (tmp_path / "summary.json").write_bytes((runs["base"] / "summary.json").read_bytes())
    result = invoke(runs["base"], tmp_path)
    assert (result.exit_code, result.stderr) == (2, f"harness: error: {tmp_path}: no histograms.npz\n")


# ---- the rules, on hand-made data -----------------------------------------------------------------
def data(latencies_ms: list[float], ok: int = 1000, errors: int = 0, rate: float = 100.0, op: str = "report") -> RunData:
    h = Histogram.of_ns(np.array(latencies_ms) * 1e6)
    return RunData(
        {"operations": {op: {"ok": ok, "errors": errors, "error_rate": errors / (ok + errors), "rate_per_s": rate}}},
        {op: {"response_time": h}},
    )


def rules(base: RunData, new: RunData, **kw: Any) -> list[Row]:
    return compare(base, new, Settings(metrics=("response_time",), **kw))


def test_small_latency_changes_below_the_noise_floor_are_not_judged() -> None:
    """0.5 ms -> 0.9 ms is +80 % but under 1 ms absolute: no mark; 5 ms -> 9 ms is a regression."""
    assert row(rules(data([0.5] * 1000), data([0.9] * 1000)), "report", "response_time.p50").mark == ""
    assert row(rules(data([5.0] * 1000), data([9.0] * 1000)), "report", "response_time.p50").mark == REGRESSION
    assert row(rules(data([0.5] * 1000), data([0.9] * 1000), min_ms=0.1), "report", "response_time.p50").mark == REGRESSION


def test_thin_tails_and_max_are_shown_but_not_judged() -> None:
    """With 1000 samples p99 (10 above it) is judged, p99.9 (1 above it) and max (one sample) are not; nothing is
    judged with fewer than 100 samples."""
    r = rules(data([10.0] * 1000), data([30.0] * 1000))
    assert [(x.quantity, x.mark, x.note) for x in r if x.quantity.startswith("response_time.p99") or x.quantity.endswith("max")] == [
        ("response_time.p99", REGRESSION, ""),
        ("response_time.p999", "", "fewer than 10 samples above it"),
        ("response_time.max", "", "one sample"),
    ]
    assert row(rules(data([10.0] * 10000), data([30.0] * 10000)), "report", "response_time.p999").mark == REGRESSION
    few = row(rules(data([10.0] * 99), data([30.0] * 99)), "report", "response_time.p50")
    assert (few.mark, few.note) == ("", "fewer than 100 samples")


def test_rate_drop_and_error_rate_growth_are_regressions() -> None:
    """Rate 100/s -> 80/s regresses, 100 -> 95 does not; error rate 0 -> 1 % regresses, 0 -> 0.05 % is noise."""
    lat = [10.0] * 1000
    assert row(rules(data(lat), data(lat, rate=80.0)), "report", "rate_per_s").mark == REGRESSION
    assert row(rules(data(lat), data(lat, rate=95.0)), "report", "rate_per_s").mark == ""
    assert row(rules(data(lat), data(lat, rate=120.0)), "report", "rate_per_s").mark == IMPROVEMENT
    grown = row(rules(data(lat), data(lat, ok=990, errors=10)), "report", "error_rate")
    assert (grown.base, grown.new, grown.change_pct, grown.mark) == (0.0, 0.01, None, REGRESSION)
    assert row(rules(data(lat, ok=10000), data(lat, ok=9995, errors=5)), "report", "error_rate").mark == ""


def test_an_operation_in_one_run_only_is_listed_not_judged() -> None:
    """An operation missing from the new run shows its base values and no mark."""
    rows = rules(data([10.0] * 1000, op="poll_events"), data([10.0] * 1000))
    gone = row(rows, "poll_events", "rate_per_s")
    assert (gone.base, gone.new, gone.change_pct, gone.mark) == (100.0, None, None, "")
    assert regressions(rows) == []


def test_compare_against_the_embedded_vtn_made_five_times_as_slow(tmp_path: Path) -> None:
    """Real runs: two at 20 ms injected latency compare clean at 50 % (identical runs on a loaded box differ by up to
    ~25 % in a tail); one at 100 ms is flagged (exit 1) with every judged report latency regressed."""
    import json
    import subprocess
    import sys
    import urllib.request

    from harness.core.profile import Profile
    from harness.run.session import RunSession
    from harness.vtn import EmbeddedVtn, VtnConfig, parse_faults

    with EmbeddedVtn(VtnConfig(db_path=str(tmp_path / "vtn.sqlite"), faults=parse_faults({"latency": "20ms"}))) as vtn:
        p = Profile(name="cmp", target=vtn.url, vens=50, interval_s=0.5, reports_per_ven=6, workers=1, seed=8,
                    max_loop_lag_ms=5000)
        a = RunSession(p, tmp_path).run().run_dir
        b = RunSession(p, tmp_path).run().run_dir
        req = urllib.request.Request(vtn.url.split("/openadr3")[0] + "/_harness/faults",
                                     data=json.dumps({"latency": "100ms"}).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).close()
        slow = RunSession(p, tmp_path).run().run_dir

    def compare(base: Path, new: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "harness", "compare", str(base), str(new), "--tolerance", "50%"],
                              capture_output=True, text=True, timeout=60)

    same = compare(a, b)
    assert same.returncode == 0, same.stdout
    worse = compare(a, slow)
    assert worse.returncode == 1, worse.stdout
    report_p50 = next(line for line in worse.stdout.splitlines() if "report" in line and "response_time.p50" in line)
    assert [c.strip() for c in report_p50.split("│")][-2] == "regression", report_p50
