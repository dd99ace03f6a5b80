"""A shard's VENs' reports: built from the meter, sent, settled in the delivery ledger, committed.

Edge (awaits a Transport through VenCalls). The report half of ShardVens (run/ven.py), kept apart so the report
lane (run/reportlane.py) can build, settle and commit a report without the coroutine that sends one.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple
from time import monotonic as _now  # the loop's clock to the ns: uvloop's loop.time() is whole milliseconds

import numpy as np
import orjson
import numpy.typing as npt

from harness.core import errors
from harness.core.delivery import LedgerBook, report_key, tag_body
from harness.core.fleet import FleetShard, site_name
from harness.core.shard import ShardSpec
from harness.core.simclock import SimClock, iso_duration, rfc3339
from harness.dialects import Dialect, Request, Site
from harness.net.base import Reply
from harness.run.bodies import ReportTemplates, plain
from harness.run.calls import VenCalls
from harness.run.meterfeed import MeterFeed

REPORT_OK = (201, 200)


class Prepared(NamedTuple):
    """One VEN's reports for one interval, built, with what committing them needs."""

    reqs: list[Request]
    lo: int  # the VEN's sites: rows lo..hi of the meter's site arrays
    hi: int
    energy: npt.NDArray[np.float64]  # the tick's site energy the reports were built from
    load_energy: npt.NDArray[np.float64] | None
    now_sim: float
    pretagged: bool = False  # the one POST's body carries its ledger id already (written by its template)


class VenReports:
    """The report operations of ShardVens, which holds the state they use (declared here for the type checker)."""

    spec: ShardSpec
    shard: FleetShard
    dialect: Dialect
    clock: SimClock
    calls: VenCalls
    feed: MeterFeed
    granularity: str
    book: LedgerBook | None
    templates: ReportTemplates
    t0: float
    fault_ends: tuple[float, ...]
    back_at: npt.NDArray[np.float64]
    _offsets: Any
    _ok: Any
    _last_sim: Any
    _last_ok: Any

    async def report(self, row: int, intended: float, prepared: Prepared | None = None) -> bool:
        """One interval's reports, as the granularity asks (one for the VEN, one per resource or one per load):
        energy since the VEN's last report and mean power. Each POST is one `report` operation, all measured
        against the slot's intended time (a device sends them one after another). `prepared`: built already (by
        the report lane, which hands over what it does not send itself)."""
        if prepared is None:
            prepared = self.prepare(row)
            while prepared is None:  # the meter is behind the clock: advance it first
                await self.feed.advance(self.feed.meter.tick_at(self.clock.at(_now() - self.t0)))
                prepared = self.prepare(row)
        authed = self.calls.authed
        self.calls.count("report_awaited", len(prepared.reqs))  # POSTs sent by this coroutine, not as flights
        for req in prepared.reqs:
            tracked = self.track(row, req, prepared.pretagged)
            reply = await authed("report", row, req, intended, REPORT_OK)
            if not self.settle(row, tracked, reply):
                # The interval is not committed: the next report covers it (its energy delta included).
                return False
        self.commit(row, prepared)
        return True

    def prepare(self, row: int) -> Prepared | None:
        """The VEN's reports for now, or None while the meter has not reached the clock's tick (advance it first)."""
        feed = self.feed
        now_sim = self.clock.at(_now() - self.t0)
        if feed.meter.tick_at(now_sim) > feed.visible_tick:
            return None
        # Python floats from here on: numpy scalar arithmetic is several times slower, and round() of a numpy
        # float64 alone cost ~7 us a report (found by py-spy at saturation).
        energy, power, last = feed.site_energy, feed.site_power, feed.site_last_energy_kwh
        lo, hi = self._offsets[row], self._offsets[row + 1]
        name = self.shard.ven_name(row)
        start_sim = self._last_sim[row]
        if math.isnan(start_sim):
            start_sim = now_sim - self.spec.interval_s * self.clock.time_scale
        start_iso, duration_iso = rfc3339(start_sim), iso_duration(round(now_sim - start_sim, 3))
        t = self.templates.get(hi - lo) if self.granularity != "load" else None
        if t is not None and plain(name):  # the body from its shape's template (run/bodies.py)
            book = self.book
            key = report_key(self.spec.report_tag, self.spec.ven_start + row, int(book.sent[row])) if t.tagged and book else ""
            body = t.render(name, start_iso, duration_iso, key, [float(energy[s]) - float(last[s]) for s in range(lo, hi)],
                            [float(power[s]) for s in range(lo, hi)])
            if body is not None:
                return Prepared([Request("POST", t.path, json=orjson.Fragment(body))], lo, hi, energy, None, now_sim, t.tagged)
        sites = [Site(site_name(name, s - lo), float(energy[s]) - float(last[s]), float(power[s])) for s in range(lo, hi)]
        load_energy = loads = None
        if self.granularity == "load":
            load_energy = feed.load_energy  # this tick's array, kept while the POSTs are in flight
            loads = feed.load_readings(lo, hi)
        reqs = self.dialect.reports(self.spec.program_id, self.spec.event_id, name, sites, loads, start_iso, duration_iso,
                                    self.granularity)
        return Prepared(reqs, lo, hi, energy, load_energy, now_sim)

    def track(self, row: int, req: Request, pretagged: bool = False) -> LedgerBook | None:
        """With a delivery ledger, the POST carries its id (run tag, VEN, sequence) and is in the book until its
        outcome is known: the book, else None. `pretagged`: its template wrote the id already."""
        book = self.book
        if book is not None and pretagged:
            book.open(row)
            return book
        if book is None or not tag_body(req.json, report_key(self.spec.report_tag, self.spec.ven_start + row, int(book.sent[row]))):
            return None
        book.open(row)
        return book

    def settle(self, row: int, tracked: LedgerBook | None, reply: Reply | None) -> bool:
        """One POST's outcome: acknowledged or not (and why, in the ledger)."""
        acked = reply is not None and reply.status in REPORT_OK
        if tracked is not None:
            tracked.settle(row, acked, self.calls.last_failure if reply is None else errors.http_class(reply.status))
        return acked

    def commit(self, row: int, p: Prepared) -> None:
        """Every POST of the interval was acknowledged: the VEN's meter, counters and recovery instants move on."""
        self.feed.commit(p.lo, p.hi, p.energy, p.load_energy)
        self._last_sim[row] = p.now_sim
        self._ok[row] += 1
        now = _now()
        last_ok = self._last_ok[row]
        for i, end in enumerate(self.fault_ends):  # the first acknowledgement after a fault's end: back
            if last_ok <= end < now:
                self.back_at[i, row] = now
        self._last_ok[row] = now
        self.feed.note_shed_reported(row, p.now_sim)

