"""Log-linear latency histograms in numpy: fixed buckets, vectorised recording, merge by addition.

Pure: values come in as nanoseconds (int) or seconds (float); no clocks, no I/O.
Buckets are HDR-style: exact below 128 ns, then 64 linear sub-buckets per power of two, so a bucket's
midpoint is within 1/128 (< 0.8 %) of any value in it, from 1 µs up past 1 h.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

SUB_BITS = 7  # 128 sub-buckets in the first (linear) range
SUB_COUNT = 1 << SUB_BITS
HALF = SUB_COUNT >> 1
MAX_EXPONENT = 36  # 2**(36+7) ns ~ 2.4 h: covers 1 h with room
N_BUCKETS = SUB_COUNT + MAX_EXPONENT * HALF
MAX_NS = (1 << (MAX_EXPONENT + SUB_BITS)) - 1
PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0),
    ("p90", 90.0),
    ("p95", 95.0),
    ("p99", 99.0),
    ("p999", 99.9),
)


def bucket_index(values_ns: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Bucket of each value (ns, clipped to [0, MAX_NS])."""
    v = np.clip(np.asarray(values_ns, dtype=np.int64), 0, MAX_NS)
    # bit_length via frexp is exact below 2**53, far above MAX_NS.
    _, exp = np.frexp(v.astype(np.float64))
    shift = np.maximum(exp.astype(np.int64) - SUB_BITS, 0)
    return np.where(shift == 0, v, SUB_COUNT + (shift - 1) * HALF + ((v >> shift) - HALF))


def nearest_rank(q: float, n: int) -> int:
    """The 1-based nearest rank of percentile q among n values, ceil(q/100 * n), in exact integer arithmetic
    (q to 1/1000 of a percent): float rounding made 99.9 % of 1,000 rank 1,000 instead of 999."""
    q_milli = int(round(q * 1000))
    return max(1, (q_milli * n + 99_999) // 100_000)


def _bucket_bounds() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    idx = np.arange(N_BUCKETS, dtype=np.int64)
    shift = np.where(idx < SUB_COUNT, 0, (idx - SUB_COUNT) // HALF + 1)
    sub = np.where(idx < SUB_COUNT, idx, (idx - SUB_COUNT) % HALF + HALF)
    low = (sub << shift).astype(np.float64)
    width = (np.int64(1) << shift).astype(np.float64)
    return low, low + width


LOWER_NS, UPPER_NS = _bucket_bounds()
# Representative value of a bucket: exact for the unit-width buckets, else the midpoint.
MID_NS = np.where(UPPER_NS - LOWER_NS <= 1.0, LOWER_NS, (LOWER_NS + UPPER_NS - 1.0) / 2.0)


@dataclass(eq=False)
class Histogram:
    """Counts per bucket plus exact min/max; `+=` merges."""

    counts: npt.NDArray[np.int64]
    min_ns: int = MAX_NS
    max_ns: int = 0

    @classmethod
    def empty(cls) -> Histogram:
        return cls(np.zeros(N_BUCKETS, dtype=np.int64))

    @classmethod
    def of_ns(cls, values_ns: npt.ArrayLike) -> Histogram:
        h = cls.empty()
        h.record_ns(values_ns)
        return h

    @classmethod
    def of_s(cls, values_s: npt.ArrayLike) -> Histogram:
        h = cls.empty()
        h.record_s(values_s)
        return h

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def record_ns(self, values_ns: npt.ArrayLike) -> None:
        v = np.asarray(values_ns, dtype=np.int64).ravel()
        if v.size == 0:
            return
        v = np.clip(v, 0, MAX_NS)
        self.counts += np.bincount(bucket_index(v), minlength=N_BUCKETS)
        self.min_ns = min(self.min_ns, int(v.min()))
        self.max_ns = max(self.max_ns, int(v.max()))

    def record_s(self, values_s: npt.ArrayLike) -> None:
        self.record_ns(np.rint(np.asarray(values_s, dtype=np.float64) * 1e9))

    def __iadd__(self, other: Histogram) -> Histogram:
        self.counts += other.counts
        self.min_ns = min(self.min_ns, other.min_ns)
        self.max_ns = max(self.max_ns, other.max_ns)
        return self

    def copy(self) -> Histogram:
        return Histogram(self.counts.copy(), self.min_ns, self.max_ns)

    def percentile_ns(self, q: float) -> float:
        """Nearest-rank percentile: the value below which q % of the recorded values lie."""
        return self.percentile_ns_counting(q, 0)

    def percentile_ns_counting(self, q: float, slower: int) -> float:
        """Nearest-rank percentile of the recorded values plus `slower` more that are slower than any of them
        (failed attempts): inf when the rank lands among those, nan when there is nothing at all."""
        total = self.total
        n = total + slower
        if n == 0:
            return float("nan")
        rank = nearest_rank(q, n)
        if rank > total:
            return float("inf")
        i = int(np.searchsorted(np.cumsum(self.counts), rank))
        return float(min(max(MID_NS[i], self.min_ns), self.max_ns))

    def summary_ms_counting(self, slower: int) -> dict[str, float | None]:
        """As summary_ms, over the recorded values plus `slower` failed attempts ranked after every success:
        a statistic that lands on a failure is None (so is max or mean when any attempt failed)."""
        if slower == 0 or self.total + slower == 0:
            return self.summary_ms()
        out: dict[str, float | None] = {}
        for name, q in PERCENTILES:
            v = self.percentile_ns_counting(q, slower)
            out[f"{name}_ms"] = None if math.isinf(v) else round(v / 1e6, 4)
        return out | {"max_ms": None, "mean_ms": None}

    def summary_ms(self) -> dict[str, float | None]:
        """p50/p90/p95/p99/p99.9/max in milliseconds (None when empty), the results-file shape."""
        if self.total == 0:
            empty: dict[str, float | None] = {f"{name}_ms": None for name, _ in PERCENTILES}
            return empty | {"max_ms": None, "mean_ms": None}
        out: dict[str, float | None] = {
            f"{name}_ms": round(self.percentile_ns(q) / 1e6, 4) for name, q in PERCENTILES
        }
        out["max_ms"] = round(self.max_ns / 1e6, 4)
        out["mean_ms"] = round(float((self.counts * MID_NS).sum()) / self.total / 1e6, 4)
        return out

    # Sparse form for the wire and for files: only non-empty buckets travel.
    def to_sparse(self) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64], int, int]:
        nz = np.flatnonzero(self.counts).astype(np.int32)
        return nz, self.counts[nz], self.min_ns, self.max_ns

    @staticmethod
    def merge_sparse(
        a: tuple[npt.NDArray[np.int32], npt.NDArray[np.int64], int, int],
        b: tuple[npt.NDArray[np.int32], npt.NDArray[np.int64], int, int],
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64], int, int]:
        """Two sparse histograms as one: the sparse form of the sum of their dense forms."""
        idx, inverse = np.unique(np.concatenate((a[0], b[0])), return_inverse=True)
        counts = np.zeros(len(idx), dtype=np.int64)
        np.add.at(counts, inverse, np.concatenate((a[1], b[1])))
        return idx.astype(np.int32), counts, min(int(a[2]), int(b[2])), max(int(a[3]), int(b[3]))

    @classmethod
    def from_sparse(
        cls, sparse: tuple[npt.NDArray[np.int32], npt.NDArray[np.int64], int, int]
    ) -> Histogram:
        idx, cnt, lo, hi = sparse
        h = cls.empty()
        h.counts[np.asarray(idx, dtype=np.int64)] = cnt
        h.min_ns, h.max_ns = int(lo), int(hi)
        return h


def merged(histograms: Iterable[Histogram]) -> Histogram:
    out = Histogram.empty()
    for h in histograms:
        out += h
    return out
