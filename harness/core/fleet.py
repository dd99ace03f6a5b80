"""Fleet shape (VENs x sites x loads) and its sharding, plus the keyed hash all simulated randomness uses.

Pure: stdlib + numpy only. Every draw is keyed by (seed, global id, ...), so a VEN is the same whatever shard builds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

SITE_KINDS: tuple[str, ...] = (
    "household",
    "restaurant",
    "school",
    "hotel",
    "swimming_pool",
    "industry",
    "ev_station",
    "pv_site",
    "battery_site",
    "heat_pump_home",
)
LOAD_KINDS: tuple[str, ...] = (
    "base",
    "water_heater",
    "hvac",
    "kitchen",
    "lighting",
    "ev",
    "pv",
    "battery",
    "heat_pump",
    "pool_pump",
    "process",
    "other",
)
FLEXIBLE_KINDS: frozenset[str] = frozenset({"hvac", "water_heater", "ev", "battery", "heat_pump"})

# A mix shaped like a distribution feeder with a few commercial customers (site kind -> weight).
TYPICAL_MIX: tuple[tuple[str, float], ...] = (
    ("household", 0.81),
    ("heat_pump_home", 0.08),
    ("restaurant", 0.025),
    ("school", 0.01),
    ("hotel", 0.01),
    ("swimming_pool", 0.005),
    ("industry", 0.01),
    ("ev_station", 0.02),
    ("pv_site", 0.015),
    ("battery_site", 0.005),
)


@dataclass(frozen=True)
class LoadTemplate:
    """One line of a site kind's recipe: a load kind present with some probability, count and size range."""

    load_kind: str
    probability: float
    rated_kw: tuple[float, float]
    count: tuple[int, int] = (1, 1)


def _t(kind: str, p: float, lo: float, hi: float, n: tuple[int, int] = (1, 1)) -> LoadTemplate:
    return LoadTemplate(kind, p, (lo, hi), n)


# Rated sizes (kW; kWp for PV; inverter kW for batteries) as a European utility would see them.
SITE_TEMPLATES: dict[str, tuple[LoadTemplate, ...]] = {
    "household": (
        _t("base", 1.0, 0.1, 0.35), _t("lighting", 1.0, 0.3, 1.2), _t("kitchen", 1.0, 1.5, 4.0),
        _t("water_heater", 0.5, 2.0, 4.5), _t("hvac", 0.35, 1.5, 4.0), _t("heat_pump", 0.1, 1.5, 4.0),
        _t("ev", 0.15, 3.7, 11.0), _t("pv", 0.25, 3.0, 9.0), _t("battery", 0.08, 3.0, 6.0),
        _t("other", 0.6, 0.2, 0.8),
    ),
    "heat_pump_home": (
        _t("base", 1.0, 0.15, 0.4), _t("lighting", 1.0, 0.3, 1.0), _t("kitchen", 1.0, 1.5, 3.5),
        _t("heat_pump", 1.0, 2.0, 6.0), _t("water_heater", 0.3, 1.5, 3.0), _t("ev", 0.3, 7.4, 11.0),
        _t("pv", 0.5, 4.0, 10.0), _t("battery", 0.2, 5.0, 10.0), _t("other", 0.6, 0.2, 0.8),
    ),
    "restaurant": (
        _t("base", 1.0, 2.0, 6.0), _t("kitchen", 1.0, 10.0, 45.0), _t("hvac", 1.0, 8.0, 25.0),
        _t("lighting", 1.0, 2.0, 6.0), _t("water_heater", 0.8, 6.0, 18.0), _t("other", 0.5, 1.0, 4.0),
    ),
    "school": (
        _t("base", 1.0, 5.0, 15.0), _t("lighting", 1.0, 15.0, 45.0), _t("hvac", 1.0, 20.0, 80.0),
        _t("kitchen", 0.6, 10.0, 30.0), _t("other", 1.0, 5.0, 20.0), _t("pv", 0.3, 30.0, 150.0),
        _t("heat_pump", 0.2, 30.0, 100.0),
    ),
    "hotel": (
        _t("base", 1.0, 15.0, 50.0), _t("hvac", 1.0, 40.0, 160.0), _t("lighting", 1.0, 10.0, 35.0),
        _t("kitchen", 1.0, 15.0, 60.0), _t("water_heater", 1.0, 20.0, 80.0), _t("pool_pump", 0.3, 3.0, 8.0),
        _t("ev", 0.3, 11.0, 22.0, (2, 6)), _t("other", 0.7, 10.0, 30.0),
    ),
    "swimming_pool": (
        _t("base", 1.0, 5.0, 15.0), _t("pool_pump", 1.0, 11.0, 37.0, (1, 3)), _t("heat_pump", 0.7, 40.0, 150.0),
        _t("water_heater", 0.5, 30.0, 120.0), _t("hvac", 1.0, 20.0, 70.0), _t("lighting", 1.0, 5.0, 20.0),
        _t("pv", 0.3, 30.0, 100.0),
    ),
    "industry": (
        _t("base", 1.0, 40.0, 200.0), _t("process", 1.0, 100.0, 800.0, (1, 4)), _t("hvac", 1.0, 30.0, 250.0),
        _t("lighting", 1.0, 15.0, 80.0), _t("other", 1.0, 30.0, 200.0), _t("pv", 0.35, 100.0, 750.0),
        _t("battery", 0.15, 100.0, 500.0), _t("ev", 0.2, 11.0, 22.0, (2, 8)),
    ),
    "ev_station": (
        _t("base", 1.0, 1.0, 3.0), _t("lighting", 1.0, 0.5, 2.0), _t("ev", 1.0, 50.0, 150.0, (2, 12)),
        _t("battery", 0.3, 100.0, 300.0),
    ),
    "pv_site": (_t("base", 1.0, 0.5, 3.0), _t("pv", 1.0, 50.0, 1000.0)),  # rooftop to small solar park
    "battery_site": (_t("base", 1.0, 2.0, 10.0), _t("battery", 1.0, 100.0, 1000.0, (1, 2))),
}

# ---- keyed (counter-based) hashing: splitmix64 finaliser on uint64 arrays -------------------------------

MASK64 = (1 << 64) - 1
GOLDEN64 = 0x9E3779B97F4A7C15
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)

# Streams keep draws for different purposes independent under the same seed.
STREAM_SITE_KIND = 1
STREAM_INCLUDE = 2
STREAM_COUNT = 3
STREAM_RATED = 4


def mix64_int(x: int) -> int:
    """splitmix64 finaliser on a Python int (a bijection on 64-bit values)."""
    x &= MASK64
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & MASK64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def mix64(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64 finaliser on a uint64 array (new array; wraps modulo 2**64)."""
    z = x ^ (x >> _S30)
    z *= _C1
    z ^= z >> _S27
    z *= _C2
    z ^= z >> _S31
    return z


def key_int(seed: int, stream: int, *keys: int) -> int:
    """A 64-bit key from (seed, stream, keys...) as a Python int."""
    h = mix64_int(mix64_int(seed & MASK64) ^ (stream * GOLDEN64 & MASK64))
    for k in keys:
        h = mix64_int(h ^ (k & MASK64))
    return h


def hash64(seed: int, stream: int, *keys: npt.NDArray[np.uint64] | int) -> npt.NDArray[np.uint64]:
    """64-bit hashes of (seed, stream, keys...), broadcast over the array keys."""
    h: npt.NDArray[np.uint64] = np.asarray(key_int(seed, stream), dtype=np.uint64)
    for k in keys:
        arr = np.asarray(k & MASK64 if isinstance(k, int) else k, dtype=np.uint64)
        h = mix64(np.atleast_1d(h ^ arr))
    return np.atleast_1d(h)


def uniform01(h: npt.NDArray[np.uint64]) -> npt.NDArray[np.float64]:
    """Uniform doubles in [0, 1) from the top 53 bits of each hash."""
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


# ---- fleet ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FleetSpec:
    """How many VENs, how many sites each, and the mix of site kinds (weights need not sum to 1)."""

    vens: int
    sites_per_ven: int = 1
    mix: tuple[tuple[str, float], ...] = (("household", 1.0),)
    name_prefix: str = "harness"

    def ven_name(self, index: int) -> str:
        """The name of the VEN with this global index (the same in every shard and every run)."""
        return f"{self.name_prefix}-ven-{index:07d}"
    size_scale: tuple[tuple[str, float], ...] = ()  # site kind -> multiplier on its rated sizes

    def __post_init__(self) -> None:
        if self.vens <= 0:
            raise ValueError(f"fleet: vens must be > 0, got {self.vens}")
        if self.sites_per_ven <= 0:
            raise ValueError(f"fleet: sites_per_ven must be > 0, got {self.sites_per_ven}")
        if not self.mix:
            raise ValueError("fleet: mix must name at least one site kind")
        for kind, weight in self.mix:
            if kind not in SITE_KINDS:
                raise ValueError(f"fleet: mix kind must be one of {', '.join(SITE_KINDS)}, got {kind!r}")
            if not weight >= 0.0:
                raise ValueError(f"fleet: mix weight of {kind} must be >= 0, got {weight}")
        if sum(w for _, w in self.mix) <= 0.0:
            raise ValueError("fleet: mix weights must not all be 0")
        for kind, scale in self.size_scale:
            if kind not in SITE_KINDS:
                raise ValueError(f"fleet: size_scale kind must be one of {', '.join(SITE_KINDS)}, got {kind!r}")
            if not scale > 0.0:
                raise ValueError(f"fleet: size_scale of {kind} must be > 0, got {scale}")

    def kind_weights(self) -> npt.NDArray[np.float64]:
        """Normalised weight per entry of SITE_KINDS."""
        w = np.zeros(len(SITE_KINDS))
        for kind, weight in self.mix:
            w[SITE_KINDS.index(kind)] += weight
        return np.asarray(w / w.sum(), dtype=np.float64)


def split(vens: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) ranges covering 0..vens once; sizes differ by at most 1; no empty shard."""
    if vens <= 0:
        raise ValueError(f"split: vens must be > 0, got {vens}")
    if shards <= 0:
        raise ValueError(f"split: shards must be > 0, got {shards}")
    if shards > vens:
        raise ValueError(f"split: shards must be <= vens ({vens}), got {shards}")
    base, extra = divmod(vens, shards)
    out: list[tuple[int, int]] = []
    start = 0
    for i in range(shards):
        stop = start + base + (1 if i < extra else 0)
        out.append((start, stop))
        start = stop
    return out


@dataclass(frozen=True, eq=False)
class FleetShard:
    """The VENs [ven_start, ven_stop) of a fleet as flat numpy rows (CSR: VEN -> sites -> loads)."""

    spec: FleetSpec
    seed: int
    ven_start: int
    ven_stop: int
    site_offsets: npt.NDArray[np.int64]
    site_ven: npt.NDArray[np.int64]
    site_kind: npt.NDArray[np.int16]
    site_id: npt.NDArray[np.uint64]  # global site index: ven * sites_per_ven + k
    load_offsets: npt.NDArray[np.int64]
    load_site: npt.NDArray[np.int64]
    load_kind: npt.NDArray[np.int16]
    load_id: npt.NDArray[np.uint64]  # (site_id << 16) | index of the load within its site
    load_rated_kw: npt.NDArray[np.float64]
    load_flexible: npt.NDArray[np.bool_]

    @property
    def n_vens(self) -> int:
        return self.ven_stop - self.ven_start

    @property
    def n_sites(self) -> int:
        return int(self.site_kind.shape[0])

    @property
    def n_loads(self) -> int:
        return int(self.load_kind.shape[0])

    def ven_name(self, row: int) -> str:
        if not 0 <= row < self.n_vens:
            raise IndexError(f"fleet: VEN row {row} outside 0..{self.n_vens - 1}")
        return self.spec.ven_name(self.ven_start + row)

    def site_name(self, site_row: int) -> str:
        ven_row = int(self.site_ven[site_row])
        return site_name(self.ven_name(ven_row), site_row - int(self.site_offsets[ven_row]))


def site_name(ven_name: str, k: int) -> str:
    """The name of a VEN's k-th site (its resourceName)."""
    return ven_name + _SITE_SUFFIX[k] if k < 1000 else f"{ven_name}-site-{k:03d}"


_SITE_SUFFIX = [f"-site-{k:03d}" for k in range(1000)]  # formatted once: every report names its sites


def _site_kinds(spec: FleetSpec, seed: int, site_id: npt.NDArray[np.uint64]) -> npt.NDArray[np.int16]:
    # A golden-ratio Weyl sequence over global site ids, offset by the seed: each site's kind is fixed by its
    # id alone (shard-independent) and counts track the mix weights within a few sites for any fleet size.
    weyl = site_id * np.uint64(GOLDEN64) + np.uint64(key_int(seed, STREAM_SITE_KIND))
    u = uniform01(weyl)
    cum = np.cumsum(spec.kind_weights())
    kinds = np.searchsorted(cum, u, side="right")
    # rounding can leave cum[-1] a hair below 1: clamp to the last kind that has weight
    last = int(np.flatnonzero(spec.kind_weights() > 0.0)[-1])
    return np.minimum(kinds, last).astype(np.int16)


def _load_counts(spec: FleetSpec, seed: int, site_id: npt.NDArray[np.uint64], site_kind: npt.NDArray[np.int16]) -> tuple[
        npt.NDArray[np.int64], npt.NDArray[np.int16], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per site and template entry, how many loads of it the site has; and per (site kind, entry) the load kind
    and rated-power range (scaled by the kind's size)."""
    scale_by_kind = dict(spec.size_scale)
    max_entries = max(len(t) for t in SITE_TEMPLATES.values())
    counts = np.zeros((site_id.size, max_entries), dtype=np.int64)
    entry_kind = np.zeros((len(SITE_KINDS), max_entries), dtype=np.int16)
    entry_lo = np.zeros((len(SITE_KINDS), max_entries))
    entry_hi = np.zeros((len(SITE_KINDS), max_entries))
    for sk, sk_name in enumerate(SITE_KINDS):
        rows = np.flatnonzero(site_kind == sk)
        scale = scale_by_kind.get(sk_name, 1.0)
        for e, tmpl in enumerate(SITE_TEMPLATES[sk_name]):
            entry_kind[sk, e] = LOAD_KINDS.index(tmpl.load_kind)
            entry_lo[sk, e] = tmpl.rated_kw[0] * scale
            entry_hi[sk, e] = tmpl.rated_kw[1] * scale
            if rows.size == 0:
                continue
            ids = site_id[rows]
            present = uniform01(hash64(seed, STREAM_INCLUDE, ids, e)) < tmpl.probability
            lo, hi = tmpl.count
            n = lo + np.floor(uniform01(hash64(seed, STREAM_COUNT, ids, e)) * (hi - lo + 1)).astype(np.int64)
            counts[rows, e] = np.where(present, n, 0)
    return counts, entry_kind, entry_lo, entry_hi


def build_shard(spec: FleetSpec, seed: int, ven_start: int, ven_stop: int) -> FleetShard:
    """Build the VENs [ven_start, ven_stop); each VEN's sites and loads depend only on (spec, seed, its index)."""
    if not 0 <= ven_start < ven_stop <= spec.vens:
        raise ValueError(f"fleet: shard range must satisfy 0 <= start < stop <= {spec.vens}, got [{ven_start}, {ven_stop})")
    spv = spec.sites_per_ven
    n_vens = ven_stop - ven_start
    n_sites = n_vens * spv
    site_offsets = np.arange(0, n_sites + 1, spv, dtype=np.int64)
    site_ven = np.repeat(np.arange(n_vens, dtype=np.int64), spv)
    site_id = (np.arange(ven_start * spv, ven_stop * spv, dtype=np.int64)).astype(np.uint64)
    site_kind = _site_kinds(spec, seed, site_id)
    counts, entry_kind, entry_lo, entry_hi = _load_counts(spec, seed, site_id, site_kind)
    max_entries = counts.shape[1]

    per_site = counts.sum(axis=1)
    if per_site.size and int(per_site.min()) < 1:  # every template has a certain `base`; keep reduceat valid
        raise AssertionError("fleet: a site has no loads")
    load_offsets = np.zeros(n_sites + 1, dtype=np.int64)
    np.cumsum(per_site, out=load_offsets[1:])
    n_loads = int(load_offsets[-1])
    flat = counts.ravel()
    pair = np.repeat(np.arange(flat.size, dtype=np.int64), flat)
    load_site = pair // max_entries
    entry = pair % max_entries
    local = np.arange(n_loads, dtype=np.int64) - load_offsets[load_site]
    kind_of_site = site_kind[load_site].astype(np.int64)
    load_kind = entry_kind[kind_of_site, entry]
    load_site_id = site_id[load_site]
    load_id = (load_site_id << np.uint64(16)) | local.astype(np.uint64)
    u = uniform01(hash64(seed, STREAM_RATED, load_id))
    lo_kw = entry_lo[kind_of_site, entry]
    hi_kw = entry_hi[kind_of_site, entry]
    rated = np.round(lo_kw + u * (hi_kw - lo_kw), 2)
    flex_table = np.array([k in FLEXIBLE_KINDS for k in LOAD_KINDS])
    return FleetShard(
        spec=spec,
        seed=seed,
        ven_start=ven_start,
        ven_stop=ven_stop,
        site_offsets=site_offsets,
        site_ven=site_ven,
        site_kind=site_kind,
        site_id=site_id,
        load_offsets=load_offsets,
        load_site=load_site,
        load_kind=load_kind.astype(np.int16),
        load_id=load_id,
        load_rated_kw=rated,
        load_flexible=flex_table[load_kind],
    )
