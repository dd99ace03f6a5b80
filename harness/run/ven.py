"""A shard of simulated VENs: per-VEN state as rows of numpy arrays and lists, and each VEN's operations.

Edge (awaits a Transport). Every operation is measured against its intended time and recorded in the
worker's Recorder; HTTP failures are recorded as data and never raised out of an operation.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from time import monotonic as _now  # the loop's clock to the ns: uvloop's loop.time() is whole milliseconds
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from harness.core import errors
from harness.core.errors import Failure
from harness.core.fleet import LOAD_KINDS, FleetShard, site_name
from harness.core.recorder import Recorder
from harness.core.shard import ShardSpec
from harness.core.simclock import SimClock, iso_duration, rfc3339
from harness.dialects import Dialect, EventInfo, LoadReading, Request, Site, Token, resolve_granularity
from harness.meter import Meter, simple_level_shed
from harness.net.transport import Reply, Transport, decode

NEW, PROVISIONING, READY, FAILED = 0, 1, 2, 3
TOKEN_REFRESH_MARGIN_S = 30.0


class _Snapshot(NamedTuple):
    """The meter after `tick` steps, as reports read it: per-site (and, for "load" granularity, per-load) arrays."""

    tick: int
    site_energy: npt.NDArray[np.float64]
    site_power: npt.NDArray[np.float64]
    load_energy: npt.NDArray[np.float64] | None
    load_power: npt.NDArray[np.float64] | None


class ShardVens:
    """The VENs of one shard. A VEN is a row: idle VENs cost array slots, not coroutines."""

    supports_granularity = True  # reports follow the target's granularity (dialect.reports)

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
        self.throttled_until = np.zeros(n, dtype=np.float64)  # loop time; a VEN told 429 + Retry-After waits till then
        # Per-operation timeouts shorter than the transport's (which is the longest of them all).
        self._op_timeouts = {op: t for op, t in spec.op_timeouts if t < spec.timeout_s}
        self.ven_token = np.zeros(n, dtype=bool)  # the row's token is its own, from the VTN's POST /vens reply
        self.token_url: str | None = None  # a discovered 3.1.0 tokenURL; None: {base}/auth/token
        self.granularity = resolve_granularity(dialect, spec.target_settings.granularity)
        self.site_last_energy_kwh = np.zeros(shard.n_sites, dtype=np.float64)
        self.last_report_sim_s = np.full(n, np.nan, dtype=np.float64)
        self.reports_ok = np.zeros(n, dtype=np.int32)
        self.t0 = 0.0  # loop time of run start; set by the worker at Start
        self.counters: dict[str, int] = {}
        # DR events: per event, which rows know it; awareness and first-shed-report instants (epoch s) to ship.
        self.event_seen: dict[str, npt.NDArray[np.bool_]] = {}
        self.aware: dict[str, list[float]] = {}
        self.shed: dict[str, list[float]] = {}
        self._shed_pending: dict[int, list[tuple[str, float]]] = {}  # row -> [(event id, sim start of the shed)]
        # Sheds learnt since the meter's last step began: (row, event id, start, end, shed fraction). They reach the
        # meter, merged into one DR event per event, when the next tick's computation starts (see _launch_tick).
        self._dr_queue: list[tuple[int, str, float, float, float]] = []
        self.callback_base: str | None = None
        self.subscription_id: dict[int, str] = {}  # row -> id of its webhook subscription
        self._prov_token: asyncio.Task[str | None] | None = None  # the shard's provisioning-credential token
        self._prov_expiry = 0.0  # webhook mode: http://127.0.0.1:PORT/notify
        # The meter ticks off this loop: tick k+1 is computed in a thread while reports read tick k's snapshot, so a
        # million-load step (~60 ms) never stalls the loop (see advance_meter).
        self._visible_tick = -1
        self._next_tick: asyncio.Future[_Snapshot] | None = None
        self._site_energy = np.zeros(shard.n_sites, dtype=np.float64)
        self._site_power = np.zeros(shard.n_sites, dtype=np.float64)
        # Per-load state only for "load" granularity: other granularities never pay for it.
        n_loads = shard.n_loads if self.granularity == "load" else 0
        self.load_last_energy_kwh = np.zeros(n_loads, dtype=np.float64)
        self._load_energy = np.zeros(n_loads, dtype=np.float64)
        self._load_power = np.zeros(n_loads, dtype=np.float64)

    # ---- plumbing -----------------------------------------------------------------------------
    def _count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def _name(self, row: int) -> str:
        return self.shard.ven_name(row)

    async def _call(
        self, op: str, row: int, req: Request, intended: float, token: str | None, ok: tuple[int, ...]
    ) -> Reply | None:
        """Send one request; record it against `intended`; return the reply if its status is in ok."""
        sent = _now()
        limit = self._op_timeouts.get(op)
        try:
            if limit is None:
                reply = await self._transport_for(row).send(req, token)
            else:
                async with asyncio.timeout(limit):
                    reply = await self._transport_for(row).send(req, token)
        except Failure as f:
            if f.retried:
                self._count("stale_connection_retries")
            self.rec.fail(op, f.error_class, f"{self._name(row)}: {f.message}")
            return None
        except TimeoutError:
            self.rec.fail(op, errors.READ_TIMEOUT, f"{self._name(row)}: no response within the {op} timeout ({limit:g}s)")
            return None
        done = _now()
        if reply.retried:
            self._count("stale_connection_retries")
        if reply.status in ok:
            self.rec.ok(op, intended, sent, done)
            return reply
        if reply.status == 429 and reply.retry_after_s is not None:
            # Honour Retry-After: the worker holds this VEN's next operations (they keep their intended times).
            self._count("throttled")
            self.throttled_until[row] = max(self.throttled_until[row], done + reply.retry_after_s)
        try:
            doc = decode(reply.body)
        except Failure:
            doc = reply.body[:160].decode("utf-8", "replace")
        problem = self.dialect.parse_problem(reply.status, doc)  # notes non-problem bodies, string statuses
        self.rec.fail(op, errors.http_class(reply.status), f"{self._name(row)}: {req.method} {req.path.split('?')[0]} -> {problem}")
        return reply

    async def _authed(
        self, op: str, row: int, req: Request, intended: float, ok: tuple[int, ...]
    ) -> Reply | None:
        """A call with the VEN's bearer token: fetched if missing or expiring, refreshed once on 401."""
        if self.token[row] is None or _now() > self.token_expiry[row] - TOKEN_REFRESH_MARGIN_S:
            if not await self._fetch_token(row, _now()):
                return None
        reply = await self._call(op, row, req, intended, self.token[row], ok)
        if reply is not None and reply.status == 401:
            if self.ven_token[row]:
                # The VEN's own token was refused: ask the VTN for its current one, not for client credentials.
                self._count("ven_token_refresh_on_401")
                refreshed = await self._refresh_ven_token(row)
            else:
                self._count("token_refresh_on_401")
                refreshed = await self._fetch_token(row, _now())
            if refreshed:
                reply = await self._call(op, row, req, _now(), self.token[row], ok)
        return reply

    def _adopt_ven_token(self, row: int, tok: Token | None) -> bool:
        """A per-VEN token from the VTN's VEN object becomes the row's token, with no expiry."""
        if tok is None:
            return False
        self.token[row] = tok.access_token
        self.token_expiry[row] = np.inf
        self.ven_token[row] = True
        return True

    async def _refresh_ven_token(self, row: int) -> bool:
        """Look the VEN up again (with a client-credentials token) and adopt the token its VEN object holds."""
        if not await self._fetch_token(row, _now()):
            return False
        found = await self._call("find_ven", row, self.dialect.find_ven(self._name(row)), _now(), self.token[row], (200,))
        if found is None or found.status != 200:
            return False
        try:
            return self._adopt_ven_token(row, self.dialect.token_from_create_ven(decode(found.body)))
        except Failure as f:
            self.rec.fail("find_ven", f.error_class, f"{self._name(row)}: {f.message}")
            return False

    async def _provisioner_token(self, row: int, refresh: bool = False) -> str | None:
        """The shard's token of the privileged provisioning credential: fetched once, shared by every VEN."""
        loop = asyncio.get_running_loop()
        if refresh or (self._prov_token is not None and self._prov_token.done() and
                       (self._prov_token.result() is None or _now() > self._prov_expiry - TOKEN_REFRESH_MARGIN_S)):
            self._prov_token = None
        if self._prov_token is None:
            self._prov_token = loop.create_task(self._fetch_provisioner_token(row))
        return await asyncio.shield(self._prov_token)

    async def _fetch_provisioner_token(self, row: int) -> str | None:
        creds = self.spec.credentials
        assert creds.provisioning_client_id is not None
        req = self.dialect.token(creds.provisioning_client_id, creds.provisioning_secret, token_url=self.token_url)
        reply = await self._call("provisioning_token", row, req, _now(), None, (200,))
        if reply is None or reply.status != 200:
            return None
        try:
            tok = self.dialect.parse_token(decode(reply.body))
        except Failure as f:
            self.rec.fail("provisioning_token", f.error_class, f.message)
            return None
        ttl = tok.expires_in_s if tok.expires_in_s and tok.expires_in_s > 0 else 10 * 365 * 86400.0
        self._prov_expiry = _now() + ttl
        return tok.access_token

    async def _provisioning(self, op: str, row: int, req: Request, intended: float, ok: tuple[int, ...]) -> Reply | None:
        """Create/find a VEN or its resources: with the privileged credential when the target demands one,
        else with the VEN's own token."""
        if self.spec.credentials.provisioning_client_id is None:
            return await self._authed(op, row, req, intended, ok)
        token = await self._provisioner_token(row)
        if token is None:
            return None
        reply = await self._call(op, row, req, intended, token, ok)
        if reply is not None and reply.status == 401:
            self._count("provisioning_token_refresh_on_401")
            token = await self._provisioner_token(row, refresh=True)
            if token is not None:
                reply = await self._call(op, row, req, _now(), token, ok)
        return reply

    async def _fetch_token(self, row: int, intended: float) -> bool:
        creds = self.spec.credentials
        client_id = f"{creds.ven_client_prefix}{self._name(row)}"
        req = self.dialect.token(client_id, creds.ven_secret, token_url=self.token_url)
        reply = await self._call("token", row, req, intended, None, (200,))
        if reply is None or reply.status != 200:
            return False
        try:
            tok = self.dialect.parse_token(decode(reply.body))
        except Failure as f:
            self.rec.fail("token", f.error_class, f"{self._name(row)}: {f.message}")
            return False
        self.token[row] = tok.access_token
        self.ven_token[row] = False
        ttl = tok.expires_in_s if tok.expires_in_s and tok.expires_in_s > 0 else 10 * 365 * 86400.0
        self.token_expiry[row] = _now() + ttl
        return True

    async def discover_token_url(self) -> None:
        """3.1.0: `GET /auth/server` once for the shard; its tokenURL is where every VEN asks for tokens. A failure
        is recorded (operation `auth_server`) and VENs fall back to {base}/auth/token."""
        req = self.dialect.auth_server()
        if req is None:
            return
        reply = await self._call("auth_server", 0, req, _now(), None, (200,))
        if reply is None or reply.status != 200:
            return
        try:
            self.token_url = self.dialect.parse_auth_server(decode(reply.body))
        except Failure as f:
            self.rec.fail("auth_server", f.error_class, f.message)

    # ---- lifecycle ----------------------------------------------------------------------------
    async def provision(self, row: int, intended: float) -> bool:
        """token → find-or-create the VEN (409 → look it up) → its resources. Sets READY or FAILED."""
        ok = await self._provision(row, intended)
        self.state[row] = READY if ok else FAILED
        return ok

    async def _provision(self, row: int, intended: float) -> bool:
        name = self._name(row)
        if not await self._fetch_token(row, intended):
            return False
        reply = await self._provisioning("create_ven", row, self.dialect.create_ven(name), _now(), (201, 200, 409))
        if reply is None or reply.status not in (200, 201, 409):
            return False
        try:
            if reply.status == 409:
                self._count("ven_existing")
                found = await self._provisioning("find_ven", row, self.dialect.find_ven(name), _now(), (200,))
                if found is None or found.status != 200:
                    return False
                doc = decode(found.body)
                ven_id = self.dialect.parse_first_id(doc)
                if ven_id is None:
                    raise Failure(errors.PROTOCOL, f"409 for venName {name} but GET /vens?venName finds none")
            else:
                doc = decode(reply.body)
                ven_id = self.dialect.parse_id(doc)
            self._adopt_ven_token(row, self.dialect.token_from_create_ven(doc))
            self.ven_id[row] = ven_id
            lo, hi = int(self.shard.site_offsets[row]), int(self.shard.site_offsets[row + 1])
            for s in range(lo, hi):
                site = self.shard.site_name(s)
                r = await self._provisioning(
                    "create_resource", row, self.dialect.create_resource(ven_id, site), _now(), (201, 200, 409)
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
        req = self.dialect.subscribe(
            self.spec.program_id, self._name(row), f"{self.callback_base}/{row}", self.callback_token(row), ["EVENT"],
            self.spec.target_settings.operations,
        )
        r = await self._authed("subscribe", row, req, _now(), (201, 200))
        if r is None or r.status not in (200, 201):
            return False
        try:
            self.subscription_id[row] = self.dialect.parse_id(decode(r.body))
        except Failure as f:  # subscribed, but without an id it cannot be deleted later
            self.dialect.deviations.note("subscription_without_id", f"{self._name(row)}: {f.message}")
        return True

    async def unsubscribe(self, row: int) -> None:
        """Delete the VEN's subscription (the clean stop of a webhook-mode VEN)."""
        sub = self.subscription_id.pop(row, None)
        if sub is not None:
            await self._authed("unsubscribe", row, self.dialect.unsubscribe(sub), _now(), (200, 204))

    def callback_token(self, row: int) -> str:
        return f"{self.spec.worker_id}-{row}-{self.spec.seed}"

    async def poll_events(self, row: int, intended: float) -> None:
        """GET the program's events (every page) and act on those new to this VEN."""
        skip = 0
        while True:
            req = self.dialect.find_events(self.spec.program_id, skip=skip, limit=50)
            reply = await self._authed("poll_events", row, req, intended if skip == 0 else _now(), (200,))
            if reply is None or reply.status != 200:
                return
            try:
                doc = decode(reply.body)
                events = self.dialect.parse_events(doc)
            except Failure as f:
                self.rec.fail("poll_events", f.error_class, f"{self._name(row)}: {f.message}")
                return
            for ev in events:
                self.on_event(row, ev)
            if (len(doc) if isinstance(doc, list) else len(events)) < 50:  # a full page: there may be more
                return
            skip += 50

    def _targets_row(self, ev: EventInfo, row: int) -> bool:
        """No targets: the whole program. Otherwise the VEN must be named (3.0.1 VEN_NAME values, flattened;
        a linear scan costs no more than parsing the event did)."""
        return not ev.targets or self._name(row) in ev.targets

    def on_event(self, row: int, ev: EventInfo) -> None:
        """A VEN learns of an event (poll or notification): note when, and shed its flexible loads."""
        level = ev.signal.level if ev.signal.payload_type == "SIMPLE" else None
        if ev.id == self.spec.event_id or level is None:
            return
        seen = self.event_seen.get(ev.id)
        if seen is not None and seen[row]:
            return
        if not self._targets_row(ev, row):
            return
        now_sim = self.clock.at(_now() - self.t0)
        start = ev.start_epoch_s
        end = None if start is None or ev.duration_s is None else start + ev.duration_s
        if end is not None and end <= now_sim:
            return  # an event that is over (e.g. from an earlier run) asks nothing of the VEN
        if seen is None:
            seen = self.event_seen[ev.id] = np.zeros(self.shard.n_vens, dtype=bool)
        seen[row] = True
        self.aware.setdefault(ev.id, []).append(time.time())
        if start is not None and end is not None and level > 0:
            self._dr_queue.append((row, ev.id, start, end, simple_level_shed(min(level, 3))))

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

    def _flush_dr(self) -> None:
        """Hand the sheds learnt since the last step to the meter: one DR event per (event, window, level) for all
        the VENs that learnt it (not one per VEN: a fleet-wide event would cost a Python call per VEN per tick).
        It applies from the next tick the meter computes, so that tick's start is when the shed can first show."""
        if not self._dr_queue:
            return
        m = self.meter
        first_tick_s = m.start_epoch_s + m.tick * m.tick_s
        groups: dict[tuple[float, float, float], list[int]] = {}
        for row, ev_id, start, end, fraction in self._dr_queue:
            groups.setdefault((start, end, fraction), []).append(row)
            self._shed_pending.setdefault(row, []).append((ev_id, max(start, first_tick_s)))
        self._dr_queue = []
        offsets = self.shard.site_offsets
        for (start, end, fraction), rows in groups.items():
            r = np.asarray(rows, dtype=np.int64)
            lo, hi = offsets[r], offsets[r + 1]
            sites = np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in zip(lo.tolist(), hi.tolist())])
            m.apply_dr(sites, start, end, shed_fraction=fraction)

    def _compute_tick(self, step: bool) -> _Snapshot:
        """In the meter thread: step once (or not, for the first snapshot) and sum per site. Only this thread
        touches the meter while it runs; the result is new arrays, never written afterwards."""
        m = self.meter
        if step:
            m.step()
        energy, power = m.energy_kwh, m.power_kw
        if self.granularity == "load":
            return _Snapshot(m.tick, m.site_sum(energy), m.site_sum(power), energy, power)
        return _Snapshot(m.tick, m.site_sum(energy), m.site_sum(power), None, None)

    def _launch_tick(self) -> asyncio.Future[_Snapshot]:
        self._flush_dr()
        step = self.meter.tick <= self._visible_tick
        fut = asyncio.get_running_loop().run_in_executor(None, self._compute_tick, step)
        self._next_tick = fut
        return fut

    def meter_behind(self) -> int | None:
        """The tick the clock has reached, if reports would find the meter behind it; else None. The worker
        advances the meter every second whether or not reports read it: a shard still provisioning reads no
        meter for a whole interval, and its first reports would otherwise wait for the catch-up (180 ticks of a
        500,000-VEN shard: ~11 s)."""
        tick = self.meter.tick_at(self.clock.at(_now() - self.t0))
        return tick if tick > self._visible_tick else None

    async def advance_meter(self, target: int) -> None:
        """Make tick `target` the one reports read. The next tick is always being computed ahead in a thread,
        so at a tick boundary the swap is instant; a report waits only if the meter cannot keep up (which its
        start lag then shows)."""
        while self._visible_tick < target:
            fut = self._next_tick or self._launch_tick()
            await asyncio.shield(fut)  # shared by every report crossing this boundary; a cancelled one leaves it be
            if self._next_tick is fut:
                snap = fut.result()
                self._visible_tick = snap.tick
                self._site_energy, self._site_power = snap.site_energy, snap.site_power
                if snap.load_energy is not None and snap.load_power is not None:
                    self._load_energy, self._load_power = snap.load_energy, snap.load_power
                self._next_tick = None
                self._launch_tick()  # tick + 1, ahead of need

    def _load_readings(self, lo: int, hi: int) -> list[LoadReading]:
        """Per load of sites [lo, hi): energy since the VEN's last report and mean power ("load" granularity)."""
        shard, energy, power, last = self.shard, self._load_energy, self._load_power, self.load_last_energy_kwh
        out = []
        for s in range(lo, hi):
            site = shard.site_name(s)
            first = int(shard.load_offsets[s])
            for k in range(first, int(shard.load_offsets[s + 1])):
                kind = LOAD_KINDS[int(shard.load_kind[k])]
                out.append(LoadReading(site, f"{site}-{kind}-{k - first}", kind, float(energy[k] - last[k]), float(power[k])))
        return out

    async def report(self, row: int, intended: float) -> bool:
        """One interval's reports, as the granularity asks (one for the VEN, one per resource or one per load):
        energy since the VEN's last report and mean power. Each POST is one `report` operation, all measured
        against the slot's intended time (a device sends them one after another)."""
        now_sim = self.clock.at(_now() - self.t0)
        tick = self.meter.tick_at(now_sim)
        if tick > self._visible_tick:
            await self.advance_meter(tick)
        # Python floats from here on: numpy scalar arithmetic is several times slower, and round() of a numpy
        # float64 alone cost ~7 us a report (found by py-spy at saturation).
        energy, power, last = self._site_energy, self._site_power, self.site_last_energy_kwh
        lo, hi = int(self.shard.site_offsets[row]), int(self.shard.site_offsets[row + 1])
        name = self._name(row)
        sites = [Site(site_name(name, s - lo), float(energy[s]) - float(last[s]), float(power[s])) for s in range(lo, hi)]
        loads = None
        if self.granularity == "load":
            load_energy = self._load_energy  # this tick's array, kept while the POSTs are in flight
            loads = self._load_readings(lo, hi)
        start_sim = float(self.last_report_sim_s[row])
        if math.isnan(start_sim):
            start_sim = now_sim - self.spec.interval_s * self.clock.time_scale
        reqs = self.dialect.reports(
            self.spec.program_id,
            self.spec.event_id,
            name,
            sites,
            loads,
            rfc3339(start_sim),
            iso_duration(round(now_sim - start_sim, 3)),
            self.granularity,
        )
        for req in reqs:
            reply = await self._authed("report", row, req, intended, (201, 200))
            if reply is None or reply.status not in (200, 201):
                # The interval is not committed: the next report covers it (its energy delta included).
                return False
        self.site_last_energy_kwh[lo:hi] = energy[lo:hi]
        if loads is not None:
            a, b = int(self.shard.load_offsets[lo]), int(self.shard.load_offsets[hi])
            self.load_last_energy_kwh[a:b] = load_energy[a:b]
        self.last_report_sim_s[row] = now_sim
        self.reports_ok[row] += 1
        self._note_shed_reported(row, now_sim)
        return True
