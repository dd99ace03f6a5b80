"""Request timeouts without a timer per request: one deadline FIFO and one timer per loop and timeout.

Edge (timers on the worker's loop; a FIFO belongs to the one loop that made it). The lean client (h1client) tracks
every request here; uvloop's call_at + cancel per request cost a saturated worker ~7 % of its CPU (py-spy).
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from typing import Any

__all__ = ["DONE", "Deadlines", "deadlines"]


class Deadlines:
    """The timeouts of every request a loop's transports send with one timeout: one FIFO and one timer.

    A request's deadline is its send time plus the timeout, so in the order requests are sent the deadlines only
    grow: the FIFO is in deadline order and only its head needs a timer. An entry is [deadline, future, expire]:
    the future the request waits on now (a free connection, then the reply; None between the two), and what to
    call on it if the deadline passes. A finished request sets its entry's future to DONE. The timer fires at the
    head's deadline; finished entries are dropped from the head as the FIFO grows, so it holds about the requests
    sent within the slowest in-flight one's time (at most rate x timeout while one request hangs)."""

    __slots__ = ("_loop", "_fifo", "_timer", "__weakref__")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._fifo: deque[list[Any]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def track(self, deadline: float) -> list[Any]:
        fifo = self._fifo
        if len(fifo) >= PRUNE_AT and fifo[0][1] is DONE:
            while fifo and fifo[0][1] is DONE:
                fifo.popleft()
        entry = [deadline, None, None]
        fifo.append(entry)
        if self._timer is None:
            self._timer = self._loop.call_at(deadline, self._sweep)
        return entry

    def _sweep(self) -> None:
        self._timer = None
        fifo, now = self._fifo, self._loop.time()
        while fifo:
            deadline, fut, expire = fifo[0]
            if fut is not DONE and deadline > now:
                # uvloop's timers count whole milliseconds and can fire up to ~1 ms early: never re-arm for less.
                self._timer = self._loop.call_later(max(deadline - now, 0.001), self._sweep)
                return
            fifo.popleft()
            if fut is not DONE and fut is not None and not fut.done():
                expire(fut)


DONE: Any = object()
PRUNE_AT = 256
# One Deadlines per (loop, timeout). The key holds id(loop): the value holds the loop, so the id stays its own.
_DEADLINES: weakref.WeakValueDictionary[tuple[int, float], Deadlines] = weakref.WeakValueDictionary()


def deadlines(loop: asyncio.AbstractEventLoop, timeout_s: float) -> Deadlines:
    """The loop's FIFO for requests with this timeout (made on first use, gone with its last transport)."""
    d = _DEADLINES.get((id(loop), timeout_s))
    if d is None:
        d = _DEADLINES[(id(loop), timeout_s)] = Deadlines(loop)
    return d
