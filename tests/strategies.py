"""Hypothesis strategies shared by the core's property tests (fleet shapes, seeds, instants)."""

from __future__ import annotations

from hypothesis import strategies as st

from harness.core.fleet import SITE_KINDS, FleetSpec

seeds = st.integers(min_value=0, max_value=2**63 - 1)

# 2024-01-01 .. 2026-12-31 UTC, on whole minutes (the meter doesn't need that, the tests read better).
start_epochs = st.integers(min_value=1_704_067_200 // 60, max_value=1_798_675_200 // 60).map(lambda m: float(m * 60))

tick_seconds = st.sampled_from([1.0, 15.0, 60.0, 300.0, 900.0])


@st.composite
def mixes(draw: st.DrawFn, max_kinds: int = len(SITE_KINDS)) -> tuple[tuple[str, float], ...]:
    """A mix of 1..max_kinds site kinds with positive weights."""
    kinds = draw(st.lists(st.sampled_from(SITE_KINDS), min_size=1, max_size=max_kinds, unique=True))
    weights = draw(st.lists(st.floats(min_value=0.05, max_value=10.0), min_size=len(kinds), max_size=len(kinds)))
    return tuple(zip(kinds, weights))


@st.composite
def fleet_specs(draw: st.DrawFn, min_vens: int = 1, max_vens: int = 40, max_sites: int = 3) -> FleetSpec:
    """A small fleet: a few VENs with 1..max_sites sites each and a random mix."""
    return FleetSpec(
        vens=draw(st.integers(min_value=min_vens, max_value=max_vens)),
        sites_per_ven=draw(st.integers(min_value=1, max_value=max_sites)),
        mix=draw(mixes()),
    )


@st.composite
def vens_and_shards(draw: st.DrawFn, max_vens: int = 10_000) -> tuple[int, int]:
    """(vens, shards) with 1 <= shards <= vens."""
    vens = draw(st.integers(min_value=1, max_value=max_vens))
    return vens, draw(st.integers(min_value=1, max_value=min(vens, 64)))


@st.composite
def window_arrivals(draw: st.DrawFn, max_workers: int = 4, max_windows: int = 12) -> tuple[int, list[tuple[int, int | None]]]:
    """(workers, events): each worker sends its windows 0.. in order, then ends (None); the workers interleave."""
    workers = draw(st.integers(min_value=1, max_value=max_workers))
    queues = {w: [*range(draw(st.integers(min_value=0, max_value=max_windows))), None] for w in range(workers)}
    events: list[tuple[int, int | None]] = []
    while queues:
        w = draw(st.sampled_from(sorted(queues)))
        events.append((w, queues[w].pop(0)))
        if not queues[w]:
            del queues[w]
    return workers, events
