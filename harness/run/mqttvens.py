"""3.1.0 VENs on MQTT, as real 3.1 VENs are: each asks its VTN for the broker (`GET /notifiers`) and for its
topics (`/notifiers/mqtt/topics/...`), connects (one MQTT connection per VEN; pooled, the worker's `pool_size`
connections shared by its VENs), subscribes and learns of events from what arrives.

Edge (awaits the VEN's HTTP calls and the worker's MqttChannel, in the worker's loop). Topics are discovered,
never assumed: the VEN's own event topics (`vens/{venID}/events`), else its program's. Every notification is
checked against the run's seeded targeting: one for a VEN the event does not target is counted
(`notification_untargeted`); one about an event created while the VEN was disconnected arrives late
(`notification_late`), not lost.
"""

from __future__ import annotations

import time
from time import monotonic as _now
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.core import errors
from harness.core.errors import Failure
from harness.core.targeting import dr_event_index, targeted
from harness.dialects import EventInfo, Request
from harness.net.wire import decode
from harness.net.mqtt import broker_address
from harness.notify.mqtt import MqttChannel
from harness.notify.notification import UNUSABLE, ReadById, event_of

if TYPE_CHECKING:
    from harness.run.ven import ShardVens

CONNECT = "mqtt_connect"  # the measured operation: connect and subscribe (CONNACK and SUBACK)
TOPIC_OPERATIONS = ("CREATE", "UPDATE", "DELETE")


class MqttVens:
    """The MQTT side of a shard's VENs. `counters` are shipped (and reset) with each delta, as a receiver's."""

    def __init__(self, vens: ShardVens) -> None:
        self.vens = vens
        spec = vens.spec
        backoff = spec.reconnect
        self.channel = MqttChannel(self._message, self._failed, self._connected, qos=spec.mqtt_qos,
                                   backoff=lambda row, k: backoff.delay(spec.seed, spec.ven_start + row, k),
                                   timeout_s=spec.timeout_s, pool=spec.pool_size if spec.mqtt_pooled else 0,
                                   pool_id=f"harness-{spec.report_tag or spec.seed}-w{spec.worker_id}")
        self.outage: dict[int, tuple[float, float]] = {}  # row -> (down, up) wall times of its latest outage

    @property
    def counters(self) -> dict[str, int]:
        return self.channel.counters

    @counters.setter
    def counters(self, value: dict[str, int]) -> None:
        self.channel.counters = value

    def _count(self, key: str) -> None:
        self.channel.counters[key] = self.channel.counters.get(key, 0) + 1

    async def close(self) -> None:
        await self.channel.close()

    # ---- subscribing ------------------------------------------------------------------------------

    async def subscribe(self, row: int, ven_id: str) -> bool:
        """Discover the broker and this VEN's topics, connect and subscribe; False (recorded) when any step fails."""
        vens = self.vens
        name = vens.ven_name(row)
        try:
            broker = await self._broker(row)
            topics = await self._topics(row, ven_id) if broker is not None else None
        except Failure as f:
            vens.rec.fail("notifiers", f.error_class, f"{name}: {f.message}")
            return False
        if broker is None or topics is None:
            return False
        sent = _now()
        try:
            await self.channel.open(row, f"{name}-{vens.spec.report_tag or vens.spec.seed}", *broker, topics)
        except Failure as f:
            vens.rec.fail(CONNECT, f.error_class, f"{name}: {f.message}", sent, _now())
            return False
        vens.rec.ok(CONNECT, sent, sent, _now())
        return True

    async def _broker(self, row: int) -> tuple[str, int] | None:
        reply = await self.vens.calls.authed("notifiers", row, Request("GET", "/notifiers"), _now(), (200,))
        if reply is None or reply.status != 200:
            return None
        doc = decode(reply.body)
        mqtt = _field(doc, "MQTT") if isinstance(doc, dict) else None
        uris = _field(mqtt, "URIS") if isinstance(mqtt, dict) else None
        for uri in uris if isinstance(uris, list) else ():
            found = broker_address(str(uri))
            if found is not None:
                return found
        raise Failure(errors.PROTOCOL, f"GET /notifiers advertises no mqtt:// broker: {str(doc)[:120]}")

    async def _topics(self, row: int, ven_id: str) -> list[str] | None:
        """The VEN's own event topics; when its VTN has none for it (4xx), its program's event topics."""
        calls, program = self.vens.calls, self.vens.spec.program_id
        base = "/notifiers/mqtt/topics"
        reply = await calls.authed("mqtt_topics", row, Request("GET", f"{base}/vens/{ven_id}/events"), _now(), (200, 403, 404))
        if reply is not None and reply.status in (403, 404):
            self._count("mqtt_topics_program_fallback")
            reply = await calls.authed("mqtt_topics", row, Request("GET", f"{base}/programs/{program}/events"), _now(), (200,))
        if reply is None or reply.status != 200:
            return None
        doc = decode(reply.body)
        listing = _field(doc, "topics") if isinstance(doc, dict) else None
        listing = listing if isinstance(listing, dict) else doc if isinstance(doc, dict) else {}
        topics = [str(t) for op in TOPIC_OPERATIONS if isinstance(t := _field(listing, op), str) and t]
        if not topics:
            raise Failure(errors.PROTOCOL, f"no event topics for VEN {ven_id}: {str(doc)[:120]}")
        return topics

    # ---- what arrives -----------------------------------------------------------------------------

    def _message(self, row: int, payload: bytes) -> None:
        self._count("notifications")
        ev = event_of(self.vens.dialect, payload)
        if isinstance(ev, str):
            self._count(ev)
            return
        if ev is None:
            return
        if isinstance(ev, ReadById):
            self._count(UNUSABLE)
            self.vens.read_by_id(row, ev.event_id)
            return
        self.judge(row, ev)
        self.vens.on_event(row, ev)

    def judge(self, row: int, ev: EventInfo) -> None:
        """Count a notified event (from its notification, or read by id after one it could not use) that does not
        target this VEN (`notification_untargeted`) or was created while the VEN was away (`notification_late`)."""
        if not self._targets(row, ev):
            self._count("notification_untargeted")
        outage = self.outage.get(row)
        if outage is not None and ev.created_epoch_s is not None and outage[0] <= ev.created_epoch_s <= outage[1]:
            self._count("notification_late")

    def _targets(self, row: int, ev: EventInfo) -> bool:
        """Whether the run's seeded targeting aims this DR event at this VEN (events not the operator's: yes)."""
        i = dr_event_index(ev.event_name)
        shares = self.vens.spec.dr_shares
        if i is None or i >= len(shares):
            return True
        spec = self.vens.spec
        return bool(targeted(spec.seed, i, np.array([spec.ven_start + row], dtype=np.int64), shares[i])[0])

    def _failed(self, row: int, error_class: str, message: str) -> None:
        self.vens.rec.fail(CONNECT, error_class, f"{self.vens.ven_name(row)}: {message}")

    def _connected(self, row: int, session_kept: bool, down: float | None) -> None:
        self.outage[row] = (down if down is not None else time.time(), time.time())


def _field(doc: Any, key: str) -> Any:
    """doc[key], whatever the case of the key (VTNs answer `MQTT`/`mqtt`, `URIS`/`uris`)."""
    if key in doc:
        return doc[key]
    lowered = key.lower()
    return next((v for k, v in doc.items() if isinstance(k, str) and k.lower() == lowered), None)
