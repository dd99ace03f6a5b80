"""SIGINT and SIGTERM during a run: recorded, never acted on in the handler once the supervisor runs (its loop acts
on them); during set-up (`interrupting`) the handler raises `Interrupted`, so a slow VTN's set-up calls end at
once instead of finishing first.

Edge (signal handlers). Installed for a with-block only, and the previous handlers put back after it.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from harness.core.exits import Interrupted


class SignalLog:
    """SIGINT and SIGTERM as they arrive, recorded only (the loop acts on them)."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.interrupting: str | None = None  # the set-up step under way: a signal now raises Interrupted

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        if self.interrupting is not None:
            step, self.interrupting = self.interrupting, None  # once: the teardown it starts is not interrupted
            raise Interrupted(f"interrupted by {signal.Signals(signum).name} while {step}; nothing was measured",
                              128 + signum)

    @contextmanager
    def recording(self) -> Iterator[SignalLog]:
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)
