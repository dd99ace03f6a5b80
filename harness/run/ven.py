"""A shard of simulated VENs: per-VEN state as rows of numpy arrays and lists, and each VEN's operations.

Edge (awaits a Transport through VenCalls). Every operation is measured against its intended time and recorded in
the worker's Recorder; HTTP failures are recorded as data and never raised out of an operation. Which operation
runs when is the lifecycle's business (lifecycle.py), not this module's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from time import (
    monotonic as _now,  # the loop's clock to the ns: uvloop's loop.time() is whole milliseconds
)

import numpy as np
import numpy.typing as npt

from harness.core import errors
from harness.core.delivery import LedgerBook
from harness.core.errors import Failure
from harness.core.fleet import FleetShard
from harness.core.recorder import Recorder
from harness.core.shard import ShardSpec
from harness.core.simclock import SimClock
from harness.core.targeting import randomized_starts
from harness.dialects import Dialect, EventInfo, resolve_granularity
from harness.meter import Meter, simple_level_shed
from harness.net.base import Transport
from harness.net.wire import decode
from harness.run.calls import VenCalls
from harness.notify.notification import usable
from harness.run.meterfeed import MeterFeed
from harness.run.bodies import ReportTemplates
from harness.run.venreports import VenReports

if TYPE_CHECKING:
    from harness.run.mqttvens import MqttVens

PAGE = 50  # events per page of a poll (OpenADR servers cap limit at 50)
# How a VEN learned of an event: its own poll, a notification, or the read of current events after subscribing.
POLL, NOTIFICATION, STARTUP_READ = "poll", "notification", "startup_read"
READ_BY_ID = "read_by_id"  # how a VEN learned of an event a notification named but did not describe usably
READ_EVENT = "read_event"  # the operation: GET /events/{id}


@dataclass
class VenFacts:
    """What the VENs learnt since the last delta: counters, deviations and DR instants (epoch s) to ship."""

    counters: dict[str, int]
    deviations: dict[str, str]  # kind -> one example; the counts are in counters as deviation:<kind>
    aware: dict[str, list[float]]
    shed: dict[str, list[float]]
    learned: dict[str, dict[str, int]]  # DR event id -> how VENs learned of it (POLL, ...) -> count


class ShardVens(VenReports):
    """The VENs of one shard. A VEN is a row: idle VENs cost array slots, not coroutines."""

    def __init__(
        self,
        spec: ShardSpec,
        shard: FleetShard,
        meter: Meter,
        dialect: Dialect,
        recorder: Recorder,
        transport_for: Callable[[int], Transport],
        clock: SimClock,
    ) -> None:
        self.spec = spec
        self.shard = shard
        self.dialect = dialect
        self.rec = recorder
        self.clock = clock
        n = shard.n_vens
        self.calls = VenCalls(spec, dialect, recorder, transport_for, shard.ven_name, n)
        self.granularity = resolve_granularity(dialect, spec.target_settings.granularity)
        self.feed = MeterFeed(meter, shard, per_load=self.granularity == "load")
        self.ven_id: list[str | None] = [None] * n
        self.last_report_sim_s = np.full(n, np.nan, dtype=np.float64)
        self.reports_ok = np.zeros(n, dtype=np.int32)
        self.last_ok = np.full(n, -np.inf)  # loop time of each VEN's latest acknowledged report
        # The same memory as memoryviews, for report()'s element reads and writes (~20 ns, a numpy scalar's 30-140).
        # (Any: typeshed types a memoryview's items as int; these hold floats.)
        self._offsets, self._ok = shard.site_offsets.data, self.reports_ok.data
        self._last_sim: Any = self.last_report_sim_s.data
        self._last_ok: Any = self.last_ok.data
        self.t0 = 0.0  # loop time of run start; set by the worker at Start
        # [[faults]]: each fault's end in loop time (set at start) and each VEN's first acknowledged report after it
        self.fault_ends: tuple[float, ...] = ()
        self.back_at = np.full((len(spec.fault_ends_s), n), np.nan)
        # DR events: per event, which rows know it; awareness instants (epoch s) to ship.
        self.event_seen: dict[str, npt.NDArray[np.bool_]] = {}
        self.aware: dict[str, list[float]] = {}
        self.learned: dict[str, dict[str, int]] = {}
        self.callback_base: str | None = None  # webhook mode: http://127.0.0.1:PORT/notify
        self.subscription_id: dict[int, str] = {}  # row -> id of its webhook subscription
        self.mqtt: MqttVens | None = None  # mqtt mode: the VENs' MQTT side (set by the worker)
        # Reads by id of events a notification named unusably: (row, event id) asked once; the worker's lifecycle
        # runs them (drained and abandoned with the rest).
        self.reads_by_id: set[tuple[int, str]] = set()
        self.side_task: Callable[[str, Coroutine[Any, Any, Any]], None] = _no_side_tasks
        # The delivery ledger: which reports were sent and acknowledged (None: the run tags no reports).
        self.book = LedgerBook(n) if spec.report_tag else None
        # Single-POST report bodies from a template per shape, where it reproduces the dialect's own bytes.
        self.templates = ReportTemplates(dialect, spec.program_id, spec.event_id, self.granularity, bool(spec.report_tag))

    def ven_name(self, row: int) -> str:
        return self.shard.ven_name(row)

    def start(self, t0: float, clock: SimClock) -> None:
        """The run starts at loop time t0, with the simulated clock it maps to."""
        self.t0, self.clock = t0, clock
        self.fault_ends = tuple(t0 + end_s for end_s in self.spec.fault_ends_s)

    def now_sim(self) -> float:
        return self.clock.at(_now() - self.t0)

    def held_until(self, row: int) -> float:
        """Loop time before which the VTN asked this VEN (429 + Retry-After) to send nothing."""
        return float(self.calls.held[row])

    def count_due(self) -> None:
        """A report fell due for a provisioned VEN (the denominator of achieved reports)."""
        self.calls.count("report_due")

    def reports_done(self, count: int) -> int:
        """VENs that have sent at least `count` reports."""
        return int(np.count_nonzero(self.reports_ok >= count))

    def take_facts(self) -> VenFacts:
        """Everything learnt since the last call, handed over and reset."""
        counters, self.calls.counters = self.calls.counters, {}
        deviations: dict[str, str] = {}
        for kind, dev in self.dialect.deviations.take().items():
            counters[f"deviation:{kind}"] = counters.get(f"deviation:{kind}", 0) + dev.count
            deviations[kind] = dev.example
        aware, self.aware = self.aware, {}
        shed, self.feed.shed = self.feed.shed, {}
        learned, self.learned = self.learned, {}
        return VenFacts(counters, deviations, aware, shed, learned)

    async def discover_token_url(self) -> None:
        await self.calls.discover_token_url()

    # ---- provisioning -------------------------------------------------------------------------
    async def provision(self, row: int, intended: float) -> bool:
        """token → find-or-create the VEN (409 → look it up) → its resources (→ its subscription)."""
        calls, name = self.calls, self.ven_name(row)
        if not await calls.fetch_token(row, intended):
            return False
        reply = await calls.provisioning("create_ven", row, self.dialect.create_ven(name), _now(), (201, 200, 409))
        if reply is None or reply.status not in (200, 201, 409):
            return False
        try:
            if reply.status == 409:
                calls.count("ven_existing")
                found = await calls.provisioning("find_ven", row, self.dialect.find_ven(name), _now(), (200,))
                if found is None or found.status != 200:
                    return False
                doc = decode(found.body)
                ven_id = self.dialect.parse_first_id(doc)
                if ven_id is None:
                    raise Failure(errors.PROTOCOL, f"409 for venName {name} but GET /vens?venName finds none")
            else:
                doc = decode(reply.body)
                ven_id = self.dialect.parse_id(doc)
            calls.adopt_ven_token(row, self.dialect.token_from_create_ven(doc))
            self.ven_id[row] = ven_id
            if not await self._create_resources(row, ven_id):
                return False
            if self.callback_base is not None or self.mqtt is not None:
                subscribed = await self._subscribe(row) if self.mqtt is None else await self.mqtt.subscribe(row, ven_id)
                if not subscribed:
                    return False
                await self.read_current_events(row)
        except Failure as f:
            self.rec.fail("create_ven", f.error_class, f"{name}: {f.message}")
            return False
        return True

    async def _create_resources(self, row: int, ven_id: str) -> bool:
        lo, hi = int(self.shard.site_offsets[row]), int(self.shard.site_offsets[row + 1])
        for s in range(lo, hi):
            req = self.dialect.create_resource(ven_id, self.shard.site_name(s))
            r = await self.calls.provisioning("create_resource", row, req, _now(), (201, 200, 409))
            if r is None or r.status not in (200, 201, 409):
                return False
            if r.status == 409:
                self.calls.count("resource_existing")
        return True

    async def _subscribe(self, row: int) -> bool:
        """Webhook mode: a subscription to this program's event changes, calling back into this worker."""
        req = self.dialect.subscribe(
            self.spec.program_id, self.ven_name(row), f"{self.callback_base}/{row}", self.callback_token(row), ["EVENT"],
            self.spec.target_settings.operations,
        )
        r = await self.calls.authed("subscribe", row, req, _now(), (201, 200))
        if r is None or r.status not in (200, 201):
            return False
        try:
            self.subscription_id[row] = self.dialect.parse_id(decode(r.body))
        except Failure as f:  # subscribed, but without an id it cannot be deleted later
            self.dialect.deviations.note("subscription_without_id", f"{self.ven_name(row)}: {f.message}")
        return True

    async def read_current_events(self, row: int) -> None:
        """After subscribing, read what exists (as real VENs do): an event created before the subscription is
        never notified. Measured as a poll_events; a failed read leaves the VEN subscribed and provisioned."""
        await self.poll_events(row, _now(), STARTUP_READ)

    def subscribed_rows(self) -> list[int]:
        return list(self.subscription_id)

    async def unsubscribe(self, row: int) -> None:
        """Delete the VEN's subscription (the clean stop of a webhook-mode VEN)."""
        sub = self.subscription_id.pop(row, None)
        if sub is not None:
            await self.calls.authed("unsubscribe", row, self.dialect.unsubscribe(sub), _now(), (200, 204))

    def callback_token(self, row: int) -> str:
        return f"{self.spec.worker_id}-{row}-{self.spec.seed}"

    # ---- events -------------------------------------------------------------------------------
    async def poll_events(self, row: int, intended: float, how: str = POLL) -> None:
        """GET the program's events (every page) and act on those new to this VEN."""
        skip = 0
        while True:
            req = self.dialect.find_events(self.spec.program_id, skip=skip, limit=PAGE)
            reply = await self.calls.authed("poll_events", row, req, intended if skip == 0 else _now(), (200,))
            if reply is None or reply.status != 200:
                return
            try:
                doc = decode(reply.body)
                events = self.dialect.parse_events(doc)
            except Failure as f:
                self.rec.fail("poll_events", f.error_class, f"{self.ven_name(row)}: {f.message}")
                return
            for ev in events:
                self.on_event(row, ev, how)
            if (len(doc) if isinstance(doc, list) else len(events)) < PAGE:  # a full page: there may be more
                return
            skip += PAGE

    def read_by_id(self, row: int, event_id: str) -> None:
        """A notification named an event the VEN cannot act on from its body: read the event by id, as a real VEN
        does (once per VEN and event); the VEN is aware when that read is usable."""
        if (row, event_id) in self.reads_by_id:
            return
        self.reads_by_id.add((row, event_id))
        self.side_task(READ_EVENT, self._read_event(row, event_id))

    async def _read_event(self, row: int, event_id: str) -> None:
        reply = await self.calls.authed(READ_EVENT, row, self.dialect.read_event(event_id), _now(), (200,))
        if reply is None or reply.status != 200:
            return
        try:
            doc = decode(reply.body)
            events = self.dialect.parse_events(doc if isinstance(doc, list) else [doc])
        except Failure as f:
            self.rec.fail(READ_EVENT, f.error_class, f"{self.ven_name(row)}: {f.message}")
            return
        for ev in events:
            if usable(ev):
                if self.mqtt is not None:  # what the notification would have been judged on, had it been usable
                    self.mqtt.judge(row, ev)
                self.on_event(row, ev, READ_BY_ID)
            else:
                self.rec.fail(READ_EVENT, errors.PROTOCOL, f"{self.ven_name(row)}: event {event_id} read by id "
                                                          "names no program or interval period")

    def _targets_row(self, ev: EventInfo, row: int) -> bool:
        """No targets: the whole program. Otherwise the VEN must be named (3.0.1 VEN_NAME values, flattened;
        a linear scan costs no more than parsing the event did)."""
        if getattr(self.dialect, "string_targets", False):
            return True  # 3.1.0: the VTN shows a VEN only what targets it, with only its own targets
        return not ev.targets or self.ven_name(row) in ev.targets

    def on_event(self, row: int, ev: EventInfo, how: str = NOTIFICATION) -> None:
        """A VEN learns of an event (`how`: POLL, NOTIFICATION, STARTUP_READ): note when and how, and shed its
        flexible loads."""
        level = ev.signal.level if ev.signal.payload_type == "SIMPLE" else None
        if ev.id == self.spec.event_id or level is None:
            return
        seen = self.event_seen.get(ev.id)
        if seen is not None and seen[row]:
            return
        if not self._targets_row(ev, row):
            return
        now_sim = self.now_sim()
        start = ev.start_epoch_s
        end = None if start is None or ev.duration_s is None else start + ev.duration_s
        if end is not None and end <= now_sim:
            return  # an event that is over (e.g. from an earlier run) asks nothing of the VEN
        if seen is None:
            seen = self.event_seen[ev.id] = np.zeros(self.shard.n_vens, dtype=bool)
        seen[row] = True
        self.aware.setdefault(ev.id, []).append(time.time())
        ways = self.learned.setdefault(ev.id, {})
        ways[how] = ways.get(how, 0) + 1
        if start is not None and end is not None and level > 0:
            if ev.randomize_start_s > 0:  # the VEN starts (and ends) its shed its own seeded while later
                delay = float(randomized_starts(self.spec.seed, ev.id, np.array([self.spec.ven_start + row]),
                                                ev.randomize_start_s)[0])
                start, end = start + delay, end + delay
            self.feed.queue_shed(row, ev.id, start, end, simple_level_shed(min(level, 3)))

    # ---- reports ------------------------------------------------------------------------------
    def meter_behind(self) -> int | None:
        """The tick the clock has reached, if reports would find the meter behind it (see MeterFeed.behind)."""
        return self.feed.behind(self.now_sim())

    async def advance_meter(self, target: int) -> None:
        await self.feed.advance(target)

def _no_side_tasks(op: str, coro: Coroutine[Any, Any, Any]) -> None:
    coro.close()
    raise RuntimeError(f"{op}: ShardVens.side_task is not set (the worker sets it to its lifecycle's)")
