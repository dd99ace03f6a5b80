"""Histogram: bucket error bound, percentiles against numpy, merge algebra, sparse round trip."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.core.histogram import LOWER_NS, MAX_NS, MID_NS, N_BUCKETS, UPPER_NS, Histogram, bucket_index, merged

US, HOUR = 1_000, 3_600_000_000_000

latencies_ns = st.lists(st.integers(min_value=US, max_value=HOUR), min_size=1, max_size=400)


def test_bucket_bounds_contain_their_values() -> None:
    """Every value lands in the bucket whose [lower, upper) range contains it."""
    v = np.unique(np.concatenate([np.arange(0, 5000), np.geomspace(1, MAX_NS, 20000).astype(np.int64)]))
    i = bucket_index(v)
    assert (i >= 0).all() and (i < N_BUCKETS).all()
    assert (LOWER_NS[i] <= v).all() and (v < UPPER_NS[i]).all()
    assert (np.diff(i) >= 0).all()  # monotone


def test_bucket_midpoint_error_below_one_percent_from_1us_to_1h() -> None:
    """The representative value of a bucket is within 1 % of any value in it, 1 µs .. 1 h."""
    v = np.geomspace(US, HOUR, 200_000).astype(np.int64)
    rel = np.abs(MID_NS[bucket_index(v)] - v) / v
    assert rel.max() <= 1 / 128 + 1e-12


@settings(max_examples=200, deadline=None)
@given(latencies_ns, st.sampled_from([50.0, 90.0, 99.0, 99.9, 100.0]))
def test_percentile_within_one_percent_of_exact(values: list[int], q: float) -> None:
    """Nearest-rank percentile from buckets is within 1 % of numpy's exact inverted-CDF percentile."""
    h = Histogram.of_ns(values)
    exact = float(np.percentile(np.asarray(values), q, method="inverted_cdf"))
    assert abs(h.percentile_ns(q) - exact) <= exact * 0.01


@settings(max_examples=100, deadline=None)
@given(latencies_ns, latencies_ns, latencies_ns)
def test_merge_is_associative_commutative_and_keeps_counts(a: list[int], b: list[int], c: list[int]) -> None:
    """(a+b)+c == a+(b+c) == c+b+a, and the merged total is the number of recorded values."""
    ha, hb, hc = Histogram.of_ns(a), Histogram.of_ns(b), Histogram.of_ns(c)
    left = merged([merged([ha, hb]), hc])
    right = merged([ha, merged([hb, hc])])
    rev = merged([hc, hb, ha])
    whole = Histogram.of_ns(a + b + c)
    for h in (left, right, rev):
        assert np.array_equal(h.counts, whole.counts)
        assert (h.min_ns, h.max_ns) == (whole.min_ns, whole.max_ns)
    assert whole.total == len(a) + len(b) + len(c)


def test_sparse_round_trip_is_exact() -> None:
    """to_sparse/from_sparse reproduce counts, min and max exactly."""
    h = Histogram.of_ns([5, 1_000, 1_000, 2_500_000, HOUR])
    back = Histogram.from_sparse(h.to_sparse())
    assert np.array_equal(back.counts, h.counts) and back.min_ns == 5 and back.max_ns == HOUR


def test_summary_of_known_values() -> None:
    """Percentiles of 1..100 ms are the nearest-rank values within bucket resolution; max is exact."""
    h = Histogram.empty()
    h.record_s(np.arange(1, 101) / 1000)
    s = h.summary_ms()
    assert s["max_ms"] == 100.0
    assert abs(s["p50_ms"] - 50) <= 0.5 and abs(s["p99_ms"] - 99) <= 1.0
    assert Histogram.empty().summary_ms()["p99_ms"] is None


@settings(max_examples=100, deadline=None)
@given(latencies_ns, latencies_ns)
def test_merge_sparse_equals_the_dense_sum(a: list[int], b: list[int]) -> None:
    """merge_sparse of two sparse forms is the sparse form of the merged dense histograms, to the count."""
    ha, hb = Histogram.of_ns(a), Histogram.of_ns(b)
    m = Histogram.from_sparse(Histogram.merge_sparse(ha.to_sparse(), hb.to_sparse()))
    whole = Histogram.of_ns(a + b)
    assert np.array_equal(m.counts, whole.counts)
    assert (m.min_ns, m.max_ns) == (whole.min_ns, whole.max_ns)
