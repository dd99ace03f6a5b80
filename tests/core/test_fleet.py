"""Fleet shape and sharding: names, sizes, mix, and shard-independence."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.core.fleet import (
    FLEXIBLE_KINDS,
    LOAD_KINDS,
    SITE_KINDS,
    SITE_TEMPLATES,
    TYPICAL_MIX,
    FleetShard,
    FleetSpec,
    build_shard,
    split,
)
from tests.strategies import fleet_specs, seeds, vens_and_shards


def _concat(shards: list[FleetShard]) -> dict[str, np.ndarray]:
    return {
        "site_kind": np.concatenate([s.site_kind for s in shards]),
        "site_id": np.concatenate([s.site_id for s in shards]),
        "load_kind": np.concatenate([s.load_kind for s in shards]),
        "load_id": np.concatenate([s.load_id for s in shards]),
        "load_rated_kw": np.concatenate([s.load_rated_kw for s in shards]),
        "loads_per_site": np.concatenate([np.diff(s.load_offsets) for s in shards]),
    }


@given(vens_and_shards())
def test_split_covers_every_ven_once(vs: tuple[int, int]) -> None:
    """split gives contiguous, non-empty ranges covering 0..vens exactly once, sizes within 1."""
    vens, shards = vs
    ranges = split(vens, shards)
    assert len(ranges) == shards
    assert ranges[0][0] == 0 and ranges[-1][1] == vens
    assert all(a < b for a, b in ranges)
    assert all(ranges[i][1] == ranges[i + 1][0] for i in range(shards - 1))
    sizes = [b - a for a, b in ranges]
    assert max(sizes) - min(sizes) <= 1
    assert sorted(np.concatenate([np.arange(a, b) for a, b in ranges]).tolist()) == list(range(vens))


def test_split_rejects_more_shards_than_vens() -> None:
    """split refuses empty shards and non-positive sizes, naming the value."""
    with pytest.raises(ValueError, match=r"split: shards must be <= vens \(3\), got 4"):
        split(3, 4)
    with pytest.raises(ValueError, match="split: shards must be > 0, got 0"):
        split(3, 0)
    with pytest.raises(ValueError, match="split: vens must be > 0, got 0"):
        split(0, 1)


@settings(max_examples=40, deadline=None)
@given(fleet_specs(max_vens=60), seeds, st.integers(min_value=1, max_value=7))
def test_a_ven_is_the_same_in_any_shard(spec: FleetSpec, seed: int, shards: int) -> None:
    """Building in any number of shards gives the same sites and loads, with the same ids, kinds and sizes."""
    whole = build_shard(spec, seed, 0, spec.vens)
    parts = [build_shard(spec, seed, a, b) for a, b in split(spec.vens, min(shards, spec.vens))]
    one, many = _concat([whole]), _concat(parts)
    for key in one:
        assert np.array_equal(one[key], many[key]), key
    assert [p.ven_name(r) for p in parts for r in range(p.n_vens)] == [
        whole.ven_name(r) for r in range(whole.n_vens)]


@settings(max_examples=40, deadline=None)
@given(fleet_specs(max_vens=60), seeds)
def test_shard_rows_are_consistent(spec: FleetSpec, seed: int) -> None:
    """CSR offsets, back-pointers, unique load ids and flexibility flags agree with each other."""
    sh = build_shard(spec, seed, 0, spec.vens)
    assert sh.n_sites == spec.vens * spec.sites_per_ven
    assert sh.site_offsets[0] == 0 and sh.site_offsets[-1] == sh.n_sites
    assert np.array_equal(np.repeat(np.arange(sh.n_vens), np.diff(sh.site_offsets)), sh.site_ven)
    assert sh.load_offsets[-1] == sh.n_loads
    assert np.all(np.diff(sh.load_offsets) >= 1)
    assert np.array_equal(np.repeat(np.arange(sh.n_sites), np.diff(sh.load_offsets)), sh.load_site)
    assert np.unique(sh.load_id).size == sh.n_loads
    flexible = np.array([LOAD_KINDS[k] in FLEXIBLE_KINDS for k in sh.load_kind], dtype=bool)
    assert np.array_equal(flexible, sh.load_flexible)
    # the first load of every site is its base load
    assert np.all(sh.load_kind[sh.load_offsets[:-1]] == LOAD_KINDS.index("base"))


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=1, max_value=20_000), seeds)
def test_mix_is_tracked_within_a_few_sites(vens: int, seed: int) -> None:
    """Site kind counts stay within 4 of weight x sites for any fleet size."""
    spec = FleetSpec(vens=vens, mix=TYPICAL_MIX)
    counts = np.bincount(build_shard(spec, seed, 0, vens).site_kind, minlength=len(SITE_KINDS))
    assert np.abs(counts - spec.kind_weights() * vens).max() <= 4.0


def test_mix_counts_for_a_seed() -> None:
    """A 1000-VEN typical fleet with seed 42 has exactly these site kinds and load count."""
    sh = build_shard(FleetSpec(vens=1000, mix=TYPICAL_MIX), 42, 0, 1000)
    counts = dict(zip(SITE_KINDS, np.bincount(sh.site_kind, minlength=len(SITE_KINDS)).tolist()))
    assert counts == {
        "household": 819, "restaurant": 25, "school": 10, "hotel": 10, "swimming_pool": 6, "industry": 10,
        "ev_station": 20, "pv_site": 15, "battery_site": 5, "heat_pump_home": 80,
    }
    assert sh.n_loads == 5245


def test_zero_weight_kinds_never_appear() -> None:
    """A kind with weight 0 in the mix gets no sites."""
    sh = build_shard(FleetSpec(vens=5000, mix=(("school", 1.0), ("hotel", 0.0))), 1, 0, 5000)
    assert set(sh.site_kind.tolist()) == {SITE_KINDS.index("school")}


def test_names() -> None:
    """VEN and site names use the prefix, the global VEN index (7 digits) and the site index in its VEN."""
    sh = build_shard(FleetSpec(vens=20, sites_per_ven=3, name_prefix="town"), 0, 12, 15)
    assert sh.ven_name(0) == "town-ven-0000012"
    assert sh.ven_name(2) == "town-ven-0000014"
    assert sh.site_name(0) == "town-ven-0000012-site-000"
    assert sh.site_name(5) == "town-ven-0000013-site-002"
    assert sh.site_name(8) == "town-ven-0000014-site-002"
    with pytest.raises(IndexError):
        sh.ven_name(3)


def test_sizes_follow_the_templates() -> None:
    """Every load's rated power lies within its site kind's range for that load kind (and the size scale)."""
    spec = FleetSpec(vens=3000, mix=tuple((k, 1.0) for k in SITE_KINDS), size_scale=(("hotel", 2.0),))
    sh = build_shard(spec, 5, 0, spec.vens)
    site_kind = sh.site_kind[sh.load_site]
    for sk, name in enumerate(SITE_KINDS):
        scale = 2.0 if name == "hotel" else 1.0
        for tmpl in SITE_TEMPLATES[name]:
            sel = (site_kind == sk) & (sh.load_kind == LOAD_KINDS.index(tmpl.load_kind))
            if tmpl.probability == 1.0:
                assert sel.any(), (name, tmpl.load_kind)
            rated = sh.load_rated_kw[sel]
            assert np.all(rated >= round(tmpl.rated_kw[0] * scale, 2) - 1e-9), (name, tmpl.load_kind)
            assert np.all(rated <= round(tmpl.rated_kw[1] * scale, 2) + 1e-9), (name, tmpl.load_kind)


def test_household_composition_for_a_seed() -> None:
    """Three one-site households with seed 42 have exactly these loads and sizes."""
    sh = build_shard(FleetSpec(vens=3), 42, 0, 3)
    kinds = [[LOAD_KINDS[k] for k in sh.load_kind[a:b]] for a, b in zip(sh.load_offsets[:-1], sh.load_offsets[1:])]
    assert kinds == [
        ["base", "lighting", "kitchen", "other"],
        ["base", "lighting", "kitchen", "other"],
        ["base", "lighting", "kitchen", "hvac", "other"],
    ]
    assert sh.load_rated_kw.tolist() == [0.15, 0.54, 3.49, 0.33, 0.26, 0.8, 3.54, 0.57, 0.25, 0.78, 3.59, 1.95, 0.65]
    assert sh.load_id.tolist()[3:5] == [3, 1 << 16]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vens": 0}, "fleet: vens must be > 0, got 0"),
        ({"vens": 1, "sites_per_ven": 0}, "fleet: sites_per_ven must be > 0, got 0"),
        ({"vens": 1, "mix": ()}, "fleet: mix must name at least one site kind"),
        ({"vens": 1, "mix": (("castle", 1.0),)}, "fleet: mix kind must be one of household, .*got 'castle'"),
        ({"vens": 1, "mix": (("school", -1.0),)}, "fleet: mix weight of school must be >= 0, got -1.0"),
        ({"vens": 1, "mix": (("school", 0.0),)}, "fleet: mix weights must not all be 0"),
        ({"vens": 1, "size_scale": (("hotel", 0.0),)}, "fleet: size_scale of hotel must be > 0, got 0.0"),
    ],
)
def test_spec_validation_messages(kwargs: dict[str, object], message: str) -> None:
    """A bad FleetSpec fails at construction with a message naming the key and value."""
    with pytest.raises(ValueError, match=message):
        FleetSpec(**kwargs)  # type: ignore[arg-type]


def test_build_shard_rejects_a_bad_range() -> None:
    """build_shard refuses ranges outside 0..vens or empty ones."""
    with pytest.raises(ValueError, match=r"fleet: shard range must satisfy 0 <= start < stop <= 5, got \[3, 3\)"):
        build_shard(FleetSpec(vens=5), 0, 3, 3)
