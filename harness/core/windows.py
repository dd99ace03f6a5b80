"""When a one-second window is closed: every worker still running has sent its delta of it (or a later one).

Pure: the supervisor tells the gate what arrived and which workers ended; the gate answers which windows closed.
Each worker sends its windows in order, so its latest window says it has nothing more for earlier ones; a worker
that ended (done, failed or lost) no longer holds any window back.
"""

from __future__ import annotations

from collections.abc import Iterable


class WindowGate:
    """Tracks, per worker, the latest window it sent; each window is released once, in order."""

    def __init__(self, workers: Iterable[int] = ()) -> None:
        self._latest: dict[int, int] = {w: -1 for w in workers}  # running worker -> latest window it sent
        self._seen = -1  # the latest window any worker sent
        self.closed_through = -1  # every window up to this one has been released

    def add_worker(self, worker_id: int) -> None:
        self._latest.setdefault(worker_id, -1)

    def arrived(self, worker_id: int, window: int) -> range:
        """A delta of `window` from a worker: the windows this closes (often none)."""
        if worker_id in self._latest:
            self._latest[worker_id] = max(self._latest[worker_id], window)
        self._seen = max(self._seen, window)
        return self._release()

    def ended(self, worker_id: int) -> range:
        """A worker ended: it holds nothing back any more."""
        self._latest.pop(worker_id, None)
        return self._release()

    def _release(self) -> range:
        upto = min(self._latest.values(), default=self._seen)
        first = self.closed_through + 1
        self.closed_through = max(self.closed_through, upto)
        return range(first, self.closed_through + 1)
