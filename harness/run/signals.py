"""SIGINT and SIGTERM during a run: recorded, never acted on in the handler (the supervisor's loop acts on them).

Edge (signal handlers). Installed for a with-block only, and the previous handlers put back after it.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class SignalLog:
    """SIGINT and SIGTERM as they arrive, recorded only (the loop acts on them)."""

    def __init__(self) -> None:
        self.received: list[int] = []

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)

    @contextmanager
    def recording(self) -> Iterator[SignalLog]:
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)
