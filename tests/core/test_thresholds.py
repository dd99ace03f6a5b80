"""Thresholds: parsing with exact errors, evaluation of every kind against a summary, early abort, profiles."""

from __future__ import annotations

from typing import Any

import pytest

from harness.core.profile import Profile, ProfileError, from_toml
from harness.core.thresholds import Threshold, evaluate, from_spec, mark_aborted, parse, should_abort, to_json


def latency(p50: float | None, p99: float | None = None, mx: float | None = None) -> dict[str, float | None]:
    return {"p50_ms": p50, "p90_ms": p50, "p95_ms": p50, "p99_ms": p99 if p99 is not None else p50, "p999_ms": mx,
            "max_ms": mx, "mean_ms": p50}


def op(ok: int, errors: int, rate: float, lat: dict[str, float | None]) -> dict[str, Any]:
    done = ok + errors
    return {"ok": ok, "errors": errors, "error_rate": round(errors / done, 6) if done else 0.0, "rate_per_s": rate,
            "response_time": lat, "service_time": latency(10.0, 20.0, 30.0) if ok else latency(None),
            "start_lag": latency(0.5, 2.0, 4.0) if ok else latency(None)}


def doc(**extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "run": {"name": "t", "target_report_rate_per_s": 80.0},
        "verdict": "pass",
        "operations": {
            "report": op(990, 10, 66.0, latency(120.0, 412.5, 900.0)),
            "token": op(100, 0, 2.0, latency(5.0, 8.0, 9.0)),
            "create_ven": op(0, 0, 0.0, latency(None)),  # started, none completed: no samples
        },
        "errors": {"http_503": {"count": 7, "operation": "report", "example": "503"},
                   "read_timeout": {"count": 3, "operation": "report", "example": "timeout"}},
        "thresholds": [],
    }
    d.update(extra)
    return d


def one(expr: str, summary: dict[str, Any] | None = None) -> Any:
    [r] = evaluate([parse(expr)], summary if summary is not None else doc())
    return r


def test_percentile_threshold_reads_the_operation_metric_in_ms() -> None:
    """`report.response_time.p99 < 500ms` passes at 412.5 ms; `< 400ms` fails, naming value and limit."""
    r = one("report.response_time.p99 < 500ms")
    assert (r.metric, r.comparator, r.limit, r.value, r.passed) == ("report.response_time.p99", "<", 500.0, 412.5, True)
    assert r.detail == "412.5 ms < 500 ms"
    r = one("report.response_time.p99 < 400ms")
    assert (r.passed, r.detail) == (False, "412.5 ms is not < 400 ms")


@pytest.mark.parametrize(
    ("expr", "metric", "limit_ms"),
    [
        ("create_ven.service_time.max <= 2s", "create_ven.service_time.max", 2000.0),
        ("token.start_lag.p999 < 50us", "token.start_lag.p999", 0.05),
        ("report.service_time.mean < 250", "report.service_time.mean", 250.0),
        ("start_lag.p99 < 50ms", "report.start_lag.p99", 50.0),
        ("response_time.p99 < 1s", "report.response_time.p99", 1000.0),
        ("token.p99.9 < 1.5s", "token.response_time.p999", 1500.0),
    ],
)
def test_latency_units_and_default_operation(expr: str, metric: str, limit_ms: float) -> None:
    """Durations take ms/s/us (bare = ms); no operation prefix means `report`; `op.pNN` is the response time."""
    t = parse(expr)
    assert (t.metric, t.limit, t.unit) == (metric, limit_ms, "ms")


def test_rate_threshold() -> None:
    """`report.rate_per_s >= 60` passes at 66/s and `>= 70/s` fails."""
    assert one("report.rate_per_s >= 60").passed is True
    r = one("report.rate_per_s >= 70/s")
    assert (r.value, r.passed, r.detail) == (66.0, False, "66/s is not >= 70/s")


def test_operation_error_rate_and_counts() -> None:
    """report.error_rate is 1 %: `< 2%` passes, `< 0.1%` fails; `report.errors == 10` and `report.ok >= 990` pass."""
    assert one("report.error_rate < 2%").passed is True
    r = one("report.error_rate < 0.1%")
    assert (r.limit, r.value, r.passed, r.detail) == (0.001, 0.01, False, "1% is not < 0.1%")
    assert one("report.errors == 10").passed is True
    assert one("report.ok >= 990").passed is True
    assert one("report.ok > 990").passed is False


def test_errors_over_all_operations() -> None:
    """errors.rate and errors.count add up every operation: 10 errors in 1100 operations."""
    r = one("errors.rate < 1%")
    assert (r.metric, r.value, r.passed) == ("errors.rate", 10 / 1100, True)
    r = one("errors.count == 0")
    assert (r.value, r.passed, r.detail) == (10.0, False, "10 is not == 0")
    assert parse("errors < 0.1%").metric == "errors.rate"  # the DESIGN's shorthand
    assert parse("errors == 0").metric == "errors.count"


def test_errors_by_class() -> None:
    """errors.http_503.count reads the class's count; a class never seen counts 0."""
    r = one("errors.http_503.count < 10")
    assert (r.value, r.passed) == (7.0, True)
    assert one("errors.http_503.count < 5").passed is False
    r = one("errors.connect_refused.count == 0")
    assert (r.value, r.passed) == (0.0, True)


def test_achieved_rate_is_report_rate_over_target() -> None:
    """66/s achieved of 80/s targeted is 82.5 %: `>= 80%` passes, `>= 99%` fails."""
    r = one("achieved_rate >= 80%")
    assert (r.value, r.passed) == (0.825, True)
    r = one("achieved_rate >= 99%")
    assert (r.passed, r.detail) == (False, "82.5% is not >= 99%")


@pytest.mark.parametrize(
    ("expr", "summary", "why"),
    [
        ("event_fanout.max < 30s", doc(), "no data: event fan-out was not measured in this run"),
        ("event_fanout.p99 < 10s", doc(event_fanout={"p99_ms": None, "aware": 0, "targeted": 5}), "no data: no VEN saw the event"),
        ("create_ven.service_time.p99 < 1s", doc(), "no data: no successful create_ven operations"),
        ("poll_events.response_time.p99 < 1s", doc(), "no data: no poll_events operations in the run"),
        ("achieved_rate >= 99%", doc(run={"name": "partial"}), "no data: the run has no target report rate"),
        ("errors.rate < 1%", doc(operations={}), "no data: no operations in the run"),
    ],
)
def test_absent_metric_is_no_data_and_fails(expr: str, summary: dict[str, Any], why: str) -> None:
    """A metric the summary does not hold has no value, fails, and says why."""
    r = one(expr, summary)
    assert (r.value, r.passed, r.detail) == (None, False, why)


def test_event_fanout_reads_the_summary_block() -> None:
    """event_fanout.max reads summary["event_fanout"]["max_ms"]."""
    s = doc(event_fanout={"p50_ms": 800.0, "p90_ms": 2000.0, "p99_ms": 9000.0, "p999_ms": 9500.0, "max_ms": 12000.0,
                          "aware": 5, "targeted": 5})
    assert (one("event_fanout.max < 30s", s).passed, one("event_fanout.p99 < 5s", s).passed) == (True, False)


def test_event_fanout_never_received_is_a_count_gate() -> None:
    """event_fanout.never_received counts targeted VENs never aware (summary["event_fanout"]["never_received"])."""
    lost = doc(event_fanout={"p99_ms": 900.0, "aware": 97, "targeted": 100, "never_received": 3})
    assert (one("event_fanout.never_received == 0", lost).passed, one("event_fanout.never_received <= 3", lost).passed) == (False, True)
    assert one("event_fanout.never_received == 0", lost).value == 3.0
    assert "no data" in str(one("event_fanout.never_received == 0", doc()).detail)


@pytest.mark.parametrize(
    ("comparator", "below", "equal", "above"),
    [
        ("<", True, False, False),
        ("<=", True, True, False),
        (">", False, False, True),
        (">=", False, True, True),
        ("==", False, True, False),
        ("!=", True, False, True),
    ],
)
def test_comparators(comparator: str, below: bool, equal: bool, above: bool) -> None:
    """Each comparator against a value (990 ok reports) below, at and above the limit."""
    got = [one(f"report.ok {comparator} {limit}").passed for limit in (991, 990, 989)]
    assert got == [below, equal, above]


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("report.p99", "threshold 'report.p99': expected METRIC COMPARATOR LIMIT with a comparator among < <= > >= == !="),
        ("report.p99 => 3", "threshold 'report.p99 => 3': expected METRIC COMPARATOR LIMIT"),
        ("report.response_time.p98 < 1s", "threshold 'report.response_time.p98 < 1s': unknown statistic 'p98' (expected one of p50, p90, p95, p99, p999, max, mean)"),
        ("report.latency < 1s", "threshold 'report.latency < 1s': unknown metric 'report.latency'"),
        ("errors.total < 3", "threshold 'errors.total < 3': unknown errors metric 'errors.total'"),
        ("event_fanout < 3s", "threshold 'event_fanout < 3s': unknown metric 'event_fanout'"),
        ("report.p99 < 5 parsecs", "threshold 'report.p99 < 5 parsecs': limit '5 parsecs' must be a duration like 500ms, 2s or 50us"),
        ("report.p99 < fast", "threshold 'report.p99 < fast': limit 'fast' is not a number"),
        ("achieved_rate >= 99", "threshold 'achieved_rate >= 99': limit '99' is a fraction > 1; write 99% for a percentage"),
        ("report.error_rate < 1ms", "threshold 'report.error_rate < 1ms': limit '1ms' must be a percentage like 0.1% or a fraction"),
        ("report.ok >= 5%", "threshold 'report.ok >= 5%': limit '5%' must be a plain count"),
        ("report.rate_per_s > 5ms", "threshold 'report.rate_per_s > 5ms': limit '5ms' must be a rate per second like 60 or 60/s"),
        ("rep ort.ok > 1", "threshold 'rep ort.ok > 1': expected METRIC COMPARATOR LIMIT"),
    ],
)
def test_parse_errors_name_the_expression(expr: str, message: str) -> None:
    """A bad expression is a one-line ValueError naming the expression and what is wrong."""
    with pytest.raises(ValueError) as e:
        parse(expr)
    assert str(e.value).startswith(message)
    assert "\n" not in str(e.value)


def test_table_form_carries_abort_and_grace() -> None:
    """`{ expr, abort_on_fail, grace }` parses the grace as a duration; unknown keys and bad values are errors."""
    t = from_spec({"expr": "report.error_rate < 5%", "abort_on_fail": True, "grace": "30s"})
    assert (t.metric, t.abort_on_fail, t.grace_s) == ("report.error_rate", True, 30.0)
    with pytest.raises(ValueError, match="unknown key 'abort' \\(known keys: abort_on_fail, expr, grace\\)"):
        from_spec({"expr": "errors == 0", "abort": True})
    with pytest.raises(ValueError, match="abort_on_fail must be true or false, got 'yes'"):
        from_spec({"expr": "errors == 0", "abort_on_fail": "yes"})
    with pytest.raises(ValueError, match="grace must be a duration"):
        from_spec({"expr": "errors == 0", "grace": "soon"})
    with pytest.raises(ValueError, match="expr must be a string, got None"):
        from_spec({"grace": "1s"})


def test_should_abort_only_after_grace_and_on_a_measured_failure() -> None:
    """An abort-on-fail threshold failing stops the run only once its grace is over; no data and plain
    thresholds never abort."""
    checks = [
        parse("report.ok > 5000"),  # failing, but not an abort threshold
        parse("event_fanout.max < 1s", abort_on_fail=True),  # no data
        parse("report.error_rate < 0.1%", abort_on_fail=True, grace_s=30.0),  # failing: 1 %
    ]
    results = evaluate(checks, doc())
    assert should_abort(results, 29.9) is None
    hit = should_abort(results, 30.0)
    assert hit is not None and hit.expr == "report.error_rate < 0.1%"
    assert should_abort(evaluate([parse("report.error_rate < 2%", abort_on_fail=True)], doc()), 100.0) is None


def test_mark_aborted_fails_the_stopping_threshold_even_if_it_recovered() -> None:
    """The threshold that stopped the run is failed in the final results and says when it stopped the run."""
    stop = evaluate([parse("report.error_rate < 0.1%", abort_on_fail=True)], doc())[0]
    final = evaluate([parse("report.error_rate < 0.1%", abort_on_fail=True), parse("report.ok > 1")],
                     doc(operations={"report": op(1000, 0, 66.0, latency(1.0))}))
    assert [r.passed for r in final] == [True, True]
    marked = mark_aborted(final, stop, 12.4)
    assert [r.passed for r in marked] == [False, True]
    assert marked[0].detail == "aborted the run at 12s: 1% is not < 0.1%; at the end: 0% < 0.1%"


def test_to_json_shape() -> None:
    """summary["thresholds"] entries hold the expression, canonical metric, limit and value in the metric's unit."""
    assert to_json(evaluate(["start_lag.p99 < 50ms"], doc())) == [
        {"expr": "start_lag.p99 < 50ms", "metric": "report.start_lag.p99", "comparator": "<", "limit": 50.0, "unit": "ms",
         "value": 2.0, "passed": True, "detail": "2 ms < 50 ms", "abort_on_fail": False, "default": False,
         "failed_attempt": False}
    ]


def test_profile_thresholds_accept_strings_and_tables() -> None:
    """A profile's thresholds list mixes strings and tables and is parsed at load time."""
    p = from_toml('thresholds = ["report.response_time.p99 < 500ms", '
                  '{ expr = "errors.rate < 1%", abort_on_fail = true, grace = "30s" }]')
    assert [t.metric for t in p.thresholds] == ["report.response_time.p99", "errors.rate"]
    assert (p.thresholds[1].abort_on_fail, p.thresholds[1].grace_s) == (True, 30.0)
    assert isinstance(Profile(thresholds=("report.ok > 1",)).thresholds[0], Threshold)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('thresholds = ["errors == 0", "report.p99 < fast"]',
         "profile: thresholds[1]: threshold 'report.p99 < fast': limit 'fast' is not a number"),
        ('thresholds = [3]', "profile: thresholds[0]: must be a string or a table with expr, got 3"),
        ('thresholds = "errors == 0"', "profile: thresholds must be a list of expressions or tables, got 'errors == 0'"),
        ('thresholds = [{ expr = "errors == 0", grace = "-1s" }]', "profile: thresholds[0]: grace must be a duration"),
    ],
)
def test_profile_threshold_errors_name_the_item(text: str, message: str) -> None:
    """A bad threshold in a profile is a ProfileError naming its index and the expression."""
    with pytest.raises(ProfileError) as e:
        from_toml(text)
    assert str(e.value).startswith(message)


def test_p90_and_p95_are_thresholds_read_from_a_real_histogram() -> None:
    """p90 and p95 come from the same histogram as p99: 1,000 latencies 1..1000 ms put p95 at ~950 ms."""
    import numpy as np

    from harness.core.histogram import Histogram

    h = Histogram.of_ns(np.arange(1, 1001, dtype=np.int64) * 1_000_000)
    s = h.summary_ms()
    assert s["p90_ms"] is not None and s["p95_ms"] is not None and s["p99_ms"] is not None
    assert s["p90_ms"] < s["p95_ms"] < s["p99_ms"]
    assert abs(s["p95_ms"] - 950.0) <= 950.0 / 64  # within the histogram's relative precision
    d = doc()
    d["operations"]["report"]["response_time"] = s
    passed, failed = evaluate(["report.response_time.p95 < 1s", "report.p90 < 900ms"], d)
    assert passed.passed and passed.value == s["p95_ms"]
    assert not failed.passed and failed.value == s["p90_ms"]
