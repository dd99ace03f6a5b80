"""When a one-second window closes: once every running worker has sent it, each window once, in order."""

from __future__ import annotations

from hypothesis import given, settings

from harness.core.windows import WindowGate
from tests.strategies import window_arrivals


@settings(max_examples=300, deadline=None)
@given(window_arrivals())
def test_each_window_closes_once_in_order_after_every_running_worker_sent_it(
        case: tuple[int, list[tuple[int, int | None]]]) -> None:
    """Any interleaving: windows close 0, 1, 2... each once, only when no running worker still owes it, all by the end."""
    workers, events = case
    gate = WindowGate(range(workers))
    latest = {w: -1 for w in range(workers)}
    closed: list[int] = []
    for w, window in events:
        if window is None:
            del latest[w]
            released = gate.ended(w)
        else:
            latest[w] = window
            released = gate.arrived(w, window)
        for second in released:
            assert all(sent >= second for sent in latest.values())  # nobody running still owes it
        closed += list(released)
    sent = [window for _, window in events if window is not None]
    assert closed == list(range(max(sent, default=-1) + 1))


def test_a_worker_that_ended_holds_no_window_back() -> None:
    """Worker 1 sends window 0 and dies: worker 0's windows 1 and 2 close as they arrive, not at the end."""
    gate = WindowGate([0, 1])
    assert list(gate.arrived(0, 0)) == []
    assert list(gate.arrived(1, 0)) == [0]
    assert list(gate.arrived(0, 1)) == []  # worker 1 still owes window 1
    assert list(gate.ended(1)) == [1]
    assert list(gate.arrived(0, 2)) == [2]
