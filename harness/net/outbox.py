"""Flights' requests written together, once per loop iteration: one wake-up of the target for many requests.

Edge (a callback on the worker's loop; an outbox belongs to the one loop that made it). Writing a request at once
wakes a target that has gone idle since the last one; on loopback that wake-up is paid inside the client's write()
(perf: ~18 % of a saturated worker's CPU in sock_def_readable). A flight's request joins the loop's outbox and all
go out back to back after the callbacks of the current iteration (call_soon), so the target, woken by the first,
finds the rest waiting. The wait, at most the rest of one iteration, is the client's and counts in service_time,
like a wait for a pooled connection.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

__all__ = ["Outbox", "outbox"]


class Outbox:
    """The loop's requests to write at the end of this iteration: (flight, connection) pairs."""

    __slots__ = ("_loop", "_queued", "_scheduled", "__weakref__")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queued: list[tuple[Any, Any]] = []
        self._scheduled = False

    def add(self, flight: Any, conn: Any) -> None:
        self._queued.append((flight, conn))
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        queued, self._queued, self._scheduled = self._queued, [], False
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
