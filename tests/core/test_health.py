"""Generator health: saturated windows make a run invalid, a spike or two do not."""

from __future__ import annotations

from harness.core.health import HealthLimits, first_saturated, judge
from harness.core.messages import Health


def h(lag_ms: float = 1.0, cpu: float = 30.0) -> Health:
    return Health(lag_ms, lag_ms / 2, cpu, 100 << 20, 20, 0, 0)


def test_kept_up_is_valid() -> None:
    """All windows within limits: no reasons."""
    assert judge({0: [h()] * 60, 1: [h()] * 60}, HealthLimits()) == []


def test_one_spike_is_tolerated() -> None:
    """A single GC-sized spike in 60 windows does not invalidate the run."""
    assert judge({0: [h()] * 59 + [h(lag_ms=300)]}, HealthLimits()) == []


def test_sustained_lag_or_pegged_cpu_is_invalid_and_names_the_worker() -> None:
    """Loop lag past the limit in 20 of 60 windows, or CPU pegged, makes the run invalid with a reason."""
    reasons = judge({0: [h()] * 60, 1: [h()] * 40 + [h(lag_ms=250)] * 20}, HealthLimits())
    assert len(reasons) == 1 and reasons[0].startswith("generator saturated: worker 1 missed its schedule in 20 of 60")
    assert judge({0: [h(cpu=99)] * 10}, HealthLimits()) != []
    assert judge({0: [h(lag_ms=300)] * 2 + [h()]}, HealthLimits()) == []  # a 2-window startup burst is not sustained


def test_live_warning_on_first_saturated_window() -> None:
    """The live view can warn as soon as one window is saturated."""
    assert first_saturated([(0, h())], HealthLimits()) is None
    assert "worker 3 is saturated" in str(first_saturated([(3, h(lag_ms=500))], HealthLimits()))
