"""Open-model schedule streams: every slot exactly once, in intended-time order, bounded by count and end."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.core.schedule import Stream


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(0, 0.999), min_size=1, max_size=30),
    st.integers(1, 5),
    st.lists(st.floats(0.01, 2.0), min_size=1, max_size=20),
)
def test_every_slot_once_in_order_whatever_the_wake_times(phase: list[float], slots: int, steps: list[float]) -> None:
    """However late or often the loop wakes, each (VEN, slot) comes out once, in intended-time order."""
    s = Stream(np.asarray(phase) * 2.0, 2.0, t0=10.0, end=math.inf, first_slot=0, last_slot=slots - 1)
    now, got = 10.0, []
    for step in steps + [100.0]:
        now += step
        got += s.take_due(now)
    assert sorted((r, k) for r, k, _ in got) == [(r, k) for r in range(len(phase)) for k in range(slots)]
    times = [t for _, _, t in got]
    assert times == sorted(times)
    assert s.next_due() == math.inf


def test_end_bounds_the_schedule_and_next_due_is_the_wake_time() -> None:
    """Slots at or after `end` are never handed out; next_due is the next intended time."""
    s = Stream(np.array([0.0, 0.5]), 1.0, t0=0.0, end=2.2, first_slot=1)
    assert s.next_due() == 1.0
    assert [(r, k) for r, k, _ in s.take_due(1.0)] == [(0, 1)]
    assert s.next_due() == 1.5
    assert [(r, k) for r, k, _ in s.take_due(10.0)] == [(1, 1), (0, 2)]
    assert s.next_due() == math.inf
