"""The report lane: a due report sent and settled by callbacks, with no task, coroutine or future of its own.

Edge (writes through the lean client's Flight on the worker's loop). The common report, a provisioned VEN with
a good token whose meter is current and whose reports are one POST on a lean-client connection, is built, sent
(H1Transport.start_flight) and, when its reply or failure comes, recorded, settled in the ledger, committed and
followed by the VEN's next queued work, all in the connection's callback: the same steps, in the same order, as
the coroutine path (Lifecycle._report -> ShardVens.report -> VenCalls.authed -> call -> send), which does every
report the lane does not take and the rest of a report refused with 401 (its token refresh and resend). A
flight is in the lifecycle's in-flight work under its tag, drained and abandoned like a task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from time import monotonic as _now  # the loop's clock to the ns: uvloop's loop.time() is whole milliseconds

from harness.core.delivery import LedgerBook
from harness.core.errors import Failure
from harness.dialects import Request
from harness.net.base import Reply
from harness.net.h1client import Flight, H1Transport
from harness.run.venreports import REPORT_OK, Prepared

if TYPE_CHECKING:
    from harness.run.lifecycle import Lifecycle

REPORT = "report"


class ReportFlight(Flight):
    """One report POST in flight: what its outcome needs to be recorded and committed."""

    __slots__ = ("lane", "row", "intended", "sent", "prepared", "req", "tracked")

    def __init__(self, lane: ReportLane, row: int, intended: float, sent: float, prepared: Prepared, req: Request,
                 tracked: LedgerBook | None) -> None:
        super().__init__()
        self.lane, self.row, self.intended, self.sent = lane, row, intended, sent
        self.prepared, self.req, self.tracked = prepared, req, tracked

    def replied(self, reply: Reply) -> None:
        try:
            self.lane.replied(self, reply)
        except BaseException as exc:  # in a connection's callback: a bug stops the worker, as a task's would
            self.lane.life.bug(exc)

    def failed(self, exc: BaseException) -> None:
        try:
            self.lane.failed(self, exc)
        except BaseException as bug:
            self.lane.life.bug(bug)


class ReportLane:
    """Takes a due report of a READY VEN when it can send it as a flight (start), else leaves it to the caller."""

    def __init__(self, life: Lifecycle) -> None:
        self.life = life
        self.vens = life.vens
        self.calls = life.vens.calls
        # A shorter timeout of the report operation than the transport's is the coroutine path's (asyncio.timeout).
        self.enabled = self.calls.op_timeout(REPORT) is None
        self.flown = 0  # flights started (the worker ships the count as counter report_flights)

    def start(self, row: int, intended: float) -> bool:
        """Send the VEN's due report as a flight; False (nothing done) if the coroutine path must send it."""
        calls = self.calls
        token = calls.fresh_token(row)
        if token is None:
            return False  # the token is fetched first: the coroutine path's
        transport = calls.transport_for(row)
        if type(transport) is not H1Transport:
            return False
        prepared = self.vens.prepare(row)
        if prepared is None:
            return False  # the meter is behind the clock: the coroutine path advances it first
        life = self.life
        if len(prepared.reqs) != 1 or not transport.takes_flight(prepared.reqs[0].path):
            life.start_report_task(row, intended, prepared)
            return True
        req = prepared.reqs[0]
        tracked = self.vens.track(row, req, prepared.pretagged)
        flight = ReportFlight(self, row, intended, _now(), prepared, req, tracked)
        life.fly(row, flight)
        transport.start_flight(req, token, flight)
        self.flown += 1
        return True

    def replied(self, flight: ReportFlight, reply: Reply) -> None:
        row = flight.row
        reply = self.calls.replied(REPORT, row, flight.req, reply, flight.intended, flight.sent, REPORT_OK)
        if reply.status == 401:
            # The token refresh and the resend are the coroutine path's: a task, tagged and drained like any.
            self.life.landed_into_task(row, flight, self._after_401(flight, reply))
            return
        self._settled(flight, reply)

    def failed(self, flight: ReportFlight, exc: BaseException) -> None:
        if not isinstance(exc, Failure):
            raise exc  # only a Failure is an outcome; anything else is a bug
        self.calls.failed(REPORT, flight.row, exc, flight.intended)
        self._settled(flight, None)

    def _settled(self, flight: ReportFlight, reply: Reply | None) -> None:
        self._conclude(flight, reply)
        self.life.landed(flight.row, flight)

    async def _after_401(self, flight: ReportFlight, reply: Reply) -> None:
        self._conclude(flight, await self.calls.after_401(REPORT, flight.row, flight.req, reply, REPORT_OK))

    def _conclude(self, flight: ReportFlight, reply: Reply | None) -> None:
        """The report's last reply (or none): settled in the ledger, committed if acknowledged, counted."""
        row, vens = flight.row, self.vens
        acked = vens.settle(row, flight.tracked, reply)
        if acked:
            vens.commit(row, flight.prepared)
        self.life.reported(row, flight.intended, acked)
