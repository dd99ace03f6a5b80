"""A shard of simulated VENs: per-VEN state as rows of numpy arrays and lists, and each VEN's operations.

Edge (awaits a Transport). Every operation is measured against its intended time and recorded in the
worker's Recorder; HTTP failures are recorded as data and never raised out of an operation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from harness import errors
from harness.dialects import Dialect, Request, Site
from harness.errors import Failure
from harness.events import EventView, view
from harness.fleet import FleetShard
from harness.meter import Meter, simple_level_shed
from harness.recorder import Recorder
from harness.shard import ShardSpec
from harness.simclock import SimClock, iso_duration, rfc3339
from harness.transport import Reply, Transport, decode

NEW, PROVISIONING, READY, FAILED = 0, 1, 2, 3
TOKEN_REFRESH_MARGIN_S = 30.0


class ShardVens:
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
        self.meter = meter
        self.dialect = dialect
        self.rec = recorder
        self._transport_for = transport_for
        self.clock = clock
        n = shard.n_vens
        self.state = np.zeros(n, dtype=np.int8)
        self.ven_id: list[str | None] = [None] * n
        self.token: list[str | None] = [None] * n
        self.token_expiry = np.zeros(n, dtype=np.float64)  # loop time
        self.site_last_energy_kwh = np.zeros(shard.n_sites, dtype=np.float64)
        self.last_report_sim_s = np.full(n, np.nan, dtype=np.float64)
        self.reports_ok = np.zeros(n, dtype=np.int32)
        self.t0 = 0.0  # loop time of run start; set by the worker at Start
        self.counters: dict[str, int] = {}
        # DR events: per event, which rows know it; awareness and first-shed-report instants (epoch s) to ship.
        self.event_seen: dict[str, npt.NDArray[np.bool_]] = {}
        self.aware: dict[str, list[float]] = {}
        self.shed: dict[str, list[float]] = {}
        self._shed_pending: dict[int, list[tuple[str, float]]] = {}  # row -> [(event id, sim start)]
        self.callback_base: str | None = None  # webhook mode: http://127.0.0.1:PORT/notify
        self._site_cache_tick = -1
        self._site_energy = np.zeros(shard.n_sites, dtype=np.float64)
        self._site_power = np.zeros(shard.n_sites, dtype=np.float64)

    # ---- plumbing -----------------------------------------------------------------------------
    def _count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def _name(self, row: int) -> str:
        return self.shard.ven_name(row)

    async def _call(
        self, op: str, row: int, req: Request, intended: float, token: str | None, ok: tuple[int, ...]
    ) -> Reply | None:
        """Send one request; record it against `intended`; return the reply if its status is in ok."""
        loop = asyncio.get_running_loop()
        sent = loop.time()
        try:
            reply = await self._transport_for(row).send(req, token)
        except Failure as f:
            self.rec.fail(op, f.error_class, f"{self._name(row)}: {f.message}")
            return None
        done = loop.time()
        if reply.status in ok:
            self.rec.ok(op, intended, sent, done)
            return reply
        if reply.status == 429 and reply.retry_after_s is not None:
            self._count("retry_after_429")
        self.rec.fail(
            op, errors.http_class(reply.status), f"{self._name(row)}: {req.method} {req.path.split('?')[0]} -> {reply.status} {reply.body[:160]!r}"
        )
        return reply

    async def _authed(
        self, op: str, row: int, req: Request, intended: float, ok: tuple[int, ...]
    ) -> Reply | None:
        """A call with the VEN's bearer token: fetched if missing or expiring, refreshed once on 401."""
        loop = asyncio.get_running_loop()
        if self.token[row] is None or loop.time() > self.token_expiry[row] - TOKEN_REFRESH_MARGIN_S:
            if not await self._fetch_token(row, loop.time()):
                return None
        reply = await self._call(op, row, req, intended, self.token[row], ok)
        if reply is not None and reply.status == 401:
            self._count("token_refresh_on_401")
            if await self._fetch_token(row, loop.time()):
                reply = await self._call(op, row, req, loop.time(), self.token[row], ok)
        return reply

    async def _fetch_token(self, row: int, intended: float) -> bool:
        creds = self.spec.credentials
        client_id = f"{creds.ven_client_prefix}{self._name(row)}"
        reply = await self._call("token", row, self.dialect.token(client_id, creds.ven_secret), intended, None, (200,))
        if reply is None or reply.status != 200:
            return False
        try:
            tok = self.dialect.parse_token(decode(reply.body))
        except Failure as f:
            self.rec.fail("token", f.error_class, f"{self._name(row)}: {f.message}")
            return False
        self.token[row] = tok.access_token
        ttl = tok.expires_in_s if tok.expires_in_s and tok.expires_in_s > 0 else 10 * 365 * 86400.0
        self.token_expiry[row] = asyncio.get_running_loop().time() + ttl
        return True

    # ---- lifecycle ----------------------------------------------------------------------------
    async def provision(self, row: int, intended: float) -> bool:
        """token → find-or-create the VEN (409 → look it up) → its resources. Sets READY or FAILED."""
        ok = await self._provision(row, intended)
        self.state[row] = READY if ok else FAILED
        return ok

    async def _provision(self, row: int, intended: float) -> bool:
        loop = asyncio.get_running_loop()
        name = self._name(row)
        if not await self._fetch_token(row, intended):
            return False
        reply = await self._authed("create_ven", row, self.dialect.create_ven(name), loop.time(), (201, 200, 409))
        if reply is None or reply.status not in (200, 201, 409):
            return False
        try:
            if reply.status == 409:
                self._count("ven_existing")
                found = await self._authed("find_ven", row, self.dialect.find_ven(name), loop.time(), (200,))
                if found is None or found.status != 200:
                    return False
                ven_id = self.dialect.parse_first_id(decode(found.body))
                if ven_id is None:
                    raise Failure(errors.PROTOCOL, f"409 for venName {name} but GET /vens?venName finds none")
            else:
                ven_id = self.dialect.parse_id(decode(reply.body))
            self.ven_id[row] = ven_id
            lo, hi = int(self.shard.site_offsets[row]), int(self.shard.site_offsets[row + 1])
            for s in range(lo, hi):
                site = self.shard.site_name(s)
                r = await self._authed(
                    "create_resource", row, self.dialect.create_resource(ven_id, site), loop.time(), (201, 200, 409)
                )
                if r is None or r.status not in (200, 201, 409):
                    return False
                if r.status == 409:
                    self._count("resource_existing")
            if self.callback_base is not None and not await self._subscribe(row):
                return False
        except Failure as f:
            self.rec.fail("create_ven", f.error_class, f"{name}: {f.message}")
            return False
        return True

    async def _subscribe(self, row: int) -> bool:
        """Webhook mode: a subscription to this program's event changes, calling back into this worker."""
        name = self._name(row)
        body = {
            "objectType": "SUBSCRIPTION",
            "clientName": name,
            "programID": self.spec.program_id,
            "objectOperations": [
                {
                    "objects": ["EVENT"],
                    "operations": ["CREATE", "UPDATE"],
                    "callbackUrl": f"{self.callback_base}/{row}",
                    "bearerToken": self.callback_token(row),
                }
            ],
        }
        loop = asyncio.get_running_loop()
        r = await self._authed("subscribe", row, Request("POST", "/subscriptions", json=body), loop.time(), (201, 200))
        return r is not None and r.status in (200, 201)

    def callback_token(self, row: int) -> str:
        return f"{self.spec.worker_id}-{row}-{self.spec.seed}"

    async def poll_events(self, row: int, intended: float) -> None:
        """GET the program's events (every page) and act on those new to this VEN."""
        loop = asyncio.get_running_loop()
        skip = 0
        while True:
            req = self.dialect.find_events(self.spec.program_id, skip=skip, limit=50)
            reply = await self._authed("poll_events", row, req, intended if skip == 0 else loop.time(), (200,))
            if reply is None or reply.status != 200:
                return
            try:
                items = self.dialect.parse_list(decode(reply.body))
            except Failure as f:
                self.rec.fail("poll_events", f.error_class, f"{self._name(row)}: {f.message}")
                return
            for item in items:
                ev = view(item)
                if ev is not None:
                    self.on_event(row, ev)
            if len(items) < 50:
                return
            skip += 50

    def on_event(self, row: int, ev: EventView) -> None:
        """A VEN learns of an event (poll or notification): note when, and shed its flexible loads."""
        if ev.id == self.spec.event_id or ev.level is None or not ev.applies_to(self._name(row)):
            return
        now_sim = self.clock.at(asyncio.get_running_loop().time() - self.t0)
        end = ev.end_epoch_s()
        if end is not None and end <= now_sim:
            return  # an event that is over (e.g. from an earlier run) asks nothing of the VEN
        seen = self.event_seen.get(ev.id)
        if seen is None:
            seen = self.event_seen[ev.id] = np.zeros(self.shard.n_vens, dtype=bool)
        if seen[row]:
            return
        seen[row] = True
        self.aware.setdefault(ev.id, []).append(time.time())
        if ev.start_epoch_s is not None and end is not None and ev.level > 0:
            lo, hi = int(self.shard.site_offsets[row]), int(self.shard.site_offsets[row + 1])
            self.meter.apply_dr(np.arange(lo, hi, dtype=np.int64), ev.start_epoch_s, end,
                                shed_fraction=simple_level_shed(min(ev.level, 3)))
            self._shed_pending.setdefault(row, []).append((ev.id, ev.start_epoch_s))

    def _note_shed_reported(self, row: int, now_sim: float) -> None:
        """The first report that holds a whole meter tick of an event's window shows the shed."""
        pending = self._shed_pending.get(row)
        if not pending:
            return
        keep = []
        for ev_id, start in pending:
            if now_sim >= start + self.meter.tick_s:
                self.shed.setdefault(ev_id, []).append(time.time())
            else:
                keep.append((ev_id, start))
        if keep:
            self._shed_pending[row] = keep
        else:
            del self._shed_pending[row]

    def _site_values(self, run_s: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Cumulative energy and power per site at the simulated instant of run time run_s."""
        self.meter.advance_to(self.clock.at(run_s))
        if self.meter.tick != self._site_cache_tick:
            self._site_cache_tick = self.meter.tick
            self._site_energy = self.meter.site_sum(self.meter.energy_kwh)
            self._site_power = self.meter.site_sum(self.meter.power_kw)
        return self._site_energy, self._site_power

    async def report(self, row: int, intended: float) -> bool:
        """One report holding all the VEN's resources: energy since its last report and mean power."""
        loop = asyncio.get_running_loop()
        run_s = loop.time() - self.t0
        energy, power = self._site_values(run_s)
        lo, hi = int(self.shard.site_offsets[row]), int(self.shard.site_offsets[row + 1])
        sites = [
            Site(self.shard.site_name(s), float(energy[s] - self.site_last_energy_kwh[s]), float(power[s]))
            for s in range(lo, hi)
        ]
        now_sim = self.clock.at(run_s)
        start_sim = self.last_report_sim_s[row]
        if np.isnan(start_sim):
            start_sim = now_sim - self.spec.interval_s * self.clock.time_scale
        req = self.dialect.report(
            self.spec.program_id,
            self.spec.event_id,
            self._name(row),
            sites,
            rfc3339(start_sim),
            iso_duration(round(now_sim - start_sim, 3)),
        )
        reply = await self._authed("report", row, req, intended, (201, 200))
        if reply is None or reply.status not in (200, 201):
            return False
        self.site_last_energy_kwh[lo:hi] = energy[lo:hi]
        self.last_report_sim_s[row] = now_sim
        self.reports_ok[row] += 1
        self._note_shed_reported(row, now_sim)
        return True
