"""Flights' requests written together, once per loop iteration: one wake-up of the target for many requests.

Edge (a callback on the worker's loop; an outbox belongs to the one loop that made it). Writing a request at once
wakes a target that has gone idle since the last one; on loopback that wake-up is paid inside the client's write()
(perf: ~18 % of a saturated worker's CPU in sock_def_readable). A flight's request joins the loop's outbox and all
go out back to back after the callbacks of the current iteration (call_soon), so the target, woken by the first,
finds the rest waiting. A burst goes out at 32 requests or 0.5 ms at the latest; the wait is the client's and counts
in service_time, like a wait for a pooled connection.
"""

from __future__ import annotations

import asyncio
import weakref
from time import monotonic as _now
from typing import Any

__all__ = ["FLUSH_AT", "Outbox", "outbox"]

# At most this many requests wait: at saturation one iteration of a per-VEN worker ran ~100 ms of callbacks (6,000
# due rows, thousands of replies) and held its first write back that long (p50 83 ms); 32 keep one wake-up per
# burst of 32 and bound the wait to building 31 more (a fraction of a millisecond).
FLUSH_AT = 32
FLUSH_AFTER_S = 0.0005  # nor longer than this, whatever runs between them


class Outbox:
    """The loop's requests to write at the end of this iteration: (flight, connection) pairs."""

    __slots__ = ("_loop", "_queued", "_scheduled", "_first", "__weakref__")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queued: list[tuple[Any, Any]] = []
        self._scheduled = False
        self._first = 0.0  # when the oldest waiting request joined

    def add(self, flight: Any, conn: Any) -> None:
        queued = self._queued
        queued.append((flight, conn))
        now = _now()
        if len(queued) == 1:
            self._first = now
        elif len(queued) >= FLUSH_AT or now - self._first > FLUSH_AFTER_S:
            self._flush()  # a long iteration (a schedule burst, thousands of replies) must not hold the first back
            return
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._end_of_iteration)

    def _end_of_iteration(self) -> None:
        self._scheduled = False
        self._flush()

    def _flush(self) -> None:
        queued, self._queued = self._queued, []
        for flight, conn in queued:
            # Not if the flight ended meanwhile (expired, abandoned) or its connection was lost: that outcome is
            # the flight's already, and its connection is closed or someone else's.
            if not flight._over and flight._conn is conn and not conn.closed:
                conn.transport.write(flight._data)


def outbox(loop: asyncio.AbstractEventLoop) -> Outbox:
    """The loop's outbox (made on first use, gone with its last transport)."""
    box = _OUTBOXES.get(id(loop))
    if box is None:
        box = _OUTBOXES[id(loop)] = Outbox(loop)
    return box


_OUTBOXES: weakref.WeakValueDictionary[int, Outbox] = weakref.WeakValueDictionary()
