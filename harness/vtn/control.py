"""The VTN's control endpoints under `/_harness/`: stats, faults, stalls, and the MQTT publish counts.

Edge (aiohttp). No auth, loopback clients only, never faulted: they are how tests and harness read the
VTN's own truth (objects stored, requests answered, notifications published) to compare with what VENs saw.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from aiohttp import web

from harness.vtn.faults import parse_faults
from harness.vtn.httpapi import Problem, json_body, json_response
from harness.vtn.middleware import CONTROL_PREFIX
from harness.vtn.store import TABLES

if TYPE_CHECKING:
    from harness.vtn.app import Vtn

log = logging.getLogger(__name__)

_LOOPBACK = ("127.", "::1", "::ffff:127.")


class Control:
    def __init__(self, vtn: Vtn) -> None:
        self.vtn = vtn

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get(CONTROL_PREFIX + "stats", self.stats, allow_head=False)
        router.add_get(CONTROL_PREFIX + "faults", self.get_faults, allow_head=False)
        router.add_post(CONTROL_PREFIX + "faults", self.set_faults)
        router.add_post(CONTROL_PREFIX + "stall", self.stall)
        router.add_post(CONTROL_PREFIX + "expire_tokens", self.expire_tokens)
        router.add_get(CONTROL_PREFIX + "mqtt", self.mqtt, allow_head=False)

    @staticmethod
    def _loopback(request: web.Request) -> None:
        remote = request.remote or ""
        if not remote.startswith(_LOOPBACK):
            raise Problem(403, "control endpoints answer loopback clients only")

    async def stats(self, request: web.Request) -> web.Response:
        self._loopback(request)
        vtn, mw = self.vtn, self.vtn.mw
        fs = mw.faults
        store = vtn.store
        counts = {t.name: store.count(t) for t in TABLES if not t.name.endswith("31")}
        counts31 = {t.name.removesuffix("31"): store.count(t) for t in TABLES if t.name.endswith("31")}
        now = time.monotonic()
        publisher = vtn.publisher
        body = {
            "uptime_s": round(now - mw.started_at, 3),
            "requests": {k: {str(s): n for s, n in v.items()} for k, v in sorted(mw.requests.items())},
            "requests_total": sum(sum(v.values()) for v in mw.requests.values()),
            "objects": counts,
            "objects_31": counts31,
            "reports_stored": counts["reports"] + counts31["reports"],
            "vens": counts["vens"] + counts31["vens"],
            "resources": counts["resources"] + counts31["resources"],
            "notifications": {"delivered": vtn.notifier.delivered, "failed": vtn.notifier.failed,
                              "pending": vtn.notifier.pending},
            "mqtt": publisher.counts.summary() if publisher is not None else None,
            "faults": {
                "config": fs.faults.describe(),
                "injected": {str(s): n for s, n in sorted(fs.injected.items())},
                "resets": fs.resets,
                "stalled_responses": fs.stalled,
                "queued": fs.queued,
                "dropped_after_ack": fs.dropped,
                "stall_remaining_s": round(max(0.0, fs.stall_until - now), 3),
            },
            "store": {"commits": store.commits, "committed_writes": store.committed_writes},
            "tokens_live": len(vtn.tokens),
            "client_disconnects": mw.client_disconnects,
        }
        return json_response(body)

    async def mqtt(self, request: web.Request) -> web.Response:
        """Every topic's and every VEN's count of published notifications (the stats carry only totals)."""
        self._loopback(request)
        publisher = self.vtn.publisher
        if publisher is None:
            raise Problem(404, "this VTN publishes no MQTT notifications (started without a broker)")
        return json_response(publisher.counts.detail())

    async def get_faults(self, request: web.Request) -> web.Response:
        self._loopback(request)
        return json_response(self.vtn.mw.faults.faults.describe())

    async def set_faults(self, request: web.Request) -> web.Response:
        self._loopback(request)
        data = await json_body(request)
        if not isinstance(data, dict):
            raise Problem(400, "body must be a JSON object of fault options")
        try:
            faults = parse_faults(data)
        except ValueError as exc:
            raise Problem(400, str(exc)) from None
        self.vtn.mw.faults.set(faults)
        log.info("faults replaced: %s", faults.describe())
        return json_response(faults.describe())

    async def stall(self, request: web.Request) -> web.Response:
        self._loopback(request)
        data = await json_body(request)
        duration = data.get("duration_s") if isinstance(data, dict) else None
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 0 <= duration <= 3600:
            raise Problem(400, f"duration_s must be a number of seconds 0..3600, got {duration!r}")
        fs, started = self.vtn.mw.faults, self.vtn.mw.started_at
        fs.stall_until = max(fs.stall_until, time.monotonic() + float(duration))
        return json_response({"stall_until_s": round(fs.stall_until - started, 3)})

    async def expire_tokens(self, request: web.Request) -> web.Response:
        """Every token issued so far expires at once: the next request of each holder is a 401."""
        self._loopback(request)
        return json_response({"expired": self.vtn.tokens.expire_all()})
